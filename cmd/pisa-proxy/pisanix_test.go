package main

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pisanix.io/pisanix/internal/testenv"
)

// pisanixFile reads one of Pisanix's own example files and points its
// [[mysql.node]]s at srv (their addresses and credentials were the
// author's) and its first listener at listen; every other key stays as
// written.
func pisanixFile(t *testing.T, name, listen string, srv *testenv.Server) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "testdata", "pisanix", name))
	if err != nil {
		t.Fatal(err)
	}
	proxy, nodes, ok := strings.Cut(string(data), "[mysql]")
	if !ok {
		t.Fatalf("%s has no [mysql]", name)
	}
	var b strings.Builder
	for line := range strings.Lines(nodes) {
		key, _, _ := strings.Cut(strings.TrimSpace(line), " =")
		switch key {
		case "user":
			line = fmt.Sprintf("user = %q\n", testenv.TestUser)
		case "password":
			line = fmt.Sprintf("password = %q\n", testenv.TestPassword)
		case "host":
			line = "host = \"127.0.0.1\"\n"
		case "port":
			line = fmt.Sprintf("port = %d\n", srv.Port())
		case "db":
			line = "db = \"gotest\"\n"
		}
		b.WriteString(line)
	}
	proxy = strings.Replace(proxy, `listen_addr = "0.0.0.0:9088"`, fmt.Sprintf("listen_addr = %q", listen), 1)
	path := filepath.Join(t.TempDir(), filepath.Base(name))
	if err := os.WriteFile(path, []byte(proxy+"[mysql]"+b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Pisanix's own example-config.toml runs under `pisa-proxy daemon -c` as it
// was released, and serves: v0.2.0's (the same to v0.3.2: an unnamed
// listener with simple_loadbalance and read/write splitting over one read
// node) and v0.1.0's (the admin port and the plugins' regex as strings),
// the latter under Pisa-Proxy's TRACE log level. The admin port is moved
// off the file's by flag; the warnings the v0.2.0 file earns are logged.
func TestPisanixExampleConfigServes(t *testing.T) {
	srv := testenv.MariaDB(t)
	for _, tc := range []struct {
		file, level string
		logged      []string
	}{
		{"v0.2.0/example-config.toml", "", []string{
			`simple_loadbalance.nodes: not used with read_write_splitting`,
			`read_write_splitting: no node has role = \"readwrite\"; the role = \"read\" nodes take the writes too`,
			"tenant={listen}", // unnamed: named after its address
		}},
		{"v0.1.0/example-config.toml", "TRACE", []string{"level=DEBUG", "tenant={listen}"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			admin, listen := freeAddr(t), freeAddr(t)
			path := pisanixFile(t, tc.file, listen, srv)
			args := []string{"-h", "127.0.0.1", "-p", admin[strings.LastIndexByte(admin, ':')+1:]}
			if tc.level != "" {
				args = append(args, "--log-level", tc.level)
			}
			logs := start(t, nil, append(args, "daemon", "--config", path)...)
			eventually(t, 10*time.Second, "ready", func() bool { return httpStatus("http://"+admin+"/readyz") == 200 })
			// The listener's own credentials, as the file gives them.
			db, err := sql.Open("mysql", "root:12345678@tcp("+listen+")/gotest")
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var port int
			if err := db.QueryRow("SELECT @@port").Scan(&port); err != nil {
				t.Fatalf("query through the proxy: %v\nlog:\n%s", err, logs)
			}
			if port != srv.Port() {
				t.Fatalf("served by port %d, want the node's %d", port, srv.Port())
			}
			if _, err := db.Exec("DO 1"); err != nil {
				t.Fatalf("a write-class statement: %v", err)
			}
			for _, want := range tc.logged {
				if want = strings.ReplaceAll(want, "{listen}", listen); !strings.Contains(logs.String(), want) {
					t.Errorf("log does not say %q:\n%s", want, logs)
				}
			}
		})
	}
}
