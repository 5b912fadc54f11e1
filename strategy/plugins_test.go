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

func BenchmarkCircuitBreak100Rules(b *testing.B) {
	var rules []config.CircuitBreak
	for i := range 100 {
		rules = append(rules, config.CircuitBreak{Regex: []string{fmt.Sprintf(`^DELETE\s+FROM\s+t%d\b`, i)}})
	}
	pl := testPlugins(b, &config.Plugin{CircuitBreak: rules})
	sql := []byte("SELECT c FROM sbtest1 WHERE id=4711")
	b.ReportAllocs()
	for b.Loop() {
		if err := pl.Check(sql, ""); err != nil {
			b.Fatal(err)
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
