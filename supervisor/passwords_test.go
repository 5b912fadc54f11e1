package supervisor_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pingcap/tidb/pkg/parser/auth"
	tidbmysql "github.com/pingcap/tidb/pkg/parser/mysql"
	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/internal/testenv"
)

// hashedListener is a listener "name" whose app user has password (a
// hash here), with optional TLS towards clients and further config.
func hashedListener(name, password, extra string) string {
	return strings.Replace(listenerTOML(name, []string{"n1"}, extra), `password = "app-secret"`, fmt.Sprintf("password = %q", password), 1)
}

func wantLoginDenied(t *testing.T, what, dsn string) {
	t.Helper()
	if me := mysqlErr(ping(dsn)); me == nil || me.Number != 1045 {
		t.Fatalf("%s: want 1045, got %v", what, me)
	}
}

// adminConfig is what GET /config serves, as text and decoded.
func adminConfig(t *testing.T, p *proxy) (string, config.Config) {
	t.Helper()
	resp, err := http.Get(p.admin.URL + "/config")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var c config.Config
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &c) != nil {
		t.Fatalf("/config: %s %s", resp.Status, body)
	}
	return string(body), c
}

// TestHashedPasswordLogins: listeners configured with hashes, no clear
// password: mysql_native_password's hash as MariaDB's PASSWORD() makes it,
// and caching_sha2_password's (0x-hex, as MySQL's SELECT
// HEX(authentication_string) shows it). go-sql-driver/mysql logs in with
// the right passwords, over TLS (full authentication in clear inside TLS)
// and without (RSA key exchange, then the fast path); wrong ones get 1045.
func TestHashedPasswordLogins(t *testing.T) {
	var native string
	if err := backendDB.RootDB().QueryRow("SELECT PASSWORD('native-secret')").Scan(&native); err != nil {
		t.Fatal(err)
	}
	sha2 := fmt.Sprintf("0x%X", auth.NewHashPassword("sha2-secret", tidbmysql.AuthCachingSha2Password))
	files, err := testenv.WriteTLSFiles(t.TempDir(), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	tlsTOML := fmt.Sprintf("[proxy.config.tls]\ncert = %q\nkey = %q\n", files.CertFile, files.KeyFile)
	legacy := fmt.Sprintf("[[proxy.config.users]]\nuser = \"legacy\"\npassword = %q\n", native)
	p := startProxy(t, hashedListener("native", native, `auth_plugin = "mysql_native_password"`+"\n"+tlsTOML)+
		hashedListener("sha2", sha2, `auth_plugin = "caching_sha2_password"`+"\n"+tlsTOML+legacy)+
		nodeTOML("n1", backendDB, ""))
	tlsParam := "tls=" + registerTLS(t, files)

	t.Run("native hash", func(t *testing.T) {
		for _, params := range []string{"", tlsParam} {
			if err := ping(p.dsnUser("native", "app", "native-secret", params)); err != nil {
				t.Fatalf("%q: %v", params, err)
			}
			wantLoginDenied(t, "wrong password "+params, p.dsnUser("native", "app", "native-secreT", params))
		}
		if got := queryString(t, openDB(t, p.dsnUser("native", "app", "native-secret", "")), "SELECT 'through'"); got != "through" {
			t.Fatal(got)
		}
	})
	t.Run("caching_sha2 hash", func(t *testing.T) {
		// app: full authentication over TLS first, then the fast path in plaintext.
		for i, params := range []string{tlsParam, "", tlsParam} {
			if err := ping(p.dsnUser("sha2", "app", "sha2-secret", params)); err != nil {
				t.Fatalf("login %d: %v", i, err)
			}
		}
		// legacy (a native hash on a caching_sha2 listener): full
		// authentication with RSA first, then the fast path over TLS.
		for i, params := range []string{"", "", tlsParam} {
			if err := ping(p.dsnUser("sha2", "legacy", "native-secret", params)); err != nil {
				t.Fatalf("legacy login %d: %v", i, err)
			}
		}
		for _, params := range []string{"", tlsParam} { // the fast path refuses too
			wantLoginDenied(t, "wrong password "+params, p.dsnUser("sha2", "app", "sha2-secreT", params))
			wantLoginDenied(t, "legacy's wrong password "+params, p.dsnUser("sha2", "legacy", "sha2-secret", params))
		}
	})
	t.Run("redacted", func(t *testing.T) {
		body, c := adminConfig(t, p)
		if strings.Contains(body, native[1:]) || strings.Contains(body, sha2[2:]) ||
			c.Proxy.Config[0].Password != "******" || c.Proxy.Config[1].Users[0].Password != "******" {
			t.Fatalf("/config shows a hash: %s", body)
		}
	})
}

// TestPasswordFileAndEnv: the listener's password from a file, a user's
// from the environment, the node's from a file; /config shows where they
// come from, not what they are; a reload reads the file again.
func TestPasswordFileAndEnv(t *testing.T) {
	dir := t.TempDir()
	appFile, nodeFile := filepath.Join(dir, "app"), filepath.Join(dir, "node")
	for path, content := range map[string]string{appFile: "file-secret\n", nodeFile: testenv.TestPassword + "\n"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PISA_TEST_REPORT_PASSWORD", "env-secret")
	listener := strings.Replace(listenerTOML("main", []string{"n1"}, "[[proxy.config.users]]\nuser = \"report\"\npassword_env = \"PISA_TEST_REPORT_PASSWORD\"\n"),
		`password = "app-secret"`, fmt.Sprintf("password_file = %q", appFile), 1)
	node := strings.Replace(nodeTOML("n1", backendDB, ""), fmt.Sprintf("password = %q", testenv.TestPassword), fmt.Sprintf("password_file = %q", nodeFile), 1)
	p := startProxy(t, listener+node)

	for user, pw := range map[string]string{"app": "file-secret", "report": "env-secret"} {
		// A query proves the node's password from its file too.
		if got := queryString(t, openDB(t, p.dsnUser("main", user, pw, "")), "SELECT CURRENT_USER()"); !strings.HasPrefix(got, testenv.TestUser+"@") {
			t.Fatalf("%s: backend user %q", user, got)
		}
		wantLoginDenied(t, user+"'s wrong password", p.dsnUser("main", user, pw+"x", ""))
	}
	body, c := adminConfig(t, p)
	for _, secret := range []string{"file-secret", "env-secret", testenv.TestPassword} {
		if strings.Contains(body, secret) {
			t.Fatalf("/config shows %q: %s", secret, body)
		}
	}
	if l, n := c.Proxy.Config[0], c.MySQL.Node[0]; l.PasswordFile != appFile || l.Users[0].PasswordEnv != "PISA_TEST_REPORT_PASSWORD" || n.PasswordFile != nodeFile {
		t.Fatalf("/config does not say where the passwords come from: %s", body)
	}

	if err := os.WriteFile(appFile, []byte("rotated\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	next := strings.Replace(listener+node, `listen_addr = "127.0.0.1:0"`, fmt.Sprintf("listen_addr = %q", p.Addr("main").String()), 1)
	if err := p.Apply(parse(t, next)); err != nil {
		t.Fatal(err)
	}
	wantLoginDenied(t, "the old password after the reload", p.dsnUser("main", "app", "file-secret", ""))
	if err := ping(p.dsnUser("main", "app", "rotated", "")); err != nil {
		t.Fatalf("the file's new password: %v", err)
	}
}
