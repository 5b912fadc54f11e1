package supervisor_test

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/internal/testenv"
)

func parse(t *testing.T, toml string) *config.Config {
	t.Helper()
	cfg, err := config.ParseTOML([]byte(toml), t.Name()+".toml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestReloadWithoutDroppingSessions(t *testing.T) {
	second := testenv.MariaDB(t)
	p := startProxy(t, listenerTOML("main", []string{"n1"}, "")+listenerTOML("gone", []string{"n1"}, "")+nodeTOML("n1", backendDB, ""))
	db := p.db(t, "main", "")
	old := pinnedConn(t, db)
	if got := queryString(t, old, "SELECT @@port"); got != strconv.Itoa(backendDB.Port()) {
		t.Fatalf("first backend: port %s", got)
	}
	mainAddr, goneAddr := p.Addr("main").String(), p.Addr("gone").String()

	// New node set, new password, listener "gone" removed, "fresh" added;
	// "main" keeps its address.
	next := strings.Replace(listenerTOML("main", []string{"n2"}, ""), `password = "app-secret"`, `password = "rotated"`, 1)
	next = strings.Replace(next, `listen_addr = "127.0.0.1:0"`, `listen_addr = "`+mainAddr+`"`, 1)
	next += listenerTOML("fresh", []string{"n2"}, "") + nodeTOML("n2", second, "")
	if err := p.Apply(parse(t, next)); err != nil {
		t.Fatal(err)
	}
	// The open session keeps its backend and its state.
	assertAlive(t, old)
	if got := queryString(t, old, "SELECT @@port"); got != strconv.Itoa(backendDB.Port()) {
		t.Fatalf("open session moved backends: port %s", got)
	}
	// New sessions use the new node and the new password.
	if me := mysqlErr(ping(p.dsn("main", ""))); me == nil || me.Number != 1045 {
		t.Fatalf("old password must be refused after reload: %v", me)
	}
	fresh := p.dsnUser("main", "app", "rotated", "")
	if err := ping(fresh); err != nil {
		t.Fatal(err)
	}
	if got := queryString(t, openDB(t, fresh), "SELECT @@port"); got != strconv.Itoa(second.Port()) {
		t.Fatalf("new session on port %s, want the new node %d", got, second.Port())
	}
	if p.Addr("main").String() != mainAddr {
		t.Fatal("listener main was rebound")
	}
	// Removed listener: its port is closed. Added listener: it serves.
	if c, err := net.Dial("tcp", goneAddr); err == nil {
		c.Close()
		t.Fatal("removed listener still accepts")
	}
	if err := ping(p.dsnUser("fresh", "app", "app-secret", "")); err != nil {
		t.Fatalf("added listener: %v", err)
	}
	// The old pool was retired: the open session's connection is closed, not
	// parked, when it ends.
	old.Close()
}

// A config that validates but names a backend CA file that cannot be read
// is refused whole: the running config keeps serving (it used to fail the
// tenant when applied, restart it ten times and stop it for good).
func TestReloadRejectsUnreadableBackendCA(t *testing.T) {
	p := startProxy(t, oneNode(""))
	missing := filepath.Join(t.TempDir(), "missing-ca.pem")
	bad := listenerTOML("main", []string{"n1"}, "") + nodeTOML("n1", backendDB, "tls = \"required\"\ntls_ca = \""+missing+"\"\n")
	err := p.Apply(parse(t, bad))
	if err == nil || !strings.Contains(err.Error(), "tls_ca") || !strings.Contains(err.Error(), "listener main") {
		t.Fatalf("want an error naming the listener and tls_ca, got %v", err)
	}
	if err := ping(p.dsn("main", "")); err != nil {
		t.Fatalf("proxy stopped serving after a rejected reload: %v", err)
	}
	if err := p.Ready(); err != nil {
		t.Fatalf("not ready after a rejected reload: %v", err)
	}
}

func TestReloadRejectsWhatCannotBind(t *testing.T) {
	p := startProxy(t, oneNode(""))
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	bad := oneNode("") + strings.Replace(listenerTOML("second", []string{"n1"}, ""), "127.0.0.1:0", busy.Addr().String(), 1)
	err = p.Apply(parse(t, bad))
	if err == nil || !strings.Contains(err.Error(), "listener second") {
		t.Fatalf("want a bind error naming the listener, got %v", err)
	}
	if p.Addr("second") != nil || len(p.Config().Proxy.Config) != 1 {
		t.Fatal("a failed reload changed the running config")
	}
	if err := ping(p.dsn("main", "")); err != nil {
		t.Fatalf("proxy stopped serving after a rejected reload: %v", err)
	}
}

// TestReloadUnderLoad: ten reloads while clients run statements on a
// dedicated and a multiplexing listener, long-lived sessions (in and out
// of transactions) and new ones, each reload changing the circuit-break
// and concurrency-control rules, the pool size and the node list: no
// statement fails.
func TestReloadUnderLoad(t *testing.T) {
	cfgAt := func(i int) string {
		rules := fmt.Sprintf("[[proxy.config.plugin.circuit_break]]\nregex = [\"^DELETE FROM never_%d\"]\n"+
			"[[proxy.config.plugin.concurrency_control]]\nregex = [\"SLEEP\"]\nmax_concurrency = %d\nduration = 20\n", i, 2+i%3)
		nodes := []string{"n1"}
		if i%2 == 1 {
			nodes = []string{"n1", "n2"}
		}
		main := strings.Replace(listenerTOML("main", nodes, rules), "pool_size = 8", fmt.Sprintf("pool_size = %d", 6+i%3), 1)
		mux := listenerTOML("mux", nodes, "multiplex = true\n"+rules)
		return main + mux + nodeTOML("n1", backendDB, "") + nodeTOML("n2", backendDB, "")
	}
	p := startProxy(t, cfgAt(0))
	var (
		done       atomic.Int64
		stop       = make(chan struct{})
		errs       = make(chan error, 64)
		wg         sync.WaitGroup
		ctx        = context.Background()
		statements = []string{"SELECT 1", "SELECT SLEEP(0.001)", "SELECT COUNT(*) FROM information_schema.SCHEMATA"}
	)
	report := func(who string, err error) {
		select {
		case errs <- fmt.Errorf("%s: %w", who, err):
		default:
		}
	}
	for _, name := range []string{"main", "mux"} {
		for w, c := range conns(t, p.db(t, name, ""), 4) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				who := fmt.Sprintf("%s session %d", name, w)
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					var err error
					if i%5 == 4 {
						err = inTx(ctx, c, statements[i%len(statements)])
					} else {
						_, err = c.ExecContext(ctx, statements[i%len(statements)])
					}
					if err != nil {
						report(who, err)
						return
					}
					done.Add(1)
				}
			}()
		}
		fresh := openDB(t, p.dsn(name, ""))
		fresh.SetMaxIdleConns(0) // a new session per statement
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := fresh.ExecContext(ctx, "SELECT 2"); err != nil {
					report(name+" new session", err)
					return
				}
				done.Add(1)
			}
		}()
	}
	for i := 1; i <= 10; i++ {
		before := done.Load()
		waitFor(t, 10*time.Second, "statements between reloads", func() bool { return done.Load() >= before+50 || len(errs) > 0 })
		if err := p.Apply(parse(t, cfgAt(i))); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	before := done.Load()
	waitFor(t, 10*time.Second, "statements after the last reload", func() bool { return done.Load() >= before+50 || len(errs) > 0 })
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a statement failed across the reloads: %v", err)
	}
	t.Logf("%d statements across 10 reloads", done.Load())
}

// inTx runs q in a transaction on c.
func inTx(ctx context.Context, c *sql.Conn, q string) error {
	tx, err := c.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, q); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}
