// Package supervisor owns the supervision tree of pisa-proxy: a root actor
// with one tenant supervisor per listener (the crash isolation boundary),
// each supervising its backend pools, balancer and listener, which in turn
// supervises one actor per client session.
package supervisor

import (
	"fmt"
	"log/slog"
	"net"

	"github.com/asynkron/protoactor-go/actor"
	"pisanix.io/pisanix/actors"
	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/session"
)

// Proxy is a running pisa-proxy data plane.
type Proxy struct {
	sys      *actors.System
	root     *actor.PID
	tenants  []*tenant
	Registry *session.Registry
	cfg      *config.Config
}

// Start binds every listener (so a bad address fails here, before anything
// serves) and starts the supervision tree.
func Start(cfg *config.Config, sys *actors.System, log *slog.Logger) (*Proxy, error) {
	p := &Proxy{sys: sys, Registry: session.NewRegistry(), cfg: cfg}
	for _, l := range cfg.Proxy.Config {
		ln, err := net.Listen("tcp", l.ListenAddr)
		if err != nil {
			p.closeListeners()
			return nil, fmt.Errorf("listener %s: %w", l.Name, err)
		}
		t, err := newTenant(cfg, l, &listener{ln: ln, maxConns: l.MaxConnections}, p.Registry, sys, log)
		if err != nil {
			_ = ln.Close()
			p.closeListeners()
			return nil, err
		}
		p.tenants = append(p.tenants, t)
	}
	props := sys.Props("root", func() actor.Actor { return &rootActor{sys: sys, tenants: p.tenants} },
		actor.WithSupervisor(sys.Strategy(actor.RestartDirective, maxRestarts, restartWindow)))
	root, err := sys.Root.SpawnNamed(props, "pisa-proxy")
	if err != nil {
		p.closeListeners()
		return nil, fmt.Errorf("spawn root supervisor: %w", err)
	}
	p.root = root
	return p, nil
}

func (p *Proxy) closeListeners() {
	for _, t := range p.tenants {
		_ = t.l.ln.Close()
	}
}

// Addr is the bound address of the named listener (useful with port 0).
func (p *Proxy) Addr(name string) net.Addr {
	for _, t := range p.tenants {
		if t.cfg.Name == name {
			return t.l.ln.Addr()
		}
	}
	return nil
}

// Config is the configuration the proxy runs.
func (p *Proxy) Config() *config.Config { return p.cfg }

// Ready reports whether every listener is accepting; it names the first
// that is not.
func (p *Proxy) Ready() error {
	for _, t := range p.tenants {
		if !t.l.accepting.Load() || t.l.env.Load() == nil {
			return fmt.Errorf("listener %s is not accepting", t.cfg.Name)
		}
	}
	return nil
}

// Stop closes the listeners and every session and waits (up to protoactor's
// stop timeout, 10s) for the supervision tree to end.
func (p *Proxy) Stop() error {
	err := p.sys.Root.StopFuture(p.root).Wait()
	p.closeListeners()
	if err != nil {
		return fmt.Errorf("stop supervision tree: %w", err)
	}
	return nil
}

// rootActor spawns one tenant supervisor per listener and restarts a failed
// tenant alone.
type rootActor struct {
	sys     *actors.System
	tenants []*tenant
}

func (a *rootActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		for _, t := range a.tenants {
			props := a.sys.Props("tenant", func() actor.Actor { return &tenantActor{sys: a.sys, t: t} },
				actor.WithSupervisor(a.sys.Strategy(actor.RestartDirective, maxRestarts, restartWindow)))
			if _, err := ctx.SpawnNamed(props, "tenant-"+t.cfg.Name); err != nil {
				panic(fmt.Errorf("spawn tenant %s: %w", t.cfg.Name, err))
			}
		}
	case *actors.Failure:
		actors.Reraise(m)
	}
}
