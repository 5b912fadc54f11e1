package qosd

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The classifier's clsact egress filter: recognised by parent, priority,
// handle and name together.
const (
	filterPriority uint16 = 1
	filterHandle   uint32 = 0x5049
	filterName            = "pisa-daemon-qos"
)

var rootHandle = netlink.MakeHandle(qdiscMajor, 0)

// tc reads and changes traffic control state through a netlink handle. It
// only ever changes the root HTB qdisc 5049:, its classes, and the clsact
// egress filter named filterName (and the clsact qdisc when it added it).
type tc struct {
	nl *netlink.Handle
}

// deviceState is what the daemon finds of its own on an interface.
type deviceState struct {
	root     netlink.Qdisc       // the root qdisc, nil if none is listed
	ownRoot  bool                // root is our HTB
	clsact   netlink.Qdisc       // nil when the device has no clsact qdisc
	filter   *netlink.BpfFilter  // our egress filter, nil when absent
	filters  int                 // all clsact filters (ingress and egress), ours included
	conflict netlink.Filter      // another filter in our filter's slot
	classes  []*netlink.HtbClass // classes of our root qdisc
	hasOurTC bool
}

func (t tc) state(link netlink.Link) (*deviceState, error) {
	name := link.Attrs().Name
	st := &deviceState{}
	qdiscs, err := t.nl.QdiscList(link)
	if err != nil {
		return nil, fmt.Errorf("list qdiscs of %s: %w", name, err)
	}
	for _, q := range qdiscs {
		a := q.Attrs()
		switch {
		case a.Parent == netlink.HANDLE_ROOT:
			st.root = q
			_, isHTB := q.(*netlink.Htb)
			st.ownRoot = isHTB && a.Handle == rootHandle
		case a.Parent == netlink.HANDLE_CLSACT && q.Type() == "clsact":
			st.clsact = q
		}
	}
	if st.clsact != nil {
		for _, parent := range []uint32{netlink.HANDLE_MIN_EGRESS, netlink.HANDLE_MIN_INGRESS} {
			fs, err := t.nl.FilterList(link, parent)
			if err != nil {
				return nil, fmt.Errorf("list clsact filters of %s: %w", name, err)
			}
			st.filters += len(fs)
			if parent != netlink.HANDLE_MIN_EGRESS {
				continue
			}
			for _, f := range fs {
				a := f.Attrs()
				if a.Priority != filterPriority || a.Handle != filterHandle {
					continue
				}
				if bf, ok := f.(*netlink.BpfFilter); ok && bf.Name == filterName {
					st.filter = bf
				} else {
					st.conflict = f
				}
			}
		}
	}
	if st.ownRoot {
		classes, err := t.nl.ClassList(link, rootHandle)
		if err != nil {
			return nil, fmt.Errorf("list classes of %s: %w", name, err)
		}
		for _, c := range classes {
			if hc, ok := c.(*netlink.HtbClass); ok {
				if major, _ := netlink.MajorMinor(hc.Handle); major == qdiscMajor {
					st.classes = append(st.classes, hc)
				}
			}
		}
	}
	st.hasOurTC = st.ownRoot || st.filter != nil
	return st, nil
}

// check says whether the daemon may take the interface: its root qdisc is
// the kernel's default (handle 0:) or ours, and our filter slot is free.
func (st *deviceState) check(name string) error {
	if st.root != nil && !st.ownRoot && st.root.Attrs().Handle != 0 {
		a := st.root.Attrs()
		major, minor := netlink.MajorMinor(a.Handle)
		return fmt.Errorf("interface %s has a root qdisc %s %x:%x that pisa-daemon did not create; remove it or shape another interface", name, st.root.Type(), major, minor)
	}
	if st.conflict != nil {
		return fmt.Errorf("interface %s has a %s filter at clsact egress prio %d handle %#x that pisa-daemon did not create", name, st.conflict.Type(), filterPriority, filterHandle)
	}
	return nil
}

// ensureRoot makes our HTB the root qdisc, with the parent class 5049:1
// whose rate and ceil are the sum of the claims' ceilings.
func (t tc) ensureRoot(link netlink.Link, st *deviceState, dp *devicePlan) error {
	name := link.Attrs().Name
	if !st.ownRoot {
		q := netlink.NewHtb(netlink.QdiscAttrs{LinkIndex: link.Attrs().Index, Parent: netlink.HANDLE_ROOT, Handle: rootHandle})
		q.Defcls = 0 // unclassified traffic is sent directly, unshaped
		if link.Attrs().TxQLen < 100 {
			qlen := uint32(1000)
			q.DirectQlen = &qlen
		}
		if err := t.nl.QdiscReplace(q); err != nil {
			return fmt.Errorf("add root htb qdisc to %s: %w", name, err)
		}
	}
	var total uint64
	for _, c := range dp.classes {
		total += uint64(c.ceil)
	}
	if err := t.setClass(link, st, parentMinor, 0, total, total); err != nil {
		return err
	}
	for _, c := range dp.classes {
		if err := t.setClass(link, st, c.minor, parentMinor, uint64(c.rate), uint64(c.ceil)); err != nil {
			return fmt.Errorf("%s: %w", c.id(), err)
		}
	}
	return nil
}

// setClass creates or changes an HTB class, leaving it alone when it has the
// wanted rate and ceil already.
func (t tc) setClass(link netlink.Link, st *deviceState, minor, parentMinor uint16, rate, ceil uint64) error {
	handle := netlink.MakeHandle(qdiscMajor, minor)
	parent := rootHandle
	if parentMinor != 0 {
		parent = netlink.MakeHandle(qdiscMajor, parentMinor)
	}
	for _, have := range st.classes {
		if have.Handle == handle && have.Parent == parent && have.Rate == rate/8 && have.Ceil == ceil/8 {
			return nil
		}
	}
	c := netlink.NewHtbClass(netlink.ClassAttrs{LinkIndex: link.Attrs().Index, Parent: parent, Handle: handle},
		netlink.HtbClassAttrs{Rate: rate, Ceil: ceil, Quantum: quantum(rate)})
	if err := t.nl.ClassReplace(c); err != nil {
		return fmt.Errorf("set htb class %x:%x on %s (rate %d bit/s, ceil %d bit/s): %w",
			qdiscMajor, minor, link.Attrs().Name, rate, ceil, err)
	}
	return nil
}

// quantum is HTB's DRR quantum for a rate, clamped to the range the kernel
// accepts without complaint (rate/r2q with r2q 10).
func quantum(rateBits uint64) uint32 {
	return uint32(min(max(rateBits/8/10, 1600), 200000))
}

// pruneClasses deletes our classes that the plan no longer has.
func (t tc) pruneClasses(link netlink.Link, st *deviceState, dp *devicePlan) error {
	want := map[uint32]bool{netlink.MakeHandle(qdiscMajor, parentMinor): true}
	for _, c := range dp.classes {
		want[c.classid()] = true
	}
	for _, have := range st.classes {
		if want[have.Handle] {
			continue
		}
		if err := t.nl.ClassDel(have); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("delete htb class %x on %s: %w", have.Handle, link.Attrs().Name, err)
		}
	}
	return nil
}

// ensureFilter attaches the classifier at clsact egress, adding the clsact
// qdisc when the interface has none, and replacing an older program of ours.
func (t tc) ensureFilter(link netlink.Link, st *deviceState, progFD, progID int) error {
	name := link.Attrs().Name
	if st.filter != nil && st.filter.Id == progID {
		return nil
	}
	if st.clsact == nil {
		q := &netlink.GenericQdisc{
			QdiscAttrs: netlink.QdiscAttrs{LinkIndex: link.Attrs().Index, Parent: netlink.HANDLE_CLSACT, Handle: netlink.MakeHandle(0xffff, 0)},
			QdiscType:  "clsact",
		}
		if err := t.nl.QdiscAdd(q); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add clsact qdisc to %s: %w", name, err)
		}
	}
	f := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: link.Attrs().Index,
			Parent:    netlink.HANDLE_MIN_EGRESS,
			Handle:    filterHandle,
			Priority:  filterPriority,
			Protocol:  unix.ETH_P_ALL,
		},
		Fd:           progFD,
		Name:         filterName,
		DirectAction: true,
	}
	if err := t.nl.FilterReplace(f); err != nil {
		return fmt.Errorf("attach classifier to %s egress: %w", name, err)
	}
	return nil
}

// removeDevice takes away everything of ours from an interface: the filter,
// the clsact qdisc when no other filter is left on it, and the root HTB
// (the kernel then restores the interface's default qdisc).
func (t tc) removeDevice(link netlink.Link, st *deviceState) error {
	name := link.Attrs().Name
	var errs []error
	if st.filter != nil {
		if err := t.nl.FilterDel(st.filter); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("detach classifier from %s: %w", name, err))
		} else if st.filters == 1 && st.clsact != nil {
			if err := t.nl.QdiscDel(st.clsact); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
				errs = append(errs, fmt.Errorf("delete clsact qdisc of %s: %w", name, err))
			}
		}
	}
	if st.ownRoot {
		if err := t.nl.QdiscDel(st.root); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("delete root htb qdisc of %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// owned lists the interfaces that carry anything of ours.
func (t tc) owned() (map[int]netlink.Link, error) {
	links, err := t.nl.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	out := map[int]netlink.Link{}
	for _, l := range links {
		st, err := t.state(l)
		if err != nil {
			return nil, err
		}
		if st.hasOurTC {
			out[l.Attrs().Index] = l
		}
	}
	return out, nil
}
