package supervisor

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"pisanix.io/pisanix/actors"
	"pisanix.io/pisanix/backend"
	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/session"
	"pisanix.io/pisanix/strategy"
	"pisanix.io/pisanix/wire"
)

// tenant is one `[[proxy.config]]` listener: the crash isolation boundary.
// What must survive a restart of the tenant actor (the bound socket, the
// authenticator's caches) lives here; pools, balancer and sessions are
// rebuilt by the actor.
type tenant struct {
	cfg      config.Listener
	nodes    []config.Node
	l        *listener
	base     session.Env // Tenant, ServerVersion, DefaultDB, Auth, TLS, Registry, Metrics, Log, Fault
	listener atomic.Pointer[actor.PID]
}

// Restart policy for a tenant's children (pools, balancer, listener) and for
// tenants under the root: a few restarts, then the failing actor stops.
const (
	maxRestarts   = 10
	restartWindow = time.Minute
)

// tenantActor supervises one tenant's pools, balancer and listener.
type tenantActor struct {
	sys *actors.System
	t   *tenant
}

func (a *tenantActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		if err := a.start(ctx); err != nil {
			panic(fmt.Errorf("start tenant %s: %w", a.t.cfg.Name, err))
		}
	case *actor.Stopping:
		a.t.l.env.Store(nil)
	case *actors.Failure:
		actors.Reraise(m)
	}
}

func (a *tenantActor) start(ctx actor.Context) error {
	t, cfg := a.t, a.t.cfg
	env := t.base
	env.Pools = map[string]*backend.Pool{}
	targets := make([]strategy.Target, 0, len(t.nodes))
	for _, n := range t.nodes {
		ep, err := endpoint(n, cfg)
		if err != nil {
			return err
		}
		pool, err := backend.NewPool(a.sys, ctx, backend.PoolConfig{
			Tenant: cfg.Name, Endpoint: ep, Size: cfg.PoolSize, MinIdle: *cfg.PoolMinIdle,
			AcquireTimeout: cfg.PoolAcquireTimeout.D(), IdleCheckAfter: cfg.IdleCheckAfter.D(),
		})
		if err != nil {
			return err
		}
		env.Pools[n.Name] = pool
		targets = append(targets, strategy.Target{Name: n.Name, Weight: n.Weight})
	}
	bal, err := strategy.NewBalancer(a.sys, ctx, balanceType(cfg), targets)
	if err != nil {
		return fmt.Errorf("spawn balancer: %w", err)
	}
	env.Balancer = bal
	t.l.env.Store(&env)
	props := a.sys.Props("listener", func() actor.Actor {
		return &listenerActor{sys: a.sys, l: t.l, tenant: cfg.Name}
	}, actor.WithSupervisor(a.sys.Strategy(actor.StopDirective, 0, 0)))
	pid, err := ctx.SpawnNamed(props, "listener")
	if err != nil {
		return fmt.Errorf("spawn listener: %w", err)
	}
	t.listener.Store(pid)
	return nil
}

func balanceType(l config.Listener) string {
	if l.SimpleLoadBalance != nil {
		return l.SimpleLoadBalance.BalanceType
	}
	return strategy.Random
}

// tenantNodes are the nodes a listener routes to: its simple_loadbalance
// nodes, or (read/write splitting, routed by a later strategy) every
// readwrite node, so that nothing is sent to a replica by mistake.
func tenantNodes(c *config.Config, l config.Listener) []config.Node {
	var out []config.Node
	if l.SimpleLoadBalance != nil {
		for _, name := range l.SimpleLoadBalance.Nodes {
			n, _ := c.NodeByName(name)
			out = append(out, n)
		}
		return out
	}
	for _, n := range c.MySQL.Node {
		if n.Role == config.RoleReadWrite {
			out = append(out, n)
		}
	}
	return out
}

func newTenant(c *config.Config, l config.Listener, lis *listener, reg *session.Registry, sys *actors.System, log *slog.Logger) (*tenant, error) {
	tlsCfg, err := serverTLS(l.TLS)
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", l.Name, err)
	}
	user, password := l.User, l.Password
	t := &tenant{cfg: l, nodes: tenantNodes(c, l), l: lis}
	t.base = session.Env{
		Tenant: l.Name, ServerVersion: l.ServerVersion, DefaultDB: l.DB,
		Auth: &wire.Authenticator{Plugin: l.AuthPlugin, Lookup: func(u string) (string, bool) {
			return password, u == user
		}},
		TLS: tlsCfg, TLSRequired: l.TLS != nil && l.TLS.Required,
		Registry: reg, Metrics: sys.Metrics, Log: log.With("tenant", l.Name),
		MaxPacket: 1 << 30,
	}
	t.base.Fault = faultHook(sys, t)
	return t, nil
}
