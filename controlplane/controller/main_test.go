package controller_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/controlplane/configserver"
	"pisanix.io/pisanix/controlplane/controller"
	"pisanix.io/pisanix/controlplane/kubetest"
	"pisanix.io/pisanix/controlplane/webhook"
)

// The shared test environment: a real kube-apiserver and etcd, the CRDs and
// webhook configuration from deploy/, and the controller's manager running
// the reconcilers, the config server and the webhook.
var (
	k8s       client.Client // uncached: assertions go through the API server
	configURL string
	root      string
	// restCfg, testScheme and testLog start more managers (followers).
	restCfg    *rest.Config
	testScheme *runtime.Scheme
	testLog    *slog.Logger
)

var injectParams = webhook.Params{Image: "pisanix/pisa-proxy:test", ControllerService: "pisa-controller", ControllerNamespace: "pisa-system",
	ControllerCA: []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), TokenAudience: "pisa-controller"}

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	flag.Parse()
	dir, err := kubetest.BinaryDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, "controlplane/controller:", err)
		return 1
	}
	if root, err = kubetest.RepoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctrl.SetLogger(logr.FromSlogHandler(log.Handler()))

	scheme, err := controller.NewScheme()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	te := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		CRDDirectoryPaths:     []string{filepath.Join(root, "deploy", "crd")},
		ErrorIfCRDPathMissing: true,
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{filepath.Join(root, "deploy", "webhook")}},
		Scheme:                scheme,
	}
	cfg, err := te.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "start envtest with binaries from %s: %v\n", dir, err)
		_ = te.Stop() // Start may fail after the API server is up (e.g. a CRD refused)
		return 1
	}
	defer func() {
		if err := te.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop envtest:", err)
		}
	}()
	wio := &te.WebhookInstallOptions
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		WebhookServer: ctrlwebhook.NewServer(ctrlwebhook.Options{
			Host: wio.LocalServingHost, Port: wio.LocalServingPort, CertDir: wio.LocalServingCertDir,
		}),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		return 1
	}
	restCfg, testScheme, testLog = cfg, scheme, log
	store := configserver.NewStore()
	if err := controller.Setup(mgr, controller.Options{Store: store, Log: log, DaemonGlobal: config.DaemonGlobal{EgressDevice: "eth0"}, SecretRetry: time.Second}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	configURL = "http://" + ln.Addr().String()
	if err := mgr.Add(&configserver.Server{Store: store, Log: log, Listener: ln}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mgr.GetWebhookServer().Register(webhook.Path, &admission.Webhook{Handler: &webhook.Handler{
		Params: injectParams, Decoder: admission.NewDecoder(scheme),
		Ports: controller.VirtualDatabasePorts(mgr.GetAPIReader()), Log: log,
	}})
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	// The webhook's failure policy is Fail: wait until it serves.
	whAddr := net.JoinHostPort(wio.LocalServingHost, strconv.Itoa(wio.LocalServingPort))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(wio.LocalServingCAData)
	if err := poll(ctx, 30*time.Second, func() error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", whAddr, &tls.Config{RootCAs: roots, ServerName: wio.LocalServingHost})
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		fmt.Fprintln(os.Stderr, "webhook server did not start:", err)
		return 1
	}
	return m.Run()
}

// poll calls f until it returns nil or timeout passes; it returns f's last error.
func poll(ctx context.Context, timeout time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(25 * time.Millisecond)
	defer t.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
	}
}

// eventually fails the test when f has not returned nil within timeout.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	if err := poll(context.Background(), timeout, f); err != nil {
		t.Fatalf("condition not met within %v: %v", timeout, err)
	}
}
