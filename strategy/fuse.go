package strategy

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/sony/gobreaker/v2"
	"pisanix.io/pisanix/actors"
	"pisanix.io/pisanix/config"
)

// maxFuses bounds the fingerprints the fuse tracks; past it, the oldest
// quiet ones are forgotten.
const maxFuses = 10000

// Fuse is an error-rate circuit breaker per statement fingerprint: when a
// fingerprint fails (an error, or slower than Slow) Errors times within
// Window, its statements are rejected for CoolDown, then let through
// half-open until one succeeds (closed) or fails (open again). One
// gobreaker per fingerprint, owned by the fuse actor; sessions read the
// published set of open and probing fingerprints and report only failures
// (and outcomes while probing), fire and forget.
type Fuse struct {
	sys   *actors.System
	pid   *actor.PID
	slow  time.Duration
	state atomic.Pointer[map[string]gobreaker.State]
}

// FuseReport is one outcome of a fingerprint.
type FuseReport struct {
	Digest, Fingerprint string
	Failed              bool
}

// NewFuse spawns the fuse actor; nil when cfg is nil.
func NewFuse(sys *actors.System, parent actor.SpawnerContext, name, tenant string, cfg *config.Fuse) (*Fuse, error) {
	if cfg == nil {
		return nil, nil
	}
	f := &Fuse{sys: sys, slow: cfg.Slow.D()}
	empty := map[string]gobreaker.State{}
	f.state.Store(&empty)
	props := sys.Props("fuse", func() actor.Actor { return &fuseActor{f: f, cfg: *cfg, tenant: tenant} })
	pid, err := parent.SpawnNamed(props, name)
	if err != nil {
		return nil, fmt.Errorf("spawn fuse: %w", err)
	}
	f.pid = pid
	return f, nil
}

// PID is the fuse actor.
func (f *Fuse) PID() *actor.PID { return f.pid }

// Check rejects a statement whose fingerprint's fuse is open.
// hot path: one map lookup in the published snapshot.
func (f *Fuse) Check(digest, fingerprint string) error {
	if f == nil {
		return nil
	}
	if (*f.state.Load())[digest] == gobreaker.StateOpen {
		return &Rejected{Plugin: "fuse", Reason: fmt.Sprintf("pisa-proxy: fuse open for statements like %q after repeated errors; retry later", fingerprint)}
	}
	return nil
}

// Observe reports an outcome when it matters to the fuse: a failure, or
// any outcome while the fingerprint is probing.
func (f *Fuse) Observe(digest, fingerprint string, errCode uint16, took time.Duration) {
	if f == nil || digest == "" {
		return
	}
	failed := errCode != 0 || (f.slow > 0 && took > f.slow)
	if failed || (*f.state.Load())[digest] == gobreaker.StateHalfOpen {
		f.sys.Root.Send(f.pid, &FuseReport{Digest: digest, Fingerprint: fingerprint, Failed: failed})
	}
}

type fuseTick struct{}

type fuseActor struct {
	f      *Fuse
	cfg    config.Fuse
	tenant string
	cbs    map[string]*gobreaker.TwoStepCircuitBreaker[struct{}]
	seen   map[string]time.Time
	cancel func()
}

func (a *fuseActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.cbs, a.seen = map[string]*gobreaker.TwoStepCircuitBreaker[struct{}]{}, map[string]time.Time{}
		a.startTicker(ctx)
	case *actor.Stopping, *actor.Restarting:
		if a.cancel != nil {
			a.cancel()
		}
	case *FuseReport:
		a.report(m)
	case *fuseTick:
		a.tick()
	case *actors.Failure:
		actors.Reraise(m)
	}
}

func (a *fuseActor) startTicker(ctx actor.Context) {
	every := max(a.cfg.CoolDown.D()/4, 100*time.Millisecond)
	a.cancel = a.f.sys.Tick(ctx.Self(), "fuse", every, func() any { return &fuseTick{} })
}

func (a *fuseActor) report(m *FuseReport) {
	cb, ok := a.cbs[m.Digest]
	if !ok {
		if !m.Failed {
			return
		}
		if len(a.cbs) >= maxFuses {
			a.forgetQuiet()
		}
		cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
			Name: m.Fingerprint, MaxRequests: 1, Interval: a.cfg.Window.D(), Timeout: a.cfg.CoolDown.D(),
			ReadyToTrip: func(c gobreaker.Counts) bool { return int(c.TotalFailures) >= a.cfg.Errors },
		})
		a.cbs[m.Digest] = cb
	}
	a.seen[m.Digest] = time.Now()
	before := cb.State()
	if done, err := cb.Allow(); err == nil {
		var outcome error
		if m.Failed {
			outcome = errFailedStatement
		}
		done(outcome)
	}
	if after := cb.State(); after != before {
		a.f.sys.Log.Warn("statement fuse changed", "tenant", a.tenant, "fingerprint", m.Fingerprint, "from", before.String(), "to", after.String())
		a.publish()
	}
}

var errFailedStatement = fmt.Errorf("statement failed")

// tick republishes when a fuse moved on its own: gobreaker turns open into
// half-open lazily, when State is read after the cool-down.
func (a *fuseActor) tick() {
	cur := *a.f.state.Load()
	for d, cb := range a.cbs {
		st := cb.State()
		if prev, ok := cur[d]; (ok && prev != st) || (!ok && st != gobreaker.StateClosed) {
			a.publish()
			return
		}
	}
}

func (a *fuseActor) publish() {
	next := map[string]gobreaker.State{}
	for d, cb := range a.cbs {
		if st := cb.State(); st != gobreaker.StateClosed {
			next[d] = st
		}
	}
	a.f.state.Store(&next)
	a.f.sys.Metrics.FusesOpen.WithLabelValues(a.tenant).Set(float64(len(next)))
}

// forgetQuiet drops closed breakers not seen for a window, or the oldest.
func (a *fuseActor) forgetQuiet() {
	oldest, when := "", time.Now()
	for d, t := range a.seen {
		if a.cbs[d].State() == gobreaker.StateClosed && time.Since(t) > a.cfg.Window.D() {
			delete(a.cbs, d)
			delete(a.seen, d)
			continue
		}
		if t.Before(when) {
			oldest, when = d, t
		}
	}
	if len(a.cbs) >= maxFuses && oldest != "" {
		delete(a.cbs, oldest)
		delete(a.seen, oldest)
	}
}
