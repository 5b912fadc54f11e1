package supervisor_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"pisanix.io/pisanix/internal/testenv"
	"pisanix.io/pisanix/sqlinfo"
)

// accessUsers: spy may do anything but read gotest.acl_secret* (the table
// and a view over it); clerk may only read and add orders, and read items
// and the sequence acl_seq;
// reader only reads; remote may log in only from 10.0.0.0/8; tenant may
// do anything in acl_other and nothing elsewhere; nocall may do nothing to
// gotest.acl_secret* (tables or routines).
const accessUsers = `
[[proxy.config.users]]
user = "spy"
password = "spy-pw"
[[proxy.config.users.rule]]
action = "deny"
databases = ["gotest"]
tables = ["acl_secret*"]
operations = ["select"]

[[proxy.config.users]]
user = "clerk"
password = "clerk-pw"
[[proxy.config.users.rule]]
action = "allow"
databases = ["gotest"]
tables = ["acl_orders"]
operations = ["select", "insert"]
[[proxy.config.users.rule]]
action = "allow"
databases = ["gotest"]
tables = ["acl_items", "acl_seq"]
operations = ["select"]

[[proxy.config.users]]
user = "reader"
password = "reader-pw"
read_only = true

[[proxy.config.users]]
user = "remote"
password = "remote-pw"
allowed_hosts = ["10.0.0.0/8"]

[[proxy.config.users]]
user = "tenant"
password = "tenant-pw"
[[proxy.config.users.rule]]
action = "allow"
databases = ["acl_other"]

[[proxy.config.users]]
user = "nocall"
password = "nocall-pw"
[[proxy.config.users.rule]]
action = "deny"
databases = ["gotest"]
tables = ["acl_secret*"]
`

func accessSetup(t *testing.T) *proxy {
	t.Helper()
	accessTables(t)
	return startProxy(t, oneNode(accessUsers))
}

// accessTables creates the tables the access tests use.
func accessTables(t *testing.T) {
	t.Helper()
	err := backendDB.Exec(context.Background(),
		"CREATE DATABASE IF NOT EXISTS acl_other",
		"CREATE TABLE IF NOT EXISTS acl_other.t (id INT)",
		"CREATE OR REPLACE TABLE gotest.acl_secret (id INT, v VARCHAR(20))",
		"INSERT INTO gotest.acl_secret VALUES (1, 'TOPSECRET')",
		"CREATE OR REPLACE VIEW gotest.acl_secret_view AS SELECT * FROM gotest.acl_secret",
		"CREATE OR REPLACE TABLE gotest.acl_orders (id INT, v VARCHAR(20))",
		"INSERT INTO gotest.acl_orders VALUES (1, 'order')",
		"CREATE OR REPLACE TABLE gotest.acl_items (id INT, v VARCHAR(20))",
		"CREATE OR REPLACE SEQUENCE gotest.acl_seq",
		"DROP TABLE IF EXISTS gotest.acl_copy, gotest.acl_renamed",
		"DROP VIEW IF EXISTS gotest.acl_v2",
	)
	if err != nil {
		t.Fatal(err)
	}
}

func (p *proxy) userDB(t *testing.T, user, pass, params string) *sql.DB {
	t.Helper()
	return openDB(t, p.dsnUser("main", user, pass, params))
}

// wantDenied runs q and wants a refusal with code and SQLSTATE 42000.
func wantDenied(t *testing.T, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, code uint16, q string) {
	t.Helper()
	_, err := db.ExecContext(context.Background(), q)
	me := mysqlErr(err)
	if me == nil || me.Number != code || string(me.SQLState[:]) != "42000" {
		t.Errorf("%s\n  want error %d (42000), got %v", q, code, err)
	}
}

func TestAccessControlBypassAttempts(t *testing.T) {
	p := accessSetup(t)
	spy := p.userDB(t, "spy", "spy-pw", "multiStatements=true")
	// Allowed: other tables, writes to the denied table (only reads are denied).
	mustExec(t, spy, "SELECT * FROM acl_orders", "INSERT INTO acl_secret VALUES (2, 'written')")

	// MariaDB runs what /*M! ... */ holds: the trick below is a real bypass
	// for a proxy that reads it as a comment.
	var one int
	var leaked string
	if err := backendDB.RootDB().QueryRow("SELECT 1 /*M! , (SELECT v FROM gotest.acl_secret LIMIT 1) */").Scan(&one, &leaked); err != nil || leaked != "TOPSECRET" {
		t.Fatalf("MariaDB should run /*M! */ comments: %v %q", err, leaked)
	}

	for _, q := range []string{
		"SELECT * FROM acl_secret",
		"select * from ACL_SECRET",
		"SELECT * FROM gotest.acl_secret",
		"SELECT * FROM `gotest`.`acl_secret`",
		"SELECT/**/*/**/FROM/**/acl_secret",
		"SELECT * FROM acl_secret_view",
		"SELECT * FROM acl_orders o JOIN acl_secret s ON o.id = s.id",
		"SELECT * FROM acl_orders WHERE id IN (SELECT id FROM acl_secret)",
		"SELECT (SELECT v FROM acl_secret LIMIT 1)",
		"SELECT * FROM acl_orders UNION SELECT * FROM acl_secret",
		"WITH c AS (SELECT * FROM acl_secret) SELECT * FROM c",
		"SELECT * FROM (WITH acl_secret AS (SELECT 1 AS id) SELECT * FROM acl_secret) a JOIN acl_secret b",
		"WITH a AS (SELECT * FROM acl_secret), acl_secret AS (SELECT 1 AS id) SELECT * FROM a",
		"INSERT INTO acl_orders SELECT * FROM acl_secret",
		"UPDATE acl_orders o JOIN acl_secret s ON o.id = s.id SET o.v = s.v",
		"DELETE FROM acl_orders WHERE v IN (SELECT v FROM acl_secret)",
		"DELETE o FROM acl_orders o JOIN acl_secret s ON o.id = s.id",
		"CREATE TABLE acl_copy AS SELECT * FROM acl_secret",
		"CREATE VIEW acl_v2 AS SELECT * FROM acl_secret",
		"RENAME TABLE acl_secret TO acl_renamed", // would move it out of the rule's reach
		"SELECT 1 /*! , (SELECT v FROM acl_secret LIMIT 1) */",
		"SELECT 1 /*M! , (SELECT v FROM acl_secret LIMIT 1) */",
		"SELECT 1 /*M!100000 , (SELECT v FROM acl_secret LIMIT 1) */",
		"SELECT 1; SELECT * FROM acl_secret",
		"USE acl_other; SELECT * FROM gotest.acl_secret",
		"PREPARE s FROM 'SELECT * FROM acl_secret'",
		"SET @x = (SELECT v FROM acl_secret LIMIT 1)",
	} {
		wantDenied(t, spy, 1142, q)
	}
	// Statements whose tables cannot be known are refused (1227).
	for _, q := range []string{
		"SET @q = 'SELECT * FROM acl_secret'; PREPARE s FROM @q",
		"EXECUTE IMMEDIATE 'SELECT * FROM acl_secret'",
		"HANDLER acl_secret OPEN",
		// Versioned and TiDB comments are refused for restricted users.
		"SELECT 1 /*!99999 /* */ ' */ , (SELECT v FROM acl_secret LIMIT 1) -- '",
		"SELECT 1 /*T![clustered_index] '*/ , (SELECT v FROM acl_secret LIMIT 1) -- '",
		"SELECT (SELECT v FROM /*!100000acl_secret*/ acl_orders LIMIT 1)",
		"/*!99999 USE acl_other; -- */ SELECT 1",
	} {
		wantDenied(t, spy, 1227, q)
	}
	// Binary-protocol prepared statements are checked at prepare.
	if _, err := spy.Prepare("SELECT v FROM acl_secret WHERE id = ?"); mysqlErr(err) == nil || mysqlErr(err).Number != 1142 {
		t.Errorf("prepare: want 1142, got %v", err)
	}
	// A USE inside a multi-statement text moves later unqualified names.
	conn, err := spy.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	mustExec(t, conn, "USE acl_other; SELECT 1")
	wantDenied(t, conn, 1142, "USE gotest; SELECT * FROM acl_secret")
	if got := queryString(t, conn, "SELECT DATABASE()"); got != "acl_other" {
		t.Fatalf("a refused text must not run at all: database %q", got)
	}
	mustExec(t, conn, "SELECT 1; USE gotest; SELECT 2")
	wantDenied(t, conn, 1142, "SELECT * FROM acl_secret")

	// NO_BACKSLASH_ESCAPES changes where strings end: 'a\' is a whole string
	// and the subquery after it runs; by default it is all one string and a
	// comment.
	q := `SELECT 'a\' , (SELECT v FROM acl_secret LIMIT 1) , '-- '`
	mustExec(t, conn, q) // default mode: one string, no table
	// A text that may change the mode before its later statements is not
	// checked statement by statement: it is refused whole, and runs nothing.
	wantDenied(t, conn, 1227, "SET sql_mode = 'NO_BACKSLASH_ESCAPES'; "+q)
	wantDenied(t, conn, 1227, "SET sql_mode = 'NO_BACKSLASH_ESCAPES'; SELECT 1")
	mustExec(t, conn, q) // still the default mode
	mustExec(t, conn, "SET sql_mode = 'NO_BACKSLASH_ESCAPES'")
	wantDenied(t, conn, 1142, q)
	mustExec(t, conn, "SET sql_mode = DEFAULT")
	mustExec(t, conn, q)
	// And MariaDB does run the subquery in that mode.
	root, err := backendDB.RootDB().Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	mustExec(t, root, "SET sql_mode = 'NO_BACKSLASH_ESCAPES'")
	defer mustExec(t, root, "SET sql_mode = DEFAULT") // the connection goes back to the pool
	var a, b, c string
	if err := root.QueryRowContext(context.Background(), strings.Replace(q, "acl_secret", "gotest.acl_secret", 1)).Scan(&a, &b, &c); err != nil || b != "TOPSECRET" {
		t.Fatalf("MariaDB under NO_BACKSLASH_ESCAPES: %v %q", err, b)
	}

	if len(p.metric(t, `pisa_proxy_access_denied_total{domain="main",reason="table",user="spy"}`)) != 1 {
		t.Error("denials not counted by user and reason")
	}
}

func TestAccessControlAllowList(t *testing.T) {
	p := accessSetup(t)
	clerk := p.userDB(t, "clerk", "clerk-pw", "")
	mustExec(t, clerk, "INSERT INTO acl_orders VALUES (2, 'new')", "SELECT * FROM acl_items")
	if got := queryString(t, clerk, "SELECT COUNT(*) FROM acl_orders o JOIN acl_items i ON o.id = i.id"); got != "0" {
		t.Fatal(got)
	}
	wantDenied(t, clerk, 1142, "UPDATE acl_orders SET v = 'x'")
	wantDenied(t, clerk, 1142, "INSERT INTO acl_items SELECT * FROM acl_orders")
	wantDenied(t, clerk, 1142, "DROP TABLE acl_orders")
	wantDenied(t, clerk, 1142, "SELECT * FROM acl_secret")
	wantDenied(t, clerk, 1044, "USE acl_other")
	wantDenied(t, clerk, 1044, "SHOW TABLES FROM acl_other")
	wantDenied(t, clerk, 1227, "SHOW PROCESSLIST")
	_, err := clerk.Exec("UPDATE acl_orders SET v = 'x'")
	if me := mysqlErr(err); me == nil || me.Message != "UPDATE command denied to user 'clerk'@'127.0.0.1' for table `gotest`.`acl_orders`" {
		t.Errorf("message: %v", err)
	}
	var n int
	if err := backendDB.RootDB().QueryRow("SELECT COUNT(*) FROM gotest.acl_orders WHERE v = 'x'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("a denied UPDATE reached the backend: %v %d", err, n)
	}
	// Asking for a database at login, as MySQL does.
	other := openDB(t, strings.Replace(p.dsnUser("main", "clerk", "clerk-pw", ""), "/gotest", "/acl_other", 1))
	if err := other.Ping(); mysqlErr(err) == nil || mysqlErr(err).Number != 1044 {
		t.Errorf("login into a denied database: want 1044, got %v", err)
	}
	// The real mariadb CLI shows the server's error.
	conn := testenv.CLIConn{Host: "127.0.0.1", Port: p.Addr("main").(*net.TCPAddr).Port, User: "clerk", Password: "clerk-pw", Database: "gotest"}
	_, err = testenv.RunCLI(t.Context(), conn, "--batch", "-e", "SELECT * FROM acl_secret")
	if err == nil || !strings.Contains(err.Error(), "ERROR 1142 (42000)") {
		t.Errorf("mariadb CLI: %v", err)
	}
	out := testenv.MariaDBCLI(t, conn, "--batch", "-N", "-e", "SELECT v FROM acl_orders ORDER BY id")
	if strings.TrimSpace(out) != "order\nnew" {
		t.Errorf("mariadb CLI output %q", out)
	}
}

func TestReadOnlyUserAndHosts(t *testing.T) {
	p := accessSetup(t)
	reader := p.userDB(t, "reader", "reader-pw", "")
	if got := queryString(t, reader, "SELECT v FROM acl_secret WHERE id = 1"); got != "TOPSECRET" {
		t.Fatal(got)
	}
	wantDenied(t, reader, 1142, "INSERT INTO acl_orders VALUES (9, 'r')")
	wantDenied(t, reader, 1142, "CREATE TABLE acl_copy (id INT)")
	wantDenied(t, reader, 1227, "SET GLOBAL max_connections = 10")
	var n int
	if err := backendDB.RootDB().QueryRow("SELECT COUNT(*) FROM gotest.acl_orders WHERE id = 9").Scan(&n); err != nil || n != 0 {
		t.Fatalf("a read-only user's INSERT reached the backend: %v %d", err, n)
	}
	// Another user's session cannot be killed by a restricted user.
	app := p.db(t, "main", "")
	victim := pinnedConn(t, app)
	killed := 0
	for _, s := range p.Registry.List() {
		if s.User == "app" {
			wantKillDenied(t, reader, s.ID)
			killed++
		}
	}
	if killed == 0 {
		t.Fatal("no session of user app in the registry")
	}
	assertAlive(t, victim)

	remote := p.userDB(t, "remote", "remote-pw", "")
	err := remote.Ping()
	if me := mysqlErr(err); me == nil || me.Number != 1045 || string(me.SQLState[:]) != "28000" {
		t.Fatalf("login from outside allowed_hosts: want 1045, got %v", err)
	}
	if len(p.metric(t, `pisa_proxy_access_denied_total{domain="main",reason="host",user="remote"}`)) != 1 {
		t.Error("host denial not counted")
	}
}

func wantKillDenied(t *testing.T, db *sql.DB, id uint32) {
	t.Helper()
	_, err := db.Exec("KILL " + strconv.FormatUint(uint64(id), 10))
	if me := mysqlErr(err); me == nil || me.Number != 1095 {
		t.Errorf("KILL of another user's session: want 1095, got %v", err)
	}
}

// A reload that changes a user's rules applies to its open sessions from
// their next statement; a removed user's sessions can do nothing more.
func TestAccessRulesReload(t *testing.T) {
	p := accessSetup(t)
	spy := pinnedConn(t, p.userDB(t, "spy", "spy-pw", ""))
	reader := pinnedConn(t, p.userDB(t, "reader", "reader-pw", ""))
	mustExec(t, spy, "SELECT * FROM acl_orders", "PREPARE q FROM 'SELECT v FROM acl_orders'")
	stmt, err := spy.PrepareContext(context.Background(), "SELECT v FROM acl_orders WHERE id = ?")
	if err != nil {
		t.Fatal(err)
	}
	defer stmt.Close()
	addr := p.Addr("main").String()
	next := strings.Replace(accessUsers, `tables = ["acl_secret*"]`, `tables = ["acl_secret*", "acl_orders"]`, 1)
	next = strings.Replace(next, "[[proxy.config.users]]\nuser = \"reader\"\npassword = \"reader-pw\"\nread_only = true\n", "", 1)
	cfg := strings.Replace(oneNode(next), `listen_addr = "127.0.0.1:0"`, `listen_addr = "`+addr+`"`, 1)
	if err := p.Apply(parse(t, cfg)); err != nil {
		t.Fatal(err)
	}
	// Apply returns once the tenant applied the rules: the first try is refused.
	waitFor(t, 5*time.Second, "the new rules", func() bool {
		_, err := spy.ExecContext(context.Background(), "SELECT * FROM acl_orders")
		me := mysqlErr(err)
		return me != nil && me.Number == 1142
	})
	// Statements prepared before the reload are checked again when run.
	wantDenied(t, spy, 1142, "EXECUTE q")
	if _, err := stmt.Exec(1); mysqlErr(err) == nil || mysqlErr(err).Number != 1142 {
		t.Errorf("prepared before the reload: want 1142, got %v", err)
	}
	_, err = reader.ExecContext(context.Background(), "SELECT 1")
	if me := mysqlErr(err); me == nil || me.Number != 1227 || !strings.Contains(me.Message, "no longer configured") {
		t.Fatalf("removed user: want 1227, got %v", err)
	}
}

// Wherever MariaDB's lexer and the proxy's parser could disagree (comment
// ends, string escapes, identifier quoting), a byte that makes MariaDB run a
// subquery must make the parser see its table too (or give up on the text):
// every byte value and some Unicode blanks, in six positions.
func TestParserSeesWhatMariaDBRuns(t *testing.T) {
	mustExec(t, backendDB.RootDB(), "CREATE OR REPLACE TABLE gotest.lexs (v INT)", "INSERT INTO gotest.lexs VALUES (7)")
	forms := []string{
		"SELECT 1 --%s, (SELECT v FROM gotest.lexs LIMIT 1)",
		"SELECT 1 #%s\n, (SELECT v FROM gotest.lexs LIMIT 1)",
		"SELECT 1 /*%s*/, (SELECT v FROM gotest.lexs LIMIT 1)",
		"SELECT 1%s, (SELECT v FROM gotest.lexs LIMIT 1)",
		"SELECT '%s', (SELECT v FROM gotest.lexs LIMIT 1)",
		"SELECT `a%s`, (SELECT v FROM gotest.lexs LIMIT 1)",
	}
	inserts := []string{"\u00a0", "\u2028", "\u3000", "\ufeff", "\u0085", `\`, `\'`, "''", `\\'`}
	for c := range 256 {
		inserts = append(inserts, string([]byte{byte(c)}))
	}
	ran := 0
	for _, f := range forms {
		for _, in := range inserts {
			q := fmt.Sprintf(f, in)
			rows, err := backendDB.RootDB().Query(q)
			if err != nil {
				continue
			}
			cols, _ := rows.Columns()
			rows.Close()
			if len(cols) != 2 {
				continue
			}
			ran++
			if info := sqlinfo.Classify([]byte(q), "gotest"); len(info.Tables) == 0 && !info.Unverifiable {
				t.Errorf("%q: MariaDB ran the subquery, the parser saw no table", q)
			}
		}
	}
	if ran < 100 {
		t.Fatalf("only %d texts ran on MariaDB: the probe is broken", ran)
	}
}

// Bypasses found in review, each a statement sequence that reached the
// secret table before it was closed.
func TestAccessReviewBypasses(t *testing.T) {
	p := accessSetup(t)
	mustExec(t, backendDB.RootDB(),
		"CREATE OR REPLACE FUNCTION acl_other.zz_f() RETURNS VARCHAR(20) SQL SECURITY DEFINER RETURN (SELECT v FROM gotest.acl_secret LIMIT 1)",
		"DROP PROCEDURE IF EXISTS gotest.zz_leak")
	spyDB := p.userDB(t, "spy", "spy-pw", "multiStatements=true&maxAllowedPacket=67108864")
	spy := pinnedConn(t, spyDB)
	ctx := context.Background()

	// Two PREPARE texts differing only in their string shared a cache entry.
	mustExec(t, spy, "PREPARE s FROM 'SELECT v FROM acl_orders'")
	wantDenied(t, spy, 1142, "PREPARE s FROM 'SELECT v FROM acl_secret'")

	// A USE the lexical parser could not read left the proxy in the old database.
	mustExec(t, spy, "USE acl_other", "USE /*!gotest*/")
	wantDenied(t, spy, 1142, "SELECT v FROM acl_secret")
	mustExec(t, spy, "USE acl_other", "USE gotest -- x\n")
	wantDenied(t, spy, 1142, "SELECT v FROM acl_secret")

	// Versioned comments MariaDB skips, with a quote inside.
	wantDenied(t, spy, 1227, "SELECT 1 /*M!999999 ' */ , (SELECT v FROM acl_secret LIMIT 1) -- ' */")
	wantDenied(t, spy, 1227, "SELECT 1 /*!99999 ' */ , (SELECT v FROM acl_secret LIMIT 1) -- ' */")

	// Readings changed by sql_mode or the character set.
	q := `SELECT 'a\' , (SELECT v FROM acl_secret LIMIT 1) , '-- '`
	st, err := spy.PrepareContext(ctx, "SET sql_mode = 'NO_BACKSLASH_ESCAPES'") // binary protocol
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.ExecContext(ctx); err != nil {
		t.Fatal(err)
	}
	st.Close()
	wantDenied(t, spy, 1142, q)
	wantDenied(t, spy, 1142, `PREPARE s2 FROM 'SELECT ''a\'' , (SELECT v FROM acl_secret LIMIT 1) , ''-- '''`)
	mustExec(t, spy, "SET sql_mode = DEFAULT", `PREPARE m FROM 'SET sql_mode=''NO_BACKSLASH_ESCAPES'''`)
	wantDenied(t, spy, 1227, "EXECUTE m; "+q) // EXECUTE may change the mode midway
	mustExec(t, spy, "SET sql_mode = 'ANSI_QUOTES'")
	wantDenied(t, spy, 1227, `SELECT v "\" FROM acl_secret -- "`)
	mustExec(t, spy, "SET sql_mode = DEFAULT", "SET NAMES gbk")
	wantDenied(t, spy, 1227, "SELECT '\xbf\\' , (SELECT v FROM acl_secret LIMIT 1) , '-- '")
	mustExec(t, spy, "SET NAMES utf8mb4")

	// A KILL the fast path could not read went to the backend as a backend
	// thread id.
	victim := pinnedConn(t, p.db(t, "main", ""))
	thread := queryString(t, victim, "SELECT CONNECTION_ID()")
	if _, err := spy.ExecContext(ctx, "/*!KILL*/ "+thread); mysqlErr(err) == nil {
		t.Errorf("KILL in a comment: want an error, got %v", err)
	}
	// Among other statements the id is the proxy's too: the backend's
	// number names no session of spy's.
	if _, err := spy.ExecContext(ctx, "KILL "+thread+"; DO 0"); mysqlErr(err) == nil {
		t.Errorf("KILL of a backend thread id among other statements: want an error, got %v", err)
	}
	assertAlive(t, victim)

	// A statement over 16 MiB is checked whole or not at all.
	big := "SELECT 1 -- " + strings.Repeat("x", 16<<20) + "\n, (SELECT v FROM acl_secret LIMIT 1)"
	wantDenied(t, spy, 1227, big)

	// Routine bodies and server-wide statements.
	wantDenied(t, spy, 1227, "CREATE PROCEDURE gotest.zz_leak() BEGIN SELECT v FROM gotest.acl_secret; END")
	wantDenied(t, spy, 1227, "GRANT ALL ON *.* TO nobody")

	clerk := p.userDB(t, "clerk", "clerk-pw", "")
	// A write through db.alias.column.
	wantDenied(t, clerk, 1142, "UPDATE acl_orders AS a JOIN acl_items AS s ON a.id = s.id SET gotest.s.v = 'pwned'")
	// A stored function in a database the user has no rights in.
	wantDenied(t, clerk, 1142, "SELECT acl_other.zz_f()")
}

func wantErrorCode(t *testing.T, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, code uint16, q string) {
	t.Helper()
	_, err := db.ExecContext(context.Background(), q)
	if me := mysqlErr(err); me == nil || me.Number != code {
		t.Errorf("%s\n  want error %d, got %v", q, code, err)
	}
}

// Bypasses found in the second review: reads hidden in writes, KILL in
// prepared texts, stored functions without a database, sequences, the
// server's own tables, character sets the parser did not know.
func TestAccessSecondReviewBypasses(t *testing.T) {
	p := accessSetup(t)
	root := backendDB.RootDB()
	mustExec(t, root, "CREATE OR REPLACE FUNCTION gotest.zz_g() RETURNS VARCHAR(20) SQL SECURITY DEFINER RETURN (SELECT v FROM gotest.acl_secret LIMIT 1)")
	spy := pinnedConn(t, p.userDB(t, "spy", "spy-pw", "multiStatements=true"))
	clerk := pinnedConn(t, p.userDB(t, "clerk", "clerk-pw", "multiStatements=true"))
	ctx := context.Background()

	// An UPDATE reading the column it may not select: the server's error
	// shows the value.
	leak := "UPDATE gotest.acl_secret SET id = v"
	if _, err := root.Exec("SET STATEMENT sql_mode = DEFAULT FOR " + leak); err == nil || !strings.Contains(err.Error(), "TOPSECRET") {
		t.Fatalf("the probe is broken: MariaDB should leak the value in its error, got %v", err)
	}
	wantDenied(t, spy, 1142, leak)
	wantDenied(t, spy, 1142, "DELETE FROM acl_secret WHERE v LIKE 'TOP%'") // the affected-row count tells
	wantDenied(t, spy, 1142, "INSERT INTO acl_secret VALUES (1, 'x') ON DUPLICATE KEY UPDATE id = v")
	// Any UPDATE reads: a duplicate-key error shows the colliding row's
	// other key columns (eleventh review).
	wantDenied(t, spy, 1142, "UPDATE acl_secret SET id = 1 WHERE 1 = 0")
	mustExec(t, root,
		"CREATE OR REPLACE TABLE gotest.acl_secret_uk (id INT, v VARCHAR(20), UNIQUE KEY (id, v))",
		"INSERT INTO gotest.acl_secret_uk VALUES (1, 'TOPSECRET'), (2, 'TOPSECRET')")
	defer mustExec(t, root, "DROP TABLE IF EXISTS gotest.acl_secret_uk")
	if _, err := root.Exec("UPDATE gotest.acl_secret_uk SET id = 5"); err == nil || !strings.Contains(err.Error(), "TOPSECRET") {
		t.Fatalf("the probe is broken: MariaDB should show the value in its error, got %v", err)
	}
	wantDenied(t, spy, 1142, "UPDATE acl_secret_uk SET id = 5")
	mustExec(t, spy, "INSERT INTO acl_secret_uk VALUES (9, 'x')") // writes without reading

	// KILL inside prepared texts reached the backend with a proxy id. Its
	// EXECUTE is the proxy's now, with ownership checked: the spy's is
	// refused, the owner's KILL QUERY of the idle victim does nothing.
	victim := pinnedConn(t, p.db(t, "main", ""))
	thread := queryString(t, victim, "SELECT CONNECTION_ID()")
	owner := pinnedConn(t, p.db(t, "main", "multiStatements=true"))
	for c, want := range map[*sql.Conn]uint16{spy: 1095, owner: 0} {
		mustExec(t, c, "PREPARE k FROM 'KILL QUERY "+thread+"'")
		if _, err := c.ExecContext(ctx, "EXECUTE k"); want != 0 {
			wantErrorCode(t, c, want, "EXECUTE k")
		} else if err != nil {
			t.Errorf("the owner's EXECUTE of KILL QUERY: %v", err)
		}
		wantErrorCode(t, c, 1235, "EXECUTE k; DO 0")
	}
	assertAlive(t, victim)
	// COM_STMT_PREPARE of KILL is translated like a text's, ownership
	// checked: the spy's execution is refused, the owner's KILL QUERY of
	// the idle victim does nothing.
	for c, want := range map[*sql.Conn]uint16{spy: 1095, owner: 0} {
		st, err := c.PrepareContext(ctx, "KILL QUERY "+thread)
		if err != nil {
			t.Fatalf("COM_STMT_PREPARE of KILL QUERY: %v", err)
		}
		_, err = st.ExecContext(ctx)
		st.Close()
		if got := mysqlErr(err); (want == 0) != (err == nil) || got != nil && got.Number != want {
			t.Errorf("prepared KILL QUERY of another's thread: %v, want error %d", err, want)
		}
	}
	assertAlive(t, victim)

	// A stored function called without a database.
	wantDenied(t, clerk, 1142, "SELECT zz_g()")
	if got := queryString(t, clerk, "SELECT CONCAT(ABS(-1), LOWER('A'), COALESCE(NULL, 'b'))"); got != "1ab" {
		t.Fatalf("built-ins refused or wrong: %q", got)
	}

	// Sequences: NEXTVAL and SETVAL write.
	if got := queryString(t, clerk, "SELECT COALESCE(LASTVAL(acl_seq), 0)"); got != "0" {
		t.Fatalf("LASTVAL: %q", got)
	}
	wantDenied(t, clerk, 1142, "SELECT NEXTVAL(acl_seq)")
	wantDenied(t, clerk, 1142, "SELECT NEXT VALUE FOR acl_seq")
	wantDenied(t, clerk, 1142, "SELECT SETVAL(acl_seq, 100)")

	// Other sessions' statements are the server's.
	wantDenied(t, spy, 1227, "SELECT info FROM information_schema.PROCESSLIST")
	wantDenied(t, spy, 1227, "USE information_schema; SELECT info FROM processlist")
	wantDenied(t, spy, 1227, "SELECT * FROM performance_schema.events_statements_current")
	wantDenied(t, spy, 1227, "SELECT * FROM mysql.general_log")
	if got := queryString(t, spy, "SELECT COUNT(*) > 0 FROM information_schema.TABLES WHERE table_schema = 'gotest'"); got != "1" {
		t.Fatalf("information_schema.TABLES: %q", got)
	}
	mustExec(t, spy, "USE gotest")

	// Character sets the parser did not know were refused; under one whose
	// characters may end in a backslash, the old guard still holds.
	for _, cs := range []string{"koi8r", "cp1251", "latin2", "big5"} {
		mustExec(t, spy, "SET NAMES "+cs)
		if got := queryString(t, spy, "SELECT @@character_set_client"); got != cs {
			t.Fatalf("SET NAMES %s: client charset %q", cs, got)
		}
	}
	mustExec(t, spy, "SET NAMES sjis")
	wantDenied(t, spy, 1227, "SELECT '\x95\\' , (SELECT v FROM acl_secret LIMIT 1) , '-- '")
	mustExec(t, spy, "SET NAMES utf8mb4")

	// DEALLOCATE forgets a prepared name; re-preparing one replaces it.
	mustExec(t, spy, "PREPARE d FROM 'SELECT 1'", "DEALLOCATE PREPARE d")
	wantDenied(t, spy, 1227, "EXECUTE d")
	mustExec(t, spy, "PREPARE d FROM 'SELECT 2'")
	if got := queryString(t, spy, "EXECUTE d"); got != "2" {
		t.Fatalf("EXECUTE after re-prepare: %q", got)
	}
}

// TestProxySeesWhatMariaDBRuns: texts that MariaDB reads differently from
// the parser under multi-byte client character sets (a character ending in
// a backslash or backtick) and with nested or versioned comments. Whenever
// MariaDB itself runs the hidden subquery, the proxy must refuse the text
// for a user denied the table.
func TestProxySeesWhatMariaDBRuns(t *testing.T) {
	p := accessSetup(t)
	ctx := context.Background()
	direct, err := backendDB.RootDB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	defer direct.Raw(func(any) error { return driver.ErrBadConn }) // SET NAMES stays with it: never reuse
	spy := pinnedConn(t, p.userDB(t, "spy", "spy-pw", ""))
	mustExec(t, direct, "USE gotest")
	mustExec(t, spy, "USE gotest")
	const hidden = "(SELECT v FROM acl_secret LIMIT 1)"
	leaks := func(c *sql.Conn, q string) bool {
		rows, err := c.QueryContext(ctx, q)
		if err != nil {
			return false
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if rows.Scan(ptrs...) == nil && slices.ContainsFunc(vals, func(v sql.NullString) bool { return v.String == "TOPSECRET" }) {
				return true
			}
		}
		return false
	}
	try := func(cs, q string) bool {
		ran := leaks(direct, q)
		if ran && leaks(spy, q) {
			t.Errorf("SET NAMES %s; %q: MariaDB ran the hidden subquery and the proxy let it through", cs, q)
		}
		return ran
	}
	// A multi-byte character whose second byte is a backslash or a backtick.
	multiByte := []string{
		"SELECT '%s\\' , " + hidden + " , '-- '",
		"SELECT 1 AS `x%s` , '` , " + hidden + " , '-- '",
	}
	for _, cs := range []string{"sjis", "cp932", "big5", "gbk", "euckr", "koi8r"} {
		mustExec(t, direct, "SET NAMES "+cs)
		mustExec(t, spy, "SET NAMES "+cs)
		ran := 0
		for _, f := range multiByte {
			for lead := 0x80; lead <= 0xff; lead++ {
				if try(cs, fmt.Sprintf(f, string([]byte{byte(lead)}))) {
					ran++
				}
			}
		}
		// The probe is alive where a lead byte may take a backslash.
		if unsafe := cs != "euckr" && cs != "koi8r"; unsafe != (ran > 0) {
			t.Errorf("SET NAMES %s: MariaDB ran %d hidden subqueries", cs, ran)
		}
	}
	mustExec(t, direct, "SET NAMES utf8mb4")
	mustExec(t, spy, "SET NAMES utf8mb4")
	// Nested and versioned comments.
	ran := 0
	for _, f := range []string{
		"SELECT 1 /* /*%s */ , " + hidden + " /* */",
		"SELECT 1 /*!%s /* */ , " + hidden + " */",
		"SELECT 1 /*!%s , " + hidden + " /* */ */",
		"SELECT 1 /*M!%s /* */ , " + hidden + " */",
		"SELECT 1 /*%s , " + hidden + " */",
	} {
		for _, in := range []string{"", " ", "!", "*", "/", "*/", "/*", "50000", "99999", "100000", "999999", "M!", "!50000", "T!"} {
			if try("utf8mb4", fmt.Sprintf(f, in)) {
				ran++
			}
		}
	}
	if ran == 0 {
		t.Fatal("MariaDB ran no comment form: the probe is broken")
	}
}

// Bypasses found in the third review: MERGE tables over denied tables, a
// dash comment the parser ends early, SHOW GRANTS, SHOW COLUMNS FROM t FROM
// db, privileged session variables; and refusals that hurt applications.
func TestAccessThirdReviewBypasses(t *testing.T) {
	p := accessSetup(t)
	root := backendDB.RootDB()
	mustExec(t, root,
		"CREATE OR REPLACE TABLE gotest.acl_secret_myisam (id INT, v VARCHAR(20) CHARACTER SET latin1) ENGINE=MyISAM",
		"INSERT INTO gotest.acl_secret_myisam VALUES (1, 'TOPSECRET')",
		"CREATE OR REPLACE TABLE acl_other.zz_mine (id INT, v VARCHAR(20) CHARACTER SET latin1) ENGINE=MyISAM",
		"DROP TABLE IF EXISTS acl_other.zz_m, acl_other.zz_probe",
		"CREATE OR REPLACE TABLE acl_other.acl_orders (id INT, card VARCHAR(20) DEFAULT '4111-1111' COMMENT 'not for clerk')",
	)
	defer mustExec(t, root, "DROP TABLE IF EXISTS acl_other.zz_m, acl_other.zz_mine, acl_other.acl_orders, gotest.acl_secret_myisam")
	// MariaDB itself: a MERGE table shows the rows of the tables it unites.
	mustExec(t, root, "CREATE TABLE acl_other.zz_probe (id INT, v VARCHAR(20) CHARACTER SET latin1) ENGINE=MERGE UNION=(gotest.acl_secret_myisam)")
	if got := queryString(t, root, "SELECT v FROM acl_other.zz_probe"); got != "TOPSECRET" {
		t.Fatalf("the probe is broken: a MERGE table read %q", got)
	}
	mustExec(t, root, "DROP TABLE acl_other.zz_probe")

	spy := pinnedConn(t, p.userDB(t, "spy", "spy-pw", ""))
	clerk := pinnedConn(t, p.userDB(t, "clerk", "clerk-pw", ""))
	tenant := pinnedConn(t, openDB(t, strings.Replace(p.dsnUser("main", "tenant", "tenant-pw", ""), "/gotest", "/acl_other", 1)))
	merge := "CREATE TABLE acl_other.zz_m (id INT, v VARCHAR(20) CHARACTER SET latin1) ENGINE=MERGE INSERT_METHOD=LAST UNION=(%s)"
	wantDenied(t, spy, 1142, fmt.Sprintf(merge, "gotest.acl_secret_myisam"))
	wantDenied(t, tenant, 1142, fmt.Sprintf(merge, "gotest.acl_secret_myisam"))
	mustExec(t, tenant, fmt.Sprintf(merge, "acl_other.zz_mine")) // its own tables
	wantDenied(t, tenant, 1142, "ALTER TABLE acl_other.zz_m UNION=(gotest.acl_secret_myisam)")
	wantDenied(t, tenant, 1227, "CREATE TABLE acl_other.zz_f (id INT) DATA DIRECTORY = '/tmp'")

	// "--" then 0xA0: a comment to the parser, a letter to MariaDB under cp850.
	direct := pinnedConn(t, openDB(t, backendDB.DSN(testenv.TestUser, testenv.TestPassword, "gotest")))
	defer direct.Raw(func(any) error { return driver.ErrBadConn })
	dash := "SELECT 1 --\xa0 , (SELECT v FROM acl_secret LIMIT 1) AS leak FROM (SELECT 1 AS `\xa0`) d"
	mustExec(t, direct, "SET NAMES cp850")
	if got := queryString(t, direct, "SELECT leak FROM ("+dash+") x"); got != "TOPSECRET" {
		t.Fatalf("the probe is broken: MariaDB under cp850 gave %q", got)
	}
	mustExec(t, spy, "USE gotest", "SET NAMES cp850")
	wantDenied(t, spy, 1227, dash)
	mustExec(t, spy, "SET NAMES utf8mb4")

	// Grants show the backend account's password hash.
	for _, c := range []*sql.Conn{spy, clerk} {
		wantDenied(t, c, 1227, "SHOW GRANTS")
		wantDenied(t, c, 1227, "SHOW GRANTS FOR '"+testenv.TestUser+"'@'%'")
	}
	// SHOW COLUMNS FROM t FROM db is about db.t.
	wantDenied(t, clerk, 1142, "SHOW FULL COLUMNS FROM acl_orders FROM acl_other")
	// Session variables reserved to SUPER / BINLOG ADMIN.
	for _, q := range []string{"SET SESSION sql_log_bin = 0", "SET sql_log_off = 1", "SET SESSION server_id = 4242", "SET gtid_seq_no = 1000", "SET @@gtid_domain_id = 9"} {
		wantDenied(t, clerk, 1227, q)
	}
	mustExec(t, clerk, "SET SESSION sql_mode = DEFAULT, autocommit = 1, @x = 1")

	// What applications need: a deny rule on one table leaves the catalogue
	// listable; an allow-list user reads information_schema, as on MySQL.
	if got := queryString(t, spy, "SELECT COUNT(*) > 0 FROM (SELECT 1 FROM information_schema.TABLES LIMIT 1) x"); got != "1" {
		t.Fatalf("information_schema: %q", got)
	}
	mustExec(t, spy, "SHOW TABLES", "SHOW TABLE STATUS")
	wantDenied(t, spy, 1044, "DROP DATABASE gotest")
	if got := queryString(t, clerk, "SELECT COUNT(*) FROM information_schema.TABLES WHERE table_schema = DATABASE() AND table_name = 'acl_orders'"); got != "1" {
		t.Fatalf("clerk reading information_schema: %q", got)
	}
	wantDenied(t, clerk, 1227, "SELECT info FROM information_schema.PROCESSLIST")
	mustExec(t, clerk, "SHOW TABLES") // names, as information_schema shows them
}

// Bypasses found in the fourth review: partition DATA DIRECTORY, the
// database of a foreign key's parent, sql_mode=ORACLE's grammar, and
// built-in names that call stored functions when quoted or spaced.
func TestAccessFourthReviewBypasses(t *testing.T) {
	p := accessSetup(t)
	root := pinnedConn(t, backendDB.RootDB())
	defer root.Raw(func(any) error { return driver.ErrBadConn }) // USE and sql_mode stay with it
	ctx := context.Background()
	tenant := pinnedConn(t, openDB(t, strings.Replace(p.dsnUser("main", "tenant", "tenant-pw", ""), "/gotest", "/acl_other", 1)))
	spy := pinnedConn(t, p.userDB(t, "spy", "spy-pw", ""))
	clerk := pinnedConn(t, p.userDB(t, "clerk", "clerk-pw", ""))

	// A partition's DATA DIRECTORY: MariaDB writes the file there.
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	mustExec(t, root, "DROP TABLE IF EXISTS acl_other.zz_pdd, acl_other.zz_pdd2")
	defer mustExec(t, root, "DROP TABLE IF EXISTS acl_other.zz_pdd, acl_other.zz_pdd2")
	mustExec(t, root, "CREATE TABLE acl_other.zz_pdd (id INT) PARTITION BY HASH(id) (PARTITION p0 DATA DIRECTORY = '"+dir+"')")
	if _, err := os.Stat(dir + "/acl_other/zz_pdd#P#p0.ibd"); err != nil {
		t.Fatalf("the probe is broken: MariaDB wrote nothing into %s: %v", dir, err)
	}
	mustExec(t, root, "DROP TABLE acl_other.zz_pdd", "CREATE TABLE acl_other.zz_pdd2 (id INT)")
	wantDenied(t, tenant, 1227, "CREATE TABLE acl_other.zz_pdd (id INT) PARTITION BY HASH(id) (PARTITION p0 DATA DIRECTORY = '"+dir+"')")
	wantDenied(t, tenant, 1227, "ALTER TABLE acl_other.zz_pdd2 PARTITION BY HASH(id) (PARTITION p0 DATA DIRECTORY = '"+dir+"')")

	// An unqualified REFERENCES is in the child's database: an oracle on
	// the denied table's values if it were checked in the current one.
	mustExec(t, root, "DROP TABLE IF EXISTS gotest.zz_child",
		"CREATE OR REPLACE TABLE gotest.acl_secret_pk (v VARCHAR(20) PRIMARY KEY)",
		"INSERT INTO gotest.acl_secret_pk VALUES ('hunter2')")
	defer mustExec(t, root, "DROP TABLE IF EXISTS gotest.zz_child, gotest.acl_secret_pk")
	mustExec(t, root, "USE acl_other", "CREATE TABLE gotest.zz_child (v VARCHAR(20), FOREIGN KEY (v) REFERENCES acl_secret_pk(v))")
	if _, err := root.ExecContext(ctx, "INSERT INTO gotest.zz_child VALUES ('guess')"); mysqlErr(err) == nil || mysqlErr(err).Number != 1452 {
		t.Fatalf("the probe is broken: want 1452 for a value not in the parent, got %v", err)
	}
	mustExec(t, root, "DROP TABLE gotest.zz_child", "USE gotest")
	mustExec(t, spy, "USE acl_other")
	wantDenied(t, spy, 1142, "CREATE TABLE gotest.zz_child (v VARCHAR(20), FOREIGN KEY (v) REFERENCES acl_secret_pk(v))")

	// sql_mode=ORACLE reads seq.nextval as a sequence function.
	mustExec(t, root, "SET sql_mode = 'ORACLE'")
	before := queryString(t, root, "SELECT gotest.acl_seq.nextval")
	mustExec(t, root, "SET sql_mode = DEFAULT")
	if before == "" {
		t.Fatal("the probe is broken: no sequence value under ORACLE")
	}
	mustExec(t, clerk, "SET sql_mode = 'ORACLE'")
	wantDenied(t, clerk, 1227, "SELECT acl_seq.nextval")
	wantDenied(t, clerk, 1227, "SELECT 1")
	mustExec(t, clerk, "SET sql_mode = DEFAULT")
	mustExec(t, clerk, "SELECT 1")
	wantDenied(t, clerk, 1227, "SET sql_mode = 'ORACLE'; SELECT acl_seq.nextval")

	// Built-in names calling stored functions.
	mustExec(t, root,
		"CREATE OR REPLACE FUNCTION gotest.`count`(x INT) RETURNS VARCHAR(20) SQL SECURITY DEFINER RETURN (SELECT v FROM gotest.acl_secret LIMIT 1)",
		"CREATE OR REPLACE FUNCTION gotest.status() RETURNS VARCHAR(20) SQL SECURITY DEFINER RETURN (SELECT v FROM gotest.acl_secret LIMIT 1)")
	defer mustExec(t, root, "DROP FUNCTION IF EXISTS gotest.`count`", "DROP FUNCTION IF EXISTS gotest.status")
	calls := []string{"SELECT count (1)", "SELECT `count`(1)", "SELECT `status`()", "SELECT status()"}
	for _, q := range calls {
		if got := queryString(t, root, q); got != "TOPSECRET" {
			t.Fatalf("the probe is broken: MariaDB %s gave %q", q, got)
		}
	}
	for _, q := range calls {
		if _, err := clerk.ExecContext(ctx, q); mysqlErr(err) == nil {
			t.Errorf("%s: clerk may call no stored function of gotest, got %v", q, err)
		}
	}
	if got := queryString(t, clerk, "SELECT COUNT(*) FROM acl_orders"); got == "" {
		t.Fatal("COUNT(*) refused")
	}
	// The accounts on the server are not the catalogue.
	wantDenied(t, spy, 1227, "SELECT * FROM information_schema.USER_PRIVILEGES")
}

// Bypasses found in the fifth review: the proxy's own state queries blinded
// by the client's session settings, "count"(1) under ANSI_QUOTES, an
// executable comment holding the parenthesis, accented routine names.
func TestAccessFifthReviewBypasses(t *testing.T) {
	p := accessSetup(t)
	root := pinnedConn(t, backendDB.RootDB())
	defer root.Raw(func(any) error { return driver.ErrBadConn }) // sql_mode stays with it
	mustExec(t, root, "USE gotest",
		"CREATE OR REPLACE FUNCTION gotest.`count`(x INT) RETURNS VARCHAR(20) SQL SECURITY DEFINER RETURN (SELECT v FROM gotest.acl_secret LIMIT 1)",
		"CREATE OR REPLACE PROCEDURE gotest.acl_secret_proc() SQL SECURITY DEFINER SELECT v FROM gotest.acl_secret",
		"CREATE OR REPLACE FUNCTION gotest.acl_secret_fn() RETURNS VARCHAR(20) SQL SECURITY DEFINER RETURN (SELECT v FROM gotest.acl_secret LIMIT 1)")
	defer mustExec(t, root, "DROP FUNCTION IF EXISTS gotest.`count`", "DROP PROCEDURE IF EXISTS gotest.acl_secret_proc", "DROP FUNCTION IF EXISTS gotest.acl_secret_fn")
	ansiLeak := `SELECT 1 AS "x\", v FROM acl_secret -- " FROM acl_orders`
	// Each leak below is MariaDB's reading of a text the parser reads
	// otherwise; the proxy must refuse it.
	leaks := func(c *sql.Conn, q string) bool {
		var v sql.NullString
		rows, err := c.QueryContext(context.Background(), q)
		if err != nil {
			return false
		}
		defer rows.Close()
		for rows.Next() {
			cols, _ := rows.Columns()
			vals := make([]any, len(cols))
			for i := range vals {
				vals[i] = &v
			}
			if rows.Scan(vals...) == nil && v.String == "TOPSECRET" {
				return true
			}
		}
		return false
	}
	mustExec(t, root, "SET sql_mode = 'ANSI_QUOTES'")
	for _, q := range []string{ansiLeak, `SELECT "count"(1)`} {
		if !leaks(root, q) {
			t.Fatalf("the probe is broken: MariaDB under ANSI_QUOTES, %s", q)
		}
	}
	mustExec(t, root, "SET sql_mode = DEFAULT")

	// The client's session settings blind the proxy's state queries: it
	// must refuse what it cannot read, until the answer reads right.
	for _, blind := range []string{"sql_select_limit = 0", "character_set_results = utf32"} {
		spy := pinnedConn(t, p.userDB(t, "spy", "spy-pw", "multiStatements=true"))
		mustExec(t, spy, "USE acl_other", "SET "+blind)
		if _, err := spy.ExecContext(context.Background(), "USE gotest; DO 1"); err != nil {
			t.Fatal(err)
		}
		wantDenied(t, spy, 1227, "SELECT v FROM acl_secret") // blind: the database is unknown
		mustExec(t, spy, "SET sql_select_limit = DEFAULT, character_set_results = DEFAULT")
		wantDenied(t, spy, 1142, "SELECT v FROM acl_secret") // read right again: gotest

		clerk := pinnedConn(t, p.userDB(t, "clerk", "clerk-pw", ""))
		mustExec(t, clerk, "SET "+blind, "SET sql_mode = 'ANSI_QUOTES'", "SET sql_select_limit = DEFAULT, character_set_results = DEFAULT")
		if leaks(clerk, ansiLeak) {
			t.Errorf("%s: clerk read acl_secret under an unseen ANSI_QUOTES", blind)
		}
		mustExec(t, clerk, "SET "+blind, "SET sql_mode = 'ORACLE'", "SET sql_select_limit = DEFAULT, character_set_results = DEFAULT")
		wantDenied(t, clerk, 1227, "SELECT acl_seq.nextval FROM acl_orders")
		mustExec(t, clerk, "SET sql_mode = DEFAULT")
		if got := queryString(t, clerk, "SELECT COUNT(*) FROM acl_orders"); got == "" {
			t.Fatal("clerk's session did not recover")
		}
	}

	// A built-in's name that calls the stored function gotest.count.
	clerk := pinnedConn(t, p.userDB(t, "clerk", "clerk-pw", ""))
	if got := queryString(t, root, "SELECT count/*!(*/1) FROM acl_orders"); got != "TOPSECRET" {
		t.Fatalf("the probe is broken: %q", got)
	}
	if leaks(clerk, "SELECT count/*!(*/1) FROM acl_orders") {
		t.Error("clerk called gotest.count through count/*!(*/1)")
	}
	mustExec(t, clerk, "SET sql_mode = 'ANSI_QUOTES'")
	if leaks(clerk, `SELECT "count"(1) FROM acl_orders`) {
		t.Error(`clerk called gotest.count as "count"(1) under ANSI_QUOTES`)
	}
	mustExec(t, clerk, "SET sql_mode = DEFAULT")
	if got := queryString(t, clerk, "SELECT `concat`('a', 'b')"); got != "ab" {
		t.Fatalf("a quoted native refused: %q", got)
	}

	// Routine names compare without accents on the server.
	nocall := pinnedConn(t, p.userDB(t, "nocall", "nocall-pw", ""))
	for _, q := range []string{"CALL gotest.`acl_sécret_proc`()", "SELECT gotest.`acl_sécret_fn`()", "SELECT `ACL_SÉCRET_FN`()"} {
		if !leaks(root, q) {
			t.Fatalf("the probe is broken: MariaDB %s", q)
		}
		if leaks(nocall, q) {
			t.Errorf("nocall ran %s", q)
		}
	}
	wantDenied(t, nocall, 1142, "CALL gotest.acl_secret_proc()")
}

// Bypasses found in the ninth review: a USE or SET NAMES past the parse
// limit (the session followed only the short description of the text), and
// a reload giving rules to a session whose reading the proxy never
// followed.
func TestAccessNinthReviewBypasses(t *testing.T) {
	ctx := context.Background()
	pad := " /* " + strings.Repeat("x", 70<<10) + " */" // past sqlinfo.MaxParsed
	// In gbk 0xBF 0x5C is one character: the quote after it ends the string.
	const gbkTrick = "SELECT '\xbf\\' , (SELECT v FROM acl_secret LIMIT 1) -- '"
	accessTables(t)
	p := startProxy(t, oneNode(accessUsers+freeUser))
	spy := pinnedConn(t, p.userDB(t, "spy", "spy-pw", ""))
	mustExec(t, spy, "USE acl_other", "USE gotest"+pad)
	wantDenied(t, spy, 1142, "SELECT v FROM acl_secret LIMIT 1") // checked in gotest, where the server is
	mustExec(t, spy, "SET NAMES gbk"+pad)
	wantDenied(t, spy, 1227, gbkTrick)
	mustExec(t, spy, "SET NAMES utf8mb4")

	// A user without rules sets gbk; a reload then gives it rules.
	f := pinnedConn(t, p.userDB(t, "free", "free-pw", ""))
	mustExec(t, f, "SET NAMES gbk")
	next := accessUsers + freeUser + `[[proxy.config.users.rule]]
action = "deny"
databases = ["gotest"]
tables = ["acl_secret*"]
operations = ["select"]
`
	cfg := strings.Replace(oneNode(next), `listen_addr = "127.0.0.1:0"`, `listen_addr = "`+p.Addr("main").String()+`"`, 1)
	if err := p.Apply(parse(t, cfg)); err != nil {
		t.Fatal(err)
	}
	wantDenied(t, f, 1142, "SELECT * FROM acl_secret")
	var a, b sql.NullString
	if err := f.QueryRowContext(ctx, gbkTrick).Scan(&a, &b); mysqlErr(err) == nil || mysqlErr(err).Number != 1227 {
		t.Fatalf("after the reload, under gbk: want 1227, got %v %q", err, b.String)
	}
}

// freeUser has no rules until a test's reload gives it some.
const freeUser = `
[[proxy.config.users]]
user = "free"
password = "free-pw"
`

// A session of a user without rules prepares statements read in a mode the
// proxy did not follow (tenth review); a reload then gives the user rules:
// those statements cannot be checked and are refused.
func TestAccessPreparedBeforeReload(t *testing.T) {
	ctx := context.Background()
	accessTables(t)
	p := startProxy(t, oneNode(accessUsers+freeUser))
	f := pinnedConn(t, p.userDB(t, "free", "free-pw", ""))
	// Default mode: SELECT v '<string>' FROM acl_orders.
	// ANSI_QUOTES:  SELECT v AS "\" FROM acl_secret -- comment.
	const trick = `SELECT v "\" FROM acl_secret -- \"" FROM acl_orders`
	mustExec(t, f, "SET sql_mode = 'ANSI_QUOTES'",
		`PREPARE q FROM 'SELECT v "\\" FROM acl_secret -- \\"" FROM acl_orders'`)
	stmt, err := f.PrepareContext(ctx, trick)
	if err != nil {
		t.Fatal(err)
	}
	defer stmt.Close()
	var v sql.NullString
	if err := stmt.QueryRowContext(ctx).Scan(&v); err != nil || v.String != "TOPSECRET" {
		t.Fatalf("probe broken: MariaDB under ANSI_QUOTES should read acl_secret: %v %q", err, v.String)
	}

	next := accessUsers + freeUser + `[[proxy.config.users.rule]]
action = "deny"
databases = ["gotest"]
tables = ["acl_secret*"]
operations = ["select"]
`
	cfg := strings.Replace(oneNode(next), `listen_addr = "127.0.0.1:0"`, `listen_addr = "`+p.Addr("main").String()+`"`, 1)
	if err := p.Apply(parse(t, cfg)); err != nil {
		t.Fatal(err)
	}
	// COM_STMT_EXECUTE right after the reload.
	v = sql.NullString{}
	if err := stmt.QueryRowContext(ctx).Scan(&v); err == nil || v.String == "TOPSECRET" {
		t.Errorf("binary protocol: prepared before the reload, executed after: read acl_secret (%q, err %v)", v.String, err)
	}
	// The session is now restricted and its reading known.
	wantDenied(t, f, 1142, "SELECT v FROM acl_secret")
	// SQL-level EXECUTE of the name prepared before the reload.
	v = sql.NullString{}
	if err := f.QueryRowContext(ctx, "EXECUTE q").Scan(&v); err == nil || v.String == "TOPSECRET" {
		t.Errorf("SQL-level EXECUTE: prepared before the reload, executed after: read acl_secret (%q, err %v)", v.String, err)
	}
	v = sql.NullString{}
	if err := stmt.QueryRowContext(ctx).Scan(&v); err == nil || v.String == "TOPSECRET" {
		t.Errorf("binary protocol, after a checked statement: read acl_secret (%q, err %v)", v.String, err)
	}
}

// TestParseBudget: each user may have only so many bytes of statement
// text of new shapes parsed per second. Past it, a user with access rules
// is refused (1226, the session goes on, shapes already read still run);
// a user without rules still runs its statements, read lexically; other
// users are not held back.
func TestParseBudget(t *testing.T) {
	p := startProxy(t, oneNode(`parse_budget = 4096
[[proxy.config.users]]
user = "reader"
password = "reader-pw"
read_only = true
`))
	reader := pinnedConn(t, openDB(t, p.dsnUser("main", "reader", "reader-pw", "")))
	app := pinnedConn(t, p.db(t, "main", ""))
	shape := func(i int) string { return fmt.Sprintf("SELECT '%s' AS c%d", strings.Repeat("x", 1500), i) }
	ctx := context.Background()
	for i := range 2 {
		if _, err := reader.ExecContext(ctx, shape(i)); err != nil {
			t.Fatalf("statement %d within the burst: %v", i, err)
		}
	}
	_, err := reader.ExecContext(ctx, shape(2))
	if me := mysqlErr(err); me == nil || me.Number != 1226 || !strings.Contains(me.Message, "parse_budget") {
		t.Fatalf("past the budget: %v, want 1226", err)
	}
	if _, err := reader.ExecContext(ctx, shape(0)); err != nil {
		t.Errorf("a shape already read, past the budget: %v", err)
	}
	throttled := func() float64 { return p.metricValue(t, "pisa_proxy_sql_parse_throttled_total", `domain="main"`) }
	if n := throttled(); n != 1 {
		t.Errorf("sql_parse_throttled_total = %v after the reader's refusal, want 1", n)
	}
	for i := 10; i < 14; i++ {
		if _, err := app.ExecContext(ctx, shape(i)); err != nil {
			t.Fatalf("a user without rules, statement %d: %v", i, err)
		}
		if n := throttled(); i < 12 && n != 1 {
			t.Errorf("app's statement %d, within its own budget, was throttled", i)
		}
	}
	if n := throttled(); n != 3 {
		t.Errorf("sql_parse_throttled_total = %v, want 3 (reader's refusal, app's last two read lexically)", n)
	}
}
