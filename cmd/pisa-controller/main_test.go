package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"pisanix.io/pisanix/controlplane/api/v1alpha1"
	"pisanix.io/pisanix/controlplane/configclient"
	"pisanix.io/pisanix/controlplane/configserver"
	"pisanix.io/pisanix/controlplane/controller"
	"pisanix.io/pisanix/controlplane/kubetest"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func applyFile(t *testing.T, c client.Client, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range bytes.Split(data, []byte("\n---")) {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		if err := c.Create(context.Background(), u); err != nil {
			t.Fatalf("%s: create %s %s: %v", path, u.GetKind(), u.GetName(), err)
		}
	}
}

func poll(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", timeout, err)
		}
		time.Sleep(25 * time.Millisecond) // polling interval, not a wait for an event
	}
}

// cluster is a real API server with deploy/ applied and the controller's
// run() going as its ServiceAccount, holding only the RBAC of deploy/rbac.
type cluster struct {
	env        *envtest.Environment
	logs       *syncBuffer // the controller's, at debug level
	admin      client.Client
	configAddr string
	done       chan error
}

func startController(t *testing.T) *cluster {
	t.Helper()
	dir, err := kubetest.BinaryDir()
	if err != nil {
		t.Fatal(err)
	}
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	scheme, err := controller.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	te := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		CRDDirectoryPaths:     []string{filepath.Join(root, "deploy", "crd")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	t.Cleanup(func() { _ = te.Stop() }) // also when Start fails half-way
	cfg, err := te.Start()
	if err != nil {
		t.Fatalf("envtest: %v", err)
	}
	admin, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	// Everything deploy/kustomization.yaml lists (the CRDs are installed by envtest already).
	var kust struct {
		Resources []string `json:"resources"`
	}
	data, err := os.ReadFile(filepath.Join(root, "deploy", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &kust); err != nil {
		t.Fatal(err)
	}
	for _, r := range kust.Resources {
		if !strings.HasPrefix(r, "crd/") {
			applyFile(t, admin, filepath.Join(root, "deploy", r))
		}
	}

	// The controller runs as its ServiceAccount's user name.
	user, err := te.AddUser(envtest.User{Name: "system:serviceaccount:pisa-system:pisa-controller", Groups: []string{"system:authenticated"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kcPath := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kcPath, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", kcPath)

	c := &cluster{env: te, logs: &syncBuffer{}, admin: admin, configAddr: freePort(t), done: make(chan error, 1)}
	_, whPort, _ := net.SplitHostPort(freePort(t))
	f, err := parseFlags([]string{
		"--config-addr=" + c.configAddr, "--health-addr=0", "--metrics-addr=0",
		"--webhook-port=" + whPort, "--webhook-cert-dir=" + t.TempDir(), "--namespace=pisa-system",
		"--proxy-image=pisanix/pisa-proxy:test",
	})
	if err != nil {
		t.Fatal(err)
	}
	f.skipNameValidation = true // several tests run the controller in this process
	runCtx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewJSONHandler(c.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() { c.done <- run(runCtx, f, log) }()
	t.Cleanup(func() {
		cancel()
		if err := <-c.done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return c
}

// running fails when run() has returned early.
func (c *cluster) running() error {
	select {
	case err := <-c.done:
		c.done <- err
		return fmt.Errorf("run ended: %v", err)
	default:
		return nil
	}
}

// The whole binary's wiring against a real API server, with the RBAC from
// deploy/rbac only: every deploy/ manifest accepted, certificates
// bootstrapped, caBundle filled, the socks-shop config served and statuses
// written.
func TestRunWithDeployRBAC(t *testing.T) {
	c := startController(t)
	admin, ctx := c.admin, context.Background()
	root, _ := kubetest.RepoRoot()
	applyFile(t, admin, filepath.Join(root, "deploy", "examples", "socks-shop.yaml"))
	want, _ := json.Marshal(kubetest.SocksShopExpected())
	pod := c.workload(t, "default", "catalogue", "catalogue-7d4b9-x2x9z", "catalogue")
	hc, err := c.credentials(t, c.token(t, "default", "catalogue", pod, configserver.DefaultAudience)).HTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, func() error {
		if err := c.running(); err != nil {
			return err
		}
		cfg, _, err := configclient.Fetch(ctx, "https://"+c.configAddr, "default", "catalogue", configclient.WithHTTPClient(hc))
		if err != nil {
			return err
		}
		if got, _ := json.Marshal(cfg); !bytes.Equal(got, want) {
			return fmt.Errorf("served %s", got)
		}
		return nil
	})
	poll(t, 30*time.Second, func() error {
		vdb := &v1alpha1.VirtualDatabase{}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: "default", Name: "catalogue"}, vdb); err != nil {
			return err
		}
		if len(vdb.Status.Conditions) == 0 || vdb.Status.Conditions[0].Status != metav1.ConditionTrue {
			return errors.New("vdb status not written")
		}
		return nil
	})
	sec := &corev1.Secret{}
	if err := admin.Get(ctx, client.ObjectKey{Namespace: "pisa-system", Name: "pisa-controller-webhook-cert"}, sec); err != nil {
		t.Fatalf("webhook cert secret: %v", err)
	}
	wh := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := admin.Get(ctx, client.ObjectKey{Name: "pisa-controller"}, wh); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(wh.Webhooks[0].ClientConfig.CABundle, sec.Data["ca.crt"]) {
		t.Fatal("caBundle not filled from the bootstrap Secret")
	}
}

func TestParseFlags(t *testing.T) {
	if _, err := parseFlags([]string{"--proxy-image="}); err == nil {
		t.Fatal("empty --proxy-image accepted")
	}
	f, err := parseFlags([]string{"--proxy-memory-limit=1Gi"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.resources()
	if err != nil || r.Limits.Memory().String() != "1Gi" || r.Requests.Cpu().String() != "100m" {
		t.Fatalf("resources = %+v, %v", r, err)
	}
	f.proxyCPU = "lots"
	if _, err := f.resources(); err == nil {
		t.Fatal("bad quantity accepted")
	}
	// Pisanix's controller took the sidecar image from PISA_PROXY_IMAGE;
	// the flag still wins.
	t.Setenv("PISA_PROXY_IMAGE", "registry.example/pisa-proxy:v1")
	if f, err := parseFlags(nil); err != nil || f.proxyImage != "registry.example/pisa-proxy:v1" {
		t.Fatalf("PISA_PROXY_IMAGE: image %q, %v", f.proxyImage, err)
	}
	if f, err := parseFlags([]string{"--proxy-image=mine:2"}); err != nil || f.proxyImage != "mine:2" {
		t.Fatalf("--proxy-image over PISA_PROXY_IMAGE: image %q, %v", f.proxyImage, err)
	}
}
