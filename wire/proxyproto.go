package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// The PROXY protocol (HAProxy's, versions 1 and 2) lets a load balancer
// in front of the proxy say who its client is: a header before the
// client's first bytes. As MariaDB does, the header is read where the
// client's first packet is expected, from trusted networks only
// (proxy_protocol_networks).

// proxyV2Sig starts a version 2 header.
var proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// maxProxyV1 is the longest version 1 header, CRLF included.
const maxProxyV1 = 107

// errProxyHeader: a header that does not parse.
var errProxyHeader = errors.New("malformed PROXY protocol header")

// ProxySource is the client a PROXY header names.
type ProxySource struct {
	// Addr is its address; invalid when the header names none (v1
	// UNKNOWN, v2 LOCAL: a health check of the balancer's).
	Addr netip.AddrPort
	// Local: a unix-socket client (v2 AF_UNIX), which MariaDB takes for
	// localhost.
	Local bool
}

// ReadProxyHeader reads a PROXY protocol header at the start of what the
// client sent, if there is one (found false and nothing read otherwise).
func (p *PacketIO) ReadProxyHeader() (src ProxySource, found bool, err error) {
	head, err := p.r.Peek(6)
	if err != nil {
		return src, false, err
	}
	switch {
	case string(head) == "PROXY ":
		a, found, err := p.readProxyV1()
		return ProxySource{Addr: a}, found, err
	case bytes.HasPrefix(proxyV2Sig, head):
		return p.readProxyV2()
	}
	return src, false, nil
}

func (p *PacketIO) readProxyV1() (netip.AddrPort, bool, error) {
	var line []byte
	for len(line) < maxProxyV1 {
		c, err := p.r.ReadByte()
		if err != nil {
			return netip.AddrPort{}, true, err
		}
		line = append(line, c)
		if bytes.HasSuffix(line, []byte("\r\n")) {
			return parseProxyV1(string(line[:len(line)-2]))
		}
	}
	return netip.AddrPort{}, true, fmt.Errorf("%w: v1 line too long", errProxyHeader)
}

// parseProxyV1 reads "PROXY TCP4|TCP6 src dst sport dport" or
// "PROXY UNKNOWN ...".
func parseProxyV1(line string) (netip.AddrPort, bool, error) {
	f := strings.Fields(line)
	if len(f) >= 2 && f[1] == "UNKNOWN" {
		return netip.AddrPort{}, true, nil
	}
	if len(f) != 6 || (f[1] != "TCP4" && f[1] != "TCP6") {
		return netip.AddrPort{}, true, fmt.Errorf("%w: %q", errProxyHeader, line)
	}
	addr, err := netip.ParseAddr(f[2])
	port, perr := strconv.ParseUint(f[4], 10, 16)
	if err != nil || perr != nil || addr.Is4() != (f[1] == "TCP4") {
		return netip.AddrPort{}, true, fmt.Errorf("%w: %q", errProxyHeader, line)
	}
	return netip.AddrPortFrom(addr, uint16(port)), true, nil
}

func (p *PacketIO) readProxyV2() (ProxySource, bool, error) {
	var none ProxySource
	hdr, err := p.r.Peek(16)
	if err != nil {
		return none, true, err
	}
	if !bytes.Equal(hdr[:12], proxyV2Sig) || hdr[12]>>4 != 2 {
		return none, true, fmt.Errorf("%w: v2 signature or version", errProxyHeader)
	}
	cmd, fam, n := hdr[12]&0x0f, hdr[13], int(binary.BigEndian.Uint16(hdr[14:16]))
	buf := make([]byte, 16+n)
	if _, err := io.ReadFull(p.r, buf); err != nil {
		return none, true, err
	}
	body := buf[16:]
	if cmd == 0 { // LOCAL
		return none, true, nil
	}
	switch fam >> 4 {
	case 1: // AF_INET
		if len(body) >= 12 {
			a := netip.AddrFrom4([4]byte(body[:4]))
			return ProxySource{Addr: netip.AddrPortFrom(a, binary.BigEndian.Uint16(body[8:10]))}, true, nil
		}
	case 2: // AF_INET6
		if len(body) >= 36 {
			a := netip.AddrFrom16([16]byte(body[:16])).Unmap()
			return ProxySource{Addr: netip.AddrPortFrom(a, binary.BigEndian.Uint16(body[32:34]))}, true, nil
		}
	case 3: // AF_UNIX
		if len(body) >= 2*unixPathLen {
			return ProxySource{Local: true}, true, nil
		}
	default: // AF_UNSPEC: no address to take
		return none, true, nil
	}
	return none, true, fmt.Errorf("%w: v2 address block too short", errProxyHeader)
}

// unixPathLen is the size of each of a v2 AF_UNIX block's two paths.
const unixPathLen = 108

// ProxyHeaderV2Unix encodes a version 2 header naming a unix-socket
// client, the only way to tell a server that a client is local.
func ProxyHeaderV2Unix() []byte {
	h := make([]byte, 16+2*unixPathLen)
	copy(h, proxyV2Sig)
	h[12], h[13] = 0x21, 0x31 // version 2, PROXY; AF_UNIX, STREAM
	binary.BigEndian.PutUint16(h[14:16], 2*unixPathLen)
	return h
}

// ProxyHeaderV1 encodes a version 1 header naming src as the client of a
// connection to dst.
func ProxyHeaderV1(src, dst netip.AddrPort) []byte {
	proto := "TCP4"
	s, d := src.Addr().Unmap(), dst.Addr().Unmap()
	if s.Is6() || d.Is6() {
		proto = "TCP6"
		s, d = netip.AddrFrom16(s.As16()), netip.AddrFrom16(d.As16())
	}
	return fmt.Appendf(nil, "PROXY %s %s %s %d %d\r\n", proto, s, d, src.Port(), dst.Port())
}
