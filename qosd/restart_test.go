package qosd

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"pisanix.io/pisanix/config"
)

func twoClaims(dev string, db netip.Addr) *config.DaemonConfig {
	return &config.DaemonConfig{App: []config.QoSApp{
		{Name: "catalogue", Service: []config.QoSService{{
			Name: "catalogue-db", QoSGroup: &config.QoSGroup{Rate: "10mbit", Ceil: "20mbit"}, Interfaces: []string{dev},
			Endpoints: []config.QoSEndpoint{{IP: db.String(), Port: 3306}},
		}}},
		{Name: "orders", Service: []config.QoSService{{
			Name: "orders-db", QoSGroup: &config.QoSGroup{Rate: "2mbps"}, Interfaces: []string{dev},
			Ports: []int{3307},
		}}},
	}}
}

func ourFilterID(t *testing.T, nl *netlink.Handle, dev string) int {
	t.Helper()
	link, err := nl.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	st, err := (tc{nl: nl}).state(link)
	if err != nil {
		t.Fatal(err)
	}
	if st.filter == nil {
		t.Fatalf("no classifier filter on %s", dev)
	}
	return st.filter.Id
}

func counterOf(t *testing.T, r *Reconciler, app string) ClassCounters {
	t.Helper()
	cs, err := r.Counters()
	if err != nil {
		t.Fatalf("counters: %v", err)
	}
	for _, c := range cs {
		if c.App == app {
			return c
		}
	}
	t.Fatalf("no counters for app %s in %+v", app, cs)
	return ClassCounters{}
}

// A restarted daemon adopts what the previous one attached: same classes,
// one filter (now running the new program), and classification continues.
func TestRestartAdoptsAndIsIdempotent(t *testing.T) {
	tn := newTestNet(t)
	ctx := context.Background()
	cfg := twoClaims(tn.devA, tn.ipB)
	before := tcSnapshot(t, tn.nlA, tn.devA)

	r1 := newTestReconciler(t, tn)
	t.Cleanup(func() { _ = r1.Cleanup(ctx) })
	if err := r1.Apply(ctx, cfg); err != nil {
		t.Fatalf("apply: %v", err)
	}
	applied := tcSnapshot(t, tn.nlA, tn.devA)
	if n := strings.Count(applied, "class htb 5049:"); n != 3 { // parent 5049:1 and one class per claim
		t.Errorf("%d HTB classes, want 3:\n%s", n, applied)
	}
	for _, want := range []string{"qdisc htb 5049:0 parent root", "qdisc clsact", "class htb 5049:1\n"} {
		if !strings.Contains(applied, want) {
			t.Errorf("tc state lacks %q:\n%s", want, applied)
		}
	}
	if err := r1.Apply(ctx, cfg); err != nil {
		t.Fatalf("apply again: %v", err)
	}
	if again := tcSnapshot(t, tn.nlA, tn.devA); again != applied {
		t.Errorf("second apply changed tc state:\n%s\nwant:\n%s", again, applied)
	}
	_ = r1.Close() // what a crash leaves: state on the node, no process

	r2 := newTestReconciler(t, tn)
	t.Cleanup(func() { _ = r2.Cleanup(ctx) })
	if err := r2.Apply(ctx, cfg); err != nil {
		t.Fatalf("apply after restart: %v", err)
	}
	if adopted := tcSnapshot(t, tn.nlA, tn.devA); adopted != applied {
		t.Errorf("after restart tc state is\n%s\nwant the same as before:\n%s", adopted, applied)
	}
	if id := ourFilterID(t, tn.nlA, tn.devA); id != r2.progID {
		t.Errorf("filter runs program %d, want the restarted daemon's %d", id, r2.progID)
	}
	sendBytes(t, tn, netip.AddrPortFrom(tn.ipB, 3307), 300_000)
	if c := counterOf(t, r2, "orders"); c.PayloadBytes != 300_000 {
		t.Errorf("orders payload counter = %d, want 300000", c.PayloadBytes)
	}
	if c := counterOf(t, r2, "catalogue"); c.Packets != 0 {
		t.Errorf("catalogue counted %d packets of port 3307 traffic", c.Packets)
	}

	if err := r2.Cleanup(ctx); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	if after := tcSnapshot(t, tn.nlA, tn.devA); after != before {
		t.Errorf("after cleanup:\n%s\nwant as before:\n%s", after, before)
	}
}

// A bad config is rejected with an error naming the key, and the node
// keeps the state of the last good config.
func TestBadConfigLeavesNodeAsItWas(t *testing.T) {
	tn := newTestNet(t)
	ctx := context.Background()
	r := newTestReconciler(t, tn)
	t.Cleanup(func() { _ = r.Cleanup(ctx) })

	// A second interface with a root qdisc someone else owns.
	if err := tn.nlA.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "qc0"}, PeerName: "qd0"}); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	qc0, err := tn.nlA.LinkByName("qc0")
	if err != nil {
		t.Fatal(err)
	}
	foreign := netlink.NewHtb(netlink.QdiscAttrs{LinkIndex: qc0.Attrs().Index, Parent: netlink.HANDLE_ROOT, Handle: netlink.MakeHandle(1, 0)})
	if err := tn.nlA.QdiscAdd(foreign); err != nil {
		t.Fatalf("add foreign qdisc: %v", err)
	}

	good := twoClaims(tn.devA, tn.ipB)
	if err := r.Apply(ctx, good); err != nil {
		t.Fatalf("apply good config: %v", err)
	}
	stateA, stateC := tcSnapshot(t, tn.nlA, tn.devA), tcSnapshot(t, tn.nlA, "qc0")
	rulesBefore := ruleCount(t, r)

	bad := []struct {
		name   string
		mutate func(c *config.DaemonConfig)
		want   []string
	}{
		{"unknown interface", func(c *config.DaemonConfig) { c.App[1].Service[0].Interfaces = []string{"nosuch0"} },
			[]string{"app[1].service[0].interfaces[0]", "nosuch0", "no such interface"}},
		{"bad rate", func(c *config.DaemonConfig) { c.App[0].Service[0].QoSGroup.Rate = "10mbt" },
			[]string{"app[0].service[0].qos_group.rate", `unknown unit "mbt"`}},
		{"ceil below rate", func(c *config.DaemonConfig) { c.App[0].Service[0].QoSGroup.Ceil = "1mbit" },
			[]string{"app[0].service[0].qos_group.ceil", "below rate"}},
		{"foreign root qdisc", func(c *config.DaemonConfig) { c.App[1].Service[0].Interfaces = []string{tn.devA, "qc0"} },
			[]string{"qc0", "root qdisc htb 1:0", "did not create"}},
		{"unresolvable host", func(c *config.DaemonConfig) { c.App[0].Service[0].Endpoints[0].IP = "no-such-host.invalid" },
			[]string{"app[0].service[0].endpoints[0].ip", "no-such-host.invalid"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			cfg := twoClaims(tn.devA, tn.ipB)
			tt.mutate(cfg)
			err := r.Apply(ctx, cfg)
			if err == nil {
				t.Fatal("bad config was applied")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if got := tcSnapshot(t, tn.nlA, tn.devA); got != stateA {
				t.Errorf("%s changed:\n%s\nwant:\n%s", tn.devA, got, stateA)
			}
			if got := tcSnapshot(t, tn.nlA, "qc0"); got != stateC {
				t.Errorf("qc0 changed:\n%s\nwant:\n%s", got, stateC)
			}
			if n := ruleCount(t, r); n != rulesBefore {
				t.Errorf("classifier has %d rules, want %d", n, rulesBefore)
			}
		})
	}

	// Cleanup removes ours and leaves the foreign qdisc alone.
	if err := r.Cleanup(ctx); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	if got := tcSnapshot(t, tn.nlA, "qc0"); got != stateC {
		t.Errorf("cleanup touched qc0:\n%s\nwant:\n%s", got, stateC)
	}
}

func ruleCount(t *testing.T, r *Reconciler) int {
	t.Helper()
	n := 0
	var k, v []byte
	it := r.objs.Rules.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatalf("iterate rules: %v", err)
	}
	return n
}
