package supervisor_test

import (
	"context"
	"database/sql"
	"testing"
	"time"
)

// pinnedConn is one client connection that stays open across a failure elsewhere.
func pinnedConn(t *testing.T, db *sql.DB) *sql.Conn {
	t.Helper()
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.ExecContext(context.Background(), "SET @mark = 'still here'"); err != nil {
		t.Fatal(err)
	}
	return c
}

func assertAlive(t *testing.T, c *sql.Conn) {
	t.Helper()
	if got := queryString(t, c, "SELECT @mark"); got != "still here" {
		t.Fatalf("session lost its state: %q", got)
	}
}

func TestSessionPanicEndsThatSessionAlone(t *testing.T) {
	p := startProxy(t, oneNode(""))
	db := p.db(t, "main", "")
	other := pinnedConn(t, db)
	victim := pinnedConn(t, db)
	_, err := victim.ExecContext(context.Background(), "SELECT /* pisa:panic-session */ 1")
	if me := mysqlErr(err); me == nil || me.Number != 1105 {
		t.Fatalf("the panicking session's client must get ERR 1105, got %v", err)
	}
	if _, err := victim.ExecContext(context.Background(), "SELECT 1"); err == nil {
		t.Fatal("the panicking session must be closed")
	}
	assertAlive(t, other)
	if got := queryString(t, db, "SELECT 'new session'"); got != "new session" {
		t.Fatal("new sessions must still be served")
	}
	waitFor(t, 5*time.Second, "panic counted", func() bool {
		return len(p.metric(t, `pisa_proxy_session_panics_total{domain="main"} 1`)) == 1 &&
			len(p.metric(t, `pisa_proxy_actor_failures_total{directive="StopDirective",kind="session"} 1`)) == 1
	})
}

func TestTenantFailureDoesNotTouchOtherTenants(t *testing.T) {
	p, dbA, dbB, sessionA, sessionB := twoTenants(t)
	// Crash tenant a's listener actor: it restarts and its sessions end,
	// possibly before this very statement is answered.
	_, _ = sessionA.ExecContext(context.Background(), "SELECT /* pisa:panic-listener */ 1")
	waitRestarted(t, p, "listener")
	waitFor(t, 5*time.Second, "tenant a's session closed", func() bool {
		_, err := sessionA.ExecContext(context.Background(), "SELECT 1")
		return err != nil
	})
	assertAlive(t, sessionB)
	waitFor(t, 5*time.Second, "tenant a serves again", func() bool {
		var one int
		return dbA.QueryRow("SELECT 1").Scan(&one) == nil
	})
	// A strategy actor crash restarts it and keeps every session.
	if _, err := sessionB.ExecContext(context.Background(), "SELECT /* pisa:panic-balancer */ 1"); err != nil {
		t.Fatal(err)
	}
	waitRestarted(t, p, "balancer")
	assertAlive(t, sessionB)
	if got := queryString(t, dbB, "SELECT 'b ok'"); got != "b ok" {
		t.Fatal("tenant b stopped serving")
	}
}

func TestTenantSupervisorRestartKeepsItsPort(t *testing.T) {
	p, dbA, _, sessionA, sessionB := twoTenants(t)
	_, _ = sessionA.ExecContext(context.Background(), "SELECT /* pisa:panic-tenant */ 1")
	waitRestarted(t, p, "tenant")
	// Tenant a serves again on the same port with fresh pools and balancer.
	waitFor(t, 5*time.Second, "tenant a serves again", func() bool {
		var one int
		return dbA.QueryRow("SELECT 1").Scan(&one) == nil
	})
	assertAlive(t, sessionB)
}

func TestSeveralListeners(t *testing.T) {
	toml := listenerTOML("one", []string{"n1"}, "") + listenerTOML("two", []string{"n1"}, "") +
		listenerTOML("three", []string{"n1"}, "") + nodeTOML("n1", backendDB, "")
	p := startProxy(t, toml)
	for _, name := range []string{"one", "two", "three"} {
		if got := queryString(t, p.db(t, name, ""), "SELECT ?", name); got != name {
			t.Fatalf("listener %s: %q", name, got)
		}
		if len(p.metric(t, `pisa_proxy_connections_accepted_total{domain="`+name+`"}`)) != 1 {
			t.Fatalf("listener %s: accepted connections not counted", name)
		}
	}
}

// twoTenants starts listeners a and b over one node, each with a session
// holding state.
func twoTenants(t *testing.T) (p *proxy, dbA, dbB *sql.DB, sessionA, sessionB *sql.Conn) {
	t.Helper()
	p = startProxy(t, listenerTOML("a", []string{"n1"}, "")+listenerTOML("b", []string{"n1"}, "")+nodeTOML("n1", backendDB, ""))
	dbA, dbB = p.db(t, "a", ""), p.db(t, "b", "")
	sessionB = pinnedConn(t, dbB)
	sessionA = pinnedConn(t, dbA)
	return p, dbA, dbB, sessionA, sessionB
}

// waitRestarted waits until one failure of an actor of kind was met with a restart.
func waitRestarted(t *testing.T, p *proxy, kind string) {
	t.Helper()
	waitFor(t, 5*time.Second, kind+" restart counted", func() bool {
		return len(p.metric(t, `pisa_proxy_actor_failures_total{directive="RestartDirective",kind="`+kind+`"} 1`)) == 1
	})
}
