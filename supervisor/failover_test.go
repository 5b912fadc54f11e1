package supervisor_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"pisanix.io/pisanix/internal/testenv"
)

func TestNodeFailureAndRecovery(t *testing.T) {
	ctx := context.Background()
	n1, n2 := testenv.MariaDB(t), testenv.MariaDB(t)
	p := startProxy(t, listenerTOML("main", []string{"n1", "n2"}, "")+nodeTOML("n1", n1, "")+nodeTOML("n2", n2, ""))
	db := p.db(t, "main", "")
	db.SetMaxIdleConns(0) // every query a new session: each one picks a node
	port2 := strconv.Itoa(n2.Port())
	ports := func(n int) map[string]int {
		seen := map[string]int{}
		for range n {
			seen[queryString(t, db, "SELECT @@port")]++
		}
		return seen
	}
	if seen := ports(10); seen[port2] == 0 || seen[strconv.Itoa(n1.Port())] == 0 {
		t.Fatalf("round robin did not use both nodes: %v", seen)
	}
	var held = pinnedConn(t, db)
	for queryString(t, held, "SELECT @@port") != port2 {
		held.Close()
		held = pinnedConn(t, db)
	}
	n2.Kill()
	// The session on the dead node gets an error, not a hang.
	start := time.Now()
	if _, err := held.ExecContext(ctx, "SELECT 1"); err == nil {
		t.Fatal("a session on a dead node must fail")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("dead node noticed after %s", d)
	}
	// New sessions all succeed, on the surviving node.
	if seen := ports(20); seen[port2] != 0 || seen[strconv.Itoa(n1.Port())] != 20 {
		t.Fatalf("sessions after the failure: %v", seen)
	}
	waitFor(t, 5*time.Second, "breaker open", func() bool {
		return len(p.metric(t, `pisa_proxy_backend_breaker_state{domain="main",node="n2"} 2`)) == 1
	})
	// Recovery is automatic: a probe closes the breaker and n2 serves again.
	if err := n2.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "n2 back in rotation", func() bool { return ports(4)[port2] > 0 })
	waitFor(t, 5*time.Second, "breaker closed", func() bool {
		return len(p.metric(t, `pisa_proxy_backend_breaker_state{domain="main",node="n2"} 0`)) == 1
	})
}
