package supervisor_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
	"pisanix.io/pisanix/internal/testenv"
	"pisanix.io/pisanix/wire"
)

// rawConn is a client logged in with go-mysql's client that then speaks raw
// packets, for commands database/sql drivers never send.
type rawConn struct {
	t  *testing.T
	c  *client.Conn
	io *wire.PacketIO
}

func dialRaw(t *testing.T, p *proxy, name string) *rawConn {
	t.Helper()
	return dialRawAs(t, p, name, "app", "app-secret")
}

func dialRawAs(t *testing.T, p *proxy, name, user, password string) *rawConn {
	t.Helper()
	c, err := client.Connect(p.Addr(name).String(), user, password, "gotest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, io: wire.NewPacketIO(c.Conn.Conn, 0)}
}

// send writes one command with sequence id 0.
func (r *rawConn) send(payload ...byte) {
	r.t.Helper()
	r.io.Seq = 0
	if err := r.io.WritePacketFlush(payload); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawConn) read() []byte {
	r.t.Helper()
	b, err := r.io.ReadPacket(nil, 1<<26)
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

// untilEOF reads packets up to and including an EOF or ERR, returning them.
func (r *rawConn) untilEOF() [][]byte {
	r.t.Helper()
	var out [][]byte
	for {
		b := r.read()
		out = append(out, b)
		if (b[0] == mysql.EOF_HEADER && len(b) < 9) || b[0] == mysql.ERR_HEADER {
			return out
		}
	}
}

func (r *rawConn) query(sql string) [][]byte {
	r.t.Helper()
	r.send(append([]byte{mysql.COM_QUERY}, sql...)...)
	first := r.read()
	if first[0] == mysql.OK_HEADER || first[0] == mysql.ERR_HEADER {
		return [][]byte{first}
	}
	r.untilEOF() // column definitions
	return r.untilEOF()
}

func wantErrCode(t *testing.T, b []byte, code uint16) {
	t.Helper()
	if len(b) < 3 || b[0] != mysql.ERR_HEADER {
		t.Fatalf("want ERR %d, got %q", code, b)
	}
	if e := wire.ParseError(b); e.Code != code {
		t.Fatalf("want ERR %d, got %d %s", code, e.Code, e.Message)
	}
}

func TestCursorFetch(t *testing.T) {
	p := startProxy(t, oneNode(""))
	r := dialRaw(t, p, "main")
	r.send(append([]byte{mysql.COM_STMT_PREPARE}, "SELECT seq FROM seq_1_to_10"...)...)
	ok := r.read()
	if ok[0] != mysql.OK_HEADER {
		t.Fatalf("prepare: %q", ok)
	}
	stmtID := binary.LittleEndian.Uint32(ok[1:5])
	if cols := binary.LittleEndian.Uint16(ok[5:7]); cols != 1 {
		t.Fatalf("columns %d", cols)
	}
	r.untilEOF() // column definition + EOF
	exec := binary.LittleEndian.AppendUint32([]byte{mysql.COM_STMT_EXECUTE}, stmtID)
	exec = append(exec, 0x01, 1, 0, 0, 0) // CURSOR_TYPE_READ_ONLY, iteration count 1
	r.send(exec...)
	if first := r.read(); first[0] != 1 {
		t.Fatalf("execute with cursor: %q", first)
	}
	eof := r.untilEOF()
	if st := wire.StatusOf(eof[len(eof)-1]); st&mysql.SERVER_STATUS_CURSOR_EXISTS == 0 {
		t.Fatalf("no cursor opened, status %#x", st)
	}
	rows := 0
	for fetches := 0; ; fetches++ {
		if fetches > 10 {
			t.Fatal("cursor never ended")
		}
		r.send(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32([]byte{mysql.COM_STMT_FETCH}, stmtID), 3)...)
		pkts := r.untilEOF()
		rows += len(pkts) - 1
		if wire.StatusOf(pkts[len(pkts)-1])&mysql.SERVER_STATUS_LAST_ROW_SEND != 0 {
			break
		}
	}
	if rows != 10 {
		t.Fatalf("fetched %d rows, want 10", rows)
	}
	// COM_STMT_RESET goes to the backend (the original answered it locally).
	r.send(binary.LittleEndian.AppendUint32([]byte{mysql.COM_STMT_RESET}, stmtID)...)
	if b := r.read(); b[0] != mysql.OK_HEADER {
		t.Fatalf("stmt reset: %q", b)
	}
	r.send(binary.LittleEndian.AppendUint32([]byte{mysql.COM_STMT_CLOSE}, stmtID)...)
	r.send(binary.LittleEndian.AppendUint32([]byte{mysql.COM_STMT_RESET}, stmtID)...)
	wantErrCode(t, r.read(), mysql.ER_UNKNOWN_STMT_HANDLER)
}

func TestSendLongData(t *testing.T) {
	p := startProxy(t, oneNode(""))
	r := dialRaw(t, p, "main")
	r.send(append([]byte{mysql.COM_STMT_PREPARE}, "SELECT LENGTH(?)"...)...)
	ok := r.read()
	stmtID := binary.LittleEndian.Uint32(ok[1:5])
	r.untilEOF() // param
	r.untilEOF() // column
	chunk := bytes.Repeat([]byte("x"), 100000)
	for range 3 {
		r.send(append(binary.LittleEndian.AppendUint16(binary.LittleEndian.AppendUint32([]byte{mysql.COM_STMT_SEND_LONG_DATA}, stmtID), 0), chunk...)...)
	}
	exec := binary.LittleEndian.AppendUint32([]byte{mysql.COM_STMT_EXECUTE}, stmtID)
	exec = append(exec, 0, 1, 0, 0, 0, 0 /*null bitmap*/, 1 /*new bound*/, mysql.MYSQL_TYPE_BLOB, 0)
	r.send(exec...)
	r.read()
	r.untilEOF()
	rows := r.untilEOF()
	// binary row: 0x00, null bitmap (1 byte), then LENGTH() as a 4-byte LONG
	if got := binary.LittleEndian.Uint32(rows[0][2:6]); got != 300000 {
		t.Fatalf("LENGTH of long data = %d", got)
	}
}

func TestServerCommands(t *testing.T) {
	p := startProxy(t, oneNode(""))
	r := dialRaw(t, p, "main")
	if err := r.c.Ping(); err != nil {
		t.Fatal(err)
	}
	r.query("CREATE TABLE IF NOT EXISTS fl_t (a INT, b VARCHAR(3))")
	fields, err := r.c.FieldList("fl_t", "")
	if err != nil || len(fields) != 2 || string(fields[1].Name) != "b" {
		t.Fatalf("COM_FIELD_LIST: %v %v", fields, err)
	}
	r.send(mysql.COM_STATISTICS)
	if b := r.read(); !bytes.HasPrefix(b, []byte("Uptime:")) {
		t.Fatalf("COM_STATISTICS: %q", b)
	}
	if err := r.c.UseDB("socksdb"); err != nil {
		t.Fatal(err)
	}
	if got := r.query("SELECT DATABASE()"); !bytes.Contains(got[0], []byte("socksdb")) {
		t.Fatalf("COM_INIT_DB did not switch: %q", got[0])
	}
	// COM_RESET_CONNECTION clears user variables on the backend.
	r.query("SET @x = 42")
	r.send(mysql.COM_RESET_CONNECTION)
	if b := r.read(); b[0] != mysql.OK_HEADER {
		t.Fatalf("reset connection: %q", b)
	}
	if got := r.query("SELECT @x"); got[0][0] != 0xfb {
		t.Fatalf("@x survived COM_RESET_CONNECTION: %q", got[0])
	}
	// COM_SET_OPTION turns multi-statements off and on.
	r.send(mysql.COM_SET_OPTION, 1, 0)
	if b := r.read(); b[0] != mysql.EOF_HEADER && b[0] != mysql.OK_HEADER {
		t.Fatalf("set option: %q", b)
	}
	wantErrCode(t, r.query("SELECT 1; SELECT 2")[0], mysql.ER_PARSE_ERROR)
	r.send(mysql.COM_SET_OPTION, 0, 0)
	r.read()
	// An unknown command is refused and the session goes on.
	r.send(0x99, 1, 2)
	wantErrCode(t, r.read(), mysql.ER_UNKNOWN_COM_ERROR)
	if got := r.query("SELECT 7"); !bytes.Contains(got[0], []byte("7")) {
		t.Fatalf("session did not survive unknown command: %q", got)
	}
	// Replication commands are not proxied.
	r.send(mysql.COM_BINLOG_DUMP, 0, 0, 0, 0)
	wantErrCode(t, r.read(), mysql.ER_UNKNOWN_COM_ERROR)
	// An empty packet is malformed; the session goes on.
	r.send()
	wantErrCode(t, r.read(), mysql.ER_MALFORMED_PACKET)
	if got := r.query("SELECT 8"); !bytes.Contains(got[0], []byte("8")) {
		t.Fatalf("session did not survive empty packet: %q", got)
	}
}

func TestChangeUser(t *testing.T) {
	p := startProxy(t, oneNode(""))
	r := dialRaw(t, p, "main")
	r.query("SET @x = 1")
	changeUser := func(password string) []byte { return r.changeUser("gotest", password) }
	if ok := changeUser("app-secret"); ok[0] != mysql.OK_HEADER {
		t.Fatalf("change user: %q", ok)
	}
	if got := r.query("SELECT @x"); got[0][0] != 0xfb {
		t.Fatalf("session state survived COM_CHANGE_USER: %q", got[0])
	}
	wantErrCode(t, changeUser("wrong"), mysql.ER_ACCESS_DENIED_ERROR)
	if _, err := r.io.ReadPacket(nil, 1024); err == nil {
		t.Fatal("connection must close after a failed COM_CHANGE_USER")
	}
}

func TestMalformedInput(t *testing.T) {
	p := startProxy(t, oneNode(""))
	addr := p.Addr("main").String()
	// Garbage instead of a handshake response: an error packet or a close.
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		junk := make([]byte, 4096)
		_, _ = rand.Read(junk)
		junk[0], junk[1], junk[2] = 40, 0, 0 // a plausible 40-byte first packet
		_, _ = c.Write(junk)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		all, _ := readAll(c)
		c.Close()
		if i := bytes.IndexByte(all, mysql.ERR_HEADER); i >= 0 && !bytes.Contains(all, []byte("Bad handshake")) {
			t.Logf("reply to garbage: %q", all)
		}
	}
	// A command with a wrong sequence id is refused and the connection closed.
	r := dialRaw(t, p, "main")
	r.io.Seq = 3
	_ = r.io.WritePacketFlush(append([]byte{mysql.COM_QUERY}, "SELECT 1"...))
	wantErrCode(t, r.read(), mysql.ER_NET_PACKETS_OUT_OF_ORDER)
	// Everyone else is still served.
	if got := queryString(t, p.db(t, "main", ""), "SELECT 'alive'"); got != "alive" {
		t.Fatal("proxy stopped serving after malformed input")
	}
}

func readAll(c net.Conn) ([]byte, error) {
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			return out, err
		}
	}
}

// The handshake announces the backend's own version, as a direct
// connection sees it (drivers pick MariaDB or MySQL code paths by it),
// unless server_version says otherwise.
func TestServerVersionIsTheBackends(t *testing.T) {
	direct, err := client.Connect(backendDB.Addr(), testenv.TestUser, testenv.TestPassword, "")
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	want := direct.GetServerVersion()
	p := startProxy(t, oneNode("pool_min_idle = 0\n")+listenerTOML("fixed", []string{"n1"}, "server_version = \"8.0.36-fixed\"\n"))
	for name, want := range map[string]string{"main": want, "fixed": "8.0.36-fixed"} {
		for range 2 { // before and after the pool's first dial
			got := dialRaw(t, p, name).c.GetServerVersion()
			if got != want {
				t.Errorf("%s: handshake announces %q, want %q", name, got, want)
			}
		}
	}
}

// A procedure that opens a cursor of its own makes MariaDB flag its text
// results CURSOR_EXISTS although their rows follow (main.sp's bug8757 lost
// the connection through the proxy): the CALL's results are the server's.
func TestCallProcedureWithCursor(t *testing.T) {
	// main.sp's bug8757: cursors opened, fetched and closed, then SELECTs.
	mustExec(t, backendDB.RootDB(), "CREATE OR REPLACE TABLE gotest.cursor_t1 (data INT)",
		"CREATE OR REPLACE TABLE gotest.cursor_t2 (i INT)",
		"INSERT INTO gotest.cursor_t1 VALUES (1)", "INSERT INTO gotest.cursor_t2 VALUES (2)",
		"DROP PROCEDURE IF EXISTS gotest.cursor_proc",
		`CREATE PROCEDURE gotest.cursor_proc()
BEGIN
  DECLARE x INT;
  DECLARE c1 CURSOR FOR SELECT data FROM cursor_t1 LIMIT 1;
  BEGIN
    DECLARE y INT;
    DECLARE c2 CURSOR FOR SELECT i FROM cursor_t2 LIMIT 1;
    OPEN c2;
    FETCH c2 INTO y;
    CLOSE c2;
    SELECT 2, y;
  END;
  OPEN c1;
  FETCH c1 INTO x;
  CLOSE c1;
  SELECT 1, x;
END`)
	p := startProxy(t, oneNode(""))
	results := func(db *sql.DB) string {
		c := pinnedConn(t, db)
		rows, err := c.QueryContext(context.Background(), "CALL gotest.cursor_proc()")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for {
			cols, _ := rows.Columns()
			for rows.Next() {
				vals := make([]sql.RawBytes, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				if err := rows.Scan(ptrs...); err != nil {
					t.Fatal(err)
				}
				for _, v := range vals {
					out = append(out, string(v))
				}
			}
			if !rows.NextResultSet() {
				break
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ExecContext(context.Background(), "DO 1"); err != nil {
			t.Fatalf("session after the CALL: %v", err)
		}
		return strings.Join(out, ",")
	}
	direct, proxied := results(backendDB.RootDB()), results(p.db(t, "main", ""))
	if direct != proxied || direct == "" {
		t.Fatalf("CALL results: direct %q, through the proxy %q", direct, proxied)
	}
}

// What a server derives from the client's capability flags at login
// (CLIENT_IGNORE_SPACE: IGNORE_SPACE in sql_mode, as `mariadb -i`) holds
// through the proxy as on a direct connection. (CLIENT_INTERACTIVE is
// handled alike, but go-mysql's client never sends it, so it is not
// checked here.)
func TestClientFlagsReachTheSession(t *testing.T) {
	p := startProxy(t, oneNode(""))
	read := func(addr, user, pass string, flag uint32) string {
		c, err := client.Connect(addr, user, pass, "gotest", func(c *client.Conn) error {
			c.SetCapability(flag)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var out []string
		for _, q := range []string{"SELECT @@session.sql_mode, @@session.wait_timeout", "SELECT COUNT (*) FROM seq_1_to_3"} {
			r, err := c.Execute(q)
			if err != nil {
				out = append(out, "error: "+err.Error())
				continue
			}
			for i := range r.ColumnNumber() {
				v, _ := r.GetString(0, i)
				out = append(out, v)
			}
		}
		return strings.Join(out, " | ")
	}
	for name, flag := range map[string]uint32{"IGNORE_SPACE": mysql.CLIENT_IGNORE_SPACE} {
		direct := read(backendDB.Addr(), testenv.TestUser, testenv.TestPassword, flag)
		proxied := read(p.Addr("main").String(), "app", "app-secret", flag)
		if direct != proxied {
			t.Errorf("%s: direct %q, through the proxy %q", name, direct, proxied)
		}
	}
	// The settings do not outlive the session on its pooled connection.
	plain := read(p.Addr("main").String(), "app", "app-secret", 0)
	if want := read(backendDB.Addr(), testenv.TestUser, testenv.TestPassword, 0); plain != want {
		t.Errorf("next session: %q, direct %q", plain, want)
	}
}

// A SET GLOBAL through the proxy reaches the sessions opened after it, as
// on new connections to the server, although their pooled backend
// connections were reset before it (MariaDB's main.view and main.grant
// failed on a stale sql_mode).
func TestSetGlobalReachesNewSessions(t *testing.T) {
	t.Cleanup(func() { mustExec(t, backendDB.RootDB(), "SET GLOBAL div_precision_increment = DEFAULT") })
	p := startProxy(t, oneNode("pool_min_idle = 4\n"))
	db := p.db(t, "main", "")
	admin := pinnedConn(t, db)
	waitFor(t, 5*time.Second, "warm connections", func() bool {
		return len(p.metric(t, `pisa_proxy_pool_idle_connections{domain="main",node="n1"} 3`)) == 1
	})
	mustExec(t, admin, "SET GLOBAL div_precision_increment = 7")
	direct := queryString(t, openDB(t, backendDB.DSN(testenv.TestUser, testenv.TestPassword, "gotest")), "SELECT @@session.div_precision_increment")
	if got := queryString(t, pinnedConn(t, db), "SELECT @@session.div_precision_increment"); got != direct || got != "7" {
		t.Fatalf("a new session sees div_precision_increment %s; a new direct connection %s", got, direct)
	}
}

// COM_CHANGE_USER without a schema leaves the session in none, as the
// server does, also when the listener and node name no schema and the
// session's connection had one (MySQL cannot unselect a schema: the
// session gets a fresh connection); with a schema it is in that one.
func TestChangeUserSchema(t *testing.T) {
	p := startProxy(t, strings.ReplaceAll(oneNode(""), `db = "gotest"`, `db = ""`))
	r := dialRaw(t, p, "main") // logs in to gotest
	r.query("SET @x = 1")
	changeUser := func(schema string) []byte { return r.changeUser(schema, "app-secret") }
	for _, schema := range []string{"", "gotest", "", "mysql"} {
		if ok := changeUser(schema); ok[0] != mysql.OK_HEADER {
			t.Fatalf("change user to schema %q: %q", schema, ok)
		}
		got := r.query("SELECT DATABASE(), @x")
		want := []byte{0xfb, 0xfb} // NULL, NULL
		if schema != "" {
			want = append([]byte{byte(len(schema))}, schema...)
			want = append(want, 0xfb)
		}
		if !bytes.Equal(got[0], want) {
			t.Fatalf("after change user to schema %q: row %q, want %q", schema, got[0], want)
		}
	}
}

// changeUser sends COM_CHANGE_USER for app into schema, answers the auth
// switch with password and returns the final answer.
func (r *rawConn) changeUser(schema, password string) []byte {
	r.t.Helper()
	b := append([]byte{mysql.COM_CHANGE_USER}, "app\x00"...)
	b = append(b, 0) // empty auth response: the proxy switches with a fresh salt
	b = append(b, schema+"\x00"...)
	b = append(b, 45, 0) // utf8mb4_general_ci
	b = append(b, "mysql_native_password\x00"...)
	r.send(b...)
	sw := r.read()
	if sw[0] != mysql.EOF_HEADER {
		r.t.Fatalf("want auth switch, got %q", sw)
	}
	i := bytes.IndexByte(sw[1:], 0) + 2
	salt := bytes.TrimRight(sw[i:], "\x00")
	if err := r.io.WritePacketFlush(mysql.CalcPassword(salt, []byte(password))); err != nil {
		r.t.Fatal(err)
	}
	return r.read()
}
