package strategy

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"pisanix.io/pisanix/actors"
	"pisanix.io/pisanix/metrics"
)

// The first probe round publishes nothing until every node answered: the
// balancers keep the configured roles meanwhile, so early sessions are served
// (a replica answering first used to leave the tenant without a primary).
func TestDiscoveryPublishesOnlyAfterEveryNodeAnswered(t *testing.T) {
	sys := actors.NewSystem(slog.New(slog.NewTextHandler(io.Discard, nil)), metrics.New())
	t.Cleanup(sys.Shutdown)
	published := make(chan [2][]string, 16) // (balancer, targets)
	recorder := func(role string) *Balancer {
		pid := sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
			if m, ok := c.Message().(*SetTargets); ok {
				var names []string
				for _, t := range m.Targets {
					names = append(names, t.Name)
				}
				published <- [2][]string{{role}, names}
			}
		}))
		return &Balancer{pid: pid, sys: sys}
	}
	release := make(chan struct{})
	probe := func(ctx context.Context, node string) (NodeStatus, error) {
		if node == "replica" {
			return NodeStatus{ReadOnly: true, Replicating: true}, nil
		}
		select { // the primary answers only when the test says so
		case <-release:
			return NodeStatus{}, nil
		case <-ctx.Done():
			return NodeStatus{}, ctx.Err()
		}
	}
	cfg := DiscoveryConfig{
		Tenant: "t", Period: time.Hour, Timeout: time.Minute, FailureThreshold: 3,
		ReadOnlyEnabled: true, LagEnabled: true, MaxLag: time.Minute,
		Nodes: []Target{{"primary", 1}, {"replica", 1}}, Probe: probe,
	}
	if _, err := NewDiscovery(sys, sys.Root, "discovery", cfg, recorder("primaries"), recorder("replicas"), Random); err != nil {
		t.Fatal(err)
	}
	// The actor counts a result before it publishes, in the same message, so
	// once the replica's answer is counted anything it published is queued
	// before whatever the primary's answer publishes.
	counted := sys.Metrics.DiscoveryProbes.WithLabelValues("t", "replica", "ok")
	for deadline := time.Now().Add(5 * time.Second); testutil.ToFloat64(counted) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("replica never probed")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	want := map[string]string{"primaries": "primary", "replicas": "replica"}
	for range 2 {
		select {
		case p := <-published:
			if len(p[1]) != 1 || p[1][0] != want[p[0][0]] {
				t.Fatalf("%s published as %v", p[0][0], p[1])
			}
		case <-time.After(5 * time.Second):
			t.Fatal("roles never published")
		}
	}
}
