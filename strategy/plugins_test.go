package strategy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"pisanix.io/pisanix/actors"
	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/metrics"
	"pisanix.io/pisanix/sqlinfo"
)

func testPlugins(t testing.TB, p *config.Plugin) *Plugins {
	sys := actors.NewSystem(slog.New(slog.NewTextHandler(io.Discard, nil)), metrics.New())
	t.Cleanup(sys.Shutdown)
	pl, err := NewPlugins(sys, sys.Root, "t", p, 1)
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

func TestLimiterQueuesAndReleases(t *testing.T) {
	pl := testPlugins(t, &config.Plugin{ConcurrencyControl: []config.ConcurrencyControl{{Regex: []string{"^SELECT"}, MaxConcurrency: 1, Duration: 5}}})
	rel1, err := pl.Admit(context.Background(), "u", []byte("SELECT 1"), "")
	if err != nil || rel1 == nil {
		t.Fatalf("first: %v", err)
	}
	got := make(chan error, 1)
	go func() {
		rel2, err := pl.Admit(context.Background(), "u", []byte("SELECT 2"), "")
		if rel2 != nil {
			rel2()
		}
		got <- err
	}()
	if rel, err := pl.Admit(context.Background(), "u", []byte("UPDATE t SET a=1"), ""); err != nil || rel != nil {
		t.Fatalf("unmatched statements pass without a slot: %v", err)
	}
	rel1() // hands the slot to the waiter
	if err := <-got; err != nil {
		t.Fatalf("queued statement: %v", err)
	}
}

func hundredRules(b *testing.B) *Plugins {
	var rules []config.CircuitBreak
	for i := range 100 {
		rules = append(rules, config.CircuitBreak{Regex: []string{fmt.Sprintf(`^DELETE\s+FROM\s+t%d\b`, i)}})
	}
	return testPlugins(b, &config.Plugin{CircuitBreak: rules})
}

// BenchmarkCircuitBreak100Rules: a point select against 100 regex rules
// that match none of it (the common case).
func BenchmarkCircuitBreak100Rules(b *testing.B) {
	pl := hundredRules(b)
	sql := []byte("SELECT c FROM sbtest1 WHERE id=4711")
	b.ReportAllocs()
	for b.Loop() {
		if err := pl.Check(sql, ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCircuitBreak100RulesNoMatch: a longer statement sharing the
// rules' words (DELETE, FROM) but matching none of them.
func BenchmarkCircuitBreak100RulesNoMatch(b *testing.B) {
	pl := hundredRules(b)
	sql := []byte("DELETE FROM sbtest1 WHERE id BETWEEN 4711 AND 4810 AND k = 5012 AND c LIKE '%68487932199-96439406143%'")
	b.ReportAllocs()
	for b.Loop() {
		if err := pl.Check(sql, ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCircuitBreak100RulesLastRule: the statement matches only the
// last rule (the rejection itself allocates its message).
func BenchmarkCircuitBreak100RulesLastRule(b *testing.B) {
	pl := hundredRules(b)
	sql := []byte("DELETE FROM t99 WHERE id=4711")
	b.ReportAllocs()
	for b.Loop() {
		if err := pl.Check(sql, ""); err == nil {
			b.Fatal("not rejected")
		}
	}
}

// BenchmarkConcurrencyAdmit is the round trip a statement matching a
// concurrency rule pays: admission and release through the limiter actor.
func BenchmarkConcurrencyAdmit(b *testing.B) {
	pl := testPlugins(b, &config.Plugin{ConcurrencyControl: []config.ConcurrencyControl{{Regex: []string{"^SELECT"}, MaxConcurrency: 64, Duration: 1}}})
	sql := []byte("SELECT 1")
	b.ReportAllocs()
	for b.Loop() {
		rel, err := pl.Admit(context.Background(), "u", sql, "")
		if err != nil {
			b.Fatal(err)
		}
		rel()
	}
}

func TestRateLimit(t *testing.T) {
	pl := testPlugins(t, &config.Plugin{RateLimit: []config.RateLimit{
		{Regex: []string{"^SELECT"}, Rate: 1, Burst: 2},
		{User: "batch", Rate: 1000, Burst: 1},
	}})
	ctx := context.Background()
	passed := 0
	for range 5 {
		if _, err := pl.Admit(ctx, "u", []byte("SELECT 1"), ""); err == nil {
			passed++
		} else if rej, ok := err.(*Rejected); !ok || rej.Plugin != "rate_limit" {
			t.Fatalf("want a rate_limit rejection, got %v", err)
		}
	}
	if passed != 2 {
		t.Fatalf("burst 2: %d of 5 passed", passed)
	}
	if _, err := pl.Admit(ctx, "u", []byte("UPDATE t SET a = 1"), ""); err != nil {
		t.Fatalf("unmatched statement limited: %v", err)
	}
	// A per-user bucket with max_wait 0 rejects its user's second statement only.
	_, _ = pl.Admit(ctx, "batch", []byte("UPDATE t SET a = 1"), "")
	if _, err := pl.Admit(ctx, "batch", []byte("UPDATE t SET a = 2"), ""); err == nil {
		t.Fatal("user bucket not applied")
	}
	if _, err := pl.Admit(ctx, "other", []byte("UPDATE t SET a = 3"), ""); err != nil {
		t.Fatalf("another user limited by batch's bucket: %v", err)
	}
}

func TestRateLimitWaits(t *testing.T) {
	pl := testPlugins(t, &config.Plugin{RateLimit: []config.RateLimit{{Rate: 20, Burst: 1, MaxWait: config.Duration(time.Second)}}})
	start := time.Now()
	for range 3 {
		if _, err := pl.Admit(context.Background(), "u", []byte("SELECT 1"), ""); err != nil {
			t.Fatal(err)
		}
	}
	// Burst 1 at 20/s: the 2nd and 3rd wait about 50 ms each.
	if d := time.Since(start); d < 80*time.Millisecond || d > 900*time.Millisecond {
		t.Fatalf("3 statements took %s, want ~100ms of waiting", d)
	}
}

func TestFingerprintCircuitBreak(t *testing.T) {
	pl := testPlugins(t, &config.Plugin{CircuitBreak: []config.CircuitBreak{{Fingerprint: []string{"SELECT * FROM orders WHERE id = 1"}}}})
	blocked := sqlinfo.Classify([]byte("select *  from orders where id = 987"), "db")
	if err := pl.Check([]byte("select *  from orders where id = 987"), blocked.Digest); err == nil {
		t.Fatal("same fingerprint, other literal: must be rejected")
	}
	other := sqlinfo.Classify([]byte("SELECT * FROM orders WHERE customer = 1"), "db")
	if err := pl.Check([]byte("SELECT * FROM orders WHERE customer = 1"), other.Digest); err != nil {
		t.Fatalf("other fingerprint rejected: %v", err)
	}
}

// TestCircuitBreakNamesFirstRule: of several matching rules the error
// names the first configured, as the rule-by-rule loop did.
func TestCircuitBreakNamesFirstRule(t *testing.T) {
	pl := testPlugins(t, &config.Plugin{CircuitBreak: []config.CircuitBreak{
		{Regex: []string{`^UPDATE`, `sleep\(`}},
		{Regex: []string{`^select .* from secret`}, CaseInsensitive: true},
		{Regex: []string{`FROM`}},
	}})
	for sql, want := range map[string]string{
		"SELECT a FROM secret":        `^select .* from secret`,
		"select sleep(1) from secret": `sleep\(`,
		"DELETE FROM t":               `FROM`,
		"select a from t":             "",
	} {
		err := pl.Check([]byte(sql), "")
		if want == "" {
			if err != nil {
				t.Errorf("%q: %v", sql, err)
			}
			continue
		}
		if err == nil || err.Error() != fmt.Sprintf("pisa-proxy: statement rejected by circuit_break rule %q", want) {
			t.Errorf("%q: got %v, want rule %q", sql, err, want)
		}
	}
}

// TestEveryMatchingLimiterHeld: a statement holds a slot of each
// concurrency rule it matches, not only the first.
func TestEveryMatchingLimiterHeld(t *testing.T) {
	pl := testPlugins(t, &config.Plugin{ConcurrencyControl: []config.ConcurrencyControl{
		{Regex: []string{"^SELECT"}, MaxConcurrency: 1, Duration: 5},
		{Regex: []string{"^INSERT", "sbtest"}, MaxConcurrency: 1, Duration: 5},
	}})
	rel, err := pl.Admit(context.Background(), "u", []byte("SELECT c FROM sbtest1"), "")
	if err != nil || rel == nil {
		t.Fatalf("first: %v", err)
	}
	for _, sql := range []string{"SELECT 1", "UPDATE sbtest1 SET c = 1"} {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		if _, err := pl.Admit(ctx, "u", []byte(sql), ""); err == nil {
			t.Errorf("%q admitted while its rule's slot is held", sql)
		}
		cancel()
	}
	rel()
	rel2, err := pl.Admit(context.Background(), "u", []byte("UPDATE sbtest1 SET c = 1"), "")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	rel2()
}

// TestRateRulesInOrder: regexp rules that do not match are skipped, the
// others (and rules without regexps) still apply in order.
func TestRateRulesInOrder(t *testing.T) {
	pl := testPlugins(t, &config.Plugin{RateLimit: []config.RateLimit{
		{Regex: []string{"^UPDATE"}, Rate: 0.001, Burst: 1},
		{User: "batch", Rate: 0.001, Burst: 1},
		{Regex: []string{"^SELECT", "sbtest"}, Rate: 0.001, Burst: 1},
	}})
	ctx := context.Background()
	for _, step := range []struct {
		user, sql string
		ok        bool
	}{
		{"u", "SELECT 1", true},
		{"u", "DELETE FROM sbtest1", false}, // rule 3, by its second regexp
		{"u", "UPDATE t SET a = 1", true},
		{"u", "UPDATE t SET a = 2", false},
		{"batch", "DELETE FROM t", true},
		{"batch", "DELETE FROM t", false},
		{"u", "DELETE FROM t", true},
	} {
		_, err := pl.Admit(ctx, step.user, []byte(step.sql), "")
		if (err == nil) != step.ok {
			t.Errorf("%s %q: err %v, want ok=%v", step.user, step.sql, err, step.ok)
		}
	}
}
