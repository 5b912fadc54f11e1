package strategy

import (
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/sony/gobreaker/v2"
	"pisanix.io/pisanix/actors"
)

// Breaker settings for backend nodes.
const (
	failuresToOpen = 3                // consecutive failures that open a node's breaker
	failureWindow  = 10 * time.Second // closed-state counts reset this often
	openFor        = 2 * time.Second  // open: no new sessions; then half-open and probed
	probeEvery     = time.Second
	probeTimeout   = 3 * time.Second
)

// NodeReport is an observation of a node: by a session (failures only) or
// by the balancer's own probe (both).
type NodeReport struct {
	Node string
	Err  error
}

type probeTick struct{}

// balancerActor owns the targets and one gobreaker per node; it publishes
// snapshots without the nodes whose breaker is open. Open nodes are probed
// after openFor (half-open) and come back on the first successful probe.
type balancerActor struct {
	b         *Balancer
	health    Health
	algorithm string
	targets   []Target
	breakers  map[string]*gobreaker.TwoStepCircuitBreaker[struct{}]
	probing   map[string]bool
	stop      func()
}

func (a *balancerActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.breakers, a.probing = map[string]*gobreaker.TwoStepCircuitBreaker[struct{}]{}, map[string]bool{}
		a.publish()
		a.startTicker(ctx)
	case *actor.Stopping, *actor.Restarting:
		if a.stop != nil {
			a.stop()
		}
	case *SetTargets:
		a.algorithm, a.targets = m.Algorithm, m.Targets
		a.publish()
	case *NodeReport:
		a.report(m)
	case *probeTick:
		a.probe(ctx)
	case *actors.Failure:
		actors.Reraise(m)
	}
}

func (a *balancerActor) startTicker(ctx actor.Context) {
	if a.health.Probe == nil {
		return
	}
	a.stop = a.b.sys.Tick(ctx.Self(), "balancer", probeEvery, func() any { return &probeTick{} })
}

func (a *balancerActor) breaker(node string) *gobreaker.TwoStepCircuitBreaker[struct{}] {
	cb, ok := a.breakers[node]
	if !ok {
		cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
			Name: node, MaxRequests: 1, Interval: failureWindow, Timeout: openFor,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failuresToOpen },
		})
		a.breakers[node] = cb
	}
	return cb
}

func (a *balancerActor) report(m *NodeReport) {
	a.probing[m.Node] = false
	cb := a.breaker(m.Node)
	before := cb.State()
	if done, err := cb.Allow(); err == nil {
		done(m.Err)
	}
	if after := cb.State(); after != before {
		a.b.sys.Metrics.BreakerState.WithLabelValues(a.health.Tenant, m.Node).Set(float64(after))
		a.b.sys.Log.Warn("backend node health changed", "tenant", a.health.Tenant, "node", m.Node, "from", before.String(), "to", after.String(), "err", m.Err)
		if after == gobreaker.StateOpen && a.health.OnOpen != nil {
			a.health.OnOpen(m.Node)
		}
		a.publish()
	}
}

// probe checks nodes that are half-open or failing; State() also moves an
// open breaker to half-open once openFor has passed.
func (a *balancerActor) probe(ctx actor.Context) {
	changed := false
	for node, cb := range a.breakers {
		before := cb.State() // lazily moves open -> half-open
		if before == gobreaker.StateHalfOpen && a.b.Current().excludes(node) {
			a.b.sys.Metrics.BreakerState.WithLabelValues(a.health.Tenant, node).Set(float64(before))
			changed = true
		}
		if before == gobreaker.StateOpen || a.probing[node] || (before == gobreaker.StateClosed && cb.Counts().ConsecutiveFailures == 0) {
			continue
		}
		a.probing[node] = true
		self, n, probe := ctx.Self(), node, a.health.Probe
		a.b.sys.Go(self, "balancer", func() {
			pctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
			defer cancel()
			a.b.sys.Root.Send(self, &NodeReport{Node: n, Err: probe(pctx, n)})
		})
	}
	if changed {
		a.publish()
	}
}

// publish stores a snapshot without the nodes whose breaker is open.
func (a *balancerActor) publish() {
	targets := make([]Target, len(a.targets))
	copy(targets, a.targets)
	for i, t := range targets {
		if cb, ok := a.breakers[t.Name]; ok && cb.State() == gobreaker.StateOpen {
			targets[i].Weight = 0
		}
	}
	a.b.snap.Store(NewSnapshot(a.algorithm, targets))
}

// excludes reports whether the snapshot has node with weight 0.
func (s *Snapshot) excludes(node string) bool {
	for _, t := range s.Targets {
		if t.Name == node {
			return t.Weight == 0
		}
	}
	return false
}
