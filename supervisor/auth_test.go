package supervisor_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	"pisanix.io/pisanix/internal/testenv"
)

func tlsListener(t *testing.T, plugin string, required bool) (string, testenv.TLSFiles) {
	t.Helper()
	files, err := testenv.WriteTLSFiles(t.TempDir(), "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	extra := fmt.Sprintf("auth_plugin = %q\n[proxy.config.tls]\ncert = %q\nkey = %q\nrequired = %v\n",
		plugin, files.CertFile, files.KeyFile, required)
	return listenerTOML("main", []string{"n1"}, extra) + nodeTOML("n1", backendDB, ""), files
}

func registerTLS(t *testing.T, files testenv.TLSFiles) string {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(files.CAPEM)
	name := "pisa-" + strings.ReplaceAll(t.Name(), "/", "-")
	if err := mysql.RegisterTLSConfig(name, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mysql.DeregisterTLSConfig(name) })
	return name
}

func ping(dsn string) error {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Ping()
}

func TestCachingSHA2WithoutTLS(t *testing.T) {
	p := startProxy(t, listenerTOML("main", []string{"n1"}, `auth_plugin = "caching_sha2_password"`)+nodeTOML("n1", backendDB, ""))
	// First login: full authentication with RSA key exchange; second: fast path.
	for i := range 2 {
		if err := ping(p.dsn("main", "")); err != nil {
			t.Fatalf("login %d: %v", i, err)
		}
	}
	for i := range 2 { // wrong password on both paths
		if me := mysqlErr(ping(p.dsnUser("main", "app", "nope", ""))); me == nil || me.Number != 1045 {
			t.Fatalf("wrong password %d: %v", i, me)
		}
	}
	// The mariadb CLI with its caching_sha2_password client plugin.
	out, err := testenv.RunCLI(context.Background(), cliConn(p, "main", ""), "-N", "-e", "SELECT 'cli ok'")
	if err != nil || strings.TrimSpace(out) != "cli ok" {
		t.Fatalf("mariadb CLI: %q %v", out, err)
	}
}

func TestTLSAndCachingSHA2FullAuth(t *testing.T) {
	toml, files := tlsListener(t, "caching_sha2_password", true)
	p := startProxy(t, toml)
	tlsName := registerTLS(t, files)
	// A client that will not use TLS is refused (require_secure_transport style).
	if me := mysqlErr(ping(p.dsn("main", ""))); me == nil || me.Number != 3159 {
		t.Fatalf("plaintext client: want 3159, got %v", me)
	}
	// Over TLS the first login sends the password in cleartext inside TLS.
	db, err := sql.Open("mysql", p.dsn("main", "tls="+tlsName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := queryString(t, db, "SELECT 'over tls'"); got != "over tls" {
		t.Fatal(got)
	}
	out, err := testenv.RunCLI(context.Background(), cliConn(p, "main", files.CAFile), "-N", "-e", "SELECT 'cli tls'")
	if err != nil || strings.TrimSpace(out) != "cli tls" {
		t.Fatalf("mariadb CLI over TLS: %q %v", out, err)
	}
}

func TestAuthSwitchFromNativeClient(t *testing.T) {
	p := startProxy(t, listenerTOML("main", []string{"n1"}, `auth_plugin = "caching_sha2_password"`)+nodeTOML("n1", backendDB, ""))
	// The CLI answers the greeting with mysql_native_password; the proxy
	// switches it to the account's caching_sha2_password.
	out, err := testenv.RunCLI(context.Background(), cliConn(p, "main", ""), "--default-auth=mysql_native_password", "-N", "-e", "SELECT 'switched'")
	if err != nil || strings.TrimSpace(out) != "switched" {
		t.Fatalf("auth switch: %q %v", out, err)
	}
}

func cliConn(p *proxy, name, ca string) testenv.CLIConn {
	addr := p.Addr(name).String()
	port := 0
	fmt.Sscanf(addr[strings.LastIndexByte(addr, ':')+1:], "%d", &port)
	return testenv.CLIConn{Host: "127.0.0.1", Port: port, User: "app", Password: "app-secret", Database: "gotest", SSLCA: ca}
}

// TestFailedLoginsBlockHost: after max_connect_errors failed logins in a
// row from one address, it gets MySQL's 1129 in place of the greeting (a
// right password too), while another address logs in; an unknown user and
// a wrong password are answered alike; the admin API's POST /flush-hosts
// unblocks it.
func TestFailedLoginsBlockHost(t *testing.T) {
	p := startProxy(t, oneNode("max_connect_errors = 20\n"))
	from := func(ip, user, pass string) error {
		cfg := mysql.NewConfig()
		cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = user, pass, "dial-"+ip, p.Addr("main").String()
		return ping(cfg.FormatDSN())
	}
	for _, ip := range []string{"127.0.0.1", "127.0.0.2"} {
		mysql.RegisterDialContext("dial-"+ip, func(ctx context.Context, addr string) (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
			return d.DialContext(ctx, "tcp", addr)
		})
	}
	unknown, wrong := from("127.0.0.1", "nobody", "x"), from("127.0.0.1", "app", "x")
	if mysqlErr(unknown) == nil || mysqlErr(wrong) == nil ||
		strings.Replace(mysqlErr(unknown).Message, "nobody", "app", 1) != mysqlErr(wrong).Message {
		t.Errorf("an unknown user and a wrong password answered differently: %v / %v", unknown, wrong)
	}
	for i := 2; i < 1000; i++ {
		err := from("127.0.0.1", "app", "wrong")
		if me := mysqlErr(err); me != nil && me.Number == 1129 {
			if i != 20 {
				t.Errorf("blocked after %d failed logins, want 20", i)
			}
			break
		}
	}
	if me := mysqlErr(from("127.0.0.1", "app", "app-secret")); me == nil || me.Number != 1129 || !strings.Contains(me.Message, "/flush-hosts") {
		t.Fatalf("the right password from a blocked address: %v, want 1129", me)
	}
	if err := from("127.0.0.2", "app", "app-secret"); err != nil {
		t.Fatalf("another address: %v", err)
	}
	resp, err := http.Post(p.admin.URL+"/flush-hosts", "", nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /flush-hosts: %v %v", resp, err)
	}
	resp.Body.Close()
	if err := from("127.0.0.1", "app", "app-secret"); err != nil {
		t.Fatalf("after /flush-hosts: %v", err)
	}
	// FLUSH HOSTS through the proxy unblocks at the proxy too, as it does
	// on the server (mariadb-admin flush-hosts sends COM_REFRESH).
	for i := 0; i < 20; i++ {
		_ = from("127.0.0.1", "app", "wrong")
	}
	if me := mysqlErr(from("127.0.0.1", "app", "app-secret")); me == nil || me.Number != 1129 {
		t.Fatalf("not blocked again: %v", me)
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = "app", "app-secret", "dial-127.0.0.2", p.Addr("main").String()
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("FLUSH HOSTS"); err != nil {
		t.Fatal(err)
	}
	if err := from("127.0.0.1", "app", "app-secret"); err != nil {
		t.Fatalf("after FLUSH HOSTS: %v", err)
	}
}

// TestNodeAccountEd25519: a node's account may use MariaDB's ed25519
// plugin: the pool answers the server's switch to it.
func TestNodeAccountEd25519(t *testing.T) {
	ctx := context.Background()
	if err := backendDB.Exec(ctx, "INSTALL SONAME 'auth_ed25519'"); err != nil && !strings.Contains(err.Error(), "already installed") {
		t.Fatal(err)
	}
	err := backendDB.Exec(ctx, "CREATE OR REPLACE USER 'pool_ed'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('ed-secret')",
		"GRANT ALL ON gotest.* TO 'pool_ed'@'%'")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = backendDB.Exec(ctx, "DROP USER IF EXISTS 'pool_ed'@'%'") })
	node := strings.Replace(strings.Replace(nodeTOML("n1", backendDB, ""),
		fmt.Sprintf("user = %q", testenv.TestUser), `user = "pool_ed"`, 1),
		fmt.Sprintf("password = %q", testenv.TestPassword), `password = "ed-secret"`, 1)
	p := startProxy(t, listenerTOML("main", []string{"n1"}, "")+node)
	if got := queryString(t, p.db(t, "main", ""), "SELECT CURRENT_USER()"); got != "pool_ed@%" {
		t.Fatalf("the pool logged in as %q", got)
	}
}
