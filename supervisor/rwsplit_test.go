package supervisor_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"
	"testing"
	"time"

	"pisanix.io/pisanix/internal/testenv"
)

// rwTOML: one listener with static read/write splitting over a primary and
// its replica.
func rwTOML(primary, replica *testenv.Server, window string) string {
	return fmt.Sprintf(`
[[proxy.config]]
name = "main"
listen_addr = "127.0.0.1:0"
user = "app"
password = "app-secret"
db = "gotest"
pool_size = 8
[proxy.config.read_write_splitting.static]
default_target = "read"
read_after_write_window = %q
[[proxy.config.read_write_splitting.static.rule]]
name = "ledger stays on the primary"
type = "regex"
regex = ["FROM ledger"]
target = "readwrite"
algorithm_name = "roundrobin"
`, window) + nodeTOML("primary", primary, `role = "readwrite"`) + nodeTOML("replica", replica, `role = "read"`)
}

func TestReadWriteSplitting(t *testing.T) {
	ctx := context.Background()
	primary := testenv.MariaDB(t, testenv.WithReplication())
	replica := testenv.Replica(t, primary, testenv.WithReplication())
	if err := primary.Exec(ctx, "CREATE TABLE gotest.where_am_i (v VARCHAR(10))", "INSERT INTO gotest.where_am_i VALUES ('primary')",
		"CREATE TABLE gotest.ledger (v VARCHAR(10))", "INSERT INTO gotest.ledger VALUES ('primary')",
		"CREATE PROCEDURE gotest.rw_noop() DO 0"); err != nil {
		t.Fatal(err)
	}
	if err := replica.WaitCaughtUp(ctx, primary); err != nil {
		t.Fatal(err)
	}
	// Mark the replica's copy so a read shows where it ran.
	if err := replica.Exec(ctx, "UPDATE gotest.where_am_i SET v = 'replica'", "UPDATE gotest.ledger SET v = 'replica'"); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, rwTOML(primary, replica, "300ms"))
	c := pinnedConn(t, p.db(t, "main", ""))
	where := func() string { return queryString(t, c, "SELECT v FROM where_am_i") }

	if got := where(); got != "replica" {
		t.Fatalf("plain read ran on %s", got)
	}
	if got := queryString(t, c, "SELECT v FROM ledger"); got != "primary" {
		t.Fatalf("rule target readwrite ignored: %s", got)
	}
	if got := queryString(t, c, "SELECT v FROM where_am_i FOR UPDATE"); got != "primary" {
		t.Fatalf("locking read ran on %s", got)
	}
	// Inside a transaction everything stays on the primary.
	mustExec(t, c, "BEGIN")
	if got := where(); got != "primary" {
		t.Fatalf("read in a transaction ran on %s", got)
	}
	mustExec(t, c, "COMMIT")
	// A write goes to the primary, and reads follow it there for the window.
	mustExec(t, c, "INSERT INTO where_am_i VALUES ('w')")
	if got := queryString(t, primary.RootDB(), "SELECT COUNT(*) FROM gotest.where_am_i"); got != "2" {
		t.Fatalf("write did not reach the primary: %s rows", got)
	}
	if got := queryString(t, c, "SELECT v FROM where_am_i LIMIT 1"); got != "primary" {
		t.Fatalf("read right after a write ran on %s", got)
	}
	waitFor(t, 5*time.Second, "read-after-write window over", func() bool {
		return queryString(t, c, "SELECT v FROM where_am_i LIMIT 1") == "replica"
	})
	// A write by a prepared statement (binary protocol) opens the window too.
	ins, err := c.PrepareContext(ctx, "INSERT INTO where_am_i VALUES (?)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ins.ExecContext(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	ins.Close()
	if got := queryString(t, c, "SELECT v FROM where_am_i LIMIT 1"); got != "primary" {
		t.Fatalf("read right after a prepared write ran on %s", got)
	}
	waitFor(t, 5*time.Second, "read-after-write window over", func() bool {
		return queryString(t, c, "SELECT v FROM where_am_i LIMIT 1") == "replica"
	})
	// CALL counts as a write; it does not end splitting for the session.
	mustExec(t, c, "CALL gotest.rw_noop()")
	waitFor(t, 5*time.Second, "reads back on the replica after CALL", func() bool {
		return queryString(t, c, "SELECT v FROM where_am_i LIMIT 1") == "replica"
	})
	// Session state follows the session to the replica.
	mustExec(t, c, "SET NAMES latin1")
	if got := queryString(t, c, "SELECT CONCAT(v, ':', CHARSET('x')) FROM where_am_i LIMIT 1"); got != "replica:latin1" {
		t.Fatalf("SET not replayed on the replica: %s", got)
	}
	// User variables live on the primary connection.
	mustExec(t, c, "SET @mine = 7")
	if got := queryString(t, c, "SELECT @mine"); got != "7" {
		t.Fatalf("user variable read on the wrong connection: %q", got)
	}
	if len(p.metric(t, `pisa_proxy_rw_rule_hits_total{domain="main",rule="ledger stays on the primary"} 1`)) != 1 {
		t.Fatal("rule hit not counted")
	}
	for _, target := range []string{"read", "readwrite"} {
		if len(p.metric(t, `pisa_proxy_rw_routed_total{domain="main",target="`+target+`"}`)) != 1 {
			t.Fatalf("routing to %s not counted", target)
		}
	}
	if len(p.metric(t, `pisa_proxy_sql_processed_total{`, fmt.Sprintf(`server="%s"`, replica.Addr()))) == 0 {
		t.Fatal("replica statements not counted under the replica's address")
	}
}

func TestDynamicDiscovery(t *testing.T) {
	ctx := context.Background()
	primary := testenv.MariaDB(t, testenv.WithReplication())
	replica := testenv.Replica(t, primary, testenv.WithReplication())
	if err := primary.Exec(ctx, "CREATE TABLE gotest.where_am_i (v VARCHAR(10))", "INSERT INTO gotest.where_am_i VALUES ('primary')"); err != nil {
		t.Fatal(err)
	}
	if err := replica.WaitCaughtUp(ctx, primary); err != nil {
		t.Fatal(err)
	}
	if err := replica.Exec(ctx, "SET GLOBAL read_only = ON", "UPDATE gotest.where_am_i SET v = 'replica'"); err != nil {
		t.Fatal(err)
	}
	toml := `
[[proxy.config]]
name = "main"
listen_addr = "127.0.0.1:0"
user = "app"
password = "app-secret"
db = "gotest"
[proxy.config.read_write_splitting.dynamic]
default_target = "read"
[proxy.config.read_write_splitting.dynamic.discovery]
type = "mha"
user = "root"
password = ""
monitor_period = 100
max_replication_lag = 10000
` + nodeTOML("a", primary, `role = "readwrite"`) + nodeTOML("b", replica, `role = "read"`)
	p := startProxy(t, toml)
	db := p.db(t, "main", "")
	db.SetMaxIdleConns(0) // each read a new session, so routing follows discovery
	read := func() string { return queryString(t, db, "SELECT v FROM where_am_i") }
	waitFor(t, 5*time.Second, "reads on the replica", func() bool { return read() == "replica" })

	// A replica whose SQL thread stopped is stale: reads move to the primary.
	if err := replica.StopSQLThread(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "stopped replica dropped", func() bool { return read() == "primary" })
	if err := replica.StartSQLThread(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "replica back", func() bool { return read() == "replica" })

	// Failover: read_only flips, and new sessions write to the new primary.
	if err := primary.SetReadOnly(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := replica.Exec(ctx, "STOP SLAVE", "SET GLOBAL read_only = OFF"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "writes follow the new primary", func() bool {
		_, err := db.Exec("INSERT INTO where_am_i VALUES ('after')")
		if err != nil {
			return false
		}
		var n int
		_ = replica.RootDB().QueryRow("SELECT COUNT(*) FROM gotest.where_am_i WHERE v = 'after'").Scan(&n)
		return n > 0
	})
	if len(p.metric(t, `pisa_proxy_discovery_probes_total{domain="main",node="b",result="ok"}`)) != 1 {
		t.Fatal("probes not counted")
	}
}

func TestReadYourWritesByGTID(t *testing.T) {
	ctx := context.Background()
	primary := testenv.MariaDB(t, testenv.WithReplication())
	replica := testenv.Replica(t, primary, testenv.WithReplication())
	if err := primary.Exec(ctx, "CREATE TABLE gotest.ryw (v INT)"); err != nil {
		t.Fatal(err)
	}
	if err := replica.WaitCaughtUp(ctx, primary); err != nil {
		t.Fatal(err)
	}
	toml := strings.Replace(rwTOML(primary, replica, "0s"), `read_after_write_window = "0s"`,
		"read_after_write_window = \"0s\"\nread_your_writes = \"gtid\"\ngtid_wait_timeout = \"300ms\"", 1)
	p := startProxy(t, toml)
	c := pinnedConn(t, p.db(t, "main", ""))
	// The replica stops applying: a read right after a write must not miss it.
	if err := replica.StopSQLThread(ctx); err != nil {
		t.Fatal(err)
	}
	mustExec(t, c, "INSERT INTO ryw VALUES (1)")
	if got := queryString(t, c, "SELECT COUNT(*) FROM ryw"); got != "1" {
		t.Fatalf("read after write saw %s rows (a lagging replica answered)", got)
	}
	// Once the replica has the write, reads go there again.
	if err := replica.StartSQLThread(ctx); err != nil {
		t.Fatal(err)
	}
	mustExec(t, c, "INSERT INTO ryw VALUES (2)")
	if got := queryString(t, c, "SELECT COUNT(*) FROM ryw"); got != "2" {
		t.Fatalf("read after write saw %s rows", got)
	}
	before := len(p.metric(t, `pisa_proxy_rw_routed_total{domain="main",target="read"}`))
	if before != 1 {
		t.Fatal("no read was routed to the caught-up replica")
	}
}

// Read/write splitting with access control (sixth review): SETs are given
// to the replica only when they mean the same there; a replica connection
// that reads text otherwise than the primary is not used for restricted
// users; nothing runs twice on the replica.
func TestReadWriteSplittingKeepsChecksTrue(t *testing.T) {
	ctx := context.Background()
	primary := testenv.MariaDB(t, testenv.WithReplication())
	replica := testenv.Replica(t, primary, testenv.WithReplication())
	if err := primary.Exec(ctx,
		"CREATE OR REPLACE TABLE gotest.acl_secret (id INT, v VARCHAR(20))",
		"INSERT INTO gotest.acl_secret VALUES (1, 'TOPSECRET')",
		"CREATE OR REPLACE TABLE gotest.acl_orders (id INT, v VARCHAR(20))",
		"CREATE DATABASE IF NOT EXISTS spyown",
		"CREATE OR REPLACE TABLE spyown.acl_secret (id INT, v VARCHAR(20))",
		"INSERT INTO spyown.acl_secret VALUES (1, 'harmless')",
		"CREATE OR REPLACE TABLE gotest.twice (id INT)",
		"CREATE OR REPLACE SEQUENCE gotest.acl_seq",
		"CREATE OR REPLACE TABLE gotest.ids (id INT PRIMARY KEY)",
		"CREATE OR REPLACE FUNCTION gotest.take_id(x INT) RETURNS INT DETERMINISTIC MODIFIES SQL DATA BEGIN INSERT INTO gotest.ids VALUES (x); RETURN x; END",
		"CREATE OR REPLACE TABLE gotest.rw_marker (v VARCHAR(10))",
		"INSERT INTO gotest.rw_marker VALUES ('primary')",
	); err != nil {
		t.Fatal(err)
	}
	if err := replica.WaitCaughtUp(ctx, primary); err != nil {
		t.Fatal(err)
	}
	// Mark the replica's copy, outside its binary log (a GTID of its own
	// would stop replication at the primary's next write).
	marker := pinnedConn(t, replica.RootDB())
	mustExec(t, marker, "SET SESSION sql_log_bin = 0", "UPDATE gotest.rw_marker SET v = 'replica'", "SET SESSION sql_log_bin = 1", "SET GLOBAL read_only = ON")
	base := rwTOML(primary, replica, "0s")
	i := strings.Index(base, "\n[[mysql.node]]")
	toml := base[:i] + accessUsers + base[i:]
	p := startProxy(t, toml)

	// A SET reading a table, checked in spyown, replayed in gotest.
	spy := pinnedConn(t, p.userDB(t, "spy", "spy-pw", ""))
	queryString(t, spy, "SELECT 1") // takes the replica connection
	mustExec(t, spy, "USE spyown", "SET SESSION default_master_connection = (SELECT v FROM acl_secret LIMIT 1)", "USE gotest")
	if got := queryString(t, spy, "SELECT @@default_master_connection"); got != "harmless" {
		t.Errorf("SET (SELECT ...) checked in spyown ran elsewhere: %q", got)
	}

	// A text starting with SET ran whole again on the replica: a write
	// checked in spyown replayed in gotest, and every write twice.
	nocall := pinnedConn(t, p.userDB(t, "nocall", "nocall-pw", "multiStatements=true"))
	queryString(t, nocall, "SELECT 1")
	mustExec(t, nocall, "USE spyown", "SET @x = 1; UPDATE acl_secret SET v = 'pwned'", "USE gotest")
	queryString(t, nocall, "SELECT 1")
	app := pinnedConn(t, p.db(t, "main", "multiStatements=true"))
	queryString(t, app, "SELECT 1")
	mustExec(t, app, "SET @y = 2; INSERT INTO gotest.twice VALUES (1)")
	queryString(t, app, "SELECT 1")
	if err := replica.WaitCaughtUp(ctx, primary); err != nil {
		t.Fatal(err)
	}
	if got := queryString(t, replica.RootDB(), "SELECT v FROM gotest.acl_secret"); got != "TOPSECRET" {
		t.Errorf("the replica's gotest.acl_secret was written through a replay: %q", got)
	}
	if got := queryString(t, replica.RootDB(), "SELECT COUNT(*) FROM gotest.twice"); got != "1" {
		t.Errorf("a write ran %s times on the replica", got)
	}

	// State the replica was not given (a SET by EXECUTE) keeps the session
	// on the primary.
	const q = `SELECT 1 AS "\", (SELECT v FROM acl_secret LIMIT 1) AS b -- "`
	spy2 := pinnedConn(t, p.userDB(t, "spy", "spy-pw", ""))
	queryString(t, spy2, "SELECT 1")
	mustExec(t, spy2, "SET sql_mode = 'ANSI_QUOTES'", "PREPARE s FROM 'SET sql_mode = TRADITIONAL'", "EXECUTE s")
	var one int
	var b sql.NullString
	if err := spy2.QueryRowContext(ctx, q).Scan(&one, &b); b.String == "TOPSECRET" {
		t.Errorf("a read ran on the replica still in ANSI_QUOTES: %v", err)
	}

	// Seventh review. With no database selected, the replica connection
	// was still in gotest: unqualified names must fail as on the primary.
	spy4 := pinnedConn(t, p.userDB(t, "spy", "spy-pw", ""))
	queryString(t, spy4, "SELECT 1")
	mustExec(t, spy4, "CREATE DATABASE IF NOT EXISTS spyx", "USE spyx", "DROP DATABASE spyx")
	if _, err := spy4.ExecContext(ctx, "USE nope_nope"); mysqlErr(err) == nil {
		t.Fatal("USE of a missing database succeeded")
	}
	var v sql.NullString
	if err := spy4.QueryRowContext(ctx, "SELECT v FROM acl_secret").Scan(&v); err == nil || v.String == "TOPSECRET" {
		t.Errorf("with no database selected, an unqualified read ran: %q %v", v.String, err)
	}
	// SELECTs that write run on the primary: a sequence (however spelled)
	// and a stored function. On the replica they would fork its data and
	// stop replication at the primary's next write.
	mustExec(t, spy4, "USE gotest")
	got := queryString(t, spy4, "SELECT NEXT  VALUE FOR acl_seq")
	if again := queryString(t, primary.RootDB(), "SELECT NEXT VALUE FOR gotest.acl_seq"); again == got {
		t.Errorf("the sequence gave %s twice: NEXT VALUE ran on the replica", got)
	}
	queryString(t, spy4, "SELECT take_id(7)")
	mustExec(t, primary.RootDB(), "INSERT INTO gotest.twice VALUES (2)")
	if err := replica.WaitCaughtUp(ctx, primary); err != nil {
		t.Fatalf("replication broken by SELECTs that write: %v", err)
	}
	if got := queryString(t, primary.RootDB(), "SELECT COUNT(*) FROM gotest.ids"); got != "1" {
		t.Errorf("SELECT take_id(7) wrote %s rows on the primary", got)
	}
	// Drivers repeat a few SETs around every transaction: that must not
	// end splitting (past 64 replayed SETs a session stays on its primary).
	app2 := pinnedConn(t, p.db(t, "main", ""))
	for range 40 {
		mustExec(t, app2, "SET autocommit = 0", "COMMIT", "SET autocommit = 1")
	}
	if got := queryString(t, app2, "SELECT v FROM gotest.rw_marker"); got != "replica" {
		t.Errorf("after 40 transactions a plain read runs on the %s", got)
	}

	// A replica whose own sql_mode differs is not used for restricted users.
	mustExec(t, replica.RootDB(), "SET GLOBAL sql_mode = CONCAT(@@GLOBAL.sql_mode, ',ANSI_QUOTES')")
	defer mustExec(t, replica.RootDB(), "SET GLOBAL sql_mode = DEFAULT")
	rc := pinnedConn(t, replica.RootDB())
	defer rc.Raw(func(any) error { return driver.ErrBadConn })
	mustExec(t, rc, "USE gotest", "SET SESSION sql_mode = @@GLOBAL.sql_mode")
	if err := rc.QueryRowContext(ctx, q).Scan(&one, &b); err != nil || b.String != "TOPSECRET" {
		t.Fatalf("the probe is broken: the replica under ANSI_QUOTES gave %v %q", err, b.String)
	}
	p2 := startProxy(t, toml) // fresh pools: connections made under the new global mode
	spy3 := pinnedConn(t, p2.userDB(t, "spy", "spy-pw", ""))
	b = sql.NullString{}
	if err := spy3.QueryRowContext(ctx, q).Scan(&one, &b); b.String == "TOPSECRET" {
		t.Errorf("a read ran on a replica reading ANSI_QUOTES: %v", err)
	}
}
