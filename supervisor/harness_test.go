package supervisor_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"pisanix.io/pisanix/actors"
	"pisanix.io/pisanix/admin"
	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/internal/testenv"
	"pisanix.io/pisanix/metrics"
	"pisanix.io/pisanix/supervisor"
)

// proxy is a pisa-proxy started in-process for a test, with its admin handler.
type proxy struct {
	*supervisor.Proxy
	admin *httptest.Server
	m     *metrics.Proxy
}

// listenerTOML is one [[proxy.config]] in front of the given nodes.
func listenerTOML(name string, nodes []string, extra string) string {
	return fmt.Sprintf(`
[[proxy.config]]
name = %q
listen_addr = "127.0.0.1:0"
user = "app"
password = "app-secret"
db = "gotest"
pool_size = 8
pool_acquire_timeout = "2s"
%s
[proxy.config.simple_loadbalance]
balance_type = "roundrobin"
nodes = [%s]
`, name, extra, quoteList(nodes))
}

func nodeTOML(name string, srv *testenv.Server, extra string) string {
	return fmt.Sprintf(`
[[mysql.node]]
name = %q
db = "gotest"
user = %q
password = %q
host = "127.0.0.1"
port = %d
%s
`, name, testenv.TestUser, testenv.TestPassword, srv.Port(), extra)
}

func quoteList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, ", ")
}

// startProxy parses toml (listeners and nodes) and starts a proxy that the
// test stops at cleanup.
func startProxy(t *testing.T, toml string) *proxy {
	t.Helper()
	cfg, err := config.ParseTOML([]byte(toml), t.Name()+".toml")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	m := metrics.New()
	sys := actors.NewSystem(log, m)
	p, err := supervisor.Start(cfg, sys, log)
	if err != nil {
		t.Fatal(err)
	}
	h := admin.Handler(admin.Sources{Registry: m.Registry, Version: "test", Ready: p.Ready, Healthy: p.Healthy,
		Config: func() any { return p.Config().Redacted() }, Sessions: func() any { return p.Registry.List() },
		FlushHosts: p.FlushHosts})
	px := &proxy{Proxy: p, admin: httptest.NewServer(h), m: m}
	t.Cleanup(func() {
		px.admin.Close()
		if err := p.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
		sys.Shutdown()
	})
	waitFor(t, 5*time.Second, "proxy ready", func() bool { return p.Ready() == nil })
	return px
}

// testWriter sends logs to t.Log while the test runs.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// dsn for the app user through listener name.
func (p *proxy) dsn(name, params string) string {
	return p.dsnUser(name, "app", "app-secret", params)
}

func (p *proxy) dsnUser(name, user, pass, params string) string {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = user, pass, "tcp", p.Addr(name).String(), "gotest"
	d := cfg.FormatDSN()
	if params != "" {
		if strings.Contains(d, "?") {
			d += "&" + params
		} else {
			d += "?" + params
		}
	}
	return d
}

func (p *proxy) db(t *testing.T, name, params string) *sql.DB {
	t.Helper()
	return openDB(t, p.dsn(name, params))
}

func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// metric returns the /metrics lines that contain every fragment.
func (p *proxy) metric(t *testing.T, fragments ...string) []string {
	t.Helper()
	resp, err := http.Get(p.admin.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out []string
	for _, line := range strings.Split(string(body), "\n") {
		ok := !strings.HasPrefix(line, "#")
		for _, f := range fragments {
			ok = ok && strings.Contains(line, f)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// waitFor polls cond (an observable state, not a sleep) until it holds.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func queryString(t *testing.T, db interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, q string, args ...any) string {
	t.Helper()
	var s sql.NullString
	if err := db.QueryRowContext(context.Background(), q, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s.String
}

func mysqlErr(err error) *mysql.MySQLError {
	if me, ok := err.(*mysql.MySQLError); ok {
		return me
	}
	return nil
}
