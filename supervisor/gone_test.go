package supervisor_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
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
