package bpf

import (
	"encoding/binary"
	"net/netip"
)

// Rule kinds of QosRuleKey.Kind; they mirror enum rule_kind in qos.c.
const (
	// RuleEndpoint matches packets to (daddr, dport) or from (saddr, sport)
	// a database endpoint.
	RuleEndpoint uint8 = 1
	// RuleSource matches (saddr, dport); port 0 is any port and the all-zero
	// address is any source (a port-only rule).
	RuleSource uint8 = 2
	// RuleCgroup matches a socket whose cgroup v2 (or an ancestor of it) has
	// the id in Addr[0:8] (host byte order), with dport (0 = any port).
	RuleCgroup uint8 = 3
)

const (
	// MaxSlots is the number of per-class counter slots (the size of the
	// counters map).
	MaxSlots = 1024
	// MaxRules is the capacity of the rules map.
	MaxRules = 16384
	// SettingHasCgroupRules, set in settings[0], turns on cgroup lookups.
	SettingHasCgroupRules uint32 = 1
)

// AddrKey is an address as the classifier stores it: 16 bytes, IPv4 as
// IPv4-mapped IPv6. The zero Addr gives the all-zero "any" address.
func AddrKey(a netip.Addr) [16]byte {
	if !a.IsValid() {
		return [16]byte{}
	}
	return a.As16()
}

// CgroupKey stores a cgroup id the way qos.c reads it.
func CgroupKey(id uint64) [16]byte {
	var k [16]byte
	binary.NativeEndian.PutUint64(k[:8], id)
	return k
}
