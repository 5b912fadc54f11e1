package qosd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"

	"pisanix.io/pisanix/bpf"
	"pisanix.io/pisanix/config"
)

// Reconciler turns a DaemonConfig into kernel state on one network
// namespace and back. It is not safe for concurrent use: the reconcile actor
// owns it, and every call happens on the actor's mailbox.
//
// Apply is idempotent and restart-safe: it reads what is on the node (the
// root HTB 5049:, its classes, the clsact filter named pisa-daemon-qos),
// changes only what differs from the config, and removes what an earlier
// run left that the config no longer has.
type Reconciler struct {
	log    *slog.Logger
	nl     *netlink.Handle
	env    env
	tc     tc
	objs   bpf.QosObjects
	progID int

	slots   map[string]uint32 // classPlan.id() -> counter slot
	classes map[uint32]ClassInfo
	free    []uint32
}

// ClassInfo describes one shaped class: an app's service on an interface.
type ClassInfo struct {
	App, Service, Device string
	ClassID              uint32 // HTB handle major:minor
	Rate, Ceil           config.Rate
}

// ClassCounters are a class's counters as the classifier counted them,
// and the HTB class's own queue statistics.
type ClassCounters struct {
	ClassInfo
	Packets      uint64
	Bytes        uint64 // L2 bytes, what HTB shapes
	PayloadBytes uint64 // TCP/UDP payload bytes
	Drops        uint64 // packets the class's queue dropped (HTB's class stats)
	Overlimits   uint64 // times the class was over its rate and the packet waited
}

// NewReconciler loads the classifier into the kernel. nl selects the
// network namespace the reconciler works in. It fails with an error
// wrapping ebpf.ErrNotSupported when the kernel cannot run it.
func NewReconciler(log *slog.Logger, nl *netlink.Handle) (*Reconciler, error) {
	r := &Reconciler{
		log:     log,
		nl:      nl,
		env:     nodeEnv{nl: nl},
		tc:      tc{nl: nl},
		slots:   map[string]uint32{},
		classes: map[uint32]ClassInfo{},
	}
	if err := bpf.LoadQosObjects(&r.objs, nil); err != nil {
		return nil, fmt.Errorf("load classifier: %w", err)
	}
	info, err := r.objs.PisaQosEgress.Info()
	if err != nil {
		_ = r.objs.Close()
		return nil, fmt.Errorf("classifier program info: %w", err)
	}
	id, ok := info.ID()
	if !ok {
		_ = r.objs.Close()
		return nil, errors.New("classifier program info: kernel reports no program id")
	}
	r.progID = int(id)
	for s := uint32(bpf.MaxSlots); s > 0; s-- {
		r.free = append(r.free, s-1)
	}
	return r, nil
}

// Close releases the loaded objects. Attached filters keep the program
// alive and running: Close is what a crash looks like, not a cleanup.
func (r *Reconciler) Close() error { return r.objs.Close() }

// Apply makes the node match cfg (nil means no claims). A config that does
// not validate or resolve (bad rate, unknown interface, a foreign root
// qdisc) is rejected before anything changes.
func (r *Reconciler) Apply(ctx context.Context, cfg *config.DaemonConfig) error {
	if cfg == nil {
		cfg = &config.DaemonConfig{}
	}
	p, err := buildPlan(ctx, cfg, r.env)
	if err != nil {
		return fmt.Errorf("invalid daemon config: %w", err)
	}
	type target struct {
		link netlink.Link
		st   *deviceState
		dp   *devicePlan
	}
	var targets []target
	var errs []error
	for _, dp := range p.devices {
		link, err := r.nl.LinkByIndex(dp.ifindex)
		if err != nil {
			return fmt.Errorf("interface %s: %w", dp.name, err)
		}
		st, err := r.tc.state(link)
		if err != nil {
			return err
		}
		if err := st.check(dp.name); err != nil {
			errs = append(errs, err)
		}
		targets = append(targets, target{link, st, dp})
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid daemon config: %w", err)
	}

	// From here on the node changes. Classes first, then the rules that
	// point packets at them, then what is no longer wanted.
	r.assignSlots(p)
	for _, t := range targets {
		if err := r.tc.ensureRoot(t.link, t.st, t.dp); err != nil {
			return err
		}
	}
	if err := r.syncRules(p); err != nil {
		return err
	}
	for _, t := range targets {
		if err := r.tc.ensureFilter(t.link, t.st, r.objs.PisaQosEgress.FD(), r.progID); err != nil {
			return err
		}
		// Re-read: ensureRoot may have created the root and classes.
		st, err := r.tc.state(t.link)
		if err != nil {
			return err
		}
		if err := r.tc.pruneClasses(t.link, st, t.dp); err != nil {
			return err
		}
	}
	return r.removeStale(p)
}

// Cleanup removes everything the daemon added on the node, from this run
// or an earlier one.
func (r *Reconciler) Cleanup(ctx context.Context) error {
	return r.Apply(ctx, nil)
}

// removeStale takes our qdiscs and filter off interfaces the plan does not use.
func (r *Reconciler) removeStale(p *plan) error {
	owned, err := r.tc.owned()
	if err != nil {
		return err
	}
	var errs []error
	for idx, link := range owned {
		if slices.ContainsFunc(p.devices, func(d *devicePlan) bool { return d.ifindex == idx }) {
			continue
		}
		st, err := r.tc.state(link)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.log.Info("removing QoS from interface", "interface", link.Attrs().Name)
		if err := r.tc.removeDevice(link, st); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// assignSlots keeps each class's counter slot across reconciles and frees
// the slots of classes that are gone.
func (r *Reconciler) assignSlots(p *plan) {
	want := map[string]bool{}
	for _, d := range p.devices {
		for _, c := range d.classes {
			want[c.id()] = true
		}
	}
	for id, s := range r.slots {
		if !want[id] {
			delete(r.slots, id)
			delete(r.classes, s)
			r.free = append(r.free, s)
		}
	}
	for _, d := range p.devices {
		for _, c := range d.classes {
			s, ok := r.slots[c.id()]
			if !ok {
				s = r.free[len(r.free)-1]
				r.free = r.free[:len(r.free)-1]
				r.slots[c.id()] = s
				r.zeroSlot(s)
			}
			r.classes[s] = ClassInfo{App: c.app, Service: c.service, Device: c.device, ClassID: c.classid(), Rate: c.rate, Ceil: c.ceil}
		}
	}
}

func (r *Reconciler) zeroSlot(s uint32) {
	zero := make([]bpf.QosClassCounters, ebpf.MustPossibleCPU())
	if err := r.objs.Counters.Put(s, zero); err != nil {
		r.log.Warn("reset class counters", "slot", s, "err", err)
	}
}

// syncRules makes the classifier's rules map equal the plan's rules.
func (r *Reconciler) syncRules(p *plan) error {
	want := map[bpf.QosRuleKey]bpf.QosRuleVal{}
	for _, d := range p.devices {
		for _, c := range d.classes {
			v := bpf.QosRuleVal{Classid: c.classid(), Slot: r.slots[c.id()]}
			for _, k := range c.rules {
				if _, dup := want[k]; !dup { // the first class claiming a flow wins
					want[k] = v
				}
			}
		}
	}
	var flags uint32
	if p.cgroups {
		flags |= bpf.SettingHasCgroupRules
	}
	if err := r.objs.Settings.Put(uint32(0), flags); err != nil {
		return fmt.Errorf("update classifier settings: %w", err)
	}
	for k, v := range want {
		if err := r.objs.Rules.Put(k, v); err != nil {
			return fmt.Errorf("update classifier rule: %w", err)
		}
	}
	var stale []bpf.QosRuleKey
	var k bpf.QosRuleKey
	var v bpf.QosRuleVal
	it := r.objs.Rules.Iterate()
	for it.Next(&k, &v) {
		if _, ok := want[k]; !ok {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read classifier rules: %w", err)
	}
	for _, k := range stale {
		if err := r.objs.Rules.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete classifier rule: %w", err)
		}
	}
	return nil
}

// classStats fills the drops and overlimits of cs from the HTB classes'
// statistics, one class listing per interface.
func (r *Reconciler) classStats(cs []ClassCounters) error {
	byDevice := map[string]map[uint32]*netlink.ClassStatistics{}
	for i := range cs {
		c := &cs[i]
		stats, ok := byDevice[c.Device]
		if !ok {
			stats = map[uint32]*netlink.ClassStatistics{}
			link, err := r.nl.LinkByName(c.Device)
			if err != nil {
				return fmt.Errorf("class statistics of %s: %w", c.Device, err)
			}
			classes, err := r.nl.ClassList(link, rootHandle)
			if err != nil {
				return fmt.Errorf("class statistics of %s: %w", c.Device, err)
			}
			for _, cl := range classes {
				if a := cl.Attrs(); a.Statistics != nil {
					stats[a.Handle] = a.Statistics
				}
			}
			byDevice[c.Device] = stats
		}
		if st := stats[c.ClassID]; st != nil && st.Queue != nil {
			c.Drops, c.Overlimits = uint64(st.Queue.Drops), uint64(st.Queue.Overlimits)
		}
	}
	return nil
}

// Counters reads every class's counters, summed over CPUs, with its HTB
// class's drops and overlimits.
func (r *Reconciler) Counters() ([]ClassCounters, error) {
	out := make([]ClassCounters, 0, len(r.classes))
	var per []bpf.QosClassCounters
	for s, info := range r.classes {
		if err := r.objs.Counters.Lookup(s, &per); err != nil {
			return nil, fmt.Errorf("read counters of %s/%s on %s: %w", info.App, info.Service, info.Device, err)
		}
		c := ClassCounters{ClassInfo: info}
		for _, p := range per {
			c.Packets += p.Packets
			c.Bytes += p.Bytes
			c.PayloadBytes += p.PayloadBytes
		}
		out = append(out, c)
	}
	if err := r.classStats(out); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b ClassCounters) int {
		return cmp.Or(cmp.Compare(a.Device, b.Device), cmp.Compare(a.App, b.App), cmp.Compare(a.Service, b.Service))
	})
	return out, nil
}
