package configserver

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"pisanix.io/pisanix/config"
)

func cfg(user string) *config.Config {
	c := &config.Config{
		Proxy: config.Proxy{Config: []config.Listener{{Name: "l", User: user,
			SimpleLoadBalance: &config.SimpleLoadBalance{BalanceType: "random", Nodes: []string{"n"}}}}},
		MySQL: config.MySQL{Node: []config.Node{{Name: "n", User: "root"}}},
	}
	c.ApplyDefaults()
	return c
}

func TestServe(t *testing.T) {
	store := NewStore()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Handler(store, slog.New(slog.DiscardHandler), WithMetrics(m)))
	defer srv.Close()
	k := Key{"ns", "app"}
	var v1 string
	get := func(path string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if len(hdr) == 2 {
			req.Header.Set(hdr[0], hdr[1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	if resp, _ := get(ProxyPath("ns", "app")); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("missing: status %d", resp.StatusCode)
	}
	v1, err = store.SetProxy(k, cfg("a"))
	if err != nil {
		t.Fatal(err)
	}
	resp, body := get(ProxyPath("ns", "app"))
	if resp.StatusCode != http.StatusOK || resp.Header.Get(VersionHeader) != v1 || resp.Header.Get("ETag") != `"`+v1+`"` {
		t.Fatalf("status %d headers %v", resp.StatusCode, resp.Header)
	}
	if _, err := config.ParseJSON([]byte(body), "served"); err != nil {
		t.Fatalf("served body does not parse: %v\n%s", err, body)
	}
	if resp, _ := get(ProxyPath("ns", "app"), "If-None-Match", `"`+v1+`"`); resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match current: status %d", resp.StatusCode)
	}
	// A watch at the current version times out with 304.
	if resp, _ := get(ProxyPath("ns", "app") + "?watch=true&timeoutSeconds=0&version=" + v1); resp.StatusCode != http.StatusNotModified {
		t.Fatalf("watch timeout: status %d", resp.StatusCode)
	}
	// A watch at an old version answers at once.
	if resp, _ := get(ProxyPath("ns", "app") + "?watch=true&version=old"); resp.StatusCode != http.StatusOK {
		t.Fatalf("watch old version: status %d", resp.StatusCode)
	}
	// A watch at the current version answers when the config changes.
	type result struct {
		status  int
		version string
	}
	got := make(chan result, 1)
	go func() {
		resp, _ := get(ProxyPath("ns", "app") + "?watch=true&timeoutSeconds=10&version=" + v1)
		got <- result{resp.StatusCode, resp.Header.Get(VersionHeader)}
	}()
	// Give the watcher no head start guarantee: whether it arrives before or
	// after the change, it must answer with the new version.
	v2, err := store.SetProxy(k, cfg("b"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.status != http.StatusOK || r.version != v2 {
			t.Fatalf("watch answered %+v, want 200 %s", r, v2)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch did not answer after a change")
	}
	store.SetProxyNotReady(k, "NoEndpointSelected", "nothing")
	resp, body = get(ProxyPath("ns", "app"))
	var nr NotReady
	if err := json.Unmarshal([]byte(body), &nr); err != nil || resp.StatusCode != http.StatusServiceUnavailable || nr.Reason != "NoEndpointSelected" {
		t.Fatalf("not ready: status %d body %s", resp.StatusCode, body)
	}
	store.DeleteProxy(k)
	if resp, _ := get(ProxyPath("ns", "app")); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("deleted: status %d", resp.StatusCode)
	}
	if resp, _ := get(DaemonPath()); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("daemon before set: status %d, want 503 (an empty config would remove the shaping)", resp.StatusCode)
	}
	for code, want := range map[string]float64{"200": 3, "304": 2, "404": 2, "503": 1} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues("proxy", code)); got != want {
			t.Errorf("proxy requests with code %s = %v, want %v", code, got, want)
		}
	}
	if got := testutil.ToFloat64(m.watchers.WithLabelValues("proxy")); got != 0 {
		t.Errorf("watchers = %v after all watches ended", got)
	}
	if _, err := store.SetDaemon(map[string]any{"apps": []string{}}); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(DaemonPath()); resp.StatusCode != http.StatusOK {
		t.Fatalf("daemon: status %d", resp.StatusCode)
	}
}
