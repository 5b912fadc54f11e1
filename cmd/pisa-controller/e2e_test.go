package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"pisanix.io/pisanix/controlplane/api/v1alpha1"
	"pisanix.io/pisanix/controlplane/configserver"
	"pisanix.io/pisanix/controlplane/kubetest"
	"pisanix.io/pisanix/controlplane/translate"
	"pisanix.io/pisanix/internal/testenv"
)

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func login(addr, user, password, db string) error {
	conn, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/%s?timeout=2s", user, password, addr, db))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return conn.PingContext(ctx)
}

// End to end: CRDs on a real API server -> pisa-controller -> a real
// `pisa-proxy sidecar` process -> a real MariaDB. Measures how long a CRD
// change takes to be applied in the proxy (goal: 2 s).
func TestEndToEndSidecar(t *testing.T) {
	if testing.Short() {
		t.Skip("builds pisa-proxy and starts MariaDB")
	}
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "pisa-proxy")
	if out, err := exec.Command("go", "build", "-o", bin, filepath.Join(root, "cmd", "pisa-proxy")).CombinedOutput(); err != nil {
		t.Fatalf("build pisa-proxy: %v\n%s", err, out)
	}
	db := testenv.MariaDB(t)
	c := startController(t)
	ctx := context.Background()
	const ns = "e2e"
	if err := c.admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	// Distinctive passwords, to look for where they must not be: the
	// backend account's from a Secret, the application's inline and then
	// from a Secret.
	const backendPW, firstPW, secondPW = "be-pw-6a1f0c", "app-pw-3f9c1e", "app-pw-8d2e47"
	if err := db.Exec(ctx, "CREATE USER mesh IDENTIFIED BY '"+backendPW+"'", "GRANT ALL ON "+testenv.TestDB+".* TO mesh"); err != nil {
		t.Fatal(err)
	}
	for name, pw := range map[string]string{"backend": backendPW, "app": secondPW} {
		if err := c.admin.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{translate.SecretOptInLabel: "true"}},
			StringData: map[string]string{"password": pw},
		}); err != nil {
			t.Fatal(err)
		}
	}
	listen := freePort(t)
	host, port, _ := strings.Cut(listen, ":")
	p, _ := strconv.Atoi(port)
	sel := map[string]string{"app": "shop"}
	vdb := &v1alpha1.VirtualDatabase{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns},
		Spec: v1alpha1.VirtualDatabaseSpec{Services: []v1alpha1.Service{{
			Name: "mysql", TrafficStrategy: "shop",
			DatabaseMySQL: &v1alpha1.DatabaseMySQL{Host: host, Port: int32(p), User: "app", Password: firstPW, DB: testenv.TestDB},
		}}},
	}
	objs := []client.Object{
		&v1alpha1.TrafficStrategy{
			ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns},
			Spec: v1alpha1.TrafficStrategySpec{Selector: &metav1.LabelSelector{MatchLabels: sel},
				LoadBalance: &v1alpha1.LoadBalance{SimpleLoadBalance: &v1alpha1.SimpleLoadBalance{Kind: v1alpha1.LoadBalanceRandom}}},
		},
		&v1alpha1.DatabaseEndpoint{
			ObjectMeta: metav1.ObjectMeta{Name: "mariadb", Namespace: ns, Labels: sel},
			Spec: v1alpha1.DatabaseEndpointSpec{Database: v1alpha1.Database{MySQL: &v1alpha1.MySQLEndpoint{
				Host: db.Host(), Port: int32(db.Port()), User: "mesh", PasswordSecretRef: &v1alpha1.SecretKeyRef{Name: "backend"}, DB: testenv.TestDB,
			}}},
		},
		vdb,
	}
	for _, o := range objs {
		if err := c.admin.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}

	admin := freePort(t)
	_, adminPort, _ := strings.Cut(admin, ":")
	// What the webhook gives an injected sidecar: the controller's CA and
	// a token bound to its pod.
	pod := c.workload(t, ns, "shop", "shop-6b7c8-z9x8c", "shop")
	creds := c.credentials(t, c.token(t, ns, "shop", pod, configserver.DefaultAudience))
	proxy := exec.Command(bin, "sidecar")
	proxy.Env = append(os.Environ(),
		"PISA_CONTROLLER_CA="+string(creds.CA), "PISA_CONTROLLER_TOKEN_FILE="+creds.TokenFile,
		"PISA_CONTROLLER_SERVICE=pisa-controller", "PISA_CONTROLLER_NAMESPACE=pisa-system",
		"PISA_CONTROLLER_HOST="+c.configAddr, "PISA_DEPLOYED_NAMESPACE="+ns, "PISA_DEPLOYED_NAME=shop",
		"PISA_PROXY_ADMIN_LISTEN_HOST=127.0.0.1", "PISA_PROXY_ADMIN_LISTEN_PORT="+adminPort)
	logs := &syncBuffer{}
	proxy.Stdout, proxy.Stderr = logs, logs
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- proxy.Wait() }()
	t.Cleanup(func() {
		_ = proxy.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = proxy.Process.Kill()
			<-exited
			t.Error("pisa-proxy did not stop on SIGINT")
		}
		if t.Failed() {
			t.Logf("pisa-proxy log:\n%s", logs)
		}
	})

	poll(t, 60*time.Second, func() error { return login(listen, "app", firstPW, testenv.TestDB) })

	// Change the password the application logs in with: measure API write -> applied.
	changed := time.Now()
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.admin.Get(ctx, client.ObjectKeyFromObject(vdb), vdb); err != nil {
			return err
		}
		vdb.Spec.Services[0].DatabaseMySQL.Password = ""
		vdb.Spec.Services[0].DatabaseMySQL.PasswordSecretRef = &v1alpha1.SecretKeyRef{Name: "app"}
		return c.admin.Update(ctx, vdb)
	}); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, func() error { return login(listen, "app", secondPW, testenv.TestDB) })
	d := time.Since(changed)
	t.Logf("VirtualDatabase change applied in the pisa-proxy sidecar after %v", d.Round(time.Millisecond))
	if d > 2*time.Second {
		t.Errorf("CRD change took %v to reach the proxy; goal is 2s", d)
	}

	// The endpoint goes away: the VirtualDatabase is not ready, and the proxy
	// keeps its last good configuration instead of an empty one.
	if err := c.admin.Delete(ctx, objs[1]); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, func() error {
		v := &v1alpha1.VirtualDatabase{}
		if err := c.admin.Get(ctx, client.ObjectKeyFromObject(vdb), v); err != nil {
			return err
		}
		if len(v.Status.Conditions) == 0 || v.Status.Conditions[0].Reason != v1alpha1.ReasonNoEndpointSelected {
			return fmt.Errorf("conditions %+v", v.Status.Conditions)
		}
		return nil
	})
	if err := login(listen, "app", secondPW, testenv.TestDB); err != nil {
		t.Fatalf("proxy dropped its configuration when the controller had none to give: %v", err)
	}

	// No password in the statuses, the events, either program's log or
	// the proxy's /config.
	_, cfgPage := httpGet(t, "http://"+admin+"/config")
	var statuses, events strings.Builder
	for _, list := range []client.ObjectList{&v1alpha1.VirtualDatabaseList{}, &v1alpha1.TrafficStrategyList{}, &v1alpha1.DatabaseEndpointList{}, &corev1.EventList{}} {
		if err := c.admin.List(ctx, list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(list)
		if _, ok := list.(*corev1.EventList); ok {
			events.Write(b)
			continue
		}
		statuses.Write(statusOnly(t, b))
	}
	for where, text := range map[string]string{
		"statuses": statuses.String(), "events": events.String(), "controller log": c.logs.String(),
		"proxy log": logs.String(), "proxy /config": cfgPage,
	} {
		if text == "" {
			t.Errorf("%s: nothing to look at", where)
		}
		for _, pw := range []string{backendPW, firstPW, secondPW} {
			if strings.Contains(text, pw) {
				t.Errorf("%s carries a password (%s)", where, pw)
			}
		}
	}
}

// statusOnly keeps the status of each item of a list encoded as JSON (the
// spec holds inline passwords by design).
func statusOnly(t *testing.T, list []byte) []byte {
	t.Helper()
	var l struct {
		Items []struct {
			Status json.RawMessage `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal(list, &l); err != nil {
		t.Fatal(err)
	}
	var out []byte
	for _, it := range l.Items {
		out = append(out, it.Status...)
	}
	return out
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
