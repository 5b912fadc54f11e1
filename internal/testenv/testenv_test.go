package testenv_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"pisanix.io/pisanix/internal/testenv"
)

func open(t *testing.T, cfg *mysql.Config) *sql.DB {
	t.Helper()
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatalf("connector: %v", err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	return db
}

func TestParallelInstances(t *testing.T) {
	t.Parallel()
	var (
		wg   sync.WaitGroup
		srvs [2]*testenv.Server
	)
	for i := range srvs {
		wg.Go(func() {
			start := time.Now()
			srvs[i] = testenv.MariaDB(t, testenv.WithMaxConnections(50))
			t.Logf("instance %d on %s started in %v", i, srvs[i].Addr(), time.Since(start))
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if srvs[0].Port() == srvs[1].Port() {
		t.Fatalf("both instances on port %d", srvs[0].Port())
	}
	ctx := t.Context()
	for i, s := range srvs {
		t.Run(fmt.Sprint("instance", i), func(t *testing.T) {
			db := open(t, s.Config(testenv.TestUser, testenv.TestPassword, testenv.TestDB))
			var maxConn int
			var charset, collation string
			err := db.QueryRowContext(ctx, "SELECT @@max_connections, @@character_set_server, @@collation_server").
				Scan(&maxConn, &charset, &collation)
			if err != nil {
				t.Fatalf("query: %v", err)
			}
			if maxConn != 50 || charset != "utf8mb4" || collation != "utf8mb4_general_ci" {
				t.Errorf("got max_connections=%d charset=%s collation=%s", maxConn, charset, collation)
			}
			// Each instance has its own data.
			if err := s.Exec(ctx, "CREATE TABLE gotest.t (id INT PRIMARY KEY)",
				fmt.Sprintf("INSERT INTO gotest.t VALUES (%d)", i)); err != nil {
				t.Fatal(err)
			}
			var id int
			if err := db.QueryRowContext(ctx, "SELECT id FROM t").Scan(&id); err != nil || id != i {
				t.Errorf("SELECT id = %d, %v; want %d", id, err, i)
			}
		})
	}
}

func TestAccounts(t *testing.T) {
	t.Parallel()
	s := testenv.MariaDB(t)
	ctx := t.Context()
	for _, tc := range []struct{ user, pass, db, plugin string }{
		{"root", "", "", "mysql_native_password"},
		{testenv.TestUser, testenv.TestPassword, testenv.TestDB, "mysql_native_password"},
		{testenv.NativeUser, testenv.NativePassword, testenv.SocksDB, "mysql_native_password"},
		{testenv.AppUser, testenv.AppPassword, testenv.TestDB, "mysql_native_password"},
	} {
		t.Run(tc.user, func(t *testing.T) {
			db := open(t, s.Config(tc.user, tc.pass, tc.db))
			var user, plugin string
			err := db.QueryRowContext(ctx,
				"SELECT CURRENT_USER(), plugin FROM mysql.user WHERE CONCAT(User, '@', Host) = CURRENT_USER()").
				Scan(&user, &plugin)
			if tc.user == testenv.AppUser { // cannot read mysql.user
				err = db.QueryRowContext(ctx, "SELECT CURRENT_USER(), 'mysql_native_password'").Scan(&user, &plugin)
			}
			if err != nil {
				t.Fatalf("query as %s: %v", tc.user, err)
			}
			if plugin != tc.plugin {
				t.Errorf("%s uses %s, want %s", user, plugin, tc.plugin)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		db := open(t, s.Config(testenv.TestUser, "nope", ""))
		if err := db.PingContext(ctx); err == nil || !strings.Contains(err.Error(), "1045") {
			t.Errorf("ping with a wrong password: %v, want error 1045", err)
		}
	})
	t.Run("cli", func(t *testing.T) {
		out := testenv.MariaDBCLI(t, s.CLIConn(testenv.TestUser, testenv.TestPassword, testenv.SocksDB),
			"--batch", "--skip-column-names", "-e", "SELECT DATABASE(), @@max_allowed_packet, @@local_infile")
		if got, want := strings.TrimSpace(out), "socksdb\t268435456\t1"; got != want {
			t.Errorf("cli output %q, want %q", got, want)
		}
	})
}

func TestTLS(t *testing.T) {
	t.Parallel()
	s := testenv.MariaDB(t, testenv.WithTLS())
	if len(s.CAPEM()) == 0 {
		t.Fatal("no CA PEM")
	}
	cfg := s.Config(testenv.TestUser, testenv.TestPassword, "")
	cfg.TLS = s.TLSConfig()
	db := open(t, cfg)
	var name, cipher string
	if err := db.QueryRowContext(t.Context(), "SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil {
		t.Fatalf("query over TLS: %v", err)
	}
	if cipher == "" {
		t.Error("connection is not encrypted")
	}
	t.Logf("cipher %s", cipher)

	// A client that does not trust the CA must fail verification.
	bad := s.Config(testenv.TestUser, testenv.TestPassword, "")
	other, err := testenv.WriteTLSFiles(t.TempDir(), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	bad.TLS = other.ClientConfig("127.0.0.1")
	if err := open(t, bad).PingContext(t.Context()); err == nil {
		t.Error("TLS with a foreign CA succeeded")
	}

	out := testenv.MariaDBCLI(t, s.CLIConn("root", "", ""), "--batch", "--skip-column-names",
		"-e", "SHOW SESSION STATUS LIKE 'Ssl_version'")
	if !strings.Contains(out, "TLS") {
		t.Errorf("CLI over TLS: %q", out)
	}
}

func TestReplication(t *testing.T) {
	t.Parallel()
	primary := testenv.MariaDB(t, testenv.WithReplication())
	replica := testenv.Replica(t, primary)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	if err := primary.Exec(ctx,
		"CREATE TABLE gotest.r (id INT PRIMARY KEY, v VARCHAR(20))",
		"INSERT INTO gotest.r VALUES (1, 'replicated')"); err != nil {
		t.Fatal(err)
	}
	if err := replica.WaitCaughtUp(ctx, primary); err != nil {
		t.Fatal(err)
	}
	var v string
	if err := replica.RootDB().QueryRowContext(ctx, "SELECT v FROM gotest.r WHERE id = 1").Scan(&v); err != nil || v != "replicated" {
		t.Fatalf("row on replica: %q, %v", v, err)
	}

	// A stopped SQL thread makes the replica lag; read_only stops app writes.
	if err := replica.StopSQLThread(ctx); err != nil {
		t.Fatal(err)
	}
	if err := primary.Exec(ctx, "INSERT INTO gotest.r VALUES (2, 'lagging')"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := replica.RootDB().QueryRowContext(ctx, "SELECT COUNT(*) FROM gotest.r").Scan(&n); err != nil || n != 1 {
		t.Errorf("replica rows with stopped SQL thread: %d, %v; want 1", n, err)
	}
	if err := replica.SetReadOnly(ctx, true); err != nil {
		t.Fatal(err)
	}
	app := open(t, replica.Config(testenv.AppUser, testenv.AppPassword, testenv.TestDB))
	if _, err := app.ExecContext(ctx, "INSERT INTO r VALUES (3, 'x')"); err == nil || !strings.Contains(err.Error(), "1290") {
		t.Errorf("write on read-only replica: %v, want error 1290", err)
	}
	if err := replica.StartSQLThread(ctx); err != nil {
		t.Fatal(err)
	}
	if err := replica.WaitCaughtUp(ctx, primary); err != nil {
		t.Fatal(err)
	}
}

func TestKillRestart(t *testing.T) {
	t.Parallel()
	s := testenv.MariaDB(t)
	ctx := t.Context()
	db := open(t, s.Config(testenv.TestUser, testenv.TestPassword, ""))
	if err := db.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	s.Kill()
	if s.Running() {
		t.Fatal("running after Kill")
	}
	if err := db.PingContext(ctx); err == nil {
		t.Fatal("ping succeeded against a killed server")
	}
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("ping after restart: %v", err)
	}
}

// BenchmarkStart measures StartMariaDB plus Stop, and reports the start
// alone as start-ms/op.
func BenchmarkStart(b *testing.B) {
	ctx := context.Background()
	var starting time.Duration
	for b.Loop() {
		t0 := time.Now()
		s, err := testenv.StartMariaDB(ctx, testenv.Options{})
		if err != nil {
			b.Fatal(err)
		}
		starting += time.Since(t0)
		if err := s.Stop(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(starting.Milliseconds())/float64(b.N), "start-ms/op")
}
