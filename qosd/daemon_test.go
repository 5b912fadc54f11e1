package qosd

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"pisanix.io/pisanix/config"
)

// waitFor polls cond until it holds or timeout passes (Eventually-style).
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// startDaemon runs Run in the background against namespace a and returns
// the admin base URL and a stop function that returns Run's error.
func startDaemon(t *testing.T, tn *testNet, src Source) (string, func() error) {
	t.Helper()
	newTestReconciler(t, tn).Close() // skips where BPF is unsupported
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
			Source: src, AdminListener: ln, Netlink: tn.nlA, Resync: time.Second,
		})
	}()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(60 * time.Second):
			t.Fatal("daemon did not stop within 60s")
			return nil
		}
	}
	t.Cleanup(func() { _ = stop() })
	return "http://" + ln.Addr().String(), stop
}

// fakeController serves a daemon config like pisa-controller does (without watch).
type fakeController struct {
	cfg atomic.Pointer[config.DaemonConfig]
}

func (f *fakeController) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != DaemonConfigPath {
		http.NotFound(w, r)
		return
	}
	body, _ := json.Marshal(f.cfg.Load())
	w.Header().Set(versionHeader, contentVersion(body))
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

var payloadMetric = regexp.MustCompile(`(?m)^pisa_daemon_qos_payload_bytes_total\{app="catalogue",classid="5049:[0-9a-f]+",interface="qa0",service="catalogue-db"\} (\S+)$`)

func TestDaemonWithController(t *testing.T) {
	tn := newTestNet(t)
	before := tcSnapshot(t, tn.nlA, tn.devA)
	ctrl := &fakeController{}
	ctrl.cfg.Store(claimConfig(tn.devA, "10mbit", netip.AddrPortFrom(tn.ipB, 3306)))
	srv := httptest.NewServer(ctrl)
	defer srv.Close()

	admin, stop := startDaemon(t, tn, ControllerSource{BaseURL: srv.URL, Interval: 50 * time.Millisecond})
	waitFor(t, 20*time.Second, "/readyz", func() bool { code, _ := httpGet(t, admin+"/readyz"); return code == 200 })
	if code, body := httpGet(t, admin+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d %s", code, body)
	}

	sendBytes(t, tn, netip.AddrPortFrom(tn.ipB, 3306), 200_000)
	_, metrics := httpGet(t, admin+"/metrics")
	m := payloadMetric.FindStringSubmatch(metrics)
	if m == nil {
		t.Fatalf("no payload counter for catalogue in /metrics:\n%s", grepLines(metrics, "pisa_daemon"))
	}
	if v, _ := strconv.ParseFloat(m[1], 64); v != 200_000 {
		t.Errorf("payload counter = %s, want 200000", m[1])
	}
	for _, want := range []string{`pisa_daemon_qos_rate_bits{app="catalogue"`, `pisa_daemon_qos_drops_total{app="catalogue"`,
		`pisa_daemon_qos_overlimits_total{app="catalogue"`, `pisa_daemon_reconcile_total{result="ok"}`, "go_goroutines"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	var st Status
	_, body := httpGet(t, admin+"/status")
	if err := json.Unmarshal([]byte(body), &st); err != nil || !st.Applied || st.Classes != 1 {
		t.Errorf("/status = %s (%v)", body, err)
	}

	// The controller drops the claim: the daemon removes its state.
	ctrl.cfg.Store(&config.DaemonConfig{})
	waitFor(t, 20*time.Second, "claim removal", func() bool { return tcSnapshot(t, tn.nlA, tn.devA) == before })

	// A bad config keeps the node as it was and says why in /readyz.
	ctrl.cfg.Store(claimConfig(tn.devA, "ten", netip.AddrPortFrom(tn.ipB, 3306)))
	waitFor(t, 20*time.Second, "/readyz to report the bad config", func() bool {
		code, body := httpGet(t, admin+"/readyz")
		return code == 503 && strings.Contains(body, "qos_group.rate")
	})
	if got := tcSnapshot(t, tn.nlA, tn.devA); got != before {
		t.Errorf("bad config changed the node:\n%s", got)
	}

	// Claim again, then shut down: everything is removed.
	ctrl.cfg.Store(claimConfig(tn.devA, "10mbit", netip.AddrPortFrom(tn.ipB, 3306)))
	waitFor(t, 20*time.Second, "claim applied again", func() bool { return tcSnapshot(t, tn.nlA, tn.devA) != before })
	if err := stop(); err != nil {
		t.Fatalf("daemon stopped with %v", err)
	}
	if got := tcSnapshot(t, tn.nlA, tn.devA); got != before {
		t.Errorf("after shutdown:\n%s\nwant as before:\n%s", got, before)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// panickySource panics in its first Watch; later Watches serve cfg.
type panickySource struct {
	calls atomic.Int32
	cfg   *config.DaemonConfig
}

func (s *panickySource) String() string { return "panicky test source" }

func (s *panickySource) Watch(ctx context.Context, emit func(*config.DaemonConfig, string), _ func(error)) error {
	if s.calls.Add(1) == 1 {
		panic("injected source failure")
	}
	emit(s.cfg, "v1")
	<-ctx.Done()
	return ctx.Err()
}

// A panic in a goroutine the actor owns restarts the actor (it does not
// kill the process), and the restarted actor applies the config.
func TestWorkerPanicRestartsReconciler(t *testing.T) {
	tn := newTestNet(t)
	src := &panickySource{cfg: claimConfig(tn.devA, "10mbit", netip.AddrPortFrom(tn.ipB, 3306))}
	admin, stop := startDaemon(t, tn, src)
	waitFor(t, 20*time.Second, "/readyz", func() bool { code, _ := httpGet(t, admin+"/readyz"); return code == 200 })
	var st Status
	_, body := httpGet(t, admin+"/status")
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.Restarts != 1 || src.calls.Load() != 2 {
		t.Errorf("status %s (%v), source started %d times; want one restart and two starts", body, err, src.calls.Load())
	}
	_, metrics := httpGet(t, admin+"/metrics")
	if !strings.Contains(metrics, "pisa_daemon_reconciler_restarts_total 1") {
		t.Errorf("restart not counted:\n%s", grepLines(metrics, "restarts"))
	}
	if err := stop(); err != nil {
		t.Fatalf("daemon stopped with %v", err)
	}
}
