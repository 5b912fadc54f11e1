package strategy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"pisanix.io/pisanix/actors"
	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/metrics"
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
	rel1, err := pl.Admit(context.Background(), []byte("SELECT 1"))
	if err != nil || rel1 == nil {
		t.Fatalf("first: %v", err)
	}
	got := make(chan error, 1)
	go func() {
		rel2, err := pl.Admit(context.Background(), []byte("SELECT 2"))
		if rel2 != nil {
			rel2()
		}
		got <- err
	}()
	if rel, err := pl.Admit(context.Background(), []byte("UPDATE t SET a=1")); err != nil || rel != nil {
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
		if err := pl.Check(sql); err != nil {
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
		rel, err := pl.Admit(context.Background(), sql)
		if err != nil {
			b.Fatal(err)
		}
		rel()
	}
}
