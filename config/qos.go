package config

// This file is the pisa-daemon's configuration model: the traffic QoS claims
// of a node. The controller builds it from QoSClaim and VirtualDatabase
// objects and serves it as JSON at
// GET /apis/configs.database-mesh.io/v1alpha1/daemonconfigs; the daemon also
// reads it from a local JSON or TOML file (same keys). It keeps Pisanix's
// pisa-daemon shape (global/app/service/endpoints/qos_group) and adds the
// keys marked "new".
//
//	{
//	  "global": {
//	    "egress_device": "eth0",        // default interface(s) of every service
//	    "bridge_device": "cni0"         // optional second default interface
//	  },
//	  "app": [{
//	    "name": "catalogue",            // the application (VirtualDatabase name)
//	    "service": [{                   // one HTB class per service
//	      "name": "catalogue-db",
//	      "qos_class": "guaranteed",    // optional, informational: guaranteed | burstable | besteffort
//	      "qos_group": {                // the claim; a service without it is ignored
//	        "rate": "10mbit",           // tc rate syntax, required
//	        "ceil": "20mbit"            // optional, >= rate, default rate
//	      },
//	      "interfaces": ["eth0"],       // new: overrides the global devices
//	      "endpoints": [                // database endpoints: traffic to ip:port (and replies from it)
//	        {"ip": "10.0.0.5", "port": 3306},
//	        {"ip": "db.example.internal", "port": 3306},  // new: hostnames and IPv6 accepted
//	        {"ip": "fd00::5", "port": 3306}
//	      ],
//	      "sources": ["10.244.1.7"],    // new: the app's own addresses (pod IPs or hostnames)
//	      "ports": [3306],              // new: database ports; with sources or cgroups they narrow
//	                                    //      those, alone they select any source to these ports
//	      "cgroups": ["/kubepods/burstable/pod1234"]  // new: cgroup v2 paths of the app's pods
//	    }]
//	  }]
//	}
//
// Rates use tc's syntax: a number with an optional unit, case-insensitive.
// bit (or no unit), kbit, mbit, gbit, tbit are bits per second (SI, 1000);
// bps, kbps, mbps, gbps, tbps are bytes per second; kibit, mibit, gibit,
// tibit and kibps, mibps, gibps, tibps are the 1024-based forms. So "10mbit"
// is 10,000,000 bits/s and "10mbps" is 80,000,000 bits/s.

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// QoS classes Pisanix accepted in qos_class.
const (
	QoSClassGuaranteed = "guaranteed"
	QoSClassBurstable  = "burstable"
	QoSClassBestEffort = "besteffort"
)

// DaemonConfig is the whole daemon configuration of a node.
type DaemonConfig struct {
	Global DaemonGlobal `json:"global" toml:"global"`
	App    []QoSApp     `json:"app" toml:"app"`
}

// DaemonGlobal holds node-wide defaults.
type DaemonGlobal struct {
	// EgressDevice and BridgeDevice are the interfaces a service is shaped
	// on when it lists no interfaces of its own (both, when both are set).
	EgressDevice string `json:"egress_device,omitempty" toml:"egress_device,omitempty"`
	BridgeDevice string `json:"bridge_device,omitempty" toml:"bridge_device,omitempty"`
}

// QoSApp is one application with its database services.
type QoSApp struct {
	Name    string       `json:"name" toml:"name"`
	Service []QoSService `json:"service" toml:"service"`
}

// QoSService is one traffic class: what traffic belongs to it and its claim.
// A packet belongs to the service when any selector matches it: an endpoint,
// or a source address / cgroup (narrowed to Ports when Ports is set), or,
// with neither sources nor cgroups, one of Ports as destination port.
type QoSService struct {
	Name       string        `json:"name" toml:"name"`
	QoSClass   string        `json:"qos_class,omitempty" toml:"qos_class,omitempty"`
	QoSGroup   *QoSGroup     `json:"qos_group,omitempty" toml:"qos_group,omitempty"`
	Interfaces []string      `json:"interfaces,omitempty" toml:"interfaces,omitempty"`
	Endpoints  []QoSEndpoint `json:"endpoints,omitempty" toml:"endpoints,omitempty"`
	Sources    []string      `json:"sources,omitempty" toml:"sources,omitempty"`
	Ports      []int         `json:"ports,omitempty" toml:"ports,omitempty"`
	Cgroups    []string      `json:"cgroups,omitempty" toml:"cgroups,omitempty"`
}

// QoSEndpoint is a database endpoint. IP may be an IPv4 or IPv6 literal or
// a host name (resolved by the daemon on every reconcile).
type QoSEndpoint struct {
	IP   string `json:"ip" toml:"ip"`
	Port int    `json:"port" toml:"port"`
}

// QoSGroup is the claimed bandwidth, in tc rate syntax.
type QoSGroup struct {
	Rate string `json:"rate" toml:"rate"`
	Ceil string `json:"ceil,omitempty" toml:"ceil,omitempty"`
}

// Rates parses the group's rate and ceil; ceil defaults to rate.
func (g QoSGroup) Rates() (rate, ceil Rate, err error) {
	rate, err = ParseRate(g.Rate)
	if err != nil {
		return 0, 0, fmt.Errorf("rate: %w", err)
	}
	ceil = rate
	if g.Ceil != "" {
		if ceil, err = ParseRate(g.Ceil); err != nil {
			return 0, 0, fmt.Errorf("ceil: %w", err)
		}
	}
	if ceil < rate {
		return 0, 0, fmt.Errorf("ceil: %s is below rate %s", g.Ceil, g.Rate)
	}
	return rate, ceil, nil
}

// Devices returns the interfaces the service is shaped on.
func (s QoSService) Devices(g DaemonGlobal) []string {
	if len(s.Interfaces) > 0 {
		return s.Interfaces
	}
	var out []string
	for _, d := range []string{g.EgressDevice, g.BridgeDevice} {
		if d != "" && !slices.Contains(out, d) { // Pisa-Daemon's example names eth0 twice
			out = append(out, d)
		}
	}
	return out
}

// Validate checks the daemon config and reports every problem, each naming
// its key (for example `app[0].service[1].qos_group.rate`). It checks
// syntax only; whether an interface exists is known on the node.
func (c *DaemonConfig) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	apps := map[string]bool{}
	for i, app := range c.App {
		key := fmt.Sprintf("app[%d]", i)
		switch {
		case app.Name == "":
			add(key+".name", "must not be empty")
		case apps[app.Name]:
			add(key+".name", "duplicate app %q", app.Name)
		}
		apps[app.Name] = true
		services := map[string]bool{}
		for j, svc := range app.Service {
			skey := fmt.Sprintf("%s.service[%d]", key, j)
			switch {
			case svc.Name == "":
				add(skey+".name", "must not be empty")
			case services[svc.Name]:
				add(skey+".name", "duplicate service %q in app %q", svc.Name, app.Name)
			}
			services[svc.Name] = true
			svc.validate(skey, c.Global, add)
		}
	}
	return errors.Join(errs...)
}

func (s QoSService) validate(key string, g DaemonGlobal, add func(key, format string, args ...any)) {
	switch s.QoSClass {
	case "", QoSClassGuaranteed, QoSClassBurstable, QoSClassBestEffort:
	default:
		add(key+".qos_class", "%q is not guaranteed, burstable or besteffort", s.QoSClass)
	}
	if s.QoSGroup == nil {
		return // no claim: the daemon leaves this service alone
	}
	rate, rateErr := ParseRate(s.QoSGroup.Rate)
	if rateErr != nil {
		add(key+".qos_group.rate", "%v", rateErr)
	}
	if s.QoSGroup.Ceil != "" {
		ceil, err := ParseRate(s.QoSGroup.Ceil)
		switch {
		case err != nil:
			add(key+".qos_group.ceil", "%v", err)
		case rateErr == nil && ceil < rate:
			add(key+".qos_group.ceil", "%s is below rate %s", s.QoSGroup.Ceil, s.QoSGroup.Rate)
		}
	}
	if len(s.Devices(g)) == 0 {
		add(key+".interfaces", "no interface: set interfaces or global.egress_device")
	}
	for i, d := range s.Interfaces {
		if d == "" || strings.ContainsAny(d, "/ \t") || len(d) > 15 {
			add(fmt.Sprintf("%s.interfaces[%d]", key, i), "%q is not an interface name", d)
		}
	}
	if len(s.Endpoints)+len(s.Sources)+len(s.Ports)+len(s.Cgroups) == 0 {
		add(key, "selects no traffic: set endpoints, sources, ports or cgroups")
	}
	for i, ep := range s.Endpoints {
		ekey := fmt.Sprintf("%s.endpoints[%d]", key, i)
		if !validHost(ep.IP) {
			add(ekey+".ip", "%q is neither an IP address nor a host name", ep.IP)
		}
		if ep.Port < 1 || ep.Port > 65535 {
			add(ekey+".port", "%d is not a port (1-65535)", ep.Port)
		}
	}
	for i, src := range s.Sources {
		if !validHost(src) {
			add(fmt.Sprintf("%s.sources[%d]", key, i), "%q is neither an IP address nor a host name", src)
		}
	}
	for i, p := range s.Ports {
		if p < 1 || p > 65535 {
			add(fmt.Sprintf("%s.ports[%d]", key, i), "%d is not a port (1-65535)", p)
		}
	}
	for i, cg := range s.Cgroups {
		if cg == "" || strings.Contains(cg, "..") {
			add(fmt.Sprintf("%s.cgroups[%d]", key, i), "%q is not a cgroup path", cg)
		}
	}
}

// validHost accepts an IP literal (IPv6 with or without brackets) or a DNS name.
func validHost(h string) bool {
	if _, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// Rate is a bandwidth in bits per second.
type Rate uint64

// BytesPerSecond is the rate in bytes per second, as the kernel's HTB takes it.
func (r Rate) BytesPerSecond() uint64 { return uint64(r) / 8 }

// String formats the rate in tc syntax with the largest exact SI bit unit.
func (r Rate) String() string {
	for _, u := range []struct {
		name string
		mult uint64
	}{{"tbit", 1e12}, {"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}} {
		if uint64(r) >= u.mult && uint64(r)%u.mult == 0 {
			return strconv.FormatUint(uint64(r)/u.mult, 10) + u.name
		}
	}
	return strconv.FormatUint(uint64(r), 10) + "bit"
}

// rateUnits maps a tc rate unit to bits per second.
var rateUnits = map[string]float64{
	"": 1, "bit": 1,
	"kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "tbit": 1e12,
	"kibit": 1 << 10, "mibit": 1 << 20, "gibit": 1 << 30, "tibit": 1 << 40,
	"bps":  8,
	"kbps": 8e3, "mbps": 8e6, "gbps": 8e9, "tbps": 8e12,
	"kibps": 8 << 10, "mibps": 8 << 20, "gibps": 8 << 30, "tibps": 8 << 40,
}

// ParseRate parses a rate in tc syntax ("10mbit", "1.5gbit", "100kbps").
// Percentages (relative to the link speed) are not supported. The result
// must be at least 8 bit/s (one byte per second, HTB's resolution).
func ParseRate(s string) (Rate, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "" {
		return 0, errors.New("empty rate")
	}
	i := strings.IndexFunc(t, func(r rune) bool { return !(r >= '0' && r <= '9' || r == '.') })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], t[i:]
	}
	mult, ok := rateUnits[unit]
	if !ok {
		return 0, fmt.Errorf("rate %q: unknown unit %q (use bit, kbit, mbit, gbit, bps, kbps, mbps, ...)", s, unit)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" {
		return 0, fmt.Errorf("rate %q: %q is not a number", s, num)
	}
	bits := v * mult
	if bits < 8 || bits > 1e18 || math.IsInf(bits, 0) || math.IsNaN(bits) {
		return 0, fmt.Errorf("rate %q: out of range (8bit to 1000000tbit)", s)
	}
	return Rate(math.Round(bits)), nil
}
