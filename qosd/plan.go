package qosd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strings"

	"pisanix.io/pisanix/bpf"
	"pisanix.io/pisanix/config"
)

// Kernel handles owned by the daemon. HTB class ids are qdiscMajor:minor.
const (
	qdiscMajor  uint16 = 0x5049 // "PI": the root HTB qdisc is 5049:
	parentMinor uint16 = 0x1    // 5049:1, the parent of all claim classes (lets ceil borrow)
	minMinor    uint16 = 0x10   // claim classes use 5049:10 .. 5049:fff0
	maxMinor    uint16 = 0xfff0
)

// plan is the desired kernel state for one config: what to shape where and
// which packets go to which class. Built without touching the node.
type plan struct {
	devices []*devicePlan // sorted by name
	cgroups bool          // any cgroup rule (turns on the classifier's cgroup lookups)
}

type devicePlan struct {
	name    string
	ifindex int
	classes []*classPlan // sorted by minor
}

type classPlan struct {
	app, service string
	device       string
	minor        uint16
	rate, ceil   config.Rate
	rules        []bpf.QosRuleKey // ifindex filled in
}

func (c *classPlan) id() string { return c.app + "/" + c.service + "@" + c.device }

func (c *classPlan) classid() uint32 { return uint32(qdiscMajor)<<16 | uint32(c.minor) }

// env is what building a plan needs from the node.
type env interface {
	// linkIndex returns the ifindex of an Ethernet-like interface.
	linkIndex(name string) (int, error)
	lookupHost(ctx context.Context, host string) ([]netip.Addr, error)
	cgroupID(path string) (uint64, error)
}

// buildPlan validates cfg and resolves every name in it. Errors name the
// config key; on error nothing on the node has changed.
func buildPlan(ctx context.Context, cfg *config.DaemonConfig, e env) (*plan, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &plan{}
	devs := map[string]*devicePlan{}
	var errs []error
	for i, app := range cfg.App {
		for j, svc := range app.Service {
			if svc.QoSGroup == nil {
				continue
			}
			key := fmt.Sprintf("app[%d].service[%d]", i, j)
			rate, ceil, err := svc.QoSGroup.Rates()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s.qos_group.%w", key, err))
				continue
			}
			sel, err := resolveSelectors(ctx, key, svc, e)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if sel.cgroups {
				p.cgroups = true
			}
			for k, name := range svc.Devices(cfg.Global) {
				d := devs[name]
				if d == nil {
					idx, err := e.linkIndex(name)
					if err != nil {
						errs = append(errs, fmt.Errorf("%s: interface %q: %w", deviceKey(key, svc, cfg.Global, k, name), name, err))
						continue
					}
					d = &devicePlan{name: name, ifindex: idx}
					devs[name] = d
				}
				c := &classPlan{app: app.Name, service: svc.Name, device: name, rate: rate, ceil: ceil}
				for _, r := range sel.rules {
					r.Ifindex = uint32(d.ifindex)
					c.rules = append(c.rules, r)
				}
				d.classes = append(d.classes, c)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slots := 0
	for _, d := range devs {
		if err := assignMinors(d); err != nil {
			return nil, err
		}
		slots += len(d.classes)
		p.devices = append(p.devices, d)
	}
	if slots > bpf.MaxSlots {
		return nil, fmt.Errorf("%d classes on this node, at most %d are supported", slots, bpf.MaxSlots)
	}
	if n := p.ruleCount(); n > bpf.MaxRules {
		return nil, fmt.Errorf("%d classifier rules on this node, at most %d are supported", n, bpf.MaxRules)
	}
	slices.SortFunc(p.devices, func(a, b *devicePlan) int { return cmp.Compare(a.name, b.name) })
	return p, nil
}

// deviceKey names the config key an interface came from.
func deviceKey(key string, svc config.QoSService, g config.DaemonGlobal, i int, name string) string {
	switch {
	case len(svc.Interfaces) > 0:
		return fmt.Sprintf("%s.interfaces[%d]", key, i)
	case name == g.EgressDevice:
		return "global.egress_device"
	default:
		return "global.bridge_device"
	}
}

func (p *plan) ruleCount() int {
	n := 0
	for _, d := range p.devices {
		for _, c := range d.classes {
			n += len(c.rules)
		}
	}
	return n
}

// assignMinors gives each class of a device a stable minor: a hash of
// app/service, probing on collision in name order, so the same config always
// yields the same class ids (which is how a restarted daemon recognises its
// classes) and adding a claim does not renumber the others.
func assignMinors(d *devicePlan) error {
	slices.SortFunc(d.classes, func(a, b *classPlan) int {
		return cmp.Or(cmp.Compare(a.app, b.app), cmp.Compare(a.service, b.service))
	})
	span := uint32(maxMinor - minMinor)
	if len(d.classes) > int(span) {
		return fmt.Errorf("interface %q: %d classes, at most %d", d.name, len(d.classes), span)
	}
	used := map[uint16]bool{}
	for _, c := range d.classes {
		h := fnv.New32a()
		h.Write([]byte(c.app + "/" + c.service))
		m := h.Sum32() % span
		for used[minMinor+uint16(m)] {
			m = (m + 1) % span
		}
		c.minor = minMinor + uint16(m)
		used[c.minor] = true
	}
	slices.SortFunc(d.classes, func(a, b *classPlan) int { return cmp.Compare(a.minor, b.minor) })
	return nil
}

type selectors struct {
	rules   []bpf.QosRuleKey // ifindex not yet set
	cgroups bool
}

// resolveSelectors turns a service's endpoints, sources, ports and cgroups
// into classifier rules.
func resolveSelectors(ctx context.Context, key string, svc config.QoSService, e env) (selectors, error) {
	var s selectors
	var errs []error
	seen := map[bpf.QosRuleKey]bool{}
	add := func(k bpf.QosRuleKey) {
		if !seen[k] {
			seen[k] = true
			s.rules = append(s.rules, k)
		}
	}
	for i, ep := range svc.Endpoints {
		addrs, err := resolve(ctx, e, ep.IP)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.endpoints[%d].ip: %w", key, i, err))
			continue
		}
		for _, a := range addrs {
			add(bpf.QosRuleKey{Kind: bpf.RuleEndpoint, Port: uint16(ep.Port), Addr: bpf.AddrKey(a)})
		}
	}
	ports := []uint16{0} // 0: any port
	if len(svc.Ports) > 0 {
		ports = ports[:0]
		for _, p := range svc.Ports {
			ports = append(ports, uint16(p))
		}
	}
	for i, src := range svc.Sources {
		addrs, err := resolve(ctx, e, src)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.sources[%d]: %w", key, i, err))
			continue
		}
		for _, a := range addrs {
			for _, p := range ports {
				add(bpf.QosRuleKey{Kind: bpf.RuleSource, Port: p, Addr: bpf.AddrKey(a)})
			}
		}
	}
	for i, path := range svc.Cgroups {
		id, err := e.cgroupID(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.cgroups[%d]: %w", key, i, err))
			continue
		}
		s.cgroups = true
		for _, p := range ports {
			add(bpf.QosRuleKey{Kind: bpf.RuleCgroup, Port: p, Addr: bpf.CgroupKey(id)})
		}
	}
	if len(svc.Sources) == 0 && len(svc.Cgroups) == 0 {
		for _, p := range svc.Ports {
			add(bpf.QosRuleKey{Kind: bpf.RuleSource, Port: uint16(p)}) // any source address
		}
	}
	return s, errors.Join(errs...)
}

// resolve parses an IP literal or looks a host name up (IPv4 and IPv6).
func resolve(ctx context.Context, e env, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return []netip.Addr{a.Unmap().WithZone("")}, nil
	}
	addrs, err := e.lookupHost(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("resolve %q: %w", host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %q: no addresses", host)
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.Unmap().WithZone(""))
	}
	return out, nil
}
