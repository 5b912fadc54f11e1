package supervisor_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"pisanix.io/pisanix/internal/testenv"
	"pisanix.io/pisanix/wire"
)

// extClient is a client that asks for MariaDB's extended capabilities ext,
// logged in with wire's client side (the proxy's pools use the same).
type extClient struct {
	t   *testing.T
	io  *wire.PacketIO
	ext uint32 // negotiated
	ok  []byte // the login OK
}

func dialExt(t *testing.T, addr, user, password string, ext uint32) *extClient {
	t.Helper()
	return dialExtCaps(t, addr, user, password, ext, 0)
}

// dialExtCaps is dialExt asking for client flags caps too.
func dialExtCaps(t *testing.T, addr, user, password string, ext, caps uint32) *extClient {
	t.Helper()
	io, g := dialGreeted(t, addr)
	up := &wire.Upstream{IO: io, Greeting: g}
	creds := &wire.Credentials{User: user, Password: password, DB: "gotest", ExtCapabilities: ext,
		Capabilities: mysql.CLIENT_LOCAL_FILES | mysql.CLIENT_MULTI_RESULTS | caps}
	if err := up.LoginAs(creds); err != nil {
		t.Fatalf("login to %s: %v", addr, err)
	}
	return &extClient{t: t, io: io, ext: up.ExtCapabilities, ok: up.OK}
}

// dialGreeted connects to addr (closed at the test's end, 30 s to live)
// and reads the server's greeting.
func dialGreeted(t *testing.T, addr string) (*wire.PacketIO, *wire.Greeting) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	io := wire.NewPacketIO(c, 0)
	b, err := io.ReadPacket(nil, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	g, err := wire.ParseGreeting(b)
	if err != nil {
		t.Fatal(err)
	}
	return io, g
}

// command sends a command answered by one packet and returns it.
func (c *extClient) command(payload []byte) []byte {
	c.t.Helper()
	c.io.Seq = 0
	if err := c.io.WritePacketFlush(payload); err != nil {
		c.t.Fatal(err)
	}
	p, err := c.io.ReadPacket(nil, 1<<20)
	if err != nil {
		c.t.Fatal(err)
	}
	return p
}

// query runs sql and returns its response's packets as the client reads
// them, sequence ids included; a LOCAL INFILE request gets file.
func (c *extClient) query(sql string, file []byte) [][]byte {
	c.t.Helper()
	return c.run(append([]byte{mysql.COM_QUERY}, sql...), file)
}

// execute runs prepared statement id with one BIGINT parameter v.
func (c *extClient) execute(id uint32, v uint64) [][]byte {
	c.t.Helper()
	p := binary.LittleEndian.AppendUint32([]byte{mysql.COM_STMT_EXECUTE}, id)
	p = append(p, 0, 1, 0, 0, 0, 0, 1, mysql.MYSQL_TYPE_LONGLONG, 0) // 1 iteration, NULL bitmap, types
	return c.run(binary.LittleEndian.AppendUint64(p, v), nil)
}

// prepare prepares sql and returns its id and the response's packets.
func (c *extClient) prepare(sql string) (uint32, [][]byte) {
	c.t.Helper()
	c.io.Seq = 0
	if err := c.io.WritePacketFlush(append([]byte{mysql.COM_STMT_PREPARE}, sql...)); err != nil {
		c.t.Fatal(err)
	}
	var got [][]byte
	read := func() []byte {
		p, err := c.io.ReadPacket(nil, 1<<24)
		if err != nil {
			c.t.Fatalf("prepare %s: %v", sql, err)
		}
		got = append(got, append([]byte{c.io.LastSeq()}, p...))
		return p
	}
	ok := read()
	if ok[0] != mysql.OK_HEADER {
		c.t.Fatalf("prepare %s: %q", sql, ok)
	}
	for _, n := range []uint16{binary.LittleEndian.Uint16(ok[7:9]), binary.LittleEndian.Uint16(ok[5:7])} {
		for i := 0; n > 0 && i <= int(n); i++ { // definitions, then EOF
			read()
		}
	}
	// The id is the server's numbering on that connection, which need not
	// match another connection's (a direct one gave 4, a pooled one 1):
	// compared as zero.
	clear(got[0][2:6])
	return binary.LittleEndian.Uint32(ok[1:5]), got
}

// run sends a command and returns its response's packets as query does.
func (c *extClient) run(cmd, file []byte) [][]byte {
	c.t.Helper()
	sql := string(cmd[1:])
	c.io.Seq = 0
	if err := c.io.WritePacketFlush(cmd); err != nil {
		c.t.Fatal(err)
	}
	var got [][]byte
	read := func() []byte {
		p, err := c.io.ReadPacket(nil, 1<<24)
		if err != nil {
			c.t.Fatalf("%s: %v (after %q)", sql, err, got)
		}
		got = append(got, append([]byte{c.io.LastSeq()}, p...))
		return p
	}
	for {
		p := read()
		switch {
		case p[0] == mysql.ERR_HEADER && len(p) > 2 && p[1] == 0xff && p[2] == 0xff: // progress
			continue
		case p[0] == mysql.ERR_HEADER || p[0] == mysql.OK_HEADER:
			return got
		case p[0] == mysql.LocalInFile_HEADER:
			if err := c.io.WritePacket(file); err != nil {
				c.t.Fatal(err)
			}
			if err := c.io.WritePacketFlush(nil); err != nil {
				c.t.Fatal(err)
			}
			continue
		}
		for p = read(); p[0] != mysql.EOF_HEADER; p = read() { // column definitions
		}
		for p = read(); p[0] != mysql.EOF_HEADER && p[0] != mysql.ERR_HEADER; p = read() { // rows
		}
		return got
	}
}

// TestMariaDBCapabilitiesPooled: with configured users the proxy offers
// MariaDB's extended metadata and progress reports, which its pooled
// connections have, and a client gets, packet for packet and sequence id
// for sequence id, what it gets from the server directly, whether it asked
// for them or not.
func TestMariaDBCapabilitiesPooled(t *testing.T) {
	p := startProxy(t, oneNode(""))
	addr := p.Addr("main").String()
	direct := backendDB.Addr()
	const asked = wire.MariaDBExtendedMetadata | wire.MariaDBProgress
	csv := filepath.Join(t.TempDir(), "rows.csv")
	var rows bytes.Buffer
	for i := range 2000 {
		rows.WriteString(string(rune('a'+i%26)) + "\n")
	}
	if err := os.WriteFile(csv, rows.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	statements := []struct{ sql, mustHave string }{
		{"SELECT u, JSON_OBJECT('a', 1) AS o, 1 AS n FROM ext_t", "uuid"},
		{"SELECT * FROM ext_t", "json"},
		// LOAD DATA reports its progress from the start.
		{"LOAD DATA LOCAL INFILE 'rows.csv' INTO TABLE ext_load", "\xff\xff\xff"},
	}
	for _, ext := range []uint32{0, asked} {
		d := dialExt(t, direct, testenv.TestUser, testenv.TestPassword, ext)
		x := dialExt(t, addr, "app", "app-secret", ext)
		if d.ext != ext || x.ext != ext {
			t.Fatalf("asked for %#x: the server gave %#x, the proxy %#x", ext, d.ext, x.ext)
		}
		for _, sql := range []string{"DROP TABLE IF EXISTS ext_t, ext_load",
			"CREATE TABLE ext_t (j JSON, u UUID)", "INSERT INTO ext_t VALUES ('[1]', UUID())",
			"CREATE TABLE ext_load (a VARCHAR(4))"} {
			d.query(sql, nil)
		}
		for _, st := range statements {
			want, got := d.query(st.sql, rows.Bytes()), x.query(st.sql, rows.Bytes())
			if st.sql[0] == 'S' && !bytes.Equal(bytes.Join(want, []byte("|")), bytes.Join(got, []byte("|"))) {
				t.Errorf("ext %#x, %s:\n directly %q\n proxied  %q", ext, st.sql, want, got)
			}
			if st.sql[0] == 'L' && (len(want) != len(got) || want[len(want)-1][0] != got[len(got)-1][0]) {
				t.Errorf("ext %#x, %s: %d packets directly, %d through the proxy (%q, %q)", ext, st.sql, len(want), len(got), want, got)
			}
			has := bytes.Contains(bytes.Join(want, nil), []byte(st.mustHave))
			if has != (ext != 0) {
				t.Errorf("ext %#x, %s: the server's answer has %q: %v (the test does not see what it is for)", ext, st.sql, st.mustHave, has)
			}
		}
	}
}

// TestSessionTrack: the proxy offers session state tracking, which its
// pooled connections have too: a client that asks gets the state changes
// the server reports (its login's schema, SET NAMES, USE, autocommit), one
// that does not gets OKs without them, both byte for byte as directly;
// with configured users, multiplexing and auth passthrough.
func TestSessionTrack(t *testing.T) {
	configs := map[string]string{"": oneNode(""), "multiplex = true": oneNode("multiplex = true"),
		"passthrough": passthroughListener("") + nodeTOML("n1", backendDB, "")}
	for multiplex, config := range configs {
		p := startProxy(t, config)
		user, password := "app", "app-secret"
		if multiplex == "passthrough" {
			user, password = testenv.TestUser, testenv.TestPassword
		}
		for _, caps := range []uint32{0, mysql.CLIENT_SESSION_TRACK} {
			d := dialExtCaps(t, backendDB.Addr(), testenv.TestUser, testenv.TestPassword, 0, caps)
			x := dialExtCaps(t, p.Addr("main").String(), user, password, 0, caps)
			if !bytes.Equal(d.ok, x.ok) {
				t.Errorf("%s caps %#x: login OK directly %q, through the proxy %q", multiplex, caps, d.ok, x.ok)
			}
			tracked := false
			for _, sql := range []string{"SET NAMES latin1", "USE mysql", "USE gotest", "SET autocommit = 0",
				"BEGIN", "COMMIT", "SET autocommit = 1", "SET @v = 1", "SELECT 1", "SET NAMES utf8mb4"} {
				want, got := d.query(sql, nil), x.query(sql, nil)
				if !bytes.Equal(bytes.Join(want, []byte("|")), bytes.Join(got, []byte("|"))) {
					t.Errorf("%s caps %#x, %s:\n directly %q\n proxied  %q", multiplex, caps, sql, want, got)
				}
				tracked = tracked || wire.StatusOf(want[0][1:])&mysql.SERVER_SESSION_STATE_CHANGED != 0
			}
			for _, cmd := range [][]byte{{mysql.COM_RESET_CONNECTION}, append([]byte{mysql.COM_INIT_DB}, "mysql"...)} {
				if want, got := d.command(cmd), x.command(cmd); !bytes.Equal(want, got) {
					t.Errorf("%s caps %#x, command %#x: directly %q, proxied %q", multiplex, caps, cmd[0], want, got)
				}
			}
			if tracked != (caps != 0) {
				t.Errorf("caps %#x: the server reported state changes: %v (the test does not see what it is for)", caps, tracked)
			}
		}
	}
}

// TestMetadataCachingPooled: pooled connections of a listener without
// multiplexing negotiate MariaDB's metadata caching. A client that asked
// for it has column definitions skipped as the server skips them; one that
// did not gets them at every execution, from the proxy where the server
// skipped them, also after an ALTER TABLE changed them. Byte for byte as
// directly.
func TestMetadataCachingPooled(t *testing.T) {
	p := startProxy(t, oneNode(""))
	for _, ext := range []uint32{0, wire.MariaDBCacheMetadata} {
		d := dialExt(t, backendDB.Addr(), testenv.TestUser, testenv.TestPassword, ext)
		x := dialExt(t, p.Addr("main").String(), "app", "app-secret", ext)
		if d.ext != ext || x.ext != ext {
			t.Fatalf("asked for %#x: the server gave %#x, the proxy %#x", ext, d.ext, x.ext)
		}
		skipped := false
		script := func(c *extClient) []string {
			c.query("DROP TABLE IF EXISTS meta_t", nil)
			c.query("CREATE TABLE meta_t (a BIGINT, b VARCHAR(10))", nil)
			c.query("INSERT INTO meta_t VALUES (1, 'one'), (2, 'two')", nil)
			id, prep := c.prepare("SELECT * FROM meta_t WHERE a >= ?")
			out := []string{fmt.Sprintf("%q", prep)}
			for i, alter := range []string{"", "", "ALTER TABLE meta_t ADD COLUMN c INT DEFAULT 3", "", "ALTER TABLE meta_t DROP COLUMN b"} {
				if alter != "" {
					c.query(alter, nil)
				}
				got := c.execute(id, uint64(i%2+1))
				skipped = skipped || (len(got) > 1 && got[1][1] == mysql.EOF_HEADER)
				out = append(out, fmt.Sprintf("%q", got))
			}
			return out
		}
		want, got := script(d), script(x)
		for i := range want {
			if want[i] != got[i] {
				t.Errorf("ext %#x, step %d:\n directly %s\n proxied  %s", ext, i, want[i], got[i])
			}
		}
		if skipped != (ext != 0) {
			t.Errorf("ext %#x: column definitions skipped: %v (the test does not see what it is for)", ext, skipped)
		}
	}
}

// eofClient reads responses as a client with CLIENT_DEPRECATE_EOF does: no
// EOF after definitions, rows ended by an OK with the EOF header.
type eofClient struct{ *extClient }

// send writes a command and returns its response's packets, sequence ids
// first; cursor: the command opens one (its rows come with fetches).
func (c eofClient) send(cmd []byte, cursor bool) [][]byte {
	c.t.Helper()
	c.io.Seq = 0
	if err := c.io.WritePacketFlush(cmd); err != nil {
		c.t.Fatal(err)
	}
	var got [][]byte
	read := func() []byte {
		p, err := c.io.ReadPacket(nil, 1<<24)
		if err != nil {
			c.t.Fatalf("%q: %v (after %q)", cmd, err, got)
		}
		got = append(got, append([]byte{c.io.LastSeq()}, p...))
		return p
	}
	end := func(p []byte) bool {
		return p[0] == mysql.ERR_HEADER || (p[0] == mysql.EOF_HEADER && len(p) < 0xffffff)
	}
	switch cmd[0] {
	case mysql.COM_STMT_PREPARE:
		ok := read()
		if ok[0] == mysql.OK_HEADER {
			for range int(binary.LittleEndian.Uint16(ok[5:7])) + int(binary.LittleEndian.Uint16(ok[7:9])) {
				read()
			}
		}
		return got
	case mysql.COM_STMT_FETCH, mysql.COM_FIELD_LIST:
		for p := read(); !end(p); p = read() {
		}
		return got
	}
	for {
		p := read()
		if p[0] != mysql.OK_HEADER && p[0] != mysql.ERR_HEADER {
			n, _, _ := wire.LenEncInt(p)
			for range n {
				read()
			}
			if p = read(); !cursor {
				for ; !end(p); p = read() {
				}
			}
		}
		if p[0] == mysql.ERR_HEADER || wire.StatusOf(p)&mysql.SERVER_MORE_RESULTS_EXISTS == 0 {
			return got
		}
	}
}

// TestDeprecateEOF: a client with CLIENT_DEPRECATE_EOF gets every response
// shape (rows, no rows, several result sets, a procedure's, prepared
// statements with and without a cursor and their fetches, a field list,
// warnings) byte for byte as from MariaDB directly, although backend
// connections never negotiate it; pooled, multiplexed and passthrough.
func TestDeprecateEOF(t *testing.T) {
	configs := map[string]string{"pooled": oneNode(""), "multiplex": oneNode("multiplex = true"),
		"passthrough": passthroughListener("") + nodeTOML("n1", backendDB, "")}
	const caps = mysql.CLIENT_DEPRECATE_EOF | mysql.CLIENT_MULTI_STATEMENTS | mysql.CLIENT_PS_MULTI_RESULTS
	script := func(c eofClient) []string {
		q := func(sql string) []byte { return append([]byte{mysql.COM_QUERY}, sql...) }
		var out []string
		step := func(cmd []byte, cursor bool) [][]byte {
			got := c.send(cmd, cursor)
			shown := got
			if cmd[0] == mysql.COM_STMT_PREPARE && got[0][1] == mysql.OK_HEADER {
				// The id is the server's counter for that connection (a
				// passthrough connection's may have moved on), not the
				// point here.
				shown = append([][]byte{append(append([]byte(nil), got[0][:2]...), append([]byte{0, 0, 0, 0}, got[0][6:]...)...)}, got[1:]...)
			}
			out = append(out, fmt.Sprintf("%q", shown))
			return got
		}
		for _, sql := range []string{"DROP TABLE IF EXISTS de", "DROP PROCEDURE IF EXISTS dep"} {
			c.send(q(sql), false) // whether they existed is not the point
		}
		for _, sql := range []string{"CREATE TABLE de (a INT)", "INSERT INTO de VALUES (1),(2)",
			"SELECT a FROM de", "SELECT a FROM de WHERE a > 5", "SELECT 1; SELECT 2",
			"CREATE PROCEDURE dep() BEGIN SELECT 1; SELECT 2; END", "CALL dep()",
			"SELECT 1/0", "SHOW WARNINGS"} {
			step(q(sql), false)
		}
		id := binary.LittleEndian.Uint32(step(append([]byte{mysql.COM_STMT_PREPARE}, "SELECT a FROM de WHERE a > ?"...), false)[0][2:6])
		execute := func(flags byte) []byte {
			p := binary.LittleEndian.AppendUint32([]byte{mysql.COM_STMT_EXECUTE}, id)
			p = append(p, flags, 1, 0, 0, 0, 0, 1, mysql.MYSQL_TYPE_LONGLONG, 0)
			return binary.LittleEndian.AppendUint64(p, 0)
		}
		step(execute(0), false)
		step(execute(1), true) // CURSOR_TYPE_READ_ONLY
		fetch := binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32([]byte{mysql.COM_STMT_FETCH}, id), 1)
		for range 3 {
			step(fetch, false)
		}
		step(append([]byte{mysql.COM_FIELD_LIST}, "de\x00"...), false)
		call := binary.LittleEndian.Uint32(step(append([]byte{mysql.COM_STMT_PREPARE}, "CALL dep()"...), false)[0][2:6])
		step(append(binary.LittleEndian.AppendUint32([]byte{mysql.COM_STMT_EXECUTE}, call), 0, 1, 0, 0, 0), false)
		return out
	}
	want := script(eofClient{dialExtCaps(t, backendDB.Addr(), testenv.TestUser, testenv.TestPassword, 0, caps)})
	if !strings.Contains(strings.Join(want, ""), `\xfe\x00\x00\"\x00\x00\x00`) {
		t.Fatalf("the server did not end rows with an OK: %q", want) // the test would not see what it is for
	}
	for name, config := range configs {
		p := startProxy(t, config)
		user, password := "app", "app-secret"
		if name == "passthrough" {
			user, password = testenv.TestUser, testenv.TestPassword
		}
		got := script(eofClient{dialExtCaps(t, p.Addr("main").String(), user, password, 0, caps)})
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s, step %d:\n directly %s\n proxied  %s", name, i, want[i], got[i])
			}
		}
	}
}
