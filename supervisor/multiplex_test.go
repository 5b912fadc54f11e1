package supervisor_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"pisanix.io/pisanix/internal/testenv"
)

// muxProxy is a multiplexing listener "main" over backendDB with pool_size
// backend connections.
func muxProxy(t *testing.T, poolSize int) *proxy {
	t.Helper()
	return startProxy(t, strings.Replace(oneNode("multiplex = true\npool_min_idle = 0"), "pool_size = 8", fmt.Sprintf("pool_size = %d", poolSize), 1))
}

// conns opens n client connections of db, each its own session.
func conns(t *testing.T, db *sql.DB, n int) []*sql.Conn {
	t.Helper()
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	out := make([]*sql.Conn, n)
	for i := range out {
		c, err := db.Conn(context.Background())
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		out[i] = c
	}
	return out
}

// stateProbe reads the session state that multiplexing must carry from
// one backend connection to the next.
const stateProbe = "SELECT CONCAT_WS('|', @v, @w, @@session.sql_mode, @@session.time_zone, @@session.character_set_client, " +
	"@@session.collation_connection, IFNULL(DATABASE(), '-'), @@session.autocommit, @@session.tx_isolation, " +
	"@@session.max_statement_time, @@session.div_precision_increment, @@session.sql_select_limit, LAST_INSERT_ID())"

// muxScript is session i's statements, run interleaved with the other
// sessions' and probed after each step.
func muxScript(i int) []string {
	zone := fmt.Sprintf("'+%02d:00'", i%12)
	steps := []string{
		fmt.Sprintf("SET @v = %d", i),
		"SET time_zone = " + zone,
		"SET @w = CONCAT(@v, '-', @@time_zone)",
		"SELECT 1",
	}
	switch i % 4 {
	case 0:
		steps = append(steps, "SET SESSION sql_mode = 'ANSI_QUOTES'", "SET NAMES latin1", "SET div_precision_increment = 9")
	case 1:
		steps = append(steps, "USE mysql", "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", "SET sql_select_limit = 7")
	case 2:
		steps = append(steps, "SET autocommit = 0", "SELECT 2", "COMMIT", "SET autocommit = 1", "SET max_statement_time = 30")
	case 3:
		steps = append(steps, "SET @v = @v + 100", "SET @v = @v + 100", "SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci")
	}
	return append(steps, "SET time_zone = DEFAULT", "SELECT 3")
}

// TestMultiplexSessionStateDifferential runs the same interleaved scripts
// on 12 sessions directly against MariaDB and through a multiplexing
// listener whose 12 sessions share 4 backend connections (3 of them in
// transactions at once hold 3); after every
// step each session's state must read as it does directly.
func TestMultiplexSessionStateDifferential(t *testing.T) {
	const sessions = 12
	p := muxProxy(t, 4)
	direct := conns(t, openDB(t, backendDB.DSN(testenv.TestUser, testenv.TestPassword, "gotest")), sessions)
	proxied := conns(t, p.db(t, "main", ""), sessions)
	ctx := context.Background()
	run := func(c *sql.Conn, q string) string {
		t.Helper()
		if _, err := c.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return queryString(t, c, stateProbe)
	}
	for step := 0; ; step++ {
		ran := false
		for i := 0; i < sessions; i++ {
			script := muxScript(i)
			if step >= len(script) {
				continue
			}
			ran = true
			want, got := run(direct[i], script[step]), run(proxied[i], script[step])
			if got != want {
				t.Fatalf("session %d after %q:\nproxy  %s\ndirect %s", i, script[step], got, want)
			}
		}
		if !ran {
			break
		}
	}
	if dials := p.metricValue(t, "pisa_proxy_pool_dials_total", `domain="main"`); dials > 4 {
		t.Fatalf("%v backend connections dialled for %d sessions; pool_size is 4", dials, sessions)
	}
	if n := p.metricValue(t, "pisa_proxy_backend_borrows_total", `state="aligned"`); n == 0 {
		t.Fatal("no borrowed connection needed its state given: the sessions did not share connections")
	}
}

// TestMultiplexPerConnectionState checks what lives on one backend
// connection across statements: warnings for SHOW WARNINGS, LAST_INSERT_ID,
// temporary tables and named locks, with other sessions running between.
func TestMultiplexPerConnectionState(t *testing.T) {
	p := muxProxy(t, 2)
	ctx := context.Background()
	direct := openDB(t, backendDB.DSN(testenv.TestUser, testenv.TestPassword, "gotest"))
	mustExec(t, direct, "CREATE TABLE IF NOT EXISTS mux_ids (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
	db := p.db(t, "main", "")
	cs := conns(t, db, 6)
	busy := func() { // every other session runs a statement, on the shared connections
		for _, c := range cs[1:] {
			if _, err := c.ExecContext(ctx, "INSERT INTO mux_ids (v) VALUES (1)"); err != nil {
				t.Fatal(err)
			}
		}
	}
	a := cs[0]

	res, err := a.ExecContext(ctx, "INSERT INTO mux_ids (v) VALUES (0)")
	if err != nil {
		t.Fatal(err)
	}
	id, _ := res.LastInsertId()
	busy()
	if got := queryString(t, a, "SELECT LAST_INSERT_ID()"); got != fmt.Sprint(id) {
		t.Fatalf("LAST_INSERT_ID() = %s after other sessions' inserts; this session inserted %d", got, id)
	}
	// The same through the binary protocol, whose statement is prepared
	// on whichever connection the execution borrows.
	for range 4 {
		busy()
		var got int64
		if err := a.QueryRowContext(ctx, "SELECT LAST_INSERT_ID() + ?", 0).Scan(&got); err != nil || got != id {
			t.Fatalf("prepared LAST_INSERT_ID() = %d (%v) after other sessions' inserts; this session inserted %d", got, err, id)
		}
	}

	// A statement with warnings keeps its connection for SHOW WARNINGS.
	if _, err := a.ExecContext(ctx, "SELECT 1/0"); err != nil {
		t.Fatal(err)
	}
	busy()
	var level, msg string
	var code int
	if err := a.QueryRowContext(ctx, "SHOW WARNINGS").Scan(&level, &code, &msg); err != nil || code != 1365 {
		t.Fatalf("SHOW WARNINGS after SELECT 1/0 and other sessions' statements: code %d %q, %v", code, msg, err)
	}

	mustExec(t, a, "CREATE TEMPORARY TABLE mux_tmp (a INT)")
	busy()
	mustExec(t, a, "INSERT INTO mux_tmp VALUES (42)")
	if got := queryString(t, a, "SELECT a FROM mux_tmp"); got != "42" {
		t.Fatalf("temporary table read %q", got)
	}
	if v := p.metricValue(t, "pisa_proxy_pinned_sessions", `reason="temporary_table"`); v != 1 {
		t.Fatalf("pinned_sessions{reason=temporary_table} = %v, want 1", v)
	}
	// The pin ends with the session.
	db.SetMaxIdleConns(0)
	a.Close()
	waitFor(t, 5*time.Second, "pin released with the session", func() bool {
		return p.metricValue(t, "pisa_proxy_pinned_sessions", `reason="temporary_table"`) == 0
	})

	b := cs[1]
	if got := queryString(t, b, "SELECT GET_LOCK('mux_lock', 0)"); got != "1" {
		t.Fatalf("GET_LOCK: %s", got)
	}
	busy()
	if got := queryString(t, b, "SELECT IS_USED_LOCK('mux_lock') = CONNECTION_ID()"); got != "1" {
		t.Fatalf("named lock not held by the session's connection: %s", got)
	}
}

// TestMultiplexManyClients: 1,000 client sessions, idle and then all
// running autocommit statements at once, share a listener with
// pool_size = 16 without an error.
func TestMultiplexManyClients(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 connections: not in -short")
	}
	const clients, poolSize = 1000, 16
	p := muxProxy(t, poolSize)
	cs := conns(t, p.db(t, "main", ""), clients)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 5; j++ {
				var got int
				if err := c.QueryRowContext(context.Background(), "SELECT ? + 1", i).Scan(&got); err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
					return
				}
				if got != i+1 {
					errs <- fmt.Errorf("client %d: got %d", i, got)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if dials := p.metricValue(t, "pisa_proxy_pool_dials_total", `domain="main"`); dials > poolSize {
		t.Fatalf("%v backend connections dialled; pool_size is %d", dials, poolSize)
	}
	if n := p.Registry.Len(); n != clients {
		t.Fatalf("%d sessions open, want %d", n, clients)
	}
}

// TestMultiplexStaleConnection: a parked backend connection the server
// closed (KILL, wait_timeout) is replaced without the idle client noticing.
func TestMultiplexStaleConnection(t *testing.T) {
	srv := testenv.MariaDB(t)
	p := startProxy(t, strings.Replace(listenerTOML("main", []string{"n1"}, "multiplex = true\npool_min_idle = 0"), "pool_size = 8", "pool_size = 1", 1)+nodeTOML("n1", srv, ""))
	c := conns(t, p.db(t, "main", ""), 1)[0]
	mustExec(t, c, "SET @v = 'kept'")
	admin := openDB(t, srv.DSN(testenv.TestUser, testenv.TestPassword, "gotest"))
	thread := queryString(t, admin, "SELECT id FROM information_schema.processlist WHERE user = ? AND id <> CONNECTION_ID() LIMIT 1", testenv.TestUser)
	mustExec(t, admin, "KILL "+thread)
	waitFor(t, 5*time.Second, "the backend connection gone", func() bool {
		return queryString(t, admin, "SELECT COUNT(*) FROM information_schema.processlist WHERE id = "+thread) == "0"
	})
	time.Sleep(300 * time.Millisecond) // past the pool's stale-check threshold (a duration, not a synchronisation)
	if got := queryString(t, c, "SELECT @v"); got != "kept" {
		t.Fatalf("after its backend connection was killed the session reads @v = %q", got)
	}
}

// TestMultiplexKillIdleSession: KILL of a session between statements ends
// it (KILL CONNECTION) or is a no-op (KILL QUERY), as on a server.
func TestMultiplexKillIdleSession(t *testing.T) {
	p := muxProxy(t, 2)
	db := p.db(t, "main", "")
	db.SetMaxOpenConns(2)
	victim := conns(t, db, 1)[0]
	if got := queryString(t, victim, "SELECT 1"); got != "1" { // ran a statement, parked its connection
		t.Fatal(got)
	}
	sessions := p.Registry.List()
	if len(sessions) != 1 {
		t.Fatalf("sessions %+v", sessions)
	}
	id := sessions[0].ID
	killer := conns(t, openDB(t, p.dsn("main", "")), 1)[0]
	if _, err := killer.ExecContext(context.Background(), fmt.Sprintf("KILL QUERY %d", id)); err != nil {
		t.Fatalf("KILL QUERY of an idle session: %v", err)
	}
	if got := queryString(t, victim, "SELECT 2"); got != "2" {
		t.Fatalf("after KILL QUERY between its statements the session read %q", got)
	}
	if _, err := killer.ExecContext(context.Background(), fmt.Sprintf("KILL %d", id)); err != nil {
		t.Fatalf("KILL of an idle session: %v", err)
	}
	waitFor(t, 5*time.Second, "killed session gone", func() bool { return p.Registry.Len() == 1 })
}

// metricValue sums the series of metric name whose labels contain every
// fragment.
func (p *proxy) metricValue(t *testing.T, name string, fragments ...string) float64 {
	t.Helper()
	var sum float64
	for _, line := range p.metric(t, append(fragments, name+"{")...) {
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// TestMultiplexNoSchemaLeak: on a node that names no schema, a session
// without one never borrows a connection another session left in its
// schema (MySQL cannot unselect a schema: such connections are dropped).
func TestMultiplexNoSchemaLeak(t *testing.T) {
	toml := strings.Replace(listenerTOML("main", []string{"n1"}, "multiplex = true\npool_min_idle = 0\n"), "pool_size = 8", "pool_size = 2", 1)
	toml = strings.Replace(toml, `db = "gotest"`, `db = ""`, 1)
	toml += strings.Replace(nodeTOML("n1", backendDB, ""), `db = "gotest"`, `db = ""`, 1)
	p := startProxy(t, toml)
	dsn := p.dsn("main", "")
	noDB := strings.Replace(dsn, "/gotest", "/", 1)
	in := conns(t, openDB(t, noDB), 2)
	mustExec(t, in[0], "USE gotest")
	mustExec(t, in[1], "USE mysql")
	out := conns(t, openDB(t, noDB), 3)
	for i := 0; i < 3; i++ {
		for j, c := range out {
			if got := queryString(t, c, "SELECT DATABASE()"); got != "" {
				t.Fatalf("session %d without a schema reads %q", j, got)
			}
		}
		if queryString(t, in[0], "SELECT DATABASE()") != "gotest" || queryString(t, in[1], "SELECT DATABASE()") != "mysql" {
			t.Fatal("a session lost its schema")
		}
	}
}

// TestMultiplexKillAmongStatements: a KILL QUERY, among other statements,
// of a session between statements does nothing and the text runs on, as
// on a server.
func TestMultiplexKillAmongStatements(t *testing.T) {
	p := muxProxy(t, 2)
	victim := conns(t, p.db(t, "main", ""), 1)[0]
	mustExec(t, victim, "DO 1")
	id := p.Registry.List()[0].ID
	killer := conns(t, openDB(t, p.dsn("main", "multiStatements=true")), 1)[0]
	if got := queryString(t, killer, fmt.Sprintf("KILL QUERY %d; SELECT 'after'", id)); got != "after" {
		t.Fatalf("got %q", got)
	}
	if got := queryString(t, victim, "SELECT 'alive'"); got != "alive" {
		t.Fatalf("victim read %q", got)
	}
}
