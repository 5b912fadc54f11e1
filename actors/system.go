// Package actors sets up the protoactor-go actor system for this process:
// logging through slog, bounded mailboxes with depth metrics, a receive
// middleware that counts messages and tags failures with the actor's kind,
// and supervisor strategies that count every failure.
package actors

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"pisanix.io/pisanix/metrics"
)

// MailboxSize bounds the mailboxes of actors on the statement path
// (admission, audit). Senders block when it is full, which back-pressures
// them rather than growing memory. The bounded mailbox preallocates its
// ring (24 bytes a slot), so kinds that get few messages get few slots:
// 4,096 slots cost every session 96 KiB.
const MailboxSize = 4096

// mailboxSize is the mailbox bound of an actor kind.
func mailboxSize(kind string) int {
	switch kind {
	case "session":
		return 8 // its goroutine's end, a stop: a message or two in its life
	case "root", "tenant", "admin", "discovery":
		return 64 // configuration changes, restarts, probes
	case "listener", "pool", "balancer":
		return 1024 // per connection: accepts, acquires and releases, node reports
	}
	return MailboxSize
}

// Restarts allowed to a top-level actor within the window before it stops.
const (
	topRestarts      = 10
	topRestartWindow = time.Minute
)

// System is the process's actor system with its metrics and logger.
type System struct {
	*actor.ActorSystem
	Metrics *metrics.Proxy
	Log     *slog.Logger
}

// NewSystem starts an actor system that logs through log.
func NewSystem(log *slog.Logger, m *metrics.Proxy) *System {
	alog := log.With("component", "actor")
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return alog }))
	s := &System{ActorSystem: sys, Metrics: m, Log: log}
	// Top-level actors (the proxy's root supervisor, admin) restart under a
	// guardian that counts their failures like every other supervisor's.
	sys.Root.WithGuardian(s.Strategy(actor.RestartDirective, topRestarts, topRestartWindow))
	sys.EventStream.Subscribe(func(evt any) {
		if dl, ok := evt.(*actor.DeadLetterEvent); ok {
			m.DeadLetters.WithLabelValues(messageType(dl.Message)).Inc()
		}
	})
	return s
}

// Failure is the reason a supervisor sees: the panic value tagged with the
// kind of actor that failed.
type Failure struct {
	Kind   string
	Reason any
	Stack  []byte
}

func (f *Failure) Error() string { return fmt.Sprintf("%s actor failed: %v", f.Kind, f.Reason) }

// Props builds props for an actor of kind with the standard mailbox and
// middleware.
func (s *System) Props(kind string, producer actor.Producer, opts ...actor.PropsOption) *actor.Props {
	m := kindMetrics{
		depth:     s.Metrics.ActorMailbox.WithLabelValues(kind),
		processed: s.Metrics.ActorMessages.WithLabelValues(kind),
		wait:      s.Metrics.ActorWait.WithLabelValues(kind),
		receive:   s.Metrics.ActorReceive.WithLabelValues(kind),
	}
	base := []actor.PropsOption{
		actor.WithMailbox(timedMailbox(mailboxSize(kind), m)),
		actor.WithReceiverMiddleware(receiveMiddleware(kind, m.processed)),
	}
	return actor.PropsFromProducer(producer, append(base, opts...)...)
}

// Strategy is a one-for-one supervisor strategy applying directive to a
// failed child (restarts limited to maxRetries within a window, then stop)
// and counting each failure by kind and by what was done to the child.
func (s *System) Strategy(directive actor.Directive, maxRetries int, within time.Duration) actor.SupervisorStrategy {
	return &strategy{sys: s, directive: directive, maxRetries: maxRetries, within: within}
}

// strategy is protoactor's one-for-one strategy restated, so that what is
// counted and logged is what it does: a restart past the limit is a stop
// (protoactor's own strategy tells its decider "restart" either way).
type strategy struct {
	sys        *System
	directive  actor.Directive
	maxRetries int
	within     time.Duration
}

// HandleFailure implements actor.SupervisorStrategy.
func (st *strategy) HandleFailure(_ *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, rs *actor.RestartStatistics, reason, message any) {
	d := st.directive
	if d == actor.RestartDirective && st.exhausted(rs) {
		d = actor.StopDirective
	}
	kind := "unknown"
	if f, ok := reason.(*Failure); ok {
		kind = f.Kind
		st.sys.Log.Warn("actor failed", "kind", f.Kind, "reason", fmt.Sprint(f.Reason), "directive", d.String())
		st.sys.Log.Debug("actor failure stack", "kind", f.Kind, "stack", string(f.Stack))
	}
	st.sys.Metrics.ActorRestarts.WithLabelValues(kind, d.String()).Inc()
	switch d {
	case actor.ResumeDirective:
		sup.ResumeChildren(child)
	case actor.RestartDirective:
		sup.RestartChildren(child)
	case actor.StopDirective:
		sup.StopChildren(child)
	case actor.EscalateDirective:
		sup.EscalateFailure(reason, message)
	}
}

// exhausted records a failure and reports whether the child failed more
// than maxRetries times within the window.
func (st *strategy) exhausted(rs *actor.RestartStatistics) bool {
	if st.maxRetries == 0 {
		return true
	}
	rs.Fail()
	if rs.NumberOfFailures(st.within) > st.maxRetries {
		rs.Reset()
		return true
	}
	return false
}

func receiveMiddleware(kind string, processed interface{ Inc() }) actor.ReceiverMiddleware {
	return func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(ctx actor.ReceiverContext, env *actor.MessageEnvelope) {
			processed.Inc()
			defer func() {
				if r := recover(); r != nil {
					if _, tagged := r.(*Failure); !tagged {
						r = &Failure{Kind: kind, Reason: r, Stack: debug.Stack()}
					}
					panic(r) // the mailbox loop escalates it to the supervisor
				}
			}()
			injectFault(env.Message)
			next(ctx, env)
		}
	}
}

// Go runs f on a new goroutine owned by the actor self: a panic in f is
// captured and sent to self as a *Failure, which the actor re-raises inside
// Receive (see Reraise) so its supervisor decides, as protoactor only
// catches panics inside Receive.
func (s *System) Go(self *actor.PID, kind string, f func()) {
	go func() {
		defer func() {
			if r := recover(); r != nil {
				s.Root.Send(self, &Failure{Kind: kind, Reason: r, Stack: debug.Stack()})
			}
		}()
		f()
	}()
}

// Reraise panics with a failure a goroutine reported, inside Receive.
func Reraise(f *Failure) { panic(f) }

// Tick sends msg() to self every period from a goroutine owned by self
// (see Go), until the returned stop is called (from Stopping/Restarting).
func (s *System) Tick(self *actor.PID, kind string, every time.Duration, msg func() any) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	s.Go(self, kind, func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.Root.Send(self, msg())
			}
		}
	})
	return cancel
}
