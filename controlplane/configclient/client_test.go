package configclient_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/controlplane/configclient"
	"pisanix.io/pisanix/controlplane/configserver"
)

func testConfig(user string) *config.Config {
	c := &config.Config{
		Proxy: config.Proxy{Config: []config.Listener{{
			Name: "mysql", ListenAddr: "127.0.0.1:3306", User: user, Password: "pw",
			SimpleLoadBalance: &config.SimpleLoadBalance{BalanceType: "random", Nodes: []string{"db"}},
		}}},
		MySQL: config.MySQL{Node: []config.Node{{Name: "db", User: "root", Host: "db.example", Port: 3306}}},
	}
	c.ApplyDefaults()
	return c
}

var key = configserver.Key{Namespace: "default", App: "catalogue"}

func newServer(t *testing.T) (*configserver.Store, string) {
	t.Helper()
	store := configserver.NewStore()
	srv := httptest.NewServer(configserver.Handler(store, slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	return store, srv.URL
}

// received collects what Watch applies.
type received struct {
	mu   sync.Mutex
	cfgs []*config.Config
	ch   chan struct{}
}

func newReceived() *received { return &received{ch: make(chan struct{}, 100)} }

func (r *received) apply(c *config.Config) {
	r.mu.Lock()
	r.cfgs = append(r.cfgs, c)
	r.mu.Unlock()
	r.ch <- struct{}{}
}

// next waits for the next applied config and returns it with the delay.
func (r *received) next(t *testing.T, within time.Duration) (*config.Config, time.Duration) {
	t.Helper()
	start := time.Now()
	select {
	case <-r.ch:
	case <-time.After(within):
		t.Fatalf("no config applied within %v", within)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cfgs[len(r.cfgs)-1], time.Since(start)
}

func (r *received) none(t *testing.T, during time.Duration) {
	t.Helper()
	select {
	case <-r.ch:
		t.Fatal("a config was applied but none was expected")
	case <-time.After(during):
	}
}

func TestFetch(t *testing.T) {
	store, url := newServer(t)
	ctx := context.Background()
	if _, _, err := configclient.Fetch(ctx, url, key.Namespace, key.App); !errors.Is(err, configclient.ErrNotFound) {
		t.Fatalf("missing app: err = %v, want ErrNotFound", err)
	}
	store.SetProxyNotReady(key, "NoEndpointSelected", "selects nothing")
	var nr *configclient.NotReadyError
	if _, _, err := configclient.Fetch(ctx, url, key.Namespace, key.App); !errors.As(err, &nr) || nr.Reason != "NoEndpointSelected" {
		t.Fatalf("not ready: err = %v", err)
	}
	want, err := store.SetProxy(key, testConfig("u1"))
	if err != nil {
		t.Fatal(err)
	}
	c, v, err := configclient.Fetch(ctx, url, key.Namespace, key.App)
	if err != nil {
		t.Fatal(err)
	}
	if v != want || c.Proxy.Config[0].User != "u1" {
		t.Fatalf("got version %q user %q, want %q u1", v, c.Proxy.Config[0].User, want)
	}
}

func TestWatchFollowsChanges(t *testing.T) {
	store, url := newServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	r := newReceived()
	done := make(chan error, 1)
	go func() { done <- configclient.Watch(ctx, url, key.Namespace, key.App, r.apply) }()

	r.none(t, 200*time.Millisecond) // nothing to apply yet: never an empty config

	if _, err := store.SetProxy(key, testConfig("u1")); err != nil {
		t.Fatal(err)
	}
	c, d := r.next(t, 2*time.Second)
	if c.Proxy.Config[0].User != "u1" {
		t.Fatalf("user = %q", c.Proxy.Config[0].User)
	}
	t.Logf("first config applied %v after it was stored", d)

	if _, err := store.SetProxy(key, testConfig("u2")); err != nil {
		t.Fatal(err)
	}
	c, d = r.next(t, 2*time.Second)
	if c.Proxy.Config[0].User != "u2" {
		t.Fatalf("user = %q", c.Proxy.Config[0].User)
	}
	if d > time.Second {
		t.Fatalf("change took %v to arrive through the watch; want well under 1s", d)
	}

	// Not ready: the proxy keeps its config, nothing is applied.
	store.SetProxyNotReady(key, "StrategyMissing", "gone")
	r.none(t, 200*time.Millisecond)
	// The same config coming back (a restarted controller) is not re-applied.
	if _, err := store.SetProxy(key, testConfig("u2")); err != nil {
		t.Fatal(err)
	}
	r.none(t, 200*time.Millisecond)
	// A new one is.
	if _, err := store.SetProxy(key, testConfig("u3")); err != nil {
		t.Fatal(err)
	}
	if c, _ = r.next(t, 2*time.Second); c.Proxy.Config[0].User != "u3" {
		t.Fatalf("user = %q", c.Proxy.Config[0].User)
	}

	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Watch returned %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return after cancel")
	}
}

// The controller is unreachable when the proxy starts: Watch retries with
// backoff and applies the config once the controller is up.
func TestWatchControllerUnreachableAtStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: connection refused

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := newReceived()
	var (
		mu       sync.Mutex
		failures int
	)
	go func() {
		_ = configclient.Watch(ctx, "http://"+addr, key.Namespace, key.App, r.apply,
			configclient.WithBackoff(10*time.Millisecond, 100*time.Millisecond),
			configclient.WithErrorHandler(func(error) { mu.Lock(); failures++; mu.Unlock() }))
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := failures
		mu.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d failed attempts seen", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.none(t, 50*time.Millisecond)

	store := configserver.NewStore()
	if _, err := store.SetProxy(key, testConfig("late")); err != nil {
		t.Fatal(err)
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("could not re-listen on %s: %v", addr, err)
	}
	srv := &http.Server{Handler: configserver.Handler(store, slog.New(slog.DiscardHandler))}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	if c, _ := r.next(t, 3*time.Second); c.Proxy.Config[0].User != "late" {
		t.Fatalf("user = %q", c.Proxy.Config[0].User)
	}
}

func TestBaseURL(t *testing.T) {
	for _, tt := range []struct {
		host, svc, ns, want string
		secure, wantErr     bool
	}{
		{"", "pisa-controller", "pisa-system", "http://pisa-controller.pisa-system:8080", false, false},
		{"", "pisa-controller", "pisa-system", "https://pisa-controller.pisa-system:8080", true, false},
		{"10.0.0.1:8080", "x", "y", "http://10.0.0.1:8080", false, false},
		{"https://ctl.example/", "", "", "https://ctl.example", false, false},
		{"http://ctl.example/", "", "", "http://ctl.example", true, false},
		{"", "", "pisa-system", "", false, true},
	} {
		got, err := configclient.BaseURL(tt.host, tt.svc, tt.ns, tt.secure)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("BaseURL(%q,%q,%q) = %q, %v; want %q (err %v)", tt.host, tt.svc, tt.ns, got, err, tt.want, tt.wantErr)
		}
	}
}
