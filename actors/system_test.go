package actors

import (
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"pisanix.io/pisanix/metrics"
)

type ask struct{ reply chan int }

type echo struct{}

func (echo) Receive(ctx actor.Context) {
	if m, ok := ctx.Message().(*ask); ok {
		m.reply <- 1
	}
}

func newTestSystem(t testing.TB) *System {
	sys := NewSystem(slog.New(slog.NewTextHandler(io.Discard, nil)), metrics.New())
	t.Cleanup(sys.Shutdown)
	return sys
}

// BenchmarkActorRoundTrip is the cost of one request/response hop through an
// actor's mailbox with a channel reply: what a session pays once, at start,
// when no pooled backend connection is idle.
func BenchmarkActorRoundTrip(b *testing.B) {
	sys := newTestSystem(b)
	pid := sys.Root.Spawn(sys.Props("echo", func() actor.Actor { return echo{} }))
	reply := make(chan int, 1)
	b.ReportAllocs()
	for b.Loop() {
		sys.Root.Send(pid, &ask{reply: reply})
		<-reply
	}
}

type failer struct{ started chan struct{} }

func (f *failer) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		f.started <- struct{}{}
	case *Failure:
		Reraise(m)
	}
}

// A panic in a goroutine started with Go reaches the actor's supervisor,
// which restarts the actor and counts the failure by kind.
func TestGoPanicReachesSupervisor(t *testing.T) {
	sys := newTestSystem(t)
	started := make(chan struct{}, 4)
	sys.Root.Spawn(sys.Props("parent", func() actor.Actor { return &spawner{started: started, sys: sys} },
		actor.WithSupervisor(sys.Strategy(actor.RestartDirective, 3, time.Minute))))
	<-started // first start
	<-started // restarted after the goroutine's panic
	if n := testutil.ToFloat64(sys.Metrics.ActorRestarts.WithLabelValues("worker", "RestartDirective")); n != 1 {
		t.Fatalf("failures counted: %v, want 1", n)
	}
}

type spawner struct {
	sys     *System
	started chan struct{}
}

func (s *spawner) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*actor.Started); ok {
		pid := ctx.Spawn(s.sys.Props("worker", func() actor.Actor { return &failer{started: s.started} }))
		s.sys.Go(pid, "worker", func() { panic("boom") })
	}
}

// A session actor costs a few KiB, not a 4,096-slot mailbox (96 KiB): an
// idle client connection must stay cheap.
func TestSessionActorMemory(t *testing.T) {
	sys := newTestSystem(t)
	const n = 1000
	pids := make([]*actor.PID, 0, n)
	props := sys.Props("session", func() actor.Actor { return echo{} })
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		pids = append(pids, sys.Root.Spawn(props))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	t.Logf("%d bytes of heap per session actor", per)
	if per > 8<<10 {
		t.Fatalf("%d bytes of heap per session actor, want at most 8 KiB", per)
	}
	for _, pid := range pids {
		sys.Root.Stop(pid)
	}
}

type boom struct{}

type fragile struct{ started chan struct{} }

func (f *fragile) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		f.started <- struct{}{}
	case boom:
		panic("boom")
	}
}

// A top-level actor (the root supervisor, admin) that fails is restarted
// and counted like any other.
func TestTopLevelRestartsCounted(t *testing.T) {
	sys := newTestSystem(t)
	started := make(chan struct{}, 4)
	pid := sys.Root.Spawn(sys.Props("top", func() actor.Actor { return &fragile{started: started} }))
	<-started
	sys.Root.Send(pid, boom{})
	select {
	case <-started: // restarted
	case <-time.After(5 * time.Second):
		t.Fatal("the top-level actor was not restarted")
	}
	if got := testutil.ToFloat64(sys.Metrics.ActorRestarts.WithLabelValues("top", "RestartDirective")); got != 1 {
		t.Fatalf("restarts counted: %v, want 1", got)
	}
}
