package strategy

import (
	"context"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"pisanix.io/pisanix/actors"
)

// NodeStatus is what one discovery probe learnt of a node.
type NodeStatus struct {
	ReadOnly bool
	// Replicating: the node is a replica whose SQL thread runs; Lag is then
	// its delay (MariaDB/MySQL report whole seconds).
	Replicating bool
	Lag         time.Duration
}

// DiscoveryConfig is the MHA-style monitor of dynamic read/write splitting.
type DiscoveryConfig struct {
	Tenant           string
	Nodes            []Target
	Period           time.Duration
	Timeout          time.Duration
	FailureThreshold int  // consecutive failed probes before a node is dropped
	ReadOnlyEnabled  bool // read_only decides roles (a flip follows a failover)
	LagEnabled       bool
	MaxLag           time.Duration
	// Probe connects to a node and reads its status.
	Probe func(ctx context.Context, node string) (NodeStatus, error)
}

// NewDiscovery spawns the monitor actor: it probes every node each period
// and publishes who is primary and which replicas may serve reads to the
// two balancers (SetTargets), only when that changes.
func NewDiscovery(sys *actors.System, parent actor.SpawnerContext, name string, cfg DiscoveryConfig, primaries, replicas *Balancer, readAlgorithm string) (*actor.PID, error) {
	props := sys.Props("discovery", func() actor.Actor {
		return &discoveryActor{sys: sys, cfg: cfg, primaries: primaries, replicas: replicas, readAlgorithm: readAlgorithm}
	})
	return parent.SpawnNamed(props, name)
}

type (
	discoveryTick   struct{}
	discoveryResult struct {
		node   string
		status NodeStatus
		err    error
	}
)

type nodeView struct {
	status   NodeStatus
	failures int
	probing  bool
	known    bool // a probe succeeded at least once
	heard    bool // a probe finished at least once, either way
}

type discoveryActor struct {
	sys                 *actors.System
	cfg                 DiscoveryConfig
	primaries, replicas *Balancer
	readAlgorithm       string
	nodes               map[string]*nodeView
	lastPrimaries       []string
	lastReplicas        []string
	stop                func()
}

func (a *discoveryActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.nodes = map[string]*nodeView{}
		for _, n := range a.cfg.Nodes {
			a.nodes[n.Name] = &nodeView{}
		}
		a.startTicker(ctx)
		a.tick(ctx)
	case *actor.Stopping, *actor.Restarting:
		if a.stop != nil {
			a.stop()
		}
	case *discoveryTick:
		a.tick(ctx)
	case *discoveryResult:
		a.result(m)
	case *actors.Failure:
		actors.Reraise(m)
	}
}

func (a *discoveryActor) startTicker(ctx actor.Context) {
	a.stop = a.sys.Tick(ctx.Self(), "discovery", a.cfg.Period, func() any { return &discoveryTick{} })
}

func (a *discoveryActor) tick(ctx actor.Context) {
	for name, v := range a.nodes {
		if v.probing {
			continue
		}
		v.probing = true
		self, node := ctx.Self(), name
		a.sys.Go(self, "discovery", func() {
			pctx, cancel := context.WithTimeout(context.Background(), a.cfg.Timeout)
			defer cancel()
			st, err := a.cfg.Probe(pctx, node)
			a.sys.Root.Send(self, &discoveryResult{node: node, status: st, err: err})
		})
	}
}

func (a *discoveryActor) result(m *discoveryResult) {
	v := a.nodes[m.node]
	if v == nil {
		return
	}
	v.probing, v.heard = false, true
	if m.err != nil {
		v.failures++
		a.sys.Metrics.DiscoveryProbes.WithLabelValues(a.cfg.Tenant, m.node, "error").Inc()
	} else {
		v.failures, v.status, v.known = 0, m.status, true
		a.sys.Metrics.DiscoveryProbes.WithLabelValues(a.cfg.Tenant, m.node, "ok").Inc()
		if m.status.Replicating {
			a.sys.Metrics.ReplicaLag.WithLabelValues(a.cfg.Tenant, m.node).Set(m.status.Lag.Seconds())
		}
	}
	a.publish()
}

// roles splits the healthy nodes into primaries (writable) and replicas
// that may serve reads.
func (a *discoveryActor) roles() (primaries, replicas []string) {
	for _, n := range a.cfg.Nodes {
		v := a.nodes[n.Name]
		if !v.known || v.failures >= a.cfg.FailureThreshold {
			continue
		}
		if a.cfg.ReadOnlyEnabled && !v.status.ReadOnly {
			primaries = append(primaries, n.Name)
			continue
		}
		if !a.cfg.ReadOnlyEnabled && !v.status.Replicating {
			primaries = append(primaries, n.Name)
			continue
		}
		if a.cfg.LagEnabled && (!v.status.Replicating || v.status.Lag > a.cfg.MaxLag) {
			continue // stopped or too far behind: its reads would be stale
		}
		replicas = append(replicas, n.Name)
	}
	return primaries, replicas
}

// publish hands the roles to the balancers once every node has answered
// its first probe: a partial first view (the replica heard, the primary not
// yet) would empty a balancer the configured roles still serve well.
func (a *discoveryActor) publish() {
	for _, v := range a.nodes {
		if !v.heard {
			return
		}
	}
	primaries, replicas := a.roles()
	if slices.Equal(primaries, a.lastPrimaries) && slices.Equal(replicas, a.lastReplicas) {
		return
	}
	a.lastPrimaries, a.lastReplicas = primaries, replicas
	a.sys.Log.Info("discovery: roles changed", "tenant", a.cfg.Tenant, "primaries", primaries, "replicas", replicas)
	a.sys.Root.Send(a.primaries.PID(), &SetTargets{Algorithm: Random, Targets: a.targets(primaries)})
	a.sys.Root.Send(a.replicas.PID(), &SetTargets{Algorithm: a.readAlgorithm, Targets: a.targets(replicas)})
}

func (a *discoveryActor) targets(names []string) []Target {
	out := make([]Target, 0, len(names))
	for _, n := range a.cfg.Nodes {
		if slices.Contains(names, n.Name) {
			out = append(out, n)
		}
	}
	return out
}
