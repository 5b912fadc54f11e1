// Package strategy owns traffic strategies. Each is an actor that owns its
// state and publishes an immutable snapshot through an atomic pointer; the
// data path reads the snapshot and never waits on the actor.
package strategy

import (
	"context"
	"math/rand/v2"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"pisanix.io/pisanix/actors"
)

// Target is a node the balancer may pick.
type Target struct {
	Name   string
	Weight int // 0 excludes the node
}

// Balance algorithms.
const (
	Random     = "random"
	RoundRobin = "roundrobin"
	LeastConn  = "leastconn"
)

// Snapshot is an immutable balancing table.
type Snapshot struct {
	Algorithm string
	Targets   []Target
	// cumulative weights for weighted random; seq is the smooth weighted
	// round-robin order, precomputed once per snapshot.
	cum   []int
	total int
	seq   []int
	next  atomic.Uint64
}

// NewSnapshot builds the lookup tables for targets.
func NewSnapshot(algorithm string, targets []Target) *Snapshot {
	s := &Snapshot{Algorithm: algorithm, Targets: targets}
	for _, t := range targets {
		s.total += max(t.Weight, 0)
		s.cum = append(s.cum, s.total)
	}
	s.seq = smoothWRR(targets)
	return s
}

// Pick returns the index of the next target, or -1 when none is eligible.
// load reports a node's current sessions (used by leastconn only).
// hot path: one atomic add or one random draw, no allocation.
func (s *Snapshot) Pick(load func(node string) int64) int {
	if s.total == 0 {
		return -1
	}
	if s.Algorithm == LeastConn && load != nil {
		return s.leastLoaded(load)
	}
	if s.Algorithm == RoundRobin {
		return s.seq[(s.next.Add(1)-1)%uint64(len(s.seq))]
	}
	r := rand.IntN(s.total)
	for i, c := range s.cum {
		if r < c {
			return i
		}
	}
	return len(s.cum) - 1
}

// leastLoaded picks the target with the fewest sessions per unit of
// weight; ties go to a random one of them.
func (s *Snapshot) leastLoaded(load func(string) int64) int {
	best, ties := -1, 0
	var bestScore float64
	for i, t := range s.Targets {
		if t.Weight <= 0 {
			continue
		}
		score := float64(load(t.Name)) / float64(t.Weight)
		switch {
		case best < 0 || score < bestScore:
			best, bestScore, ties = i, score, 1
		case score == bestScore:
			ties++
			if rand.IntN(ties) == 0 {
				best = i
			}
		}
	}
	return best
}

// smoothWRR spreads targets by weight (nginx's smooth weighted round robin)
// over one period of sum(weights) picks, e.g. 2,1 -> a b a.
func smoothWRR(targets []Target) []int {
	total := 0
	for _, t := range targets {
		total += max(t.Weight, 0)
	}
	cur := make([]int, len(targets))
	seq := make([]int, 0, total)
	for range total {
		best := -1
		for i, t := range targets {
			if t.Weight <= 0 {
				continue
			}
			cur[i] += t.Weight
			if best < 0 || cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		seq = append(seq, best)
	}
	return seq
}

// Balancer is the data path's view of a balancer actor.
type Balancer struct {
	snap atomic.Pointer[Snapshot]
	pid  *actor.PID
	sys  *actors.System
}

// Current is the latest published snapshot.
func (b *Balancer) Current() *Snapshot { return b.snap.Load() }

// PID is the balancer actor.
func (b *Balancer) PID() *actor.PID { return b.pid }

// ReportFailure tells the balancer a node failed a session (dial, acquire
// or I/O error). Fire and forget: the data path never waits for it.
func (b *Balancer) ReportFailure(node string, err error) {
	b.sys.Root.Send(b.pid, &NodeReport{Node: node, Err: err})
}

// SetTargets replaces the balancing table (config reload).
type SetTargets struct {
	Algorithm string
	Targets   []Target
}

// Health is how a balancer checks and reacts to its nodes.
type Health struct {
	// Tenant labels the breaker-state metric.
	Tenant string
	// Probe dials a node once (connect, authenticate, ping).
	Probe func(ctx context.Context, node string) error
	// OnOpen is called when a node's breaker opens (e.g. to drop idle connections).
	OnOpen func(node string)
}

// NewBalancer spawns the balancer actor, named name, under parent and publishes the first snapshot.
func NewBalancer(sys *actors.System, parent actor.SpawnerContext, name, algorithm string, targets []Target, h Health) (*Balancer, error) {
	b := &Balancer{sys: sys}
	b.snap.Store(NewSnapshot(algorithm, targets))
	props := sys.Props("balancer", func() actor.Actor {
		return &balancerActor{b: b, health: h, algorithm: algorithm, targets: targets}
	})
	pid, err := parent.SpawnNamed(props, name)
	if err != nil {
		return nil, err
	}
	b.pid = pid
	return b, nil
}
