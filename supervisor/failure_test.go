package supervisor_test

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"pisanix.io/pisanix/internal/testenv"
)

func TestKill(t *testing.T) {
	p := startProxy(t, oneNode(""))
	addr := p.Addr("main").String()
	victim, err := client.Connect(addr, "app", "app-secret", "gotest")
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	id := victim.GetConnectionID() // the proxy's id, not the backend's
	db := p.db(t, "main", "")

	done := sleepOn(t, victim)
	start := time.Now()
	if _, err := db.Exec(fmt.Sprintf("KILL QUERY %d", id)); err != nil {
		t.Fatalf("KILL QUERY %d: %v", id, err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("KILL QUERY did not interrupt the statement")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("KILL QUERY took %s", d)
	}
	// The victim's connection survives KILL QUERY.
	if _, err := victim.Execute("SELECT 1"); err != nil {
		t.Fatalf("session after KILL QUERY: %v", err)
	}
	// Unknown ids are refused like MySQL does.
	if me := mysqlErr(execErr(db, "KILL 987654")); me == nil || me.Number != 1094 {
		t.Fatalf("unknown thread: %v", me)
	}
	// KILL CONNECTION (COM_PROCESS_KILL from go-mysql's raw packet) closes it.
	r := dialRaw(t, p, "main")
	r.send(0x0c, byte(id), byte(id>>8), byte(id>>16), byte(id>>24))
	if b := r.read(); b[0] != 0x00 {
		t.Fatalf("COM_PROCESS_KILL: %q", b)
	}
	waitFor(t, 5*time.Second, "killed connection closed", func() bool {
		_, err := victim.Execute("SELECT 1")
		return err != nil
	})
}

// Drivers send KILL among other statements (mysql2's pool test: "KILL ?;
// SELECT SLEEP(0.05)"): the proxy id is translated in the text.
func TestKillAmongStatements(t *testing.T) {
	p := startProxy(t, oneNode(""))
	multi := pinnedConn(t, p.db(t, "main", "multiStatements=true"))
	victim, err := client.Connect(p.Addr("main").String(), "app", "app-secret", "gotest")
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	id := victim.GetConnectionID()
	// KILL QUERY of an idle session does nothing; the next statement runs.
	if got := queryString(t, multi, fmt.Sprintf("KILL QUERY %d; SELECT 'after'", id)); got != "after" {
		t.Fatalf("KILL QUERY; SELECT: %q", got)
	}
	if _, err := victim.Execute("SELECT 1"); err != nil {
		t.Fatalf("session after KILL QUERY: %v", err)
	}
	mustExec(t, multi, fmt.Sprintf("kill %d; select sleep(0.05)", id))
	waitFor(t, 5*time.Second, "killed connection closed", func() bool {
		_, err := victim.Execute("SELECT 1")
		return err != nil
	})
	if me := mysqlErr(execErr(p.db(t, "main", "multiStatements=true"), "KILL 987654; SELECT 1")); me == nil || me.Number != 1094 {
		t.Fatalf("unknown thread among statements: %v", me)
	}
	assertAlive(t, multi)
}

func execErr(db *sql.DB, q string) error {
	_, err := db.Exec(q)
	return err
}

func TestPoolExhaustedGivesClearError(t *testing.T) {
	extra := "pool_min_idle = 0\n"
	toml := strings.Replace(listenerTOML("main", []string{"n1"}, extra), "pool_size = 8", "pool_size = 1", 1)
	toml = strings.Replace(toml, `pool_acquire_timeout = "2s"`, `pool_acquire_timeout = "300ms"`, 1)
	p := startProxy(t, toml+nodeTOML("n1", backendDB, ""))
	db := p.db(t, "main", "")
	holder := pinnedConn(t, db) // takes the only backend connection
	start := time.Now()
	err := ping(p.dsn("main", ""))
	me := mysqlErr(err)
	if me == nil || me.Number != 1040 || !strings.Contains(me.Message, `tenant "main"`) {
		t.Fatalf("want 1040 naming the tenant, got %v", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
		t.Fatalf("waited %s, want about the 300ms acquire timeout", d)
	}
	assertAlive(t, holder)
	holder.Close()
	// Released and reset: the next session gets it, with clean state.
	c2 := pinnedConn(t, db)
	if got := queryString(t, c2, "SELECT @@session.sql_mode = @@global.sql_mode"); got != "1" {
		t.Fatal("connection not reset before reuse")
	}
	if len(p.metric(t, `pisa_proxy_pool_timeouts_total{domain="main",node="n1"} 1`)) != 1 {
		t.Fatal("pool timeout not counted")
	}
}

func TestBackendUnreachable(t *testing.T) {
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	// A free port nobody listens on.
	node := strings.Replace(nodeTOML("down", backendDB, ""), "port = "+strconv.Itoa(backendDB.Port()), "port = "+strconv.Itoa(port), 1)
	toml := listenerTOML("main", []string{"down"}, "pool_min_idle = 0\n") + node
	p := startProxy(t, toml)
	start := time.Now()
	err = ping(p.dsn("main", ""))
	me := mysqlErr(err)
	if me == nil || me.Number != 1429 || !strings.Contains(me.Message, `tenant "main"`) || !strings.Contains(me.Message, "down") {
		t.Fatalf("want 1429 naming tenant and node, got %v", err)
	}
	// MariaDB's own client shows the message (a client-range code such as
	// 2003 in an ERR packet, it reports as "2027 Received malformed packet").
	_, err = testenv.RunCLI(context.Background(), cliConn(p, "main", ""), "-e", "SELECT 1")
	if err == nil || !strings.Contains(err.Error(), "ERROR 1429") || !strings.Contains(err.Error(), `tenant "main"`) {
		t.Fatalf("mariadb CLI against an unreachable backend: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("unreachable backend took %s to report", d)
	}
	if len(p.metric(t, `pisa_proxy_pool_dial_errors_total{domain="main",node="down"}`)) != 1 {
		t.Fatal("dial error not counted")
	}
}

func TestMaxConnections(t *testing.T) {
	p := startProxy(t, oneNode("max_connections = 1\n"))
	db := p.db(t, "main", "")
	_ = pinnedConn(t, db)
	me := mysqlErr(ping(p.dsn("main", "")))
	if me == nil || me.Number != 1040 {
		t.Fatalf("want 1040 Too many connections, got %v", me)
	}
	if len(p.metric(t, `pisa_proxy_connections_rejected_total{domain="main",reason="max_connections"} 1`)) != 1 {
		t.Fatal("rejection not counted")
	}
}

func TestBackendTLS(t *testing.T) {
	srv := testenv.MariaDB(t, testenv.WithTLS())
	toml := listenerTOML("main", []string{"tls"}, "") + nodeTOML("tls", srv, `tls = "required"`+"\n"+`tls_ca = "`+srv.TLSFiles().CAFile+`"`)
	p := startProxy(t, toml)
	db := p.db(t, "main", "")
	// SHOW STATUS answers for the client's connection (plain here); the
	// backend's own status table tells of the proxy's connection.
	var cipher string
	if err := db.QueryRow("SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_cipher'").Scan(&cipher); err != nil {
		t.Fatal(err)
	}
	if cipher == "" {
		t.Fatal("backend connection is not encrypted")
	}
}

func TestClientGoneMidResult(t *testing.T) {
	p := startProxy(t, oneNode(""))
	r := dialRaw(t, p, "main")
	// Ask for a large result and hang up after the first packets.
	r.send(append([]byte{0x03}, "SELECT seq FROM seq_1_to_2000000"...)...)
	r.read()
	r.c.Close()
	// The backend connection was mid-result: it is discarded, never reused.
	db := p.db(t, "main", "")
	for range 20 {
		if got := queryString(t, db, "SELECT 'clean'"); got != "clean" {
			t.Fatal(got)
		}
	}
}

func TestSlowClientSlowsOnlyItself(t *testing.T) {
	p := startProxy(t, oneNode(""))
	slow := dialRaw(t, p, "main")
	// 50 MB of rows, far beyond the socket buffers, and nobody reading yet.
	slow.send(append([]byte{0x03}, "SELECT REPEAT('x', 1000) FROM seq_1_to_50000"...)...)
	db := p.db(t, "main", "")
	start := time.Now()
	for range 50 {
		if got := queryString(t, db, "SELECT 'fast'"); got != "fast" {
			t.Fatal(got)
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("a stalled client slowed others: 50 queries took %s", d)
	}
	// The stalled stream is intact once the client reads it.
	slow.read()     // column count
	slow.untilEOF() // column definition, EOF
	rows := slow.untilEOF()
	if n := len(rows) - 1; n != 50000 || len(rows[0]) != 1003 {
		t.Fatalf("got %d rows of %d bytes", n, len(rows[0]))
	}
}

// CONNECTION_ID() answers with the backend's thread id (processlist rows
// match it); a KILL of that id from another session reaches the session
// holding that connection, as it would directly.
func TestKillByConnectionID(t *testing.T) {
	p := startProxy(t, oneNode(""))
	victim := pinnedConn(t, p.db(t, "main", ""))
	var thread uint64
	if err := victim.QueryRowContext(context.Background(), "SELECT CONNECTION_ID()").Scan(&thread); err != nil {
		t.Fatal(err)
	}
	var info string
	if err := backendDB.RootDB().QueryRow("SELECT COALESCE(MAX(USER), '') FROM information_schema.PROCESSLIST WHERE ID = ?", thread).Scan(&info); err != nil || info == "" {
		t.Fatalf("CONNECTION_ID() %d is no backend thread: %q %v", thread, info, err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := victim.ExecContext(context.Background(), "SELECT SLEEP(30)")
		done <- err
	}()
	waitFor(t, 10*time.Second, "sleep running on the backend", func() bool {
		var n int
		_ = backendDB.RootDB().QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO = 'SELECT SLEEP(30)'", thread).Scan(&n)
		return n == 1
	})
	if _, err := p.db(t, "main", "").Exec(fmt.Sprintf("KILL QUERY %d", thread)); err != nil {
		t.Fatalf("KILL QUERY of CONNECTION_ID() %d: %v", thread, err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("KILL QUERY of the CONNECTION_ID() did not interrupt the statement")
	}
	assertAlive(t, victim)
}

// KILL prepared with the binary protocol (mysqltest --ps-protocol, a
// driver's prepared KILL): the statement is prepared against the target's
// backend thread and runs while that thread is still the target's; an
// unknown id is prepared as the server prepares it and fails when run.
func TestKillPrepared(t *testing.T) {
	// With multiplexing the killer's statements live on borrowed
	// connections: the proxy runs the KILL itself at each execution.
	for name, extra := range map[string]string{"own connection": "", "multiplexing": "multiplex = true"} {
		t.Run(name, func(t *testing.T) { testKillPrepared(t, extra) })
	}
}

func testKillPrepared(t *testing.T, extra string) {
	p := startProxy(t, oneNode(extra))
	victim, err := client.Connect(p.Addr("main").String(), "app", "app-secret", "gotest")
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	id := victim.GetConnectionID()
	killer := pinnedConn(t, p.db(t, "main", ""))
	ctx := context.Background()

	stmt, err := killer.PrepareContext(ctx, fmt.Sprintf("KILL QUERY %d", id))
	if err != nil {
		t.Fatalf("prepare KILL QUERY %d: %v", id, err)
	}
	done := sleepOn(t, victim)
	if _, err := stmt.ExecContext(ctx); err != nil {
		t.Fatalf("execute the prepared KILL QUERY: %v", err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the prepared KILL QUERY did not interrupt the statement")
	}
	if _, err := victim.Execute("SELECT 1"); err != nil {
		t.Fatalf("session after KILL QUERY: %v", err)
	}

	unknown, err := killer.PrepareContext(ctx, "KILL 987654")
	if err != nil {
		t.Fatalf("prepare KILL of an unknown id: %v (the server prepares it)", err)
	}
	if me := mysqlErr(execStmtErr(unknown)); me == nil || me.Number != 1094 {
		t.Fatalf("execute KILL of an unknown id: %v, want 1094", me)
	}
	// Once the victim is gone its backend thread may serve another
	// session: the prepared KILL must not reach it.
	conn, err := killer.PrepareContext(ctx, fmt.Sprintf("KILL %d", id))
	if err != nil {
		t.Fatal(err)
	}
	victim.Close()
	waitFor(t, 5*time.Second, "victim session gone", func() bool {
		return p.metricValue(t, "pisa_proxy_connections_current", `domain="main"`) == 1 // the killer
	})
	other := pinnedConn(t, p.db(t, "main", ""))
	if me := mysqlErr(execStmtErr(conn)); me == nil || me.Number != 1094 {
		t.Fatalf("a prepared KILL of a session that ended: %v, want 1094", me)
	}
	assertAlive(t, other)
}

func execStmtErr(st *sql.Stmt) error {
	_, err := st.Exec()
	return err
}

// sleepOn starts SELECT SLEEP(30) on victim and returns once the backend
// runs it; the channel gets the statement's outcome.
func sleepOn(t *testing.T, victim *client.Conn) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := victim.Execute("SELECT SLEEP(30)")
		done <- err
	}()
	waitFor(t, 10*time.Second, "sleep running on the backend", func() bool {
		var n int
		_ = backendDB.RootDB().QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(30)'").Scan(&n)
		return n == 1
	})
	return done
}

// TestKillSQLPreparedAndExpression: KILL in SQL-level PREPARE/EXECUTE
// (the id in the text, or a parameter USING a variable) and KILL of an
// expression, which MariaDB evaluates; each runs for the proxy's id, and
// an unknown one gets the server's 1094.
func TestKillSQLPreparedAndExpression(t *testing.T) {
	p := startProxy(t, oneNode(""))
	killer := pinnedConn(t, p.db(t, "main", ""))
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		setup []string
		kill  string
	}{
		{"literal", []string{"PREPARE k FROM 'KILL QUERY %d'"}, "EXECUTE k"},
		{"parameter", []string{"PREPARE k FROM 'KILL QUERY ?'", "SET @victim = %d"}, "EXECUTE k USING @victim"},
		{"expression", []string{"SET @victim = %d"}, "KILL QUERY (SELECT @victim + 0)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			victim, err := client.Connect(p.Addr("main").String(), "app", "app-secret", "gotest")
			if err != nil {
				t.Fatal(err)
			}
			defer victim.Close()
			for _, s := range c.setup {
				mustExec(t, killer, strings.ReplaceAll(s, "%d", fmt.Sprint(victim.GetConnectionID())))
			}
			done := sleepOn(t, victim)
			if _, err := killer.ExecContext(ctx, c.kill); err != nil {
				t.Fatalf("%s: %v", c.kill, err)
			}
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("%s did not interrupt the statement", c.kill)
			}
		})
	}
	for _, kill := range []string{"KILL (('x' IN (SELECT 1)) MOD 44)", "KILL 987654 + 1"} {
		if _, err := killer.ExecContext(ctx, kill); mysqlErr(err) == nil || mysqlErr(err).Number != 1094 {
			t.Errorf("%s: %v, want 1094", kill, err)
		}
	}
	// Prepared with the binary protocol: the expression evaluated at each
	// execution.
	st, err := killer.PrepareContext(ctx, "KILL (('x' IN (SELECT 1)) MOD 44)")
	if err != nil {
		t.Fatalf("prepare KILL of an expression: %v", err)
	}
	if _, err := st.ExecContext(ctx); mysqlErr(err) == nil || mysqlErr(err).Number != 1094 {
		t.Errorf("execute KILL of an expression: %v, want 1094", err)
	}
	mustExec(t, killer, "PREPARE k FROM 'KILL 987655'")
	if _, err := killer.ExecContext(ctx, "EXECUTE k"); mysqlErr(err) == nil || mysqlErr(err).Number != 1094 {
		t.Errorf("EXECUTE of KILL of an unknown id: %v, want 1094", err)
	}
}

// TestBackendTLSPreferredFallback: a node with tls = "preferred" whose
// server offers no TLS is used in plaintext, and that is counted (and
// logged), pooled and passthrough connections alike.
func TestBackendTLSPreferredFallback(t *testing.T) {
	for name, listener := range map[string]string{"pooled": listenerTOML("main", []string{"n1"}, ""), "passthrough": passthroughListener("")} {
		t.Run(name, func(t *testing.T) {
			p := startProxy(t, listener+nodeTOML("n1", backendDB, `tls = "preferred"`))
			user, pass := "app", "app-secret"
			if name == "passthrough" {
				user, pass = testenv.TestUser, testenv.TestPassword
			}
			if err := ping(p.dsnUser("main", user, pass, "")); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "the fallback counted", func() bool {
				return p.metricValue(t, "pisa_proxy_backend_tls_fallbacks_total", `domain="main"`, `node="n1"`) >= 1
			})
		})
	}
}
