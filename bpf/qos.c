//go:build ignore

// qos.c: the pisa-daemon traffic classifier, attached to clsact egress.
//
// For every egress packet it looks up the packet's flow in the `rules` map
// (keyed by interface, rule kind, port and address or cgroup id). On a match
// it writes the HTB class id into skb->priority, which the root HTB qdisc of
// the device reads to pick the class, and adds the packet to the per-class
// counters. It never drops, redirects or rewrites a packet, and it returns
// TC_ACT_UNSPEC so other clsact filters still run.

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_RULES 16384
#define MAX_SLOTS 1024
#define MAX_CGROUP_DEPTH 16

// Rule kinds; keep in sync with qosd (RuleKind*).
enum rule_kind {
	// An application's database endpoint: matches packets sent to it
	// (daddr, dport) and packets sent from it (saddr, sport).
	RULE_ENDPOINT = 1,
	// A source address of the application: (saddr, dport), port 0 = any
	// port; address :: (all zero) = any source, i.e. a port-only rule.
	RULE_SOURCE = 2,
	// A cgroup v2 id of the application (or an ancestor of the socket's
	// cgroup): (cgroup id, dport), port 0 = any port.
	RULE_CGROUP = 3,
};

// Flags in settings[0].
#define SETTING_HAS_CGROUP_RULES 1u

struct rule_key {
	__u32 ifindex;
	__u8 kind;
	__u8 pad;
	__u16 port;     // host byte order, 0 = any
	__u8 addr[16];  // IPv6, or IPv4-mapped ::ffff:a.b.c.d; RULE_CGROUP: the u64 id in the first 8 bytes
};

struct rule_val {
	__u32 classid;  // HTB class handle (major:minor) written to skb->priority
	__u32 slot;     // index into `counters`
};

struct class_counters {
	__u64 packets;
	__u64 bytes;          // L2 bytes on the wire, per-segment headers of GSO packets included (what HTB charges)
	__u64 payload_bytes;  // L4 payload (TCP/UDP data), what the application wrote
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_RULES);
	__type(key, struct rule_key);
	__type(value, struct rule_val);
} rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_SLOTS);
	__type(key, __u32);
	__type(value, struct class_counters);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} settings SEC(".maps");

struct flow {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;  // host byte order, 0 when unknown
	__u16 dport;
	__u32 hdr_len;  // L2+L3+L4 header bytes, 0 when the L4 header is unknown
};

static __always_inline void map_v4(__u8 *dst, __be32 addr)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &addr, 4);
}

static __always_inline int load_ports(struct __sk_buff *skb, __u32 off, __u8 proto, struct flow *f, __u32 l3_end)
{
	if (proto == IPPROTO_TCP) {
		struct tcphdr th;
		if (bpf_skb_load_bytes(skb, off, &th, sizeof(th)) < 0)
			return -1;
		f->sport = bpf_ntohs(th.source);
		f->dport = bpf_ntohs(th.dest);
		f->hdr_len = l3_end + th.doff * 4;
	} else if (proto == IPPROTO_UDP) {
		struct udphdr uh;
		if (bpf_skb_load_bytes(skb, off, &uh, sizeof(uh)) < 0)
			return -1;
		f->sport = bpf_ntohs(uh.source);
		f->dport = bpf_ntohs(uh.dest);
		f->hdr_len = l3_end + sizeof(uh);
	}
	return 0;
}

static __always_inline int parse(struct __sk_buff *skb, struct flow *f)
{
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ih;
		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ih, sizeof(ih)) < 0)
			return -1;
		map_v4(f->saddr, ih.saddr);
		map_v4(f->daddr, ih.daddr);
		if (ih.frag_off & bpf_htons(0x1fff))
			return 0;  // a non-first fragment carries no ports
		__u32 l3_end = ETH_HLEN + ih.ihl * 4;
		return load_ports(skb, l3_end, ih.protocol, f, l3_end);
	}
	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ih;
		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ih, sizeof(ih)) < 0)
			return -1;
		__builtin_memcpy(f->saddr, &ih.saddr, 16);
		__builtin_memcpy(f->daddr, &ih.daddr, 16);
		__u32 l3_end = ETH_HLEN + sizeof(ih);
		// Extension headers are not walked: ports stay unknown (0).
		return load_ports(skb, l3_end, ih.nexthdr, f, l3_end);
	}
	return -1;
}

static __always_inline struct rule_val *lookup(struct rule_key *k, __u8 kind, const __u8 *addr, __u16 port)
{
	k->kind = kind;
	k->port = port;
	__builtin_memcpy(k->addr, addr, 16);
	return bpf_map_lookup_elem(&rules, k);
}

static __always_inline struct rule_val *lookup_cgroup(struct __sk_buff *skb, struct rule_key *k, __u16 dport)
{
	__u32 zero = 0;
	__u32 *flags = bpf_map_lookup_elem(&settings, &zero);
	if (!flags || !(*flags & SETTING_HAS_CGROUP_RULES))
		return 0;
	if (bpf_skb_cgroup_id(skb) == 0)
		return 0;  // no full socket (forwarded traffic) or cgroup v1 only

	k->kind = RULE_CGROUP;
	__builtin_memset(k->addr, 0, 16);
	// Deepest cgroup first: a container's rule wins over its pod's.
	for (int level = MAX_CGROUP_DEPTH - 1; level >= 0; level--) {
		__u64 id = bpf_skb_ancestor_cgroup_id(skb, level);
		if (id == 0)
			continue;
		__builtin_memcpy(k->addr, &id, 8);
		k->port = dport;
		struct rule_val *v = bpf_map_lookup_elem(&rules, k);
		if (v)
			return v;
		if (dport) {
			k->port = 0;
			v = bpf_map_lookup_elem(&rules, k);
			if (v)
				return v;
		}
	}
	return 0;
}

static __always_inline struct rule_val *classify(struct __sk_buff *skb, struct flow *f)
{
	static const __u8 any[16] = {};
	struct rule_key k = {};
	struct rule_val *v;

	k.ifindex = skb->ifindex;
	if (f->dport) {
		if ((v = lookup(&k, RULE_ENDPOINT, f->daddr, f->dport)))
			return v;
		if ((v = lookup(&k, RULE_ENDPOINT, f->saddr, f->sport)))
			return v;
	}
	if ((v = lookup_cgroup(skb, &k, f->dport)))
		return v;
	if (f->dport && (v = lookup(&k, RULE_SOURCE, f->saddr, f->dport)))
		return v;
	if ((v = lookup(&k, RULE_SOURCE, f->saddr, 0)))
		return v;
	if (f->dport && (v = lookup(&k, RULE_SOURCE, any, f->dport)))
		return v;
	return 0;
}

SEC("tc")
int pisa_qos_egress(struct __sk_buff *skb)
{
	struct flow f = {};
	if (parse(skb, &f) < 0)
		return TC_ACT_UNSPEC;

	struct rule_val *v = classify(skb, &f);
	if (!v)
		return TC_ACT_UNSPEC;

	skb->priority = v->classid;

	__u32 slot = v->slot;
	struct class_counters *c = bpf_map_lookup_elem(&counters, &slot);
	if (c) {
		c->packets++;
		__u64 wire = skb->len;
		if (f.hdr_len && skb->len > f.hdr_len) {
			c->payload_bytes += skb->len - f.hdr_len;
			if (skb->gso_segs > 1)
				wire += (__u64)(skb->gso_segs - 1) * f.hdr_len;
		}
		c->bytes += wire;
	}
	return TC_ACT_UNSPEC;
}

char __license[] SEC("license") = "GPL";
