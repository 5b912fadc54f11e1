// Package supervisor owns the supervision tree of pisa-proxy: a root actor
// that also holds the configuration (validated elsewhere, diffed and fanned
// out here), with one tenant supervisor per listener (the crash isolation
// boundary), each supervising its backend pools, balancer and listener,
// which in turn supervises one actor per client session.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"pisanix.io/pisanix/actors"
	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/session"
)

// Proxy is a running pisa-proxy data plane.
type Proxy struct {
	sys      *actors.System
	log      *slog.Logger
	root     *actor.PID
	Registry *session.Registry
	draining atomic.Bool
	stopOnce sync.Once
	stopErr  error
	// failed: listeners whose tenant stopped for good, with the reason.
	failedMu sync.Mutex
	failed   map[string]string
	// state is the root actor's latest published view, for Addr, Ready and Config.
	state atomic.Pointer[state]
}

// state is an immutable view of what runs.
type state struct {
	cfg     *config.Config
	tenants map[string]*tenant
}

// Start binds every listener (so a bad address fails here, before anything
// serves) and starts the supervision tree.
func Start(cfg *config.Config, sys *actors.System, log *slog.Logger) (*Proxy, error) {
	p := &Proxy{sys: sys, log: log, Registry: session.NewRegistry()}
	pl, err := p.build(cfg, nil)
	if err != nil {
		return nil, err
	}
	p.state.Store(&state{cfg: cfg, tenants: pl.fresh})
	props := sys.Props("root", func() actor.Actor { return &rootActor{p: p} },
		actor.WithSupervisor(sys.Strategy(actor.RestartDirective, maxRestarts, restartWindow)))
	root, err := sys.Root.SpawnNamed(props, "pisa-proxy")
	if err != nil {
		closeAll(pl.fresh)
		return nil, fmt.Errorf("spawn root supervisor: %w", err)
	}
	p.root = root
	return p, nil
}

// plan is what a configuration needs: tenants to start (sockets already
// bound) and running tenants to hand a new spec.
type plan struct {
	fresh map[string]*tenant
	keep  map[string]spec
}

// build plans cfg against the running tenants (nil at start). On error
// nothing new is left bound.
func (p *Proxy) build(cfg *config.Config, running map[string]*tenant) (plan, error) {
	pl := plan{fresh: map[string]*tenant{}, keep: map[string]spec{}}
	for _, l := range cfg.Proxy.Config {
		sp, err := specFor(cfg, l)
		if err != nil {
			closeAll(pl.fresh)
			return plan{}, err
		}
		if t, ok := running[l.Name]; ok && sameAddr(t, l.ListenAddr) {
			pl.keep[l.Name] = sp
			continue
		}
		ln, err := net.Listen("tcp", l.ListenAddr)
		if err != nil {
			closeAll(pl.fresh)
			return plan{}, fmt.Errorf("listener %s: %w", l.Name, err)
		}
		lis := &listener{ln: ln}
		lis.maxConns.Store(int32(l.MaxConnections))
		pl.fresh[l.Name] = newTenant(sp, lis, p.Registry, p.sys, p.log)
	}
	return pl, nil
}

// sameAddr: addr is what t was configured with or where it is bound (a
// port-0 listener keeps its port across reloads naming it).
func sameAddr(t *tenant, addr string) bool {
	return t.spec.Load().cfg.ListenAddr == addr || t.l.ln.Addr().String() == addr
}

func closeAll(ts map[string]*tenant) {
	for _, t := range ts {
		_ = t.l.ln.Close()
	}
}

// Apply switches to cfg (already validated) without dropping sessions:
// listeners whose address is unchanged are reconfigured in place (pools,
// balancer, credentials; sessions keep their backend connection), new ones
// are bound and started, removed ones stopped. On error (an address that
// cannot be bound, a TLS file that cannot be read) nothing changes.
//
// It returns once every kept listener has applied its new settings, so a
// statement sent after Apply runs under them. A listener that fails to
// apply them restarts on its previous settings, the previous configuration
// is applied again, and the error is returned.
func (p *Proxy) Apply(cfg *config.Config) error {
	old := p.Config()
	err := p.apply(cfg)
	var failed *applyFailed
	if errors.As(err, &failed) {
		if rerr := p.apply(old); rerr != nil {
			return fmt.Errorf("%w; restoring the previous configuration: %v", err, rerr)
		}
		return fmt.Errorf("%w; the previous configuration runs", err)
	}
	return err
}

// applyFailed: listeners failed to apply a configuration.
type applyFailed struct{ errs []error }

func (e *applyFailed) Error() string { return "apply config: " + errors.Join(e.errs...).Error() }

// applyWait is what Apply waits for: each reconfigured listener reports
// once, with the error that made it restart on its previous settings.
type applyWait struct {
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

func (w *applyWait) done(err error) {
	if err != nil {
		w.mu.Lock()
		w.errs = append(w.errs, err)
		w.mu.Unlock()
	}
	w.wg.Done()
}

func (p *Proxy) apply(cfg *config.Config) error {
	if p.draining.Load() {
		return errors.New("apply config: the proxy is shutting down")
	}
	reply := make(chan error, 1)
	applied := &applyWait{}
	p.sys.Root.Send(p.root, &applyConfig{cfg: cfg, reply: reply, applied: applied})
	deadline := time.After(30 * time.Second)
	select {
	case err := <-reply:
		if err != nil {
			return err
		}
	case <-deadline:
		return errors.New("apply config: the root actor did not answer within 30s")
	}
	done := make(chan struct{})
	go func() { applied.wg.Wait(); close(done) }()
	select {
	case <-done:
		if len(applied.errs) > 0 {
			return &applyFailed{errs: applied.errs}
		}
		return nil
	case <-deadline:
		return errors.New("apply config: a listener did not apply the new configuration within 30s")
	}
}

// Addr is the bound address of the named listener (useful with port 0).
func (p *Proxy) Addr(name string) net.Addr {
	if t, ok := p.state.Load().tenants[name]; ok {
		return t.l.ln.Addr()
	}
	return nil
}

// FlushHosts unblocks every listener's client addresses blocked for
// failed logins; it returns how many were.
func (p *Proxy) FlushHosts() int {
	n := 0
	for _, t := range p.state.Load().tenants {
		n += t.hosts.Load().Flush()
	}
	return n
}

// Config is the configuration the proxy runs.
func (p *Proxy) Config() *config.Config { return p.state.Load().cfg }

// Ready reports whether every listener is accepting; it names the first
// that is not.
func (p *Proxy) Ready() error {
	if p.draining.Load() {
		return errors.New("draining: the proxy is shutting down")
	}
	if err := p.Healthy(); err != nil {
		return err
	}
	for name, t := range p.state.Load().tenants {
		if !t.l.accepting.Load() || t.l.env.Load() == nil {
			return fmt.Errorf("listener %s is not accepting", name)
		}
	}
	return nil
}

// Healthy reports the listeners whose tenant stopped for good.
func (p *Proxy) Healthy() error {
	p.failedMu.Lock()
	defer p.failedMu.Unlock()
	var errs []error
	for _, reason := range p.failed {
		errs = append(errs, errors.New(reason))
	}
	return errors.Join(errs...)
}

// setFailed records (reason != "") or clears why a listener is down.
func (p *Proxy) setFailed(name, reason string) {
	p.failedMu.Lock()
	defer p.failedMu.Unlock()
	if reason == "" {
		delete(p.failed, name)
		return
	}
	if p.failed == nil {
		p.failed = map[string]string{}
	}
	p.failed[name] = reason
}

// Drain shuts down gracefully: readiness turns false and the listeners
// close at once (no new connection is accepted), each session ends at its
// next transaction boundary (idle ones right away), and those still open
// when ctx ends get the shutdown error (1053) and are closed. Then the
// supervision tree stops, closing the pools. It returns how many sessions
// had to be cut.
func (p *Proxy) Drain(ctx context.Context) (cut int, err error) {
	// Closed before readiness turns false: whoever sees the proxy not ready
	// finds its ports closed.
	closeAll(p.state.Load().tenants)
	p.draining.Store(true)
	p.Registry.Drain()
	if p.Registry.WaitEmpty(ctx) != nil {
		cut = p.Registry.Len()
		p.Registry.Shutdown()
		last, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Registry.WaitEmpty(last)
	}
	return cut, p.Stop()
}

// Stop ends every session and listener and waits (up to protoactor's stop
// timeout, 10s) for the supervision tree to end.
// A second call returns the first one's result.
func (p *Proxy) Stop() error {
	p.stopOnce.Do(func() {
		err := p.sys.Root.StopFuture(p.root).Wait()
		closeAll(p.state.Load().tenants)
		if err != nil {
			p.stopErr = fmt.Errorf("stop supervision tree: %w", err)
		}
	})
	return p.stopErr
}

// applyConfig asks the root actor to switch configuration.
type applyConfig struct {
	cfg   *config.Config
	reply chan error
	// applied is done by each reconfigured tenant once it applied its spec.
	applied *applyWait
}

// rootActor owns the configuration and the tenant supervisors: it spawns
// one per listener, diffs and fans out new configurations, and restarts a
// failed tenant alone.
type rootActor struct {
	p         *Proxy
	pids      map[string]*actor.PID
	stopping  bool
	stopSweep func()
}

// clientSweepEvery is the period of the sweep for clients gone during a
// statement (session.Registry.SweepClients): such a statement is killed
// one to two periods after its client left; an idle session whose backend
// connection the server closed is closed within a period. One
// non-blocking syscall per session and period.
const clientSweepEvery = 500 * time.Millisecond

// sweepClients is the root actor's tick for that sweep.
type sweepClients struct{}

func (a *rootActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.pids = map[string]*actor.PID{}
		for _, t := range a.p.state.Load().tenants {
			a.spawn(ctx, t)
		}
		a.stopSweep = a.p.sys.Tick(ctx.Self(), "root", clientSweepEvery, func() any { return sweepClients{} })
	case sweepClients:
		a.p.Registry.SweepClients()
	case *applyConfig:
		m.reply <- a.apply(ctx, m.cfg, m.applied)
	case *actor.Restarting:
		a.endSweep()
	case *actor.Stopping:
		a.stopping = true
		a.endSweep()
	case *actor.Terminated:
		if !a.stopping {
			a.tenantGone(m.Who)
		}
	case *actors.Failure:
		actors.Reraise(m)
	}
}

func (a *rootActor) endSweep() {
	if a.stopSweep != nil {
		a.stopSweep()
	}
}

func (a *rootActor) spawn(ctx actor.Context, t *tenant) {
	props := a.p.sys.Props("tenant", func() actor.Actor { return &tenantActor{t: t} },
		actor.WithSupervisor(a.p.sys.Strategy(actor.RestartDirective, maxRestarts, restartWindow)))
	pid, err := ctx.SpawnNamed(props, "tenant-"+t.name)
	if err != nil {
		panic(fmt.Errorf("spawn tenant %s: %w", t.name, err))
	}
	a.pids[t.name] = pid
	t.pid.Store(pid)
	a.p.setFailed(t.name, "")
}

func (a *rootActor) apply(ctx actor.Context, cfg *config.Config, applied *applyWait) error {
	old := a.p.state.Load()
	pl, err := a.p.build(cfg, old.tenants)
	if err != nil {
		return err
	}
	next := pl.fresh
	for name, sp := range pl.keep {
		t := old.tenants[name]
		prev := t.spec.Swap(&sp)
		applied.wg.Add(1)
		ctx.Send(a.pids[name], &reconfigure{spec: &sp, prev: prev, applied: applied})
		next[name] = t
	}
	for name, t := range old.tenants {
		if next[name] != t {
			a.stopTenant(ctx, name, t)
		}
	}
	for name, t := range next {
		if _, running := a.pids[name]; !running {
			a.spawn(ctx, t)
		}
	}
	a.p.state.Store(&state{cfg: cfg, tenants: next})
	a.p.log.Info("configuration applied", "listeners", len(next))
	return nil
}

// tenantGone handles a tenant that stopped without being asked: its
// supervisor gave up after repeated failures. Its port closes (clients
// get a refused connection, not a silent 1040) and /healthz and /readyz
// say so until a configuration brings the listener back.
func (a *rootActor) tenantGone(pid *actor.PID) {
	for name, p := range a.pids {
		if !p.Equal(pid) {
			continue
		}
		delete(a.pids, name)
		old := a.p.state.Load()
		tenants := maps.Clone(old.tenants)
		if t := tenants[name]; t != nil {
			_ = t.l.ln.Close()
		}
		delete(tenants, name)
		a.p.state.Store(&state{cfg: old.cfg, tenants: tenants})
		reason := fmt.Sprintf("listener %s stopped after %d failures within %s; its port is closed until a reload brings it back (see the log)", name, maxRestarts, restartWindow)
		a.p.setFailed(name, reason)
		a.p.log.Error("tenant stopped for good", "tenant", name, "reason", reason)
		return
	}
}

// stopTenant ends a removed (or re-addressed) tenant and frees its port.
func (a *rootActor) stopTenant(ctx actor.Context, name string, t *tenant) {
	if err := ctx.StopFuture(a.pids[name]).Wait(); err != nil {
		a.p.log.Warn("stopping tenant", "tenant", name, "err", err)
	}
	delete(a.pids, name)
	_ = t.l.ln.Close()
}
