package supervisor

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"pisanix.io/pisanix/acl"
	"pisanix.io/pisanix/actors"
	"pisanix.io/pisanix/audit"
	"pisanix.io/pisanix/backend"
	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/session"
	"pisanix.io/pisanix/sqlinfo"
	"pisanix.io/pisanix/strategy"
	"pisanix.io/pisanix/wire"
)

// Restart policy for a tenant's children (pools, balancer, listener) and for
// tenants under the root: a few restarts, then the failing actor stops.
const (
	maxRestarts   = 10
	restartWindow = time.Minute
)

// sqlCacheSize bounds each tenant's statement classification cache.
const sqlCacheSize = 16384

// spec is what a tenant runs: its listener config, the nodes it routes to
// and its client TLS config.
type spec struct {
	cfg      config.Listener
	nodes    []config.Node // primaries (all nodes without read/write splitting)
	replicas []config.Node // read nodes, with read/write splitting
	tls      *tls.Config
}

// tenant is one `[[proxy.config]]` listener: the crash isolation boundary.
// What must survive a restart of the tenant actor (the bound socket, the
// authenticator's caches, the latest spec, the audit log) lives here;
// pools, balancer and sessions are rebuilt by the actor.
type tenant struct {
	name string
	sys  *actors.System
	log  *slog.Logger
	reg  *session.Registry
	l    *listener
	auth *wire.Authenticator // written by the tenant actor only
	sql  *sqlinfo.Cache      // statement classification, kept across reloads
	// budget is each user's parse allowance, kept across reloads that do
	// not change its rate (written by the tenant actor only).
	budget     *sqlinfo.Budget
	budgetRate int
	// hosts blocks client addresses after failed logins, kept across
	// reloads (written by the tenant actor only; Flush from the admin API).
	hosts atomic.Pointer[session.HostGuard]
	pid   atomic.Pointer[actor.PID]
	// live is what sessions read at each use (pools, router, plugins); the
	// balancers' health checks use its pools too.
	live atomic.Pointer[session.Live]
	// users are the listener's application users and their access rules;
	// the authenticator reads them, sessions read them through live.
	users atomic.Pointer[acl.Policy]
	// spec is the latest spec: set by the root actor, read by the tenant
	// actor when it (re)starts.
	spec atomic.Pointer[spec]
	// audit is the listener's audit log and auditCfg its settings, written
	// by the tenant actor only. They outlive a restart of the actor (its
	// writer is spawned from auditParent, not from the actor, so sessions
	// keep logging through it) and are closed when the actor stops for good.
	audit       *audit.Logger
	auditCfg    *config.Audit
	auditParent *actor.RootContext
}

func newTenant(sp spec, ln *listener, reg *session.Registry, sys *actors.System, log *slog.Logger) *tenant {
	t := &tenant{name: sp.cfg.Name, sys: sys, log: log.With("tenant", sp.cfg.Name), reg: reg, l: ln,
		sql: sqlinfo.NewCache(sqlCacheSize),
		// The root context with a guardian of our own (a copy: WithGuardian
		// changes its receiver), so a failing writer is restarted and
		// counted like the tenant's other actors.
		auditParent: sys.Root.Copy().WithGuardian(sys.Strategy(actor.RestartDirective, maxRestarts, restartWindow))}
	t.spec.Store(&sp)
	return t
}

// health lets a balancer probe a node (a fresh dial to its endpoint) and
// drop a dead node's idle connections.
func (t *tenant) health() strategy.Health {
	pool := func(node string) *backend.Pool {
		if l := t.live.Load(); l != nil {
			return l.Pools[node]
		}
		return nil
	}
	flush := func(node string) {
		if l := t.live.Load(); l != nil {
			for _, m := range []map[string]*backend.Pool{l.Pools, l.FoundRowsPools} {
				if p := m[node]; p != nil {
					p.Flush()
				}
			}
		}
	}
	return strategy.Health{
		Tenant: t.name,
		Probe: func(ctx context.Context, node string) error {
			p := pool(node)
			if p == nil {
				return fmt.Errorf("node %s is not configured", node)
			}
			c, err := backend.Dial(ctx, p.Endpoint())
			if err != nil {
				return err
			}
			return c.Close()
		},
		OnOpen: flush,
	}
}

// authenticator returns the tenant's authenticator for plugin, keeping the
// current one (and its caching_sha2 cache) unless the plugin changed.
func (t *tenant) authenticator(plugin string) *wire.Authenticator {
	if t.auth == nil || t.auth.Plugin != plugin {
		t.auth = &wire.Authenticator{Plugin: plugin, Lookup: func(u string) (string, bool) {
			return t.users.Load().Password(u)
		}}
	}
	return t.auth
}

// proxyNets are the listener's proxy_protocol_networks (validated).
func proxyNets(entries []string) []netip.Prefix {
	var nets []netip.Prefix
	for _, e := range entries {
		n, _ := config.ParseNetwork(e)
		nets = append(nets, n...)
	}
	return nets
}

// hostGuard is the listener's failed-login guard at the configured limit.
func (t *tenant) hostGuard(configured *int) *session.HostGuard {
	limit := config.DefaultMaxConnectErrors
	if configured != nil {
		limit = *configured
	}
	g := t.hosts.Load()
	switch {
	case limit <= 0:
		g = nil
	case g == nil:
		g = session.NewHostGuard(limit)
	default:
		g.SetMax(limit)
	}
	t.hosts.Store(g)
	return g
}

// parseBudget is the users' parse allowance at the configured rate in
// bytes per second.
func (t *tenant) parseBudget(configured *int) *sqlinfo.Budget {
	rate := config.DefaultParseBudget
	if configured != nil {
		rate = *configured
	}
	if t.budget == nil && rate > 0 || rate != t.budgetRate {
		t.budget, t.budgetRate = sqlinfo.NewBudget(rate, min(rate, config.ParseBudgetBurst)), rate
	}
	return t.budget
}

// reconfigure tells a tenant actor to apply its tenant's latest spec (hot reload).
type reconfigure struct {
	spec, prev *spec      // prev: what ran before, to restart on if spec fails
	applied    *applyWait // told when handled, with the error if apply failed
}

// poolRef is a running pool and the settings it was built from.
type poolRef struct {
	key  poolKey
	pool *backend.Pool
}

// poolKey: a pool is reused across reloads only when nothing it was built
// from changed.
type poolKey struct {
	node                                   config.Node
	foundRows, multiplex                   bool
	size, minIdle                          int
	acquireTimeout, dialTimeout, idleCheck config.Duration
	readTimeout                            config.Duration
	maxWaiters                             int
}

// tenantActor supervises one tenant's pools, balancer and listener.
type tenantActor struct {
	t         *tenant
	discovery *actor.PID
	pools     map[string]poolRef
	bal       *strategy.Balancer
	replicas  *strategy.Balancer
	plugins   *strategy.Plugins
	fuse      *strategy.Fuse
	pluginCfg *config.Plugin // the rules plugins and fuse were built from
	gen       int
}

func (a *tenantActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.pools = map[string]poolRef{}
		if err := a.apply(ctx, *a.t.spec.Load()); err != nil {
			panic(fmt.Errorf("start tenant %s: %w", a.t.name, err))
		}
	case *reconfigure:
		if err := a.apply(ctx, *m.spec); err != nil {
			// Restart on the settings that ran: the supervisor rebuilds the
			// tenant from its spec, and the caller restores the config.
			a.t.spec.CompareAndSwap(m.spec, m.prev)
			err = fmt.Errorf("listener %s: %w", a.t.name, err)
			m.applied.done(err)
			panic(fmt.Errorf("reconfigure tenant: %w", err))
		}
		m.applied.done(nil)
	case *actor.Stopping:
		// For good (the listener removed, or the proxy stopping); a
		// restart keeps the audit log and the statistics.
		a.t.l.env.Store(nil)
		a.t.closeAudit()
		a.t.sys.Metrics.Fingerprints.Drop(a.t.name)
	case *actor.Restarting:
		// Pools, balancers and the listener (with its sessions) stop with
		// this incarnation; the audit log is not the actor's and goes on.
	case *actors.Failure:
		actors.Reraise(m)
	}
}

// apply brings pools, balancer, credentials and the sessions' environment
// to sp. Sessions already running keep the environment (and backend
// connection) they started with; new sessions get the new one.
func (a *tenantActor) apply(ctx actor.Context, sp spec) error {
	t, cfg := a.t, sp.cfg
	if err := applyFault(cfg); err != nil {
		return err
	}
	users, err := acl.New(cfg.User, cfg.ResolvedPassword(), cfg.Users, cfg.AuthMode == config.AuthModePassthrough)
	if err != nil {
		return err
	}
	t.l.maxConns.Store(int32(cfg.MaxConnections))
	pools, foundRows, retirePools, err := a.syncPools(ctx, sp)
	if err != nil {
		return err
	}
	if a.bal, err = a.balancer(ctx, a.bal, "balancer", balanceType(cfg), sp.nodes); err != nil {
		return err
	}
	router, err := strategy.NewRouter(cfg.ReadWriteSplitting)
	if err != nil {
		return err
	}
	if router != nil {
		if a.replicas, err = a.balancer(ctx, a.replicas, "balancer-read", readAlgorithm(cfg.ReadWriteSplitting), sp.replicas); err != nil {
			return err
		}
	}
	if err := a.syncDiscovery(ctx, sp); err != nil {
		return err
	}
	retirePlugins, err := a.syncPlugins(ctx, cfg)
	if err != nil {
		return err
	}
	env := &session.Env{
		Tenant: cfg.Name, ServerVersion: cfg.ServerVersion, DefaultDB: cfg.DB,
		LoginTimeout: cfg.LoginTimeout.D(), IdleTimeout: cfg.ClientIdleTimeout.D(), WriteTimeout: cfg.ClientWriteTimeout.D(),
		Auth: t.authenticator(cfg.AuthPlugin), TLS: sp.tls, TLSRequired: cfg.TLS != nil && cfg.TLS.Required,
		Balancer: a.bal, ReplicaBalancer: a.replicas, Live: &t.live, SQL: t.sql, Registry: t.reg, Metrics: t.sys.Metrics, Log: t.log,
		Fingerprints: t.sys.Metrics.Fingerprints.Table(cfg.Name), Multiplex: cfg.Multiplex,
		Passthrough: cfg.AuthMode == config.AuthModePassthrough, MaxAllowedPacket: cfg.MaxAllowedPacket,
		ParseBudget: t.parseBudget(cfg.ParseBudget), Hosts: t.hostGuard(cfg.MaxConnectErrors),
		ProxyNets: proxyNets(cfg.ProxyProtocolNetworks),
	}
	env.Fault = faultHook(t.sys, t)
	oldAudit, err := a.syncAudit(cfg.Audit)
	if err != nil {
		return err
	}
	// Nothing fails from here: the authenticator and the sessions switch
	// to the new users together.
	t.users.Store(users)
	t.live.Store(&session.Live{Pools: pools, FoundRowsPools: foundRows, Router: router, Plugins: a.plugins, Fuse: a.fuse, Users: users, Audit: t.audit})
	// Only now that the new ones are live: a session sent back by a
	// stopping pool or limiter finds its replacement.
	retirePools()
	retirePlugins()
	if oldAudit != nil {
		// Sessions moved to the new log; the old one writes what it holds.
		t.sys.Go(ctx.Self(), "tenant", func() { closeAuditLog(oldAudit, t.log) })
	}
	t.l.env.Store(env)
	if t.l.pid.Load() == nil {
		props := t.sys.Props("listener", func() actor.Actor {
			return &listenerActor{sys: t.sys, l: t.l, tenant: cfg.Name}
		}, actor.WithSupervisor(t.sys.Strategy(actor.StopDirective, 0, 0)))
		pid, err := ctx.SpawnNamed(props, "listener")
		if err != nil {
			return fmt.Errorf("spawn listener: %w", err)
		}
		// At once, not when it starts: a reconfigure right behind this
		// apply must not spawn a second one.
		t.l.pid.Store(pid)
	}
	return nil
}

// syncPlugins rebuilds the plugins and the fuse when their rules changed,
// and keeps them running otherwise: a reload of other settings must not
// refuse the statements waiting in concurrency control, nor reset limiter
// counts and open fuses. retire stops the replaced ones; call it once the
// new ones are live, so that statements a stopping limiter sends back
// (strategy.ErrLimiterGone) are admitted again under the new rules.
func (a *tenantActor) syncPlugins(ctx actor.Context, cfg config.Listener) (retire func(), err error) {
	retire = func() {}
	if a.plugins != nil && reflect.DeepEqual(a.pluginCfg, cfg.Plugin) {
		return retire, nil
	}
	t := a.t
	a.gen++
	plugins, err := strategy.NewPlugins(t.sys, ctx, cfg.Name, cfg.Plugin, a.gen)
	if err != nil {
		return retire, err
	}
	var fuseCfg *config.Fuse
	if cfg.Plugin != nil {
		fuseCfg = cfg.Plugin.Fuse
	}
	fuse, err := strategy.NewFuse(t.sys, ctx, fmt.Sprintf("fuse-%d", a.gen), cfg.Name, fuseCfg)
	if err != nil {
		plugins.Stop(ctx)
		return retire, err
	}
	oldPlugins, oldFuse := a.plugins, a.fuse
	a.plugins, a.fuse, a.pluginCfg = plugins, fuse, cfg.Plugin
	return func() {
		if oldPlugins != nil {
			oldPlugins.Stop(ctx)
		}
		if oldFuse != nil {
			ctx.Stop(oldFuse.PID())
		}
	}, nil
}

// syncAudit brings the tenant's audit log to cfg: the running log takes
// new filters in place; new sink settings need a new log. It returns the
// log to close once sessions moved off it (nil: none).
func (a *tenantActor) syncAudit(cfg *config.Audit) (*audit.Logger, error) {
	t := a.t
	old := t.audit
	if cfg == nil {
		t.audit, t.auditCfg = nil, nil
		return old, nil
	}
	if old.Reconfigure(*cfg) {
		t.auditCfg = cfg
		return nil, nil
	}
	if old != nil && sameAuditFile(t.auditCfg, cfg) {
		// Two writers must never share (and both rotate) one file: the old
		// log writes out what it holds and closes first. Statements logged
		// meanwhile through the sessions' Live are counted as dropped.
		closeAuditLog(old, t.log)
		t.audit, t.auditCfg, old = nil, nil, nil
	}
	next, err := audit.New(t.sys, t.auditParent, t.name, *cfg)
	if err != nil {
		return nil, err
	}
	t.audit, t.auditCfg = next, cfg
	return old, nil
}

// sameAuditFile reports whether a and b write the same file.
func sameAuditFile(a, b *config.Audit) bool {
	return a != nil && b != nil && a.Sink == config.AuditSinkFile && b.Sink == config.AuditSinkFile &&
		filepath.Clean(a.Path) == filepath.Clean(b.Path)
}

// closeAudit writes out and closes the audit log (the tenant stopping for good).
func (t *tenant) closeAudit() {
	if t.audit != nil {
		closeAuditLog(t.audit, t.log)
		t.audit, t.auditCfg = nil, nil
	}
}

// auditCloseTimeout bounds writing out an audit queue at close.
const auditCloseTimeout = 5 * time.Second

func closeAuditLog(l *audit.Logger, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), auditCloseTimeout)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		log.Warn("audit log close", "err", err)
	}
}

// balancer publishes nodes to bal, spawning it (named name) the first time.
func (a *tenantActor) balancer(ctx actor.Context, bal *strategy.Balancer, name, algorithm string, nodes []config.Node) (*strategy.Balancer, error) {
	targets := make([]strategy.Target, 0, len(nodes))
	for _, n := range nodes {
		targets = append(targets, strategy.Target{Name: n.Name, Weight: n.Weight})
	}
	if bal != nil {
		ctx.Send(bal.PID(), &strategy.SetTargets{Algorithm: algorithm, Targets: targets})
		return bal, nil
	}
	bal, err := strategy.NewBalancer(a.t.sys, ctx, name, algorithm, targets, a.t.health())
	if err != nil {
		return nil, fmt.Errorf("spawn %s: %w", name, err)
	}
	return bal, nil
}

// syncDiscovery (re)starts the monitor of dynamic read/write splitting,
// which then owns the two balancers' targets.
func (a *tenantActor) syncDiscovery(ctx actor.Context, sp spec) error {
	if a.discovery != nil {
		ctx.Stop(a.discovery)
		a.discovery = nil
	}
	rw := sp.cfg.ReadWriteSplitting
	if rw == nil || rw.Dynamic == nil {
		return nil
	}
	// A node may be both (config.Primaries): probed once.
	all := slices.Clone(sp.nodes)
	for _, n := range sp.replicas {
		if !slices.ContainsFunc(all, func(p config.Node) bool { return p.Name == n.Name }) {
			all = append(all, n)
		}
	}
	a.gen++
	pid, err := strategy.NewDiscovery(a.t.sys, ctx, fmt.Sprintf("discovery-%d", a.gen),
		discoveryConfig(a.t.name, rw.Dynamic.Discovery, all), a.bal, a.replicas, readAlgorithm(rw))
	if err != nil {
		return fmt.Errorf("spawn discovery: %w", err)
	}
	a.discovery = pid
	return nil
}

// readAlgorithm is the balancing among replicas: the algorithm of the first
// rule that targets them, else random.
func readAlgorithm(rw *config.ReadWriteSplitting) string {
	rules := []config.RWRule(nil)
	if rw.Static != nil {
		rules = rw.Static.Rules
	} else if rw.Dynamic != nil {
		rules = rw.Dynamic.Rules
	}
	for _, r := range rules {
		if r.Target == config.RoleRead && r.AlgorithmName != "" {
			return r.AlgorithmName
		}
	}
	return strategy.Random
}

// syncPools keeps unchanged pools and starts new ones; retire stops the
// rest, to be called once the new ones are live (a session waiting in a
// stopping pool gets backend.ErrPoolRetired and takes from the live ones).
func (a *tenantActor) syncPools(ctx actor.Context, sp spec) (pools, foundRows map[string]*backend.Pool, retire func(), err error) {
	pools, foundRows = map[string]*backend.Pool{}, map[string]*backend.Pool{}
	keep := map[string]poolRef{}
	for _, n := range append(slices.Clone(sp.nodes), sp.replicas...) {
		for _, fr := range []bool{false, true} {
			id, into := n.Name, pools
			if fr {
				id, into = n.Name+"/found_rows", foundRows
			}
			if _, done := keep[id]; done {
				continue
			}
			ref, err := a.pool(ctx, sp.cfg, n, fr, id)
			if err != nil {
				return nil, nil, nil, err
			}
			keep[id], into[n.Name] = ref, ref.pool
		}
	}
	var retired []*backend.Pool
	for id, ref := range a.pools {
		if keep[id].pool != ref.pool {
			retired = append(retired, ref.pool)
		}
	}
	a.pools = keep
	return pools, foundRows, func() {
		for _, p := range retired {
			ctx.Stop(p.PID()) // its sessions' connections are closed on release
		}
	}, nil
}

// pool returns the running pool for node (with CLIENT_FOUND_ROWS when
// foundRows) if its settings did not change, or starts one. The
// found_rows pools keep no warm connections: most clients never need them.
func (a *tenantActor) pool(ctx actor.Context, cfg config.Listener, n config.Node, foundRows bool, id string) (poolRef, error) {
	minIdle := *cfg.PoolMinIdle
	if foundRows {
		minIdle = 0
	}
	key := poolKey{node: n, foundRows: foundRows, multiplex: cfg.Multiplex, size: cfg.PoolSize, minIdle: minIdle,
		acquireTimeout: cfg.PoolAcquireTimeout, dialTimeout: cfg.DialTimeout, idleCheck: cfg.IdleCheckAfter, readTimeout: cfg.BackendReadTimeout,
		maxWaiters: maxWaiters(cfg)}
	if ref, ok := a.pools[id]; ok && ref.key == key {
		return ref, nil
	}
	ep, err := endpoint(n, cfg)
	if err != nil {
		return poolRef{}, err
	}
	ep.FoundRows = foundRows
	a.gen++
	pool, err := backend.NewPool(a.t.sys, ctx, fmt.Sprintf("pool-%s-%d", n.Name, a.gen), backend.PoolConfig{
		Tenant: cfg.Name, Endpoint: ep, Size: cfg.PoolSize, MinIdle: minIdle,
		AcquireTimeout: cfg.PoolAcquireTimeout.D(), IdleCheckAfter: cfg.IdleCheckAfter.D(), Globals: a.t.reg.Globals(), ConnGlobals: a.t.reg.ConnGlobals(),
		MaxWaiters: key.maxWaiters,
	})
	if err != nil {
		return poolRef{}, err
	}
	return poolRef{key: key, pool: pool}, nil
}

// maxWaiters bounds a pool's wait queue: with multiplexing every session
// may wait for a statement's connection at once (0: the pool's default).
func maxWaiters(l config.Listener) int {
	if l.Multiplex {
		return l.MaxConnections
	}
	return 0
}

func balanceType(l config.Listener) string {
	if l.SimpleLoadBalance != nil {
		return l.SimpleLoadBalance.BalanceType
	}
	return strategy.Random
}

// specFor builds a listener's spec from a whole config.
func specFor(c *config.Config, l config.Listener) (spec, error) {
	tlsCfg, err := serverTLS(l.TLS)
	if err != nil {
		return spec{}, fmt.Errorf("listener %s: %w", l.Name, err)
	}
	if l.Audit != nil {
		if err := audit.CheckSink(*l.Audit); err != nil {
			return spec{}, fmt.Errorf("listener %s: %w", l.Name, err)
		}
	}
	// Primaries and replicas as Pisa-Proxy chose them (see config.Primaries).
	sp := spec{cfg: l, nodes: c.Primaries(&l), replicas: c.Replicas(&l), tls: tlsCfg}
	// The tenant actor builds its endpoints again when it starts its pools;
	// building them here first makes an unreadable tls_ca reject the config
	// (reload refused, startup failed) instead of failing the tenant.
	for _, n := range slices.Concat(sp.nodes, sp.replicas) {
		if _, err := endpoint(n, l); err != nil {
			return spec{}, fmt.Errorf("listener %s: %w", l.Name, err)
		}
	}
	return sp, nil
}
