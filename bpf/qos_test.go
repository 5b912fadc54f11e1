package bpf

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
)

// tcActUnspec is TC_ACT_UNSPEC (-1) as the kernel returns it.
const tcActUnspec = ^uint32(0)

// skbCtx is the head of struct __sk_buff, up to ifindex: the part
// BPF_PROG_TEST_RUN lets a caller set.
type skbCtx struct {
	Len, PktType, Mark, QueueMapping, Protocol, VlanPresent, VlanTCI, VlanProto uint32
	Priority, IngressIfindex, Ifindex                                           uint32
}

// skbCtxOut receives the whole struct __sk_buff (192 bytes today): the kernel
// fails a test run with ENOSPC when the output buffer is shorter.
type skbCtxOut struct {
	skbCtx
	_ [53]uint32 // pads to 256 bytes, room for future fields
}

const loIfindex = 1 // test runs attach the skb to loopback

func loadObjects(t *testing.T) *QosObjects {
	t.Helper()
	var objs QosObjects
	err := LoadQosObjects(&objs, nil)
	if errors.Is(err, ebpf.ErrNotSupported) {
		t.Skipf("BPF not supported by this kernel: %v", err)
	}
	if err != nil {
		t.Fatalf("load BPF objects: %v", err)
	}
	t.Cleanup(func() { _ = objs.Close() })
	return &objs
}

// packet builds an Ethernet frame carrying TCP with the given payload size.
func packet(src, dst netip.AddrPort, payload int) []byte {
	eth := make([]byte, 14)
	var l3 []byte
	tcp := make([]byte, 20)
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	tcp[12] = 5 << 4
	l4len := len(tcp) + payload
	if src.Addr().Is4() {
		binary.BigEndian.PutUint16(eth[12:], 0x0800)
		l3 = make([]byte, 20)
		l3[0] = 0x45
		binary.BigEndian.PutUint16(l3[2:], uint16(20+l4len))
		l3[8] = 64
		l3[9] = 6
		s, d := src.Addr().As4(), dst.Addr().As4()
		copy(l3[12:], s[:])
		copy(l3[16:], d[:])
	} else {
		binary.BigEndian.PutUint16(eth[12:], 0x86dd)
		l3 = make([]byte, 40)
		l3[0] = 0x60
		binary.BigEndian.PutUint16(l3[4:], uint16(l4len))
		l3[6] = 6
		l3[7] = 64
		s, d := src.Addr().As16(), dst.Addr().As16()
		copy(l3[8:], s[:])
		copy(l3[24:], d[:])
	}
	out := append(eth, l3...)
	out = append(out, tcp...)
	return append(out, make([]byte, payload)...)
}

func run(t *testing.T, prog *ebpf.Program, pkt []byte) (ret, priority uint32) {
	t.Helper()
	in := skbCtx{Ifindex: loIfindex}
	var out skbCtxOut
	ret, err := prog.Run(&ebpf.RunOptions{Data: pkt, Context: in, ContextOut: &out})
	if errors.Is(err, ebpf.ErrNotSupported) {
		t.Skipf("BPF_PROG_TEST_RUN not supported for tc programs: %v", err)
	}
	if err != nil {
		t.Fatalf("run classifier: %v", err)
	}
	return ret, out.Priority
}

func counters(t *testing.T, m *ebpf.Map, slot uint32) QosClassCounters {
	t.Helper()
	var per []QosClassCounters
	if err := m.Lookup(slot, &per); err != nil {
		t.Fatalf("read counters slot %d: %v", slot, err)
	}
	var sum QosClassCounters
	for _, c := range per {
		sum.Packets += c.Packets
		sum.Bytes += c.Bytes
		sum.PayloadBytes += c.PayloadBytes
	}
	return sum
}

func TestClassifier(t *testing.T) {
	objs := loadObjects(t)
	ap := netip.MustParseAddrPort
	rules := []struct {
		key QosRuleKey
		val QosRuleVal
	}{
		{QosRuleKey{Ifindex: loIfindex, Kind: RuleEndpoint, Port: 3306, Addr: AddrKey(netip.MustParseAddr("10.0.0.2"))}, QosRuleVal{Classid: 0x50490011, Slot: 1}},
		{QosRuleKey{Ifindex: loIfindex, Kind: RuleSource, Port: 0, Addr: AddrKey(netip.MustParseAddr("fd00::7"))}, QosRuleVal{Classid: 0x50490012, Slot: 2}},
		{QosRuleKey{Ifindex: loIfindex, Kind: RuleSource, Port: 13306, Addr: AddrKey(netip.Addr{})}, QosRuleVal{Classid: 0x50490013, Slot: 3}},
		// Same endpoint on another interface: must not match on loopback.
		{QosRuleKey{Ifindex: 9999, Kind: RuleEndpoint, Port: 5432, Addr: AddrKey(netip.MustParseAddr("10.0.0.3"))}, QosRuleVal{Classid: 0x50490014, Slot: 4}},
	}
	for _, r := range rules {
		if err := objs.Rules.Put(r.key, r.val); err != nil {
			t.Fatalf("put rule: %v", err)
		}
	}

	tests := []struct {
		name         string
		src, dst     netip.AddrPort
		payload      int
		wantPriority uint32
		slot         uint32
	}{
		{"to endpoint", ap("10.0.0.1:40000"), ap("10.0.0.2:3306"), 1000, 0x50490011, 1},
		{"reply from endpoint", ap("10.0.0.2:3306"), ap("10.0.0.1:40000"), 10, 0x50490011, 1},
		{"ipv6 source any port", ap("[fd00::7]:555"), ap("[fd00::8]:80"), 300, 0x50490012, 2},
		{"port only", ap("192.168.1.1:1234"), ap("192.168.1.2:13306"), 64, 0x50490013, 3},
		{"other port of endpoint", ap("10.0.0.1:40000"), ap("10.0.0.2:3307"), 100, 0, 0},
		{"rule of another interface", ap("10.0.0.1:40000"), ap("10.0.0.3:5432"), 100, 0, 0},
	}
	want := map[uint32]QosClassCounters{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkt := packet(tt.src, tt.dst, tt.payload)
			ret, prio := run(t, objs.PisaQosEgress, pkt)
			if ret != tcActUnspec {
				t.Errorf("return = %d, want TC_ACT_UNSPEC", int32(ret))
			}
			if prio != tt.wantPriority {
				t.Errorf("skb->priority = %#x, want %#x", prio, tt.wantPriority)
			}
			if tt.slot != 0 {
				c := want[tt.slot]
				c.Packets++
				c.Bytes += uint64(len(pkt))
				c.PayloadBytes += uint64(tt.payload)
				want[tt.slot] = c
			}
		})
	}
	for slot := uint32(0); slot <= 4; slot++ {
		if got := counters(t, objs.Counters, slot); got != want[slot] {
			t.Errorf("counters[%d] = %+v, want %+v", slot, got, want[slot])
		}
	}
}

func TestNonIPPassesUntouched(t *testing.T) {
	objs := loadObjects(t)
	arp := make([]byte, 60)
	binary.BigEndian.PutUint16(arp[12:], 0x0806)
	ret, prio := run(t, objs.PisaQosEgress, arp)
	if ret != tcActUnspec || prio != 0 {
		t.Fatalf("ARP frame: return %d priority %#x, want TC_ACT_UNSPEC and 0", int32(ret), prio)
	}
}
