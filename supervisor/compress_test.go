package supervisor_test

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-sql-driver/mysql"

	"pisanix.io/pisanix/internal/testenv"
)

// clientBytes counts what clients dialled with the "pisacount" network
// read from their sockets.
var clientBytes atomic.Int64

func init() {
	mysql.RegisterDialContext("pisacount", func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return countingConn{c}, nil
	})
}

type countingConn struct{ net.Conn }

func (c countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	clientBytes.Add(int64(n))
	return n, err
}

// rowsOf runs q and returns every row as strings (NULL as "NULL").
func rowsOf(t *testing.T, db interface {
	Query(string, ...any) (*sql.Rows, error)
}, q string, args ...any) [][]string {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatalf("%.60s: %v", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = "NULL"
			if v.Valid {
				row[i] = v.String
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%.60s: %v", q, err)
	}
	return out
}

// A client that asks for the compressed protocol gets it, and the same
// statements answer the same directly and through the proxy: results of
// one small packet (frames stored as they are), results that compress
// well and that do not, a row and a parameter larger than one 16 MiB
// packet, text and binary protocol. The frames' counts show compression
// was on.
func TestCompressedProtocol(t *testing.T) {
	p := startProxy(t, oneNode(""))
	direct := openDB(t, backendDB.DSN(testenv.TestUser, testenv.TestPassword, "gotest")+"?compress=true&maxAllowedPacket=0")
	proxied := openDB(t, strings.Replace(p.dsn("main", "compress=true&maxAllowedPacket=0"), "tcp(", "pisacount(", 1))
	for _, db := range []*sql.DB{direct, proxied} {
		db.SetMaxOpenConns(1)
	}
	mustExec(t, direct, "CREATE TABLE IF NOT EXISTS compress_t (id INT PRIMARY KEY, b LONGBLOB)")
	t.Cleanup(func() { _, _ = direct.Exec("DROP TABLE IF EXISTS compress_t") })

	big := strings.Repeat("0123456789abcdef", (17<<20)/16) // over one packet
	queries := []struct {
		q    string
		args []any
	}{
		{q: "SELECT 1"},
		{q: "SELECT REPEAT('abc', 1000000)"},
		{q: "SELECT seq, SHA2(seq, 256) FROM seq_1_to_20000"},
		{q: "SELECT seq, SHA2(seq, 512) FROM seq_1_to_2000 WHERE seq > ?", args: []any{10}},
		{q: "SELECT LENGTH(?), MD5(?)", args: []any{big, big}},
		{q: "SELECT REPEAT(SHA2('x', 256), 300000)"},
	}
	for _, db := range []*sql.DB{direct, proxied} {
		mustExec(t, db, "DELETE FROM compress_t")
		if _, err := db.Exec("INSERT INTO compress_t VALUES (1, ?)", big); err != nil {
			t.Fatalf("insert of %d bytes: %v", len(big), err)
		}
		var got string
		if err := db.QueryRow("SELECT b FROM compress_t WHERE id = 1").Scan(&got); err != nil || got != big {
			t.Fatalf("the %d-byte row read back: %d bytes, %v", len(big), len(got), err)
		}
	}
	for _, q := range queries {
		want := rowsOf(t, direct, q.q, q.args...)
		got := rowsOf(t, proxied, q.q, q.args...)
		if !slices.EqualFunc(want, got, slices.Equal[[]string]) {
			t.Errorf("%.60s: %d rows through the proxy, %d directly, or they differ", q.q, len(got), len(want))
		}
	}
	// Compression was on: the 3 MB of REPEAT('abc', ...) cross the client's
	// socket in a few kilobytes.
	before := clientBytes.Load()
	rowsOf(t, proxied, "SELECT REPEAT('abc', 1000000)")
	if n := clientBytes.Load() - before; n > 64<<10 {
		t.Errorf("a 3 MB result that compresses to kilobytes took %d bytes on the client's socket", n)
	}
}

// The mariadb command-line client with --compress prints the same
// directly and through the proxy.
func TestCompressedCLI(t *testing.T) {
	p := startProxy(t, oneNode(""))
	script := "SELECT REPEAT('pisanix', 50000) AS r; SELECT seq, MD5(seq) FROM seq_1_to_3000; SELECT 1"
	run := func(c testenv.CLIConn) string {
		out, err := testenv.RunCLI(context.Background(), c, "--compress", "-e", script)
		if err != nil {
			t.Fatalf("mariadb --compress: %v: %s", err, out)
		}
		return out
	}
	want := run(backendDB.CLIConn(testenv.TestUser, testenv.TestPassword, "gotest"))
	got := run(cliConn(p, "main", ""))
	if got != want {
		t.Errorf("through the proxy %d bytes, directly %d; first difference near %q", len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("%.40s", a[max(0, i-10):])
		}
	}
	return "(one is a prefix of the other)"
}

// TestStatusDescribesClientConnection: SHOW STATUS answers Ssl_version,
// Ssl_cipher and Compression for the client's connection to the proxy (the
// backend's describe the proxy's own): the mariadb CLI over TLS and
// compression sees the cipher it negotiated itself, and a plain client
// sees what it sees directly.
func TestStatusDescribesClientConnection(t *testing.T) {
	toml, files := tlsListener(t, "mysql_native_password", false)
	p := startProxy(t, toml)
	show := []string{"-N", "-B", "-e", "SHOW STATUS LIKE 'Ssl_version'; SHOW STATUS LIKE 'Ssl_cipher'; SHOW SESSION STATUS LIKE 'Compression'"}

	plainWant, err := testenv.RunCLI(context.Background(), backendDB.CLIConn(testenv.TestUser, testenv.TestPassword, "gotest"), show...)
	if err != nil {
		t.Fatal(err)
	}
	plainGot, err := testenv.RunCLI(context.Background(), cliConn(p, "main", ""), show...)
	if err != nil {
		t.Fatal(err)
	}
	if plainGot != plainWant {
		t.Errorf("a plain client through the proxy:\n%s\ndirectly:\n%s", plainGot, plainWant)
	}

	secure := cliConn(p, "main", files.CAFile)
	got, err := testenv.RunCLI(context.Background(), secure, append([]string{"--compress"}, show...)...)
	if err != nil {
		t.Fatal(err)
	}
	status, err := testenv.RunCLI(context.Background(), secure, "-e", "status")
	if err != nil {
		t.Fatal(err)
	}
	cipher := regexp.MustCompile(`Cipher in use is (\S+)`).FindStringSubmatch(status)
	if cipher == nil {
		t.Fatalf("the CLI's status shows no cipher:\n%s", status)
	}
	want := fmt.Sprintf("Ssl_version\tTLSv1.3\nSsl_cipher\t%s\nCompression\tON\n", cipher[1])
	if got != want {
		t.Errorf("a TLS and compressing client through the proxy:\n%s\nwant:\n%s", got, want)
	}
}
