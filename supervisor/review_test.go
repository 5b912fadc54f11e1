package supervisor_test

import (
	"context"
	"database/sql"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
	"pisanix.io/pisanix/internal/testenv"
	"pisanix.io/pisanix/wire"
)

// A reload replaces the limiter actors; sessions opened before it must use
// the new ones, not wait on stopped actors.
func TestReloadKeepsPluginsWorkingForOpenSessions(t *testing.T) {
	extra := "[[proxy.config.plugin.concurrency_control]]\nregex = [\"^SELECT\"]\nmax_concurrency = 4\nduration = 2\n"
	toml := oneNode(extra)
	p := startProxy(t, toml)
	c := pinnedConn(t, p.db(t, "main", ""))
	addr := p.Addr("main").String()
	if err := p.Apply(parse(t, strings.Replace(toml, "127.0.0.1:0", addr, 1))); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if got := queryString(t, c, "SELECT 'after reload'"); got != "after reload" {
		t.Fatal(got)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("statement waited %s on a stopped limiter", d)
	}
}

// After a reload renames the replica, an open session's first replica read
// uses the new pool rather than crashing on the old map.
func TestReloadRenamingReplica(t *testing.T) {
	ctx := context.Background()
	primary := testenv.MariaDB(t, testenv.WithReplication())
	replica := testenv.Replica(t, primary, testenv.WithReplication())
	if err := primary.Exec(ctx, "CREATE TABLE gotest.r (v INT)", "INSERT INTO gotest.r VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if err := replica.WaitCaughtUp(ctx, primary); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, rwTOML(primary, replica, "0s"))
	c := pinnedConn(t, p.db(t, "main", "")) // holds a primary, no replica yet
	renamed := strings.Replace(rwTOML(primary, replica, "0s"), `name = "replica"`, `name = "replica2"`, 1)
	renamed = strings.Replace(renamed, "127.0.0.1:0", p.Addr("main").String(), 1)
	if err := p.Apply(parse(t, renamed)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "read through the renamed replica", func() bool {
		return queryString(t, c, "SELECT v FROM r") == "1"
	})
	assertAlive(t, c)
}

// A client that connects and says nothing loses its slot after login_timeout.
func TestSilentClientTimesOut(t *testing.T) {
	p := startProxy(t, oneNode("max_connections = 1\nlogin_timeout = \"300ms\"\n"))
	silent, err := net.Dial("tcp", p.Addr("main").String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	waitFor(t, 5*time.Second, "slot freed", func() bool { return ping(p.dsn("main", "")) == nil })
	// The refusal before a handshake carries no SQLSTATE marker. (The
	// session that just pinged may still be ending: wait for the slot.)
	db := p.db(t, "main", "")
	waitFor(t, 5*time.Second, "holder connected", func() bool {
		c, err := db.Conn(context.Background())
		if err != nil {
			return false
		}
		t.Cleanup(func() { c.Close() })
		return c.PingContext(context.Background()) == nil
	})
	err = ping(p.dsn("main", ""))
	if me := mysqlErr(err); me == nil || me.Number != 1040 || strings.Contains(me.Message, "#") {
		t.Fatalf("want a clean 1040, got %v", err)
	}
}

// LOCAL INFILE for a client that did not enable it: the client gets 1148
// and the session stays usable.
func TestLocalInfileDeclined(t *testing.T) {
	p := startProxy(t, oneNode(""))
	r := dialRaw(t, p, "main") // go-mysql's client without CLIENT_LOCAL_FILES
	r.query("CREATE TABLE IF NOT EXISTS li (v INT)")
	wantErrCode(t, r.query("LOAD DATA LOCAL INFILE '/etc/hostname' INTO TABLE li")[0], mysql.ER_NOT_ALLOWED_COMMAND)
	if got := r.query("SELECT 'still in sync'"); !strings.Contains(string(got[0]), "still in sync") {
		t.Fatalf("session out of sync after the declined LOAD DATA: %q", got)
	}
}

// COM_RESET_CONNECTION keeps the character set the client logged in with.
func TestResetConnectionKeepsCharset(t *testing.T) {
	p := startProxy(t, oneNode(""))
	c, err := client.Connect(p.Addr("main").String(), "app", "app-secret", "gotest", func(c *client.Conn) error {
		return c.SetCollation("latin1_swedish_ci")
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := &rawConn{t: t, c: c, io: wire.NewPacketIO(c.Conn.Conn, 0)}
	charset := func() string {
		rows := r.query("SELECT @@character_set_client")
		return string(rows[0][1:])
	}
	if got := charset(); got != "latin1" {
		t.Fatalf("login charset %q", got)
	}
	r.send(mysql.COM_RESET_CONNECTION)
	if b := r.read(); b[0] != mysql.OK_HEADER {
		t.Fatalf("reset: %q", b)
	}
	if got := charset(); got != "latin1" {
		t.Fatalf("charset after COM_RESET_CONNECTION: %q", got)
	}
}

// A schema chosen by one session does not leak into the next one on a
// node that names no schema.
func TestNoSchemaLeakBetweenSessions(t *testing.T) {
	toml := strings.Replace(listenerTOML("main", []string{"n1"}, "pool_min_idle = 0\n"), "pool_size = 8", "pool_size = 1", 1)
	toml = strings.Replace(toml, `db = "gotest"`, `db = ""`, 1)
	toml += strings.Replace(nodeTOML("n1", backendDB, ""), `db = "gotest"`, `db = ""`, 1)
	p := startProxy(t, toml)
	noDB := func() string {
		return p.dsnUser("main", "app", "app-secret", "")[:strings.Index(p.dsnUser("main", "app", "app-secret", ""), "/")+1]
	}
	first := openDB(t, noDB())
	c1, err := first.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, c1, "USE gotest")
	c1.Close()
	first.Close()
	second := openDB(t, noDB())
	waitFor(t, 5*time.Second, "second session", func() bool { return second.Ping() == nil })
	if got := queryString(t, second, "SELECT DATABASE()"); got != "" {
		t.Fatalf("schema %q leaked from the previous session", got)
	}
}

// CLIENT_FOUND_ROWS (Connector/J's default) keeps its meaning: affected
// rows count matched rows.
func TestFoundRows(t *testing.T) {
	p := startProxy(t, oneNode(""))
	plain, found := p.db(t, "main", ""), p.db(t, "main", "clientFoundRows=true")
	mustExec(t, plain, "CREATE TABLE IF NOT EXISTS fr (id INT PRIMARY KEY, v INT)", "REPLACE INTO fr VALUES (1, 1)")
	affected := func(db interface {
		ExecContext(context.Context, string, ...any) (sql.Result, error)
	}) int64 {
		res, err := db.ExecContext(context.Background(), "UPDATE fr SET v = 1 WHERE id = 1")
		if err != nil {
			t.Fatal(err)
		}
		n, _ := res.RowsAffected()
		return n
	}
	if n := affected(plain); n != 0 {
		t.Fatalf("changed rows: %d, want 0", n)
	}
	if n := affected(found); n != 1 {
		t.Fatalf("with CLIENT_FOUND_ROWS: %d, want 1 (matched)", n)
	}
}
