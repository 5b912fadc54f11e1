package wire

import (
	"bytes"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tcpPair is a connected loopback TCP pair: the proxy's end and the
// server's.
func tcpPair(t testing.TB) (near, far net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	near, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	far, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { near.Close(); far.Close() })
	return near, far
}

// echoServer answers each packet it reads with the same payload, as a
// server answers requests, until its connection ends.
func echoServer(c net.Conn) {
	s := NewPacketIO(c, 0)
	for {
		p, err := s.ReadPacket(nil, 1<<20)
		if err != nil {
			return
		}
		if err := s.WritePacketFlush(p); err != nil {
			return
		}
	}
}

func TestAwaitRepliesRoundTrips(t *testing.T) {
	near, far := tcpPair(t)
	go echoServer(far)
	p := NewPacketIO(&TimeoutConn{Conn: near, ReadTimeout: 5 * time.Second}, 0)
	if !p.AwaitReplies() {
		t.Fatal("a plain TCP connection in a TimeoutConn does not await replies")
	}
	big := bytes.Repeat([]byte("x"), 100_000) // more than both buffers
	for i := range 50 {
		req := []byte("request " + strconv.Itoa(i))
		if i%10 == 9 {
			req = big
		}
		p.Seq = 0
		if err := p.WritePacket(req); err != nil {
			t.Fatal(err)
		}
		if err := p.EndRequest(); err != nil {
			t.Fatal(err)
		}
		got, err := p.ReadPacket(nil, 1<<20)
		if err != nil {
			t.Fatalf("round trip %d: %v", i, err)
		}
		if !bytes.Equal(got, req) {
			t.Fatalf("round trip %d: %d bytes back, want %d", i, len(got), len(req))
		}
	}
}

// A server that spoke before the request (an error, then its close) is
// heard: the request meets the closed socket, and the read ends.
func TestAwaitRepliesServerClosedFirst(t *testing.T) {
	near, far := tcpPair(t)
	p := NewPacketIO(near, 0)
	if !p.AwaitReplies() {
		t.Fatal("not awaiting replies")
	}
	srv := NewPacketIO(far, 0)
	if err := srv.WritePacketFlush([]byte{0xff, 0x5f, 0x0f, '#', 'H', 'Y', '0', '0', '0', 'b', 'y', 'e'}); err != nil {
		t.Fatal(err)
	}
	far.Close()
	// Let the bytes reach this side, and the poller see them, before the request.
	waitPeek(t, near, PeerSent)
	if err := p.WritePacket([]byte{3, 's'}); err != nil {
		t.Fatal(err)
	}
	if err := p.EndRequest(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		got, err := p.ReadPacket(nil, 1<<20)
		if err == nil && got[0] != 0xff {
			err = errors.New("not the server's error packet")
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the read of a closed server's answer hangs")
	}
	p.Seq = 0
	_ = p.WritePacket([]byte{3, 's'})
	_ = p.EndRequest()
	if _, err := p.ReadPacket(nil, 1<<20); err == nil {
		t.Fatal("a second request to the closed server read an answer")
	}
}

// The per-read bound applies while the answer is awaited, and the error is
// net.Conn's.
func TestAwaitRepliesReadTimeout(t *testing.T) {
	near, _ := tcpPair(t) // the far end never answers
	p := NewPacketIO(&TimeoutConn{Conn: near, ReadTimeout: 50 * time.Millisecond}, 0)
	if !p.AwaitReplies() {
		t.Fatal("not awaiting replies")
	}
	_ = p.WritePacket([]byte{3, 's'})
	_ = p.EndRequest()
	start := time.Now()
	_, err := p.ReadPacket(nil, 1<<20)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read of a silent server: %v, want a deadline error", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%v is not a net.Error timeout", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the 50ms bound took %v", took)
	}
}

// Closing the connection from another goroutine (KILL, shutdown) ends a
// read awaiting an answer.
func TestAwaitRepliesClose(t *testing.T) {
	near, far := tcpPair(t)
	p := NewPacketIO(near, 0)
	if !p.AwaitReplies() {
		t.Fatal("not awaiting replies")
	}
	// The server has the request: the read below is past sending it.
	got := make(chan struct{})
	go func() {
		_, _ = NewPacketIO(far, 0).ReadPacket(nil, 1<<20)
		close(got)
	}()
	_ = p.WritePacket([]byte{3, 's'})
	_ = p.EndRequest()
	done := make(chan error, 1)
	go func() {
		_, err := p.ReadPacket(nil, 1<<20)
		done <- err
	}()
	<-got
	p.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the read")
	}
}

// Only plain TCP awaits replies; a TLS or compression switch ends it.
func TestAwaitRepliesOnlyPlainTCP(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if NewPacketIO(a, 0).AwaitReplies() {
		t.Fatal("a pipe awaits replies")
	}
	near, far := tcpPair(t)
	go echoServer(far)
	p := NewPacketIO(near, 0)
	if !p.AwaitReplies() {
		t.Fatal("not awaiting replies")
	}
	if err := p.Compress(); err != nil {
		t.Fatal(err)
	}
	if p.replies != nil {
		t.Fatal("still awaiting replies after the compression switch")
	}
	// Not awaiting: EndRequest sends.
	_ = p.WritePacket([]byte("x"))
	if err := p.EndRequest(); err != nil || p.w.Buffered() != 0 {
		t.Fatalf("EndRequest without awaiting replies left %d bytes (%v)", p.w.Buffered(), err)
	}
}

// BenchmarkRoundTrip is a request and its answer over loopback TCP, the
// backend side of a statement, with and without awaiting replies; reads/op
// counts this process's read system calls (both ends) per round trip.
func BenchmarkRoundTrip(b *testing.B) {
	for _, await := range []bool{false, true} {
		b.Run("await="+strconv.FormatBool(await), func(b *testing.B) {
			near, far := tcpPair(b)
			go echoServer(far)
			p := NewPacketIO(near, 0)
			if await && !p.AwaitReplies() {
				b.Fatal("not awaiting replies")
			}
			req := []byte("SELECT c FROM sbtest1 WHERE id=4242")
			buf := make([]byte, 0, 64)
			reads := readSyscalls(b)
			b.ResetTimer()
			for range b.N {
				p.Seq = 0
				_ = p.WritePacket(req)
				if err := p.EndRequest(); err != nil {
					b.Fatal(err)
				}
				if _, err := p.ReadPacket(buf, 1<<20); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(readSyscalls(b)-reads)/float64(b.N), "reads/op")
		})
	}
}

// readSyscalls is this process's read system calls so far (syscr of
// /proc/self/io).
func readSyscalls(b *testing.B) int {
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Skipf("no /proc/self/io: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "syscr: "); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	b.Fatal("no syscr in /proc/self/io")
	return 0
}
