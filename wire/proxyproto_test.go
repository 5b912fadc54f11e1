package wire

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
)

// TestProxyHeader: version 1 and 2 headers name the client and are read
// off the stream, the handshake response after them intact; a stream
// without one is left alone; malformed ones are errors.
func TestProxyHeader(t *testing.T) {
	v2 := func(cmd, fam byte, body []byte) []byte {
		b := append(append([]byte(nil), proxyV2Sig...), 0x20|cmd, fam, 0, 0)
		binary.BigEndian.PutUint16(b[14:], uint16(len(body)))
		return append(b, body...)
	}
	v4body := []byte{192, 0, 2, 1, 10, 0, 0, 1, 0x30, 0x39, 0x0c, 0xea}
	v6body := append(append(netip.MustParseAddr("2001:db8::1").AsSlice(), netip.MustParseAddr("2001:db8::2").AsSlice()...), 0x30, 0x39, 0x0c, 0xea)
	for _, c := range []struct {
		name   string
		header []byte
		src    string
		found  bool
		bad    bool
	}{
		{"none", nil, "", false, false},
		{"v1 tcp4", []byte("PROXY TCP4 192.0.2.1 10.0.0.1 12345 3306\r\n"), "192.0.2.1:12345", true, false},
		{"v1 tcp6", ProxyHeaderV1(netip.MustParseAddrPort("[2001:db8::1]:12345"), netip.MustParseAddrPort("[2001:db8::2]:3306")), "[2001:db8::1]:12345", true, false},
		{"v1 unknown", []byte("PROXY UNKNOWN\r\n"), "", true, false},
		{"v1 garbage", []byte("PROXY TCP4 nonsense\r\n"), "", true, true},
		{"v2 tcp4", v2(1, 0x11, v4body), "192.0.2.1:12345", true, false},
		{"v2 tcp6", v2(1, 0x21, v6body), "[2001:db8::1]:12345", true, false},
		{"v2 local", v2(0, 0x00, nil), "", true, false},
		{"v2 unix", ProxyHeaderV2Unix(), "", true, false},
		{"v2 short", v2(1, 0x11, v4body[:5]), "", true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := net.Pipe()
			defer a.Close()
			hello := append([]byte{32, 0, 0, 1}, make([]byte, 32)...) // a handshake response is never shorter
			go func() { _, _ = b.Write(append(append([]byte(nil), c.header...), hello...)); b.Close() }()
			p := NewPacketIO(a, 0)
			src, found, err := p.ReadProxyHeader()
			if found != c.found || (err != nil) != c.bad {
				t.Fatalf("found %v, err %v", found, err)
			}
			if c.bad {
				return
			}
			if got := ""; src.Addr.IsValid() {
				got = src.Addr.String()
				if got != c.src {
					t.Errorf("source %s, want %s", got, c.src)
				}
			} else if c.src != "" {
				t.Errorf("no source, want %s", c.src)
			}
			rest, _ := p.r.Peek(len(hello))
			if !bytes.Equal(rest, hello) {
				t.Errorf("after the header: %q, want the handshake response", rest)
			}
		})
	}
}
