//go:build faultinject

package supervisor_test

// Tests that inject failures through the faultinject build's hooks (SQL
// comments such as /* pisa:panic-session */): go test -tags faultinject.

import (
	"context"
	"database/sql"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

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

// The audit log outlives a restart of its tenant's actor: the lossless
// records of statements cut short by the restart are written, and so are
// the statements after it; none is dropped.
func TestAuditSurvivesTenantRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	mustExec(t, backendDB.RootDB(), "CREATE OR REPLACE TABLE gotest.audit_r (id INT)", "INSERT INTO gotest.audit_r VALUES (1)")
	p := startProxy(t, oneNode("[proxy.config.audit]\npath = \""+path+"\"\nlossless = true\ntables = [\"gotest.audit_r\"]\n"))
	db := p.db(t, "main", "")
	// Sessions in the middle of a statement when the tenant restarts: the
	// restart stops them (and their backend statements), so their records
	// are logged while the tenant restarts.
	const sleepers = 3
	done := make(chan error, sleepers)
	for range sleepers {
		c := pinnedConn(t, db)
		go func() {
			_, err := c.ExecContext(context.Background(), "SELECT SLEEP(10) FROM audit_r")
			done <- err
		}()
	}
	waitFor(t, 5*time.Second, "the statements running", func() bool {
		return queryString(t, backendDB.RootDB(),
			"SELECT COUNT(*) FROM information_schema.processlist WHERE info LIKE 'SELECT SLEEP(10)%'") == strconv.Itoa(sleepers)
	})
	// The panic is sent before this statement runs; it is cut short too.
	_, _ = pinnedConn(t, db).ExecContext(context.Background(), "SELECT /* pisa:panic-tenant */ SLEEP(10) FROM audit_r")
	waitRestarted(t, p, "tenant")
	for range sleepers {
		if err := <-done; err == nil {
			t.Fatal("a statement survived its tenant's restart")
		}
	}
	waitFor(t, 5*time.Second, "tenant serves again", func() bool {
		_, err := db.Exec("INSERT INTO audit_r VALUES (2)")
		return err == nil
	})
	lines := readAudit(t, p, path, sleepers+2)
	for i, l := range lines {
		last := i == len(lines)-1
		if last && (l.Kind != "insert" || l.ErrorCode != 0) || !last && (l.Kind != "select" || l.ErrorCode == 0) {
			t.Fatalf("record %d: %+v", i, l)
		}
	}
	if v := metricValue(t, p, `pisa_proxy_audit_records_dropped_total{domain="main"}`); v != "0" {
		t.Fatalf("%s records dropped", v)
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

// A configuration that a listener fails to apply (an error validation
// cannot foresee) is refused: Apply returns the error, the listener
// restarts on its previous settings and the previous configuration runs
// (it used to report success, restart the tenant on the bad spec ten
// times and stop it for good).
func TestApplyFailureRestoresThePreviousConfig(t *testing.T) {
	p := startProxy(t, oneNode(""))
	before := p.Config()
	err := p.Apply(parse(t, oneNode("server_version = \"9.9.9-fail-apply\"\n")))
	if err == nil || !strings.Contains(err.Error(), "listener main") || !strings.Contains(err.Error(), "injected apply failure") {
		t.Fatalf("want the listener's apply error, got %v", err)
	}
	if p.Config() != before {
		t.Fatal("the failed configuration is reported as running")
	}
	waitRestarted(t, p, "tenant")
	waitFor(t, 5*time.Second, "serving on the previous settings", func() bool { return ping(p.dsn("main", "")) == nil })
	if err := p.Ready(); err != nil {
		t.Fatalf("not ready after a refused configuration: %v", err)
	}
	// The tenant restarted once, not into a loop on the bad spec.
	if len(p.metric(t, `pisa_proxy_actor_failures_total{directive="RestartDirective",kind="tenant"} 1`)) != 1 {
		t.Fatal("the tenant restarted more than once")
	}
}

// A listener whose tenant keeps failing is stopped for good by its
// supervisor: its port closes (no silent 1040), /healthz and /readyz turn
// red naming it, the other listeners serve on, and a reload with a working
// configuration brings it back.
func TestTenantStoppedForGoodIsVisible(t *testing.T) {
	p := startProxy(t, oneNode(""))
	bad := oneNode("") + listenerTOML("bad", []string{"n1"}, "server_version = \"9.9.9-fail-apply\"\n")
	if err := p.Apply(parse(t, bad)); err != nil {
		t.Fatal(err) // a new listener starts on its own: its failures come after
	}
	waitFor(t, 10*time.Second, "the failing listener stopped for good", func() bool { return p.Healthy() != nil })
	if err := p.Healthy(); !strings.Contains(err.Error(), "listener bad") {
		t.Fatalf("health: %v", err)
	}
	if err := p.Ready(); err == nil {
		t.Fatal("ready while a listener is down")
	}
	if resp, err := http.Get(p.admin.URL + "/healthz"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/healthz: %v %v", resp, err)
	}
	if p.Addr("bad") != nil {
		t.Fatal("the stopped listener still has an address")
	}
	if err := ping(p.dsn("main", "")); err != nil {
		t.Fatalf("the other listener stopped serving: %v", err)
	}
	if err := p.Apply(parse(t, oneNode("")+listenerTOML("bad", []string{"n1"}, ""))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the listener back", func() bool { return p.Ready() == nil && p.Healthy() == nil })
	if err := ping(p.dsn("bad", "")); err != nil {
		t.Fatalf("the listener brought back does not serve: %v", err)
	}
}
