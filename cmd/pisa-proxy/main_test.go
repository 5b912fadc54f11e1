package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/controlplane/configserver"
	"pisanix.io/pisanix/internal/testenv"
	"sync/atomic"
	"syscall"
)

// binary is pisa-proxy built once for these tests: they run it as a user does.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pisa-proxy-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "pisa-proxy")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build pisa-proxy: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// logBuffer collects a process's output and lets a test wait for a line.
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
	ch  chan struct{}
}

func (l *logBuffer) Write(b []byte) (int, error) {
	l.mu.Lock()
	l.buf.Write(b)
	l.mu.Unlock()
	select {
	case l.ch <- struct{}{}:
	default:
	}
	return len(b), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// start runs the binary until the test ends.
func start(t *testing.T, env []string, args ...string) *logBuffer {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	logs := &logBuffer{ch: make(chan struct{}, 1)}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("pisa-proxy did not stop on SIGINT; log:\n%s", logs)
		}
	})
	return logs
}

func freeAddr(t *testing.T) string {
	t.Helper()
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func proxyTOML(admin, listen, password string, srv *testenv.Server) string {
	port := func(addr string) int {
		n, _ := strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:])
		return n
	}
	return testenv.ProxyTOML(port(admin), port(listen), password, srv)
}

func login(addr, password string) error {
	db, err := sql.Open("mysql", "app:"+password+"@tcp("+addr+")/gotest")
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Ping()
}

func httpStatus(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestBadConfigExitsNonZeroNamingTheKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(path, []byte("[[proxy.config]]\nname = \"x\"\nlisten_addr = \"127.0.0.1:1\"\nbogus_key = 1\n"), 0o600)
	out, err := exec.Command(binary, "daemon", "-c", path).CombinedOutput()
	if err == nil {
		t.Fatal("bad config must exit non-zero")
	}
	if !strings.Contains(string(out), path) || !strings.Contains(string(out), `unknown key "proxy.config.bogus_key"`) {
		t.Fatalf("error must name file and key: %s", out)
	}
	out, err = exec.Command(binary, "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PISA_PROXY_ADMIN_LISTEN_PORT") || !strings.Contains(string(out), "daemon") {
		t.Fatalf("--help: %v %s", err, out)
	}
}

func TestDaemonReloadsOnFileChange(t *testing.T) {
	srv := testenv.MariaDB(t)
	admin, listen := freeAddr(t), freeAddr(t)
	path := filepath.Join(t.TempDir(), "proxy.toml")
	if err := os.WriteFile(path, []byte(proxyTOML(admin, listen, "one", srv)), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := start(t, []string{"PISA_PROXY_ADMIN_LOG_LEVEL=DEBUG"}, "daemon", "-c", path)
	eventually(t, 10*time.Second, "ready", func() bool { return httpStatus("http://"+admin+"/readyz") == 200 })
	if err := login(listen, "one"); err != nil {
		t.Fatal(err)
	}
	db, _ := sql.Open("mysql", "app:one@tcp("+listen+")/gotest")
	defer db.Close()
	held, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	// Rewrite the file with a rotated password: applied live.
	if err := os.WriteFile(path, []byte(proxyTOML(admin, listen, "two", srv)), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "new password accepted", func() bool { return login(listen, "two") == nil })
	if held.PingContext(context.Background()) != nil {
		t.Fatal("reload dropped an open session")
	}
	// A broken file is rejected, logged, and the running config kept.
	if err := os.WriteFile(path, []byte("[[proxy.config]]\nnope = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "rejection logged", func() bool { return strings.Contains(logs.String(), "config reload rejected") })
	if err := login(listen, "two"); err != nil {
		t.Fatalf("proxy stopped serving after a bad reload: %v", err)
	}
}

// TestSidecarFollowsController runs the sidecar against the controller's
// own config server (package configserver), fed directly through its store.
func TestSidecarFollowsController(t *testing.T) {
	srv := testenv.MariaDB(t)
	store := configserver.NewStore()
	ctrl := httptest.NewServer(configserver.Handler(store, slog.New(slog.DiscardHandler)))
	t.Cleanup(ctrl.Close) // after the sidecar stops: it holds a long-poll open
	admin, listen := freeAddr(t), freeAddr(t)
	adminPort := admin[strings.LastIndexByte(admin, ':')+1:]
	logs := start(t, []string{
		"PISA_CONTROLLER_HOST=" + ctrl.URL, "PISA_DEPLOYED_NAMESPACE=shop", "PISA_DEPLOYED_NAME=catalogue",
		"PISA_PROXY_ADMIN_LISTEN_HOST=127.0.0.1", "PISA_PROXY_ADMIN_LISTEN_PORT=" + adminPort,
	}, "sidecar")
	// Not ready, and honest about why, until the controller has a config.
	eventually(t, 10*time.Second, "admin up", func() bool { return httpStatus("http://"+admin+"/readyz") == 503 })
	key := configserver.Key{Namespace: "shop", App: "catalogue"}
	set := func(password string) {
		cfg, err := config.ParseTOML([]byte(proxyTOML(admin, listen, password, srv)), "served")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.SetProxy(key, cfg); err != nil {
			t.Fatal(err)
		}
	}
	set("first")
	defer func() {
		if t.Failed() {
			t.Logf("pisa-proxy log:\n%s", logs)
		}
	}()
	eventually(t, 10*time.Second, "ready", func() bool { return httpStatus("http://"+admin+"/readyz") == 200 })
	if err := login(listen, "first"); err != nil {
		t.Fatal(err)
	}
	// A change in the controller reaches the proxy at once (long-poll).
	changed := time.Now()
	set("second")
	eventually(t, 5*time.Second, "change applied", func() bool { return login(listen, "second") == nil })
	t.Logf("controller change applied in the proxy after %s", time.Since(changed).Round(time.Millisecond))
	if d := time.Since(changed); d > 2*time.Second {
		t.Fatalf("change took %s, goal 2s", d)
	}
}

// SIGTERM under a transactional write load: the proxy stops accepting at
// once, lets every transaction in progress commit, closes each session at
// its next boundary and exits 0; every acknowledged commit is in the
// database and no transaction that began fails midway.
func TestSIGTERMDrainsUnderLoad(t *testing.T) {
	srv := testenv.MariaDB(t)
	if err := srv.Exec(context.Background(), "CREATE OR REPLACE TABLE gotest.drain_load (worker INT, n INT)"); err != nil {
		t.Fatal(err)
	}
	admin, listen := freeAddr(t), freeAddr(t)
	path := filepath.Join(t.TempDir(), "proxy.toml")
	if err := os.WriteFile(path, []byte(proxyTOML(admin, listen, "pw", srv)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, logs, exited := startWaited(t, "--drain-timeout", "20s", "daemon", "-c", path)
	eventually(t, 10*time.Second, "ready", func() bool { return httpStatus("http://"+admin+"/readyz") == 200 })

	db, err := sql.Open("mysql", "app:pw@tcp("+listen+")/gotest")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const workers = 4
	var acked atomic.Int64
	midway := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		c, err := db.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			ctx := context.Background()
			for n := 0; n < 10000; n++ {
				if _, err := c.ExecContext(ctx, "BEGIN"); err != nil {
					return // closed at a transaction boundary: expected once draining
				}
				for _, q := range []string{fmt.Sprintf("INSERT INTO drain_load VALUES (%d, %d)", w, n), "DO SLEEP(0.02)", "COMMIT"} {
					if _, err := c.ExecContext(ctx, q); err != nil {
						midway <- fmt.Errorf("worker %d, transaction %d, %s: %w", w, n, q, err)
						return
					}
				}
				acked.Add(1)
			}
		}()
	}
	eventually(t, 10*time.Second, "commits flowing", func() bool { return acked.Load() >= 20 })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "no longer ready", func() bool { return httpStatus("http://"+admin+"/readyz") != 200 })
	if login(listen, "pw") == nil {
		t.Error("a new connection was accepted after SIGTERM")
	}
	wg.Wait()
	close(midway)
	for err := range midway {
		t.Error(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("pisa-proxy exited with %v after SIGTERM; log:\n%s", err, logs)
		}
	case <-time.After(25 * time.Second):
		t.Fatalf("pisa-proxy did not exit after SIGTERM; log:\n%s", logs)
	}
	var rows int64
	if err := srv.RootDB().QueryRow("SELECT COUNT(*) FROM gotest.drain_load").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != acked.Load() {
		t.Fatalf("%d rows committed, %d commits acknowledged", rows, acked.Load())
	}
}

// POST /drain on the admin port drains and stops the proxy as SIGTERM does.
func TestAdminDrain(t *testing.T) {
	srv := testenv.MariaDB(t)
	admin, listen := freeAddr(t), freeAddr(t)
	path := filepath.Join(t.TempDir(), "proxy.toml")
	if err := os.WriteFile(path, []byte(proxyTOML(admin, listen, "pw", srv)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, logs, exited := startWaited(t, "daemon", "-c", path)
	eventually(t, 10*time.Second, "ready", func() bool { return httpStatus("http://"+admin+"/readyz") == 200 })
	resp, err := http.Post("http://"+admin+"/drain", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /drain: %s", resp.Status)
	}
	if err := <-exited; err != nil {
		t.Fatalf("pisa-proxy exited with %v after /drain; log:\n%s", err, logs)
	}
}

// startWaited runs the binary for a test that ends it itself: exited gets
// its exit status; the cleanup kills it if it still runs.
func startWaited(t *testing.T, args ...string) (*exec.Cmd, *logBuffer, <-chan error) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	logs := &logBuffer{ch: make(chan struct{}, 1)}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, logs, exited
}
