package main

import (
	"bytes"
	"context"
	gosql "database/sql"
	"fmt"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
	gomysql "github.com/go-sql-driver/mysql"

	"pisanix.io/pisanix/backend"
	pisaconfig "pisanix.io/pisanix/config"
)

func TestMain(m *testing.M) {
	// go-mysql-server logs through logrus; only warnings and errors, to stderr.
	routeLogrus(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	os.Exit(m.Run())
}

// startServer runs a seeded demo server on a free loopback port until the
// test ends, and returns its address.
func startServer(t *testing.T, user, password string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv, err := newServer(ctx, config{Addr: ln.Addr().String(), User: user, Password: password}, ln)
	if err != nil {
		_ = ln.Close()
		t.Fatalf("newServer: %v", err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, log) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return srv.Addr().String()
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func openDB(t *testing.T, addr, user, password string) *gosql.DB {
	t.Helper()
	cfg := gomysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = user, password, "tcp", addr, demoDB
	cfg.Timeout = 5 * time.Second
	connector, err := gomysql.NewConnector(cfg)
	if err != nil {
		t.Fatalf("connector: %v", err)
	}
	db := gosql.OpenDB(connector)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestCatalogueThroughGoSQLDriver(t *testing.T) {
	addr := startServer(t, "catalogue_user", "default_password")
	db := openDB(t, addr, "catalogue_user", "default_password")
	ctx := t.Context()

	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM catalogue").Scan(&n); err != nil {
		t.Fatalf("count: %v", err)
	}
	if n != len(socks()) || n != 10 {
		t.Errorf("catalogue has %d rows, want 10", n)
	}

	var name, price, img1 string
	var count int
	err := db.QueryRowContext(ctx, "SELECT name, price, count, image_url_1 FROM catalogue WHERE id = ?",
		"03fef6ac-1896-4ce8-bd69-b798f85c6e0b").Scan(&name, &price, &count, &img1)
	if err != nil {
		t.Fatalf("Holy: %v", err)
	}
	if name != "Holy" || price != "99.99" || count != 1 || img1 != "/catalogue/images/holy_1.jpeg" {
		t.Errorf("Holy row = %q %q %d %q", name, price, count, img1)
	}

	// Apostrophes survive seeding.
	var desc string
	if err := db.QueryRowContext(ctx, "SELECT description FROM catalogue WHERE name = 'YouTube.sock'").Scan(&desc); err != nil {
		t.Fatalf("YouTube.sock: %v", err)
	}
	if !strings.Contains(desc, "It's just a bit geeky") {
		t.Errorf("YouTube.sock description = %q", desc)
	}

	var tagList string
	err = db.QueryRowContext(ctx, `SELECT GROUP_CONCAT(t.name ORDER BY t.name)
		FROM catalogue c JOIN sock_tag st ON st.sock_id = c.id JOIN tag t ON t.tag_id = st.tag_id
		WHERE c.name = 'Crossed'`).Scan(&tagList)
	if err != nil {
		t.Fatalf("tags: %v", err)
	}
	if tagList != "action,blue,formal,red" {
		t.Errorf("Crossed tags = %q, want action,blue,formal,red", tagList)
	}

	var tagCount, linkCount int
	if err := db.QueryRowContext(ctx, "SELECT (SELECT COUNT(*) FROM tag), (SELECT COUNT(*) FROM sock_tag)").Scan(&tagCount, &linkCount); err != nil {
		t.Fatalf("tag counts: %v", err)
	}
	if tagCount != 11 || linkCount != 25 {
		t.Errorf("tag, sock_tag = %d, %d rows; want 11, 25", tagCount, linkCount)
	}

	// The data is writable like a real database.
	if _, err := db.ExecContext(ctx, "UPDATE catalogue SET count = count - 1 WHERE name = 'Classic'"); err != nil {
		t.Fatalf("update: %v", err)
	}
	if err := db.QueryRowContext(ctx, "SELECT count FROM catalogue WHERE name = 'Classic'").Scan(&count); err != nil || count != 126 {
		t.Errorf("Classic count after update = %d (%v), want 126", count, err)
	}
}

func TestAuthentication(t *testing.T) {
	addr := startServer(t, "catalogue_user", "default_password")
	for _, tc := range []struct{ user, password string }{
		{"catalogue_user", "wrong"},
		{"catalogue_user", ""},
		{"root", ""},
		{"nobody", "default_password"},
	} {
		err := openDB(t, addr, tc.user, tc.password).PingContext(t.Context())
		if err == nil {
			t.Errorf("login %s/%q succeeded, want it refused", tc.user, tc.password)
		}
	}
}

func TestDefaultRootWithoutPassword(t *testing.T) {
	addr := startServer(t, defaultUser, "")
	if err := openDB(t, addr, "root", "").PingContext(t.Context()); err != nil {
		t.Fatalf("root without password: %v", err)
	}
}

// goMySQLConnect logs in the way pisa-proxy does (backend.Dial): go-mysql's
// client with the proxy's capabilities, collation and attributes.
func goMySQLConnect(t *testing.T, addr, user, password string) *client.Conn {
	t.Helper()
	c, err := client.ConnectWithContext(t.Context(), addr, user, password, demoDB, 5*time.Second, func(c *client.Conn) error {
		c.SetCapability(backend.Capabilities)
		c.SetAttributes(map[string]string{"program_name": "pisa-proxy"})
		return c.SetCollation("utf8mb4_general_ci")
	})
	if err != nil {
		t.Fatalf("go-mysql client login: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestGoMySQLClient(t *testing.T) {
	addr := startServer(t, "catalogue_user", "default_password")
	c := goMySQLConnect(t, addr, "catalogue_user", "default_password")
	for _, capability := range []uint32{mysql.CLIENT_MULTI_STATEMENTS, mysql.CLIENT_MULTI_RESULTS,
		mysql.CLIENT_PS_MULTI_RESULTS, mysql.CLIENT_LOCAL_FILES, mysql.CLIENT_CONNECT_ATTRS} {
		if !c.HasCapability(capability) {
			t.Errorf("capability %#x not negotiated", capability)
		}
	}

	r, err := c.Execute("SELECT id, name, price FROM catalogue ORDER BY price DESC LIMIT 3")
	if err != nil {
		t.Fatalf("select: %v", err)
	}
	defer r.Close()
	if r.RowNumber() != 3 {
		t.Fatalf("got %d rows, want 3", r.RowNumber())
	}
	if name, _ := r.GetString(0, 1); name != "Holy" {
		t.Errorf("most expensive sock = %q, want Holy", name)
	}
	if price, _ := r.GetString(0, 2); price != "99.99" {
		t.Errorf("Holy price = %q, want 99.99", price)
	}

	// No prepared statement through go-mysql's client here: with
	// parameters it sets PARAMETER_COUNT_AVAILABLE (0x08) in the
	// COM_STMT_EXECUTE flags byte, which go-mysql-server reads as a cursor
	// request and then waits for COM_STMT_FETCH; both sides hang. The proxy
	// relays its clients' own COM_STMT_EXECUTE, and go-sql-driver's (flags
	// 0) works: see TestCatalogueThroughGoSQLDriver.
}

// TestProxyReset checks what pisa-proxy does to a backend connection when a
// client session ends (backend.Conn.Reset): COM_RESET_CONNECTION, then
// "SET NAMES utf8mb4 COLLATE utf8mb4_general_ci; USE `socksdb`" as one
// multi-statement COM_QUERY.
func TestProxyReset(t *testing.T) {
	addr := startServer(t, "catalogue_user", "default_password")

	t.Run("backend.Conn.Reset", func(t *testing.T) {
		ep := &backend.Endpoint{Name: "catalogue-db", Addr: addr, User: "catalogue_user",
			Password: "default_password", DB: demoDB, DialTimeout: 5 * time.Second}
		bc, err := backend.Dial(t.Context(), ep)
		if err != nil {
			t.Fatalf("backend.Dial: %v", err)
		}
		defer bc.Close()
		for i := range 3 {
			if err := bc.Reset(); err != nil {
				t.Fatalf("Reset #%d: %v", i+1, err)
			}
			// The stream is still in step: no stray packet is left behind.
			if err := bc.Ping(); err != nil {
				t.Fatalf("Ping after Reset #%d: %v", i+1, err)
			}
		}
	})

	t.Run("session state", func(t *testing.T) {
		c := goMySQLConnect(t, addr, "catalogue_user", "default_password")
		mustExec(t, c, "SET @user_var = 42")
		mustExec(t, c, "SET NAMES latin1")
		mustExec(t, c, "USE information_schema")

		// COM_RESET_CONNECTION: one OK packet.
		statuses := rawCommand(t, c, mysql.COM_RESET_CONNECTION, nil)
		if len(statuses) != 1 {
			t.Errorf("COM_RESET_CONNECTION answered with %d OK packets, want 1", len(statuses))
		}
		if got := queryString(t, c, "SELECT @user_var IS NULL"); got != "1" {
			t.Errorf("user variable survived COM_RESET_CONNECTION")
		}
		if got := queryString(t, c, "SELECT @@character_set_client"); got != "utf8mb4" {
			t.Logf("character_set_client after COM_RESET_CONNECTION = %q", got)
		}
		t.Logf("schema after COM_RESET_CONNECTION = %q (go-mysql-server keeps it)", queryString(t, c, "SELECT DATABASE()"))
		// (The in-memory database has no temporary tables to check.)

		// The multi-statement restore: one OK per statement, the first
		// flagged SERVER_MORE_RESULTS_EXISTS.
		mustExec(t, c, "SET NAMES latin1")
		mustExec(t, c, "USE information_schema")
		statuses = rawCommand(t, c, mysql.COM_QUERY,
			[]byte("SET NAMES utf8mb4 COLLATE utf8mb4_general_ci; USE "+backend.QuoteIdent(demoDB)))
		if len(statuses) != 2 || statuses[0]&mysql.SERVER_MORE_RESULTS_EXISTS == 0 {
			t.Errorf("multi-statement answered with statuses %#x, want two OKs, first with MORE_RESULTS", statuses)
		}
		if got := queryString(t, c, "SELECT DATABASE()"); got != demoDB {
			t.Errorf("DATABASE() = %q after USE, want %q", got, demoDB)
		}
		// go-mysql-server's SET NAMES sets the three character_set_*
		// variables and ignores COLLATE: collation_connection stays at its
		// default (utf8mb4_0900_ai_ci). Harmless for the demo.
		t.Logf("collation_connection after SET NAMES ... COLLATE utf8mb4_general_ci = %q",
			queryString(t, c, "SELECT @@collation_connection"))
		if got := queryString(t, c, "SELECT @@character_set_client"); got != "utf8mb4" {
			t.Errorf("character_set_client = %q, want utf8mb4", got)
		}
	})
}

// rawCommand sends cmd+arg and reads OK packets until one without
// SERVER_MORE_RESULTS_EXISTS, returning each OK's status flags. An ERR or
// any other packet fails the test.
func rawCommand(t *testing.T, c *client.Conn, cmd byte, arg []byte) []uint16 {
	t.Helper()
	c.ResetSequence()
	pkt := make([]byte, 4, 5+len(arg))
	pkt = append(append(pkt, cmd), arg...)
	if err := c.WritePacket(pkt); err != nil {
		t.Fatalf("command %#x: write: %v", cmd, err)
	}
	var statuses []uint16
	for {
		resp, err := c.ReadPacket()
		if err != nil {
			t.Fatalf("command %#x: read: %v", cmd, err)
		}
		switch {
		case len(resp) > 0 && resp[0] == mysql.OK_HEADER:
			r := c.HandleOKPacket(resp)
			if r == nil {
				t.Fatalf("command %#x: bad OK packet % x", cmd, resp)
			}
			statuses = append(statuses, r.Status)
			if r.Status&mysql.SERVER_MORE_RESULTS_EXISTS == 0 {
				return statuses
			}
		case len(resp) > 0 && resp[0] == mysql.ERR_HEADER:
			t.Fatalf("command %#x: %v", cmd, c.HandleErrorPacket(bytes.Clone(resp)))
		default:
			t.Fatalf("command %#x: unexpected packet % x", cmd, resp)
		}
	}
}

func mustExec(t *testing.T, c *client.Conn, q string) {
	t.Helper()
	r, err := c.Execute(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	r.Close()
}

func queryString(t *testing.T, c *client.Conn, q string) string {
	t.Helper()
	r, err := c.Execute(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer r.Close()
	if r.RowNumber() != 1 {
		t.Fatalf("%s: %d rows, want 1", q, r.RowNumber())
	}
	v, err := r.GetValue(0, 0)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	switch v := v.(type) {
	case nil:
		return "NULL"
	case []byte:
		return string(v)
	default:
		return fmt.Sprint(v)
	}
}

func TestRunFlags(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"-h"}, &out); err != nil {
		t.Errorf("-h: %v", err)
	}
	if !strings.Contains(out.String(), "--addr") || !strings.Contains(out.String(), "127.0.0.1:3307") {
		t.Errorf("help does not describe --addr and its default:\n%s", out.String())
	}
	for _, args := range [][]string{{"--bogus"}, {"extra"}, {"--user", ""}, {"--log-level", "LOUD"}} {
		if err := run(t.Context(), args, &out); err == nil {
			t.Errorf("run %q: want an error", args)
		}
	}
}

// TestRunShutdown: run serves until its context ends, then returns nil.
func TestRunShutdown(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--addr", "127.0.0.1:0"}, out) }()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "demo backend ready"); {
		if time.Now().After(deadline) {
			t.Fatalf("run did not report ready:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v\n%s", err, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	if !strings.Contains(out.String(), "msg=stopped") {
		t.Errorf("no clean stop logged:\n%s", out.String())
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestShippedConfigs keeps etc/config.toml and the demo template valid
// Pisa-Proxy TOML.
func TestShippedConfigs(t *testing.T) {
	if _, err := pisaconfig.Load("../../etc/config.toml"); err != nil {
		t.Errorf("etc/config.toml: %v", err)
	}
	tmpl, err := os.ReadFile("../../etc/demo.toml.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	demo := strings.NewReplacer("@ADMIN_PORT@", "5591", "@PROXY_PORT@", "3306", "@BACKEND_PORT@", "3307",
		"@BACKEND_USER@", "pisa_proxy", "@BACKEND_PASSWORD@", "pisa_demo_backend").Replace(string(tmpl))
	if left := regexp.MustCompile(`(?m)^[^#]*@[A-Z_]+@`).FindString(demo); left != "" {
		t.Errorf("etc/demo.toml.tmpl has a placeholder the test does not fill: %s", left)
	}
	cfg, err := pisaconfig.ParseTOML([]byte(demo), "etc/demo.toml.tmpl")
	if err != nil {
		t.Fatalf("etc/demo.toml.tmpl: %v", err)
	}
	l := cfg.Proxy.Config[0]
	if l.Name != "catalogue" || l.User != "catalogue_user" || l.Password != "default_password" || l.DB != demoDB {
		t.Errorf("demo listener = %+v", l)
	}
	if n, ok := cfg.NodeByName("catalogue-db"); !ok || n.Addr() != "127.0.0.1:3307" || n.DB != demoDB {
		t.Errorf("demo node = %+v", n)
	}
}
