package supervisor_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"pisanix.io/pisanix/internal/testenv"
)

// TestClientGoneKillsStatement: a client that disconnects while its
// statement runs (go-sql-driver closes the connection when the context
// ends) has the statement killed on the backend, where MariaDB alone would
// run it to the end, by KILL QUERY (not by dropping the connection), and
// the proxy keeps serving.
func TestClientGoneKillsStatement(t *testing.T) {
	for _, mode := range []struct {
		name string
		mux  bool
	}{{"dedicated", false}, {"multiplexed", true}} {
		t.Run(mode.name, func(t *testing.T) {
			var p *proxy
			if mode.mux {
				p = muxProxy(t, 2)
			} else {
				p = startProxy(t, oneNode(""))
			}
			db := p.db(t, "main", "")
			marker := "gone_" + mode.name
			root := backendDB.RootDB()
			running := fmt.Sprintf("SELECT MAX(id) FROM information_schema.processlist WHERE info LIKE '%%%s%%' AND id <> CONNECTION_ID()", marker)

			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				_, err := db.ExecContext(ctx, fmt.Sprintf("SELECT SLEEP(60) /* %s */", marker))
				done <- err
			}()
			waitFor(t, 10*time.Second, "the statement running on the backend", func() bool {
				return queryString(t, root, running) != ""
			})
			cancel() // the driver closes its connection
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("statement ended with %v, want context.Canceled", err)
			}
			waitFor(t, 5*time.Second, "the statement killed on the backend", func() bool {
				return queryString(t, root, running) == ""
			})
			// Counted only when the KILL QUERY ran (the fallback, when it
			// cannot, drops the backend connection instead), right after
			// the server answered it.
			waitFor(t, 5*time.Second, "the client_gone kill counted", func() bool {
				return p.metricValue(t, "pisa_proxy_backend_statements_killed_total", `reason="client_gone"`) == 1
			})
			if got := queryString(t, db, "SELECT 7"); got != "7" {
				t.Fatalf("after the kill a new session read %q", got)
			}
		})
	}
}

// TestIdleBackendClosedClosesClient: when the server closes an idle
// session's backend connection (here its own wait_timeout), the proxy
// closes the client's, as the server would have closed a direct client's:
// drivers that check idle connections before use then reconnect instead
// of failing (go-sql-driver's TestStaleConnectionChecks). Dedicated and
// passthrough sessions.
func TestIdleBackendClosedClosesClient(t *testing.T) {
	for name, toml := range map[string]string{"dedicated": oneNode(""), "passthrough": passthroughTOML("")} {
		t.Run(name, func(t *testing.T) {
			p := startProxy(t, toml)
			user, pass := "app", "app-secret"
			if name == "passthrough" {
				user, pass = testenv.TestUser, testenv.TestPassword
			}
			r := dialRawAs(t, p, "main", user, pass)
			if ok := r.query("SET SESSION wait_timeout = 1"); ok[0][0] != mysql.OK_HEADER {
				t.Fatalf("SET: %q", ok[0])
			}
			_ = r.c.Conn.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			start := time.Now()
			if _, err := r.io.ReadPacket(nil, 1<<20); !errors.Is(err, io.EOF) {
				t.Fatalf("want the connection closed after the backend's wait_timeout, got %v", err)
			}
			if waited := time.Since(start); waited > 3*time.Second {
				t.Errorf("closed after %v; the sweep should take at most a period past wait_timeout", waited)
			}
		})
	}
}
