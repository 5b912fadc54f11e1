package wire

import (
	"bytes"
	"compress/zlib"
	"crypto/rand"
	"io"
	"net"
	"strings"
	"testing"
)

// frame builds one compressed-protocol frame by the book, independently of
// compressConn: zlib payload when compress, stored otherwise.
func frame(t *testing.T, seq uint8, p []byte, compress bool) []byte {
	t.Helper()
	payload, ulen := p, 0
	if compress {
		var b bytes.Buffer
		w := zlib.NewWriter(&b)
		w.Write(p)
		w.Close()
		payload, ulen = b.Bytes(), len(p)
	}
	n := len(payload)
	return append([]byte{byte(n), byte(n >> 8), byte(n >> 16), seq, byte(ulen), byte(ulen >> 8), byte(ulen >> 16)}, payload...)
}

// Packets written through Compress on one side are read back unchanged on
// the other, across the 16 MiB packet boundary and with small packets
// (stored frames) and random ones (incompressible: stored too).
func TestCompressRoundTrip(t *testing.T) {
	random := make([]byte, 100_000)
	rand.Read(random)
	payloads := [][]byte{
		[]byte("x"),
		bytes.Repeat([]byte("compressible "), 10_000),
		random,
		bytes.Repeat([]byte{7}, MaxPayload+10),
		{},
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	w, r := NewPacketIO(a, 0), NewPacketIO(b, 0)
	if err := w.Compress(); err != nil {
		t.Fatal(err)
	}
	if err := r.Compress(); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		for _, p := range payloads {
			if err := w.WritePacketFlush(p); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for i, want := range payloads {
		got, err := r.ReadPacket(nil, 1<<30)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("packet %d: %d bytes read, %d written", i, len(got), len(want))
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// Frames made by an independent writer: several packets in one frame, a
// packet split across frames, stored and compressed; the reply's frames
// continue the peer's sequence and a short reply is stored.
func TestCompressFramesByTheBook(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	p := NewPacketIO(b, 0)
	if err := p.Compress(); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("select 1 from dual union all ", 40)
	pkt := func(seq byte, s string) []byte {
		n := len(s)
		return append([]byte{byte(n), byte(n >> 8), byte(n >> 16), seq}, s...)
	}
	stream := append(pkt(0, "\x03"+long), pkt(0, "\x0e")...) // a query, then a ping
	go func() {
		a.Write(frame(t, 0, stream[:30], true))
		a.Write(frame(t, 1, stream[30:], false))
	}()
	for _, want := range []string{"\x03" + long, "\x0e"} {
		got, err := p.ReadPacket(nil, 1<<20)
		if err != nil || string(got) != want {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
	}
	go func() { p.Seq = 1; _ = p.WritePacketFlush([]byte{0, 0, 0, 2, 0, 0, 0}) }()
	hdr := make([]byte, 7)
	if _, err := io.ReadFull(a, hdr); err != nil {
		t.Fatal(err)
	}
	if hdr[3] != 2 || hdr[4]|hdr[5]|hdr[6] != 0 {
		t.Errorf("reply frame header %v: want sequence 2 (after the peer's 1) and a stored payload", hdr)
	}
}

// A frame whose payload is not zlib, or inflates to another length than it
// announces, is an error, not bytes.
func TestCompressBadFrames(t *testing.T) {
	short := frame(t, 0, []byte(strings.Repeat("a", 100)), true)
	short[4] = 101 // announces one byte more than it holds
	long := frame(t, 0, []byte(strings.Repeat("a", 100)), true)
	long[4] = 99
	garbage := []byte{5, 0, 0, 0, 100, 0, 0, 1, 2, 3, 4, 5}
	for name, f := range map[string][]byte{"short": short, "long": long, "garbage": garbage} {
		a, b := net.Pipe()
		p := NewPacketIO(b, 0)
		if err := p.Compress(); err != nil {
			t.Fatal(err)
		}
		go func() { a.Write(f); a.Close() }()
		if got, err := p.ReadPacket(nil, 1<<20); err == nil {
			t.Errorf("%s frame: read %q without error", name, got)
		}
		b.Close()
	}
}
