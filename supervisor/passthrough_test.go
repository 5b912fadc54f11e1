package supervisor_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
	gomysql "github.com/go-sql-driver/mysql"
	"pisanix.io/pisanix/internal/testenv"
	"pisanix.io/pisanix/wire"
)

// passthroughTOML is a listener "main" with auth passthrough in front of
// backendDB: no application users of its own.
func passthroughTOML(extra string) string {
	return passthroughListener(extra) + nodeTOML("n1", backendDB, "")
}

// passthroughListener is passthroughTOML's listener, for node "n1".
func passthroughListener(extra string) string {
	return fmt.Sprintf(`
[[proxy.config]]
name = "main"
listen_addr = "127.0.0.1:0"
db = "gotest"
auth_mode = "passthrough"
%s
[proxy.config.simple_loadbalance]
balance_type = "roundrobin"
nodes = ["n1"]
`, extra)
}

// backendUsers creates accounts on backendDB for the test (dropped at its
// end): name -> "password plugin-clause".
func backendUsers(t *testing.T, stmts ...string) {
	t.Helper()
	root := backendDB.RootDB()
	for _, s := range stmts {
		if _, err := root.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func dropUsers(t *testing.T, users ...string) {
	t.Cleanup(func() {
		for _, u := range users {
			_, _ = backendDB.RootDB().Exec("DROP USER IF EXISTS " + u)
		}
	})
}

// TestAuthPassthrough: accounts created on the backend log in through the
// proxy as they do directly, with the backend's own answers: the same
// CURRENT_USER(), the same grants, the same refusals word for word, an
// ed25519 account (the backend switches the client to its plugin), and
// COM_CHANGE_USER answered with the scramble of the greeting, which was the
// backend's.
func TestAuthPassthrough(t *testing.T) {
	dropUsers(t, "'pt_rw'@'%'", "'pt_ro'@'%'", "'pt_ed'@'%'", "'pt_nodb'@'%'")
	backendUsers(t,
		"CREATE USER 'pt_nodb'@'%' IDENTIFIED BY 'nodb-secret'",
		"CREATE USER 'pt_rw'@'%' IDENTIFIED BY 'rw-secret'",
		"GRANT ALL ON gotest.* TO 'pt_rw'@'%'",
		"CREATE USER 'pt_ro'@'%' IDENTIFIED BY 'ro-secret'",
		"GRANT SELECT ON gotest.* TO 'pt_ro'@'%'",
	)
	if _, err := backendDB.RootDB().Exec("INSTALL SONAME 'auth_ed25519'"); err != nil && mysqlErr(err).Number != errPluginInstalled {
		t.Fatal(err)
	}
	backendUsers(t,
		"CREATE USER 'pt_ed'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('ed-secret')",
		"GRANT SELECT ON gotest.* TO 'pt_ed'@'%'",
	)
	p := startProxy(t, passthroughTOML(""))
	direct := func(user, pass string) string { return backendDB.DSN(user, pass, "gotest") }
	proxied := func(user, pass string) string { return p.dsnUser("main", user, pass, "") }

	for _, c := range []struct{ user, pass, query string }{
		{"pt_rw", "rw-secret", "SELECT CURRENT_USER()"},
		{"pt_ro", "ro-secret", "SELECT CURRENT_USER()"},
		{"pt_ed", "ed-secret", "SELECT CONCAT(CURRENT_USER(), ' ', DATABASE())"},
		{"pt_rw", "wrong", "SELECT 1"},
		{"nobody", "x", "SELECT 1"},
		{"pt_ro", "ro-secret", "CREATE TABLE pt_denied (id INT)"},
	} {
		want, wantErr := oneAnswer(direct(c.user, c.pass), c.query)
		got, gotErr := oneAnswer(proxied(c.user, c.pass), c.query)
		if got != want || fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
			t.Errorf("%s %q: through the proxy %q, %v; directly %q, %v", c.user, c.query, got, gotErr, want, wantErr)
		}
	}
	if _, err := oneAnswer(proxied("pt_rw", "wrong"), "SELECT 1"); mysqlErr(err) == nil || mysqlErr(err).Number != mysql.ER_ACCESS_DENIED_ERROR {
		t.Errorf("a wrong password: want 1045, got %v", err)
	}

	// A client naming no schema gets the listener's db where its account
	// may use it, and logs in without one where not, as it would directly.
	noDB := func(user, pass string) string {
		cfg := gomysql.NewConfig()
		cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = user, pass, "tcp", p.Addr("main").String()
		return cfg.FormatDSN()
	}
	for user, want := range map[string]string{"pt_rw": "gotest", "pt_nodb": "-"} {
		pass := map[string]string{"pt_rw": "rw-secret", "pt_nodb": "nodb-secret"}[user]
		if got, err := oneAnswer(noDB(user, pass), "SELECT IFNULL(DATABASE(), '-')"); got != want || err != nil {
			t.Errorf("%s without a schema: %q, %v; want %q", user, got, err, want)
		}
	}

	// COM_CHANGE_USER, relayed to the backend.
	r := rawLogin(t, p.Addr("main").String(), "pt_rw", "rw-secret")
	if got := r.value("SELECT CURRENT_USER()"); got != "pt_rw@%" {
		t.Fatalf("logged in as %q", got)
	}
	if ok := r.changeUserTo("pt_ro", "ro-secret", "gotest"); ok[0] != mysql.OK_HEADER {
		t.Fatalf("change user: %q", ok)
	}
	if got := r.value("SELECT CONCAT(CURRENT_USER(), ' ', DATABASE())"); got != "pt_ro@% gotest" {
		t.Errorf("after change user: %q", got)
	}
	bad := r.changeUserTo("pt_rw", "wrong", "gotest")
	if bad[0] != mysql.ERR_HEADER || wire.ParseError(bad).Code != mysql.ER_ACCESS_DENIED_ERROR {
		t.Errorf("change user with a wrong password: %q", bad)
	}
}

// errPluginInstalled is MariaDB's ER_PLUGIN_INSTALLED.
const errPluginInstalled = 1968

// oneAnswer logs in with dsn and runs query, returning its one value.
func oneAnswer(dsn, query string) (string, error) {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return "", err
	}
	defer db.Close()
	var v sql.NullString
	err = db.QueryRow(query).Scan(&v)
	if err == sql.ErrNoRows {
		err = nil // a statement without rows succeeded
	}
	return v.String, err
}

// rawClient is a client logged in by hand (wire's encoders), for
// COM_CHANGE_USER answered with the greeting's scramble.
type rawClient struct {
	t    *testing.T
	io   *wire.PacketIO
	salt []byte
	// loginStatus is the server status of the login OK.
	loginStatus uint16
}

func rawLogin(t *testing.T, addr, user, password string) *rawClient {
	t.Helper()
	return rawLoginCaps(t, addr, user, password, 0)
}

// rawLoginCaps is rawLogin asking for capabilities extra too.
func rawLoginCaps(t *testing.T, addr, user, password string, extra uint32) *rawClient {
	t.Helper()
	io, g := dialGreeted(t, addr)
	r := &rawClient{t: t, io: io, salt: g.Salt}
	caps := uint32(mysql.CLIENT_PROTOCOL_41|mysql.CLIENT_SECURE_CONNECTION|mysql.CLIENT_PLUGIN_AUTH|
		mysql.CLIENT_LONG_PASSWORD|mysql.CLIENT_TRANSACTIONS|mysql.CLIENT_CONNECT_WITH_DB) | extra
	hello := &wire.ClientHello{MaxPacket: 1 << 24, Collation: 45, User: user, DB: "gotest",
		AuthResponse: mysql.CalcPassword(g.Salt, []byte(password)), Plugin: wire.PluginNative}
	if err := r.io.WritePacketFlush(wire.HandshakeResponse(hello, caps)); err != nil {
		t.Fatal(err)
	}
	ok := r.read()
	if ok[0] != mysql.OK_HEADER {
		t.Fatalf("login as %s: %q", user, ok)
	}
	r.loginStatus = wire.StatusOf(ok)
	return r
}

func (r *rawClient) read() []byte {
	r.t.Helper()
	b, err := r.io.ReadPacket(nil, 1<<24)
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

// value runs a query that returns one value, as text.
func (r *rawClient) value(query string) string {
	r.t.Helper()
	r.io.Seq = 0
	if err := r.io.WritePacketFlush(append([]byte{mysql.COM_QUERY}, query...)); err != nil {
		r.t.Fatal(err)
	}
	var rows [][]byte
	for eofs := 0; eofs < 2; {
		b := r.read()
		switch {
		case b[0] == mysql.ERR_HEADER:
			r.t.Fatalf("%s: %v", query, wire.ParseError(b))
		case b[0] == mysql.EOF_HEADER && len(b) < 9:
			eofs++
		case eofs == 1:
			rows = append(rows, b)
		}
	}
	if len(rows) != 1 {
		r.t.Fatalf("%s: %d rows", query, len(rows))
	}
	n, sz, _ := wire.LenEncInt(rows[0])
	return string(rows[0][sz : sz+int(n)])
}

// exec sends a COM_QUERY that returns no rows and returns its answer.
func (r *rawClient) exec(query string) []byte {
	r.t.Helper()
	r.io.Seq = 0
	if err := r.io.WritePacketFlush(append([]byte{mysql.COM_QUERY}, query...)); err != nil {
		r.t.Fatal(err)
	}
	return r.read()
}

// changeUserTo sends COM_CHANGE_USER answered with the login's scramble,
// as clients do, answers an auth switch, and returns the final answer.
func (r *rawClient) changeUserTo(user, password, schema string) []byte {
	r.t.Helper()
	resp := mysql.CalcPassword(r.salt, []byte(password))
	b := append([]byte{mysql.COM_CHANGE_USER}, user+"\x00"...)
	b = append(append(b, byte(len(resp))), resp...)
	b = append(b, schema+"\x00"...)
	b = append(b, 45, 0)
	b = append(b, wire.PluginNative+"\x00"...)
	r.io.Seq = 0
	if err := r.io.WritePacketFlush(b); err != nil {
		r.t.Fatal(err)
	}
	ans := r.read()
	if ans[0] != mysql.EOF_HEADER {
		return ans
	}
	// MariaDB switches to the plugin with a fresh scramble.
	i := bytes.IndexByte(ans[1:], 0) + 2
	salt := bytes.TrimRight(ans[i:], "\x00")
	if err := r.io.WritePacketFlush(mysql.CalcPassword(salt, []byte(password))); err != nil {
		r.t.Fatal(err)
	}
	return r.read()
}

// TestPassthroughCachingSHA2 logs in through the proxy to a MySQL 8 server
// (played by go-mysql: MariaDB has no caching_sha2_password) with each
// combination of TLS on the client's and the backend's side: a first login
// goes through full authentication (the password in clear over TLS, else
// RSA-encrypted), the next through the fast scramble. Where only one side
// has TLS the proxy translates the full authentication.
func TestPassthroughCachingSHA2(t *testing.T) {
	accounts := map[string]string{"pool8": "pool-pw"}
	for _, c := range []string{"plain_plain", "tls_plain", "plain_tls", "tls_tls"} {
		accounts[c] = c + "-pw"
	}
	addr := testenv.MySQL8(t, accounts)
	host, port, _ := net.SplitHostPort(addr)
	for _, clientTLS := range []bool{false, true} {
		for _, nodeTLS := range []bool{false, true} {
			user := map[bool]string{false: "plain", true: "tls"}[clientTLS] + "_" + map[bool]string{false: "plain", true: "tls"}[nodeTLS]
			t.Run(user, func(t *testing.T) {
				nodeExtra := ""
				if nodeTLS {
					nodeExtra = `tls = "skip-verify"`
				}
				p := startProxy(t, fmt.Sprintf(`
[[proxy.config]]
name = "main"
listen_addr = "127.0.0.1:0"
auth_mode = "passthrough"
[proxy.config.tls]
auto_generate = true
[proxy.config.simple_loadbalance]
balance_type = "random"
nodes = ["mysql8"]
[[mysql.node]]
name = "mysql8"
user = "pool8"
password = "pool-pw"
host = %q
port = %s
%s
`, host, port, nodeExtra))
				params := ""
				if clientTLS {
					params = "tls=skip-verify"
				}
				dsn := func(pw string) string {
					cfg := gomysql.NewConfig()
					cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = user, pw, "tcp", p.Addr("main").String()
					return cfg.FormatDSN() + "?" + params
				}
				for i, what := range []string{"full authentication", "fast authentication"} {
					db, err := sql.Open("mysql", dsn(accounts[user]))
					if err != nil {
						t.Fatal(err)
					}
					if err := db.Ping(); err != nil {
						t.Fatalf("login %d (%s): %v", i+1, what, err)
					}
					db.Close()
				}
				db, _ := sql.Open("mysql", dsn("wrong"))
				defer db.Close()
				if err := db.Ping(); mysqlErr(err) == nil || mysqlErr(err).Number != mysql.ER_ACCESS_DENIED_ERROR {
					t.Fatalf("a wrong password: want 1045, got %v", err)
				}
			})
		}
	}
}

// TestPassthroughCLI compares the mariadb CLI directly and through a
// passthrough listener on what depends on the login: column metadata with
// MariaDB's extended type names (MARIADB_CLIENT_EXTENDED_METADATA, passed
// on when both sides have it) and the account.
func TestPassthroughCLI(t *testing.T) {
	dropUsers(t, "'pt_cli'@'%'")
	backendUsers(t,
		"CREATE USER 'pt_cli'@'%' IDENTIFIED BY 'cli-secret'",
		"GRANT ALL ON gotest.* TO 'pt_cli'@'%'",
		"CREATE OR REPLACE TABLE gotest.pt_json (js JSON, u UUID, n INET6)",
		"INSERT INTO gotest.pt_json VALUES ('{}', UUID(), '::1')",
	)
	t.Cleanup(func() { _, _ = backendDB.RootDB().Exec("DROP TABLE IF EXISTS gotest.pt_json") })
	p := startProxy(t, passthroughTOML(""))
	proxied := cliConn(p, "main", "")
	proxied.User, proxied.Password = "pt_cli", "cli-secret"
	direct := backendDB.CLIConn("pt_cli", "cli-secret", "gotest")
	args := []string{"--column-type-info", "--table", "-e", "SELECT js, u, n, CURRENT_USER() FROM pt_json"}
	want, err := testenv.RunCLI(context.Background(), direct, args...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(want, "(format=json)") {
		t.Fatalf("the CLI shows no extended metadata directly:\n%s", want)
	}
	got, err := testenv.RunCLI(context.Background(), proxied, args...)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("through the proxy:\n%s\ndirectly:\n%s", got, want)
	}
}

// TestPassthroughSessionTrack: a client that asks for CLIENT_SESSION_TRACK
// through a passthrough listener gets the server's session-state changes
// in its OK packets, byte for byte as directly.
func TestPassthroughSessionTrack(t *testing.T) {
	p := startProxy(t, passthroughTOML(""))
	direct := rawLoginCaps(t, backendDB.Addr(), testenv.TestUser, testenv.TestPassword, mysql.CLIENT_SESSION_TRACK)
	proxied := rawLoginCaps(t, p.Addr("main").String(), testenv.TestUser, testenv.TestPassword, mysql.CLIENT_SESSION_TRACK)
	for _, q := range []string{"SET SESSION autocommit = 0", "SET NAMES latin1", "USE mysql", "SET SESSION autocommit = 1"} {
		want, got := direct.exec(q), proxied.exec(q)
		if wire.StatusOf(want)&mysql.SERVER_SESSION_STATE_CHANGED == 0 {
			t.Fatalf("%s: the server reported no state change directly: %q", q, want)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: through the proxy %q, directly %q", q, got, want)
		}
	}
}

// TestLoginStatusAndRefresh: the login OK says autocommit as the server's
// would (off on a server started with autocommit=0), with and without
// passthrough; COM_REFRESH (mysql_refresh) is answered by the server.
func TestLoginStatusAndRefresh(t *testing.T) {
	srv := testenv.MariaDB(t, testenv.WithArgs("--autocommit=0"))
	direct := rawLogin(t, srv.Addr(), testenv.TestUser, testenv.TestPassword)
	for name, listener := range map[string]string{
		"proxy": listenerTOML("main", []string{"n1"}, ""), "passthrough": passthroughListener(""),
	} {
		p := startProxy(t, listener+nodeTOML("n1", srv, ""))
		user, pass := "app", "app-secret"
		if name == "passthrough" {
			user, pass = testenv.TestUser, testenv.TestPassword
		}
		r := rawLogin(t, p.Addr("main").String(), user, pass)
		if r.loginStatus != direct.loginStatus || r.loginStatus&mysql.SERVER_STATUS_AUTOCOMMIT != 0 {
			t.Errorf("%s: login status %#x, directly %#x", name, r.loginStatus, direct.loginStatus)
		}
		if got := r.value("SELECT @@autocommit"); got != "0" {
			t.Errorf("%s: @@autocommit = %s", name, got)
		}
		r.io.Seq = 0
		if err := r.io.WritePacketFlush([]byte{mysql.COM_REFRESH, 0x04}); err != nil { // REFRESH_TABLES
			t.Fatal(err)
		}
		if ok := r.read(); ok[0] != mysql.OK_HEADER {
			t.Errorf("%s: COM_REFRESH: %q", name, ok)
		}
	}
}

// TestProxyProtocol: a client behind a load balancer (a trusted network
// sending a PROXY protocol header) is known by the address the header
// names: for access rules' allowed_hosts and failed-login blocking, and,
// through a passthrough node with proxy_protocol, for the backend's own
// account matching (the server trusts the proxy's headers).
func TestProxyProtocol(t *testing.T) {
	dial := func(name string, header []byte) {
		gomysql.RegisterDialContext(name, func(ctx context.Context, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err == nil && header != nil {
				_, err = c.Write(header)
			}
			return c, err
		})
	}
	client := netip.MustParseAddrPort("192.0.2.7:40000")
	dial("via-lb", wire.ProxyHeaderV1(client, netip.MustParseAddrPort("127.0.0.1:3306")))
	dial("via-lb-v2-local", []byte("\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"))
	dsn := func(p *proxy, network, user, pass string) string {
		cfg := gomysql.NewConfig()
		cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = user, pass, network, p.Addr("main").String(), "gotest"
		return cfg.FormatDSN()
	}

	p := startProxy(t, oneNode(`proxy_protocol_networks = ["127.0.0.0/8"]
max_connect_errors = 3
[[proxy.config.users]]
user = "remote"
password = "remote-pw"
allowed_hosts = ["192.0.2.0/24"]
`))
	if err := ping(dsn(p, "via-lb", "remote", "remote-pw")); err != nil {
		t.Errorf("a user allowed from the header's network: %v", err)
	}
	if err := ping(dsn(p, "tcp", "remote", "remote-pw")); mysqlErr(err) == nil || !strings.Contains(err.Error(), "'remote'@'127.0.0.1'") {
		t.Errorf("the same user without a header (from 127.0.0.1): %v, want denied", err)
	}
	if err := ping(dsn(p, "via-lb-v2-local", "app", "app-secret")); err != nil {
		t.Errorf("a v2 LOCAL header (a balancer's health check) keeps the connection's address: %v", err)
	}
	for range 3 {
		_ = ping(dsn(p, "via-lb", "app", "wrong"))
	}
	if me := mysqlErr(ping(dsn(p, "via-lb", "app", "app-secret"))); me == nil || me.Number != 1129 || !strings.Contains(me.Message, "192.0.2.7") {
		t.Errorf("the header's address after 3 failed logins: %v, want 1129 for 192.0.2.7", me)
	}
	if err := ping(dsn(p, "tcp", "app", "app-secret")); err != nil {
		t.Errorf("the balancer's own address is not blocked: %v", err)
	}

	// Passthrough: the node gets a header naming the client.
	srv := testenv.MariaDB(t, testenv.WithArgs("--proxy-protocol-networks=127.0.0.0/8"))
	for _, s := range []string{
		"CREATE USER 'lbuser'@'192.0.2.7' IDENTIFIED BY 'lb-pw'", "GRANT SELECT ON gotest.* TO 'lbuser'@'192.0.2.7'",
	} {
		if _, err := srv.RootDB().Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	pt := startProxy(t, passthroughListener(`proxy_protocol_networks = ["127.0.0.1"]`)+nodeTOML("n1", srv, "proxy_protocol = true"))
	if got, err := oneAnswer(dsn(pt, "via-lb", "lbuser", "lb-pw"), "SELECT USER()"); err != nil || got != "lbuser@192.0.2.7" {
		t.Errorf("through passthrough with the client's header: %q, %v; want lbuser@192.0.2.7", got, err)
	}
	if got, err := oneAnswer(dsn(pt, "tcp", testenv.TestUser, testenv.TestPassword), "SELECT USER()"); err != nil || got != "gotest@localhost" && got != "gotest@127.0.0.1" {
		t.Errorf("a direct client's own address reaches the server: %q, %v", got, err)
	}
}
