package actors

import (
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
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

type gate struct {
	entered, release, done chan struct{}
}

type hold struct{}
type tick struct{}

func (g *gate) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case hold:
		g.entered <- struct{}{}
		<-g.release
	case tick:
		g.done <- struct{}{}
	}
}

// histogram reads the sample count and sum of one histogram series.
func histogram(t *testing.T, o prometheus.Observer) (uint64, float64) {
	t.Helper()
	var m dto.Metric
	if err := o.(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

// Messages queued behind a slow receive are timed as waiting, the slow
// receive as receiving; messages to a stopped actor count as dead letters.
func TestMailboxWaitReceiveAndDeadLetters(t *testing.T) {
	sys := newTestSystem(t)
	g := &gate{entered: make(chan struct{}, 1), release: make(chan struct{}), done: make(chan struct{}, 3)}
	pid := sys.Root.Spawn(sys.Props("gated", func() actor.Actor { return g }))
	sys.Root.Send(pid, hold{})
	<-g.entered
	for range 3 {
		sys.Root.Send(pid, tick{})
	}
	const held = 20 * time.Millisecond
	time.Sleep(held) // not synchronisation: the time measured (ticks queued, hold receiving)
	close(g.release)
	for range 3 {
		<-g.done
	}
	wait := sys.Metrics.ActorWait.WithLabelValues("gated")
	receive := sys.Metrics.ActorReceive.WithLabelValues("gated")
	// The last tick's receive may still be timing after it signalled done.
	if err := sys.Root.StopFuture(pid).Wait(); err != nil {
		t.Fatal(err)
	}
	if n, sum := histogram(t, wait); n != 4 || sum < 3*held.Seconds() {
		t.Errorf("mailbox wait: %d samples summing %.3fs, want 4 (hold and 3 ticks) and >= %.3fs", n, sum, 3*held.Seconds())
	}
	if n, sum := histogram(t, receive); n != 4 || sum < held.Seconds() {
		t.Errorf("receive: %d samples summing %.3fs, want 4 and >= %.3fs (the held receive)", n, sum, held.Seconds())
	}
	if d := testutil.ToFloat64(sys.Metrics.ActorMailbox.WithLabelValues("gated")); d != 0 {
		t.Errorf("mailbox depth %v after the actor stopped, want 0", d)
	}

	sys.Root.Send(pid, tick{})
	if n := testutil.ToFloat64(sys.Metrics.DeadLetters.WithLabelValues("actors.tick")); n != 1 {
		t.Errorf("dead letters of actors.tick: %v, want 1", n)
	}
}

// A child that keeps failing is restarted up to the limit and then
// stopped, and the counts say so (protoactor's own strategy reports
// "restart" for the stop too).
func TestRestartsPastTheLimitCountAsStop(t *testing.T) {
	sys := newTestSystem(t)
	started := make(chan struct{}, 8)
	spawned := make(chan *actor.PID, 1)
	sys.Root.Spawn(sys.Props("parent", func() actor.Actor {
		return actor.ReceiveFunc(func(ctx actor.Context) {
			if _, ok := ctx.Message().(*actor.Started); ok {
				spawned <- ctx.Spawn(sys.Props("child", func() actor.Actor { return &fragile{started: started} }))
			}
		})
	}, actor.WithSupervisor(sys.Strategy(actor.RestartDirective, 2, time.Minute))))
	child := <-spawned
	<-started
	restarts := sys.Metrics.ActorRestarts.WithLabelValues("child", "RestartDirective")
	stops := sys.Metrics.ActorRestarts.WithLabelValues("child", "StopDirective")
	for i := range 3 {
		sys.Root.Send(child, boom{})
		if i < 2 {
			select {
			case <-started:
			case <-time.After(5 * time.Second):
				t.Fatalf("failure %d: not restarted", i+1)
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(stops) != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling a counter, no event to await
	}
	if r, s := testutil.ToFloat64(restarts), testutil.ToFloat64(stops); r != 2 || s != 1 {
		t.Fatalf("counted %v restarts and %v stops; want 2 and 1", r, s)
	}
}
