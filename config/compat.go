package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// This file holds what keeps Pisa-Proxy's files (v0.1.0 to v0.3.2) and the
// JSON its pisa-controller served loading unchanged: the older spellings of
// a few values, the defaults Pisa-Proxy had, and warnings where a value
// means something else here.

// Port is a TCP port: a number, or (as Pisa-Proxy v0.1.0 wrote the admin
// port, and its controller served it) a decimal string.
type Port int

// UnmarshalText reads the string form ("8081").
func (p *Port) UnmarshalText(b []byte) error {
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("port %q is not a number", b)
	}
	*p = Port(n)
	return nil
}

// UnmarshalJSON reads a number or a decimal string.
func (p *Port) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		return p.UnmarshalText([]byte(s))
	}
	var n int
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("port %s is not a whole number", b)
	}
	*p = Port(n)
	return nil
}

// Patterns is a list of regular expressions; one pattern may be given as a
// plain string, as Pisa-Proxy v0.1.0's plugins (and its controller) wrote
// `regex = "SELECT \\*"`.
type Patterns []string

// UnmarshalText reads a single pattern.
func (p *Patterns) UnmarshalText(b []byte) error {
	*p = Patterns{string(b)}
	return nil
}

// UnmarshalJSON reads a list of strings, one string, or null.
func (p *Patterns) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*p = nil
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*p = Patterns{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return fmt.Errorf("regex: want a pattern or a list of patterns, got %s", b)
	}
	*p = l
	return nil
}

// LegacyNanoseconds: in the JSON of a pisa-controller before this one, a
// concurrency_control duration was a Go time.Duration, a count of
// nanoseconds (Pisa-Proxy read the number as seconds, so "1s" meant 31
// years). ParseJSON reads a duration at or above this as nanoseconds, the
// way the CRDs' integer durations are read (v1alpha1.NanosecondThreshold):
// no one means a window of 11 days and more.
const LegacyNanoseconds = 1_000_000

// MaxLagResolution is the resolution of the lag a replica reports
// (Seconds_Behind_Master): a max_replication_lag below it, in
// milliseconds, drops a replica as soon as it lags at all, and is most
// likely Pisa-Proxy's seconds.
const MaxLagResolution = 1000

// DefaultName is the name of a listener without one: its listen address.
// Pisa-Proxy left it empty (its metrics' domain label was ""); here a name
// identifies the listener across reloads and must be unique.
func DefaultName(l *Listener) string { return l.ListenAddr }

// defaultNames names every unnamed listener after its address, or its
// position when another listener has that name already.
func (c *Config) defaultNames() {
	used := map[string]bool{}
	for _, l := range c.Proxy.Config {
		used[l.Name] = true
	}
	for i := range c.Proxy.Config {
		l := &c.Proxy.Config[i]
		if l.Name != "" {
			continue
		}
		name := DefaultName(l)
		for n := 1; used[name]; n++ {
			name = fmt.Sprintf("%s#%d", DefaultName(l), n)
		}
		l.Name, used[name] = name, true
	}
}

// readLegacyJSON turns what an earlier pisa-controller served into this
// model's meaning, noting each change (see Warnings).
func (c *Config) readLegacyJSON() {
	for i := range c.Proxy.Config {
		l := &c.Proxy.Config[i]
		if l.Plugin == nil {
			continue
		}
		for j := range l.Plugin.ConcurrencyControl {
			cc := &l.Plugin.ConcurrencyControl[j]
			if cc.Duration >= LegacyNanoseconds {
				d := time.Duration(cc.Duration)
				cc.Duration = int((d + time.Second - 1) / time.Second)
				c.notes = append(c.notes, fmt.Sprintf("%s.plugin.concurrency_control[%d].duration: %d read as nanoseconds (%s), as an earlier pisa-controller sent it: %d s",
					listenerKey(i, l.Name), j, int64(d), d, cc.Duration))
			}
		}
	}
	// Earlier controllers listed a node once per service that selected
	// it; identical repeats are dropped, differing ones stay for Validate.
	var kept []Node
	for _, n := range c.MySQL.Node {
		dup := false
		for _, k := range kept {
			if k.Name == n.Name && reflect.DeepEqual(k, n) {
				dup = true
				break
			}
		}
		if dup {
			c.notes = append(c.notes, fmt.Sprintf("mysql.node: node %q was listed more than once; one is kept", n.Name))
			continue
		}
		kept = append(kept, n)
	}
	if len(kept) != len(c.MySQL.Node) {
		c.MySQL.Node = kept
	}
}

// Warnings describes what in a valid config likely does not mean what its
// author meant, mostly Pisa-Proxy values whose meaning differs here, and
// what loading an earlier controller's JSON changed. The proxy logs them at
// each load.
func (c *Config) Warnings() []string {
	w := append([]string(nil), c.notes...)
	for i := range c.Proxy.Config {
		l := &c.Proxy.Config[i]
		key := listenerKey(i, l.Name)
		rw := l.ReadWriteSplitting
		if rw == nil {
			continue
		}
		if l.SimpleLoadBalance != nil {
			w = append(w, key+".simple_loadbalance.nodes: not used with read_write_splitting (nor was it by Pisa-Proxy): "+
				"the role = \"readwrite\" nodes are the primaries, the role = \"read\" nodes the replicas")
		}
		primaries := 0
		for _, n := range c.BackendNodes(l) {
			if n.Role == RoleReadWrite {
				primaries++
			}
		}
		if primaries == 0 {
			w = append(w, key+".read_write_splitting: no node has role = \"readwrite\"; the role = \"read\" nodes take the writes too")
		}
		var rules []RWRule
		mode := ""
		switch {
		case rw.Static != nil:
			rules, mode = rw.Static.Rules, "static"
		case rw.Dynamic != nil:
			rules, mode = rw.Dynamic.Rules, "dynamic"
			if lag := rw.Dynamic.Discovery.MaxReplicationLag; lag > 0 && lag < MaxLagResolution {
				w = append(w, fmt.Sprintf("%s.read_write_splitting.dynamic.discovery.max_replication_lag: %d is milliseconds here "+
					"(Pisa-Proxy compared it with Seconds_Behind_Master, in seconds), and a replica's lag is known to the second: "+
					"a replica is dropped as soon as it lags at all; for %d seconds write %d", key, lag, lag, lag*1000))
			}
		}
		for j, r := range rules {
			if len(r.NodeGroupName) > 0 {
				w = append(w, fmt.Sprintf("%s.read_write_splitting.%s.rule[%d].node_group_name: used only to route sharded statements, which this proxy does not do yet; ignored", key, mode, j))
			}
		}
	}
	return w
}
