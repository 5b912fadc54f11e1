package supervisor_test

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
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
}

func dialExt(t *testing.T, addr, user, password string, ext uint32) *extClient {
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
	up := &wire.Upstream{IO: io, Greeting: g}
	creds := &wire.Credentials{User: user, Password: password, DB: "gotest", ExtCapabilities: ext,
		Capabilities: mysql.CLIENT_LOCAL_FILES | mysql.CLIENT_MULTI_RESULTS}
	if err := up.LoginAs(creds); err != nil {
		t.Fatalf("login to %s: %v", addr, err)
	}
	return &extClient{t: t, io: io, ext: up.ExtCapabilities}
}

// query runs sql and returns its response's packets as the client reads
// them, sequence ids included; a LOCAL INFILE request gets file.
func (c *extClient) query(sql string, file []byte) [][]byte {
	c.t.Helper()
	c.io.Seq = 0
	if err := c.io.WritePacketFlush(append([]byte{mysql.COM_QUERY}, sql...)); err != nil {
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
