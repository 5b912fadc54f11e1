package supervisor_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCircuitBreak(t *testing.T) {
	extra := "[[proxy.config.plugin.circuit_break]]\nregex = [\"^DELETE\\\\s+FROM\\\\s+guarded\"]\ncase_insensitive = true\n"
	p := startProxy(t, oneNode(extra))
	db := p.db(t, "main", "")
	mustExec(t, db, "CREATE OR REPLACE TABLE guarded (id INT)", "INSERT INTO guarded VALUES (1)")
	_, err := db.Exec("delete from guarded")
	me := mysqlErr(err)
	if me == nil || me.Number != 1047 || string(me.SQLState[:]) != "08S01" || !strings.Contains(me.Message, "circuit_break") {
		t.Fatalf("want 1047/08S01 naming the rule, got %v", err)
	}
	if got := queryString(t, db, "SELECT COUNT(*) FROM guarded"); got != "1" {
		t.Fatal("the rejected statement reached the backend")
	}
	// Prepared statements are checked at prepare.
	if _, err := db.Prepare("DELETE FROM guarded WHERE id = ?"); mysqlErr(err) == nil || mysqlErr(err).Number != 1047 {
		t.Fatalf("prepare: want 1047, got %v", err)
	}
	if len(p.metric(t, `pisa_proxy_plugin_rejections_total{domain="main",plugin="circuit_break"} 2`)) != 1 {
		t.Fatal("rejections not counted")
	}
}

func TestConcurrencyControl(t *testing.T) {
	extra := "[[proxy.config.plugin.concurrency_control]]\nregex = [\"SLEEP\"]\nmax_concurrency = 2\nduration = 1\n"
	p := startProxy(t, oneNode(extra))
	db := p.db(t, "main", "")
	db.SetMaxOpenConns(10)
	// Four statements of 1.5 s against a limit of 2 with a 1 s wait: two run,
	// two give up after waiting 1 s.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := db.ExecContext(context.Background(), "SELECT SLEEP(1.5)")
			errs <- err
		}()
	}
	// Unmatched statements are not limited meanwhile.
	waitFor(t, 5*time.Second, "two sleeps running", func() bool {
		var n int
		_ = backendDB.RootDB().QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(1.5)'").Scan(&n)
		return n == 2
	})
	if got := queryString(t, db, "SELECT 'free'"); got != "free" {
		t.Fatal(got)
	}
	wg.Wait()
	close(errs)
	ok, rejected := 0, 0
	for err := range errs {
		switch me := mysqlErr(err); {
		case err == nil:
			ok++
		case me != nil && me.Number == 1047 && strings.Contains(me.Message, "concurrency_control"):
			rejected++
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if ok != 2 || rejected != 2 {
		t.Fatalf("%d ran, %d rejected; want 2 and 2", ok, rejected)
	}
	if len(p.metric(t, `pisa_proxy_concurrency_wait_seconds_count{domain="main"} 4`)) != 1 {
		t.Fatal("admission waits not observed")
	}
}

func TestRateLimitPerUser(t *testing.T) {
	extra := "[[proxy.config.plugin.rate_limit]]\nuser = \"app\"\nrate = 2\nburst = 2\n"
	p := startProxy(t, oneNode(extra))
	c := pinnedConn(t, p.db(t, "main", "")) // the SET in pinnedConn takes one token
	rejected := 0
	for range 5 {
		_, err := c.ExecContext(context.Background(), "SELECT 1")
		if me := mysqlErr(err); me != nil && me.Number == 1047 && strings.Contains(me.Message, "rate_limit") {
			rejected++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if rejected < 3 {
		t.Fatalf("only %d of 5 statements over a 2/s, burst 2 limit were rejected", rejected)
	}
	if len(p.metric(t, `pisa_proxy_plugin_rejections_total{domain="main",plugin="rate_limit"}`)) != 1 {
		t.Fatal("rate limit rejections not counted")
	}
}

func TestStatementFuse(t *testing.T) {
	extra := "[proxy.config.plugin.fuse]\nerrors = 3\nwindow = \"10s\"\ncool_down = \"500ms\"\n"
	p := startProxy(t, oneNode(extra))
	db := p.db(t, "main", "")
	mustExec(t, db, "DROP TABLE IF EXISTS fused")
	// Three failures of one fingerprint (different literals) open its fuse.
	for i := range 3 {
		_, err := db.Exec(fmt.Sprintf("SELECT v FROM fused WHERE id = %d", i))
		if me := mysqlErr(err); me == nil || me.Number != 1146 {
			t.Fatalf("want the backend's 1146, got %v", err)
		}
	}
	waitFor(t, 5*time.Second, "fuse open", func() bool {
		_, err := db.Exec("SELECT v FROM fused WHERE id = 99")
		me := mysqlErr(err)
		return me != nil && me.Number == 1047 && strings.Contains(me.Message, "fuse")
	})
	if got := queryString(t, db, "SELECT 'other statements pass'"); got != "other statements pass" {
		t.Fatal(got)
	}
	// After the cool-down one statement is let through; success closes it.
	mustExec(t, db, "CREATE TABLE fused (id INT, v INT)")
	waitFor(t, 5*time.Second, "fuse closed again", func() bool {
		_, err := db.Exec("SELECT v FROM fused WHERE id = 7")
		return err == nil
	})
	for range 5 {
		if _, err := db.Exec("SELECT v FROM fused WHERE id = 8"); err != nil {
			t.Fatalf("after recovery: %v", err)
		}
	}
}

func TestFingerprintRuleEndToEnd(t *testing.T) {
	extra := "[[proxy.config.plugin.circuit_break]]\nfingerprint = [\"DELETE FROM guarded2 WHERE id = 1\"]\n"
	p := startProxy(t, oneNode(extra))
	db := p.db(t, "main", "")
	mustExec(t, db, "CREATE OR REPLACE TABLE guarded2 (id INT)", "INSERT INTO guarded2 VALUES (5)")
	_, err := db.Exec("delete from guarded2 where id = 5")
	if me := mysqlErr(err); me == nil || me.Number != 1047 || !strings.Contains(me.Message, "fingerprint") {
		t.Fatalf("want 1047 naming the fingerprint rule, got %v", err)
	}
	mustExec(t, db, "DELETE FROM guarded2 WHERE id > 100") // another fingerprint
	if got := queryString(t, db, "SELECT COUNT(*) FROM guarded2"); got != "1" {
		t.Fatal("the rejected DELETE reached the backend")
	}
}

// A reload that leaves the plugin rules as they were keeps the statements
// waiting in concurrency control: they run when a slot frees, instead of
// being refused (1047) by a rebuilt limiter.
func TestReloadKeepsConcurrencyWaiters(t *testing.T) {
	extra := "[[proxy.config.plugin.concurrency_control]]\nregex = [\"SLEEP\"]\nmax_concurrency = 1\nduration = 20\n"
	p := startProxy(t, oneNode(extra))
	db := p.db(t, "main", "")
	errs := make(chan error, 2)
	for _, q := range []string{"SELECT SLEEP(1)", "SELECT SLEEP(0.1)"} {
		go func() {
			_, err := db.ExecContext(context.Background(), q)
			errs <- err
		}()
		if q == "SELECT SLEEP(1)" {
			waitFor(t, 5*time.Second, "the first sleep running", func() bool {
				return queryString(t, backendDB.RootDB(), "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(1)'") == "1"
			})
		}
	}
	waitFor(t, 5*time.Second, "the second sleep waiting", func() bool {
		return len(p.metric(t, `pisa_proxy_concurrency_waiting{domain="main"} 1`)) == 1
	})
	if err := p.Apply(parse(t, oneNode("max_connections = 500\n"+extra))); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("a statement failed across the reload: %v", err)
		}
	}
}
