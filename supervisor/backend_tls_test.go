package supervisor_test

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"pisanix.io/pisanix/internal/testenv"
)

// TestBackendTLSVerifyModes: a MariaDB whose certificate names only
// db.internal, dialled by 127.0.0.1 or localhost. verify-ca trusts it (the
// chain is the configured CA's; the name is not checked) and the backend
// connection is encrypted; verify-full and required (the same) refuse the
// name;
// verify-ca refuses a chain to another CA, and to the system's roots
// without tls_ca; skip-verify takes anything. The client is told why.
func TestBackendTLSVerifyModes(t *testing.T) {
	srv := testenv.MariaDB(t, testenv.WithTLSHosts("db.internal"))
	other, err := testenv.WriteTLSFiles(t.TempDir(), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ca := srv.TLSFiles().CAFile
	const noIP = "x509: cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs"
	cases := []struct {
		name, tls, ca, host string
		want                string // the client's error; "" for an encrypted backend connection
	}{
		{"verify-ca", "verify-ca", ca, "", ""},
		{"verify-ca-by-name", "verify-ca", ca, "localhost", ""},
		{"skip-verify", "skip-verify", "", "", ""},
		{"verify-full", "verify-full", ca, "", noIP},
		{"verify-full-by-name", "verify-full", ca, "localhost", "x509: certificate is valid for db.internal, not localhost"},
		{"required", "required", ca, "", noIP},
		{"verify-ca-other-ca", "verify-ca", other.CAFile, "", "verify-ca: x509: certificate signed by unknown authority"},
		{"verify-ca-system-roots", "verify-ca", "", "", "verify-ca: x509: certificate signed by unknown authority"},
	}
	var toml strings.Builder
	for _, tc := range cases {
		// No warm connections: the first client's dial is the first.
		toml.WriteString(listenerTOML(tc.name, []string{tc.name}, "pool_min_idle = 0"))
		node := nodeTOML(tc.name, srv, fmt.Sprintf("tls = %q\ntls_ca = %q", tc.tls, tc.ca))
		if tc.host != "" {
			node = strings.Replace(node, `host = "127.0.0.1"`, fmt.Sprintf("host = %q", tc.host), 1)
		}
		toml.WriteString(node)
	}
	// Auth passthrough dials the same way: a listener for two of the nodes.
	for _, node := range []string{"verify-ca", "verify-full"} {
		pt := strings.Replace(passthroughListener(""), `name = "main"`, fmt.Sprintf("name = %q", "passthrough-"+node), 1)
		toml.WriteString(strings.Replace(pt, `nodes = ["n1"]`, fmt.Sprintf("nodes = [%q]", node), 1))
	}
	p := startProxy(t, toml.String())
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := p.db(t, tc.name, "")
			tlsQueryWant(t, db, 1429, tc.want)
		})
	}
	// A passthrough login fails on the backend's side after the dial: 1429
	// as well, naming the node.
	for name, want := range map[string]string{"verify-ca": "", "verify-full": `node "verify-full"): backend: tls handshake: tls: failed to verify certificate: ` + noIP} {
		t.Run("passthrough-"+name, func(t *testing.T) {
			tlsQueryWant(t, openDB(t, p.dsnUser("passthrough-"+name, testenv.TestUser, testenv.TestPassword, "")), 1429, want)
		})
	}
}

// tlsQueryWant asks db for its backend connection's cipher: one when want
// is "", else error code saying want.
func tlsQueryWant(t *testing.T, db *sql.DB, code uint16, want string) {
	t.Helper()
	var cipher string
	err := db.QueryRow("SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_cipher'").Scan(&cipher)
	if want == "" {
		if err != nil || cipher == "" {
			t.Fatalf("backend connection: cipher %q, %v", cipher, err)
		}
		return
	}
	if me := mysqlErr(err); me == nil || me.Number != code || !strings.Contains(me.Message, want) {
		t.Fatalf("want %d with %q, got %v", code, want, err)
	}
}
