package wire

import (
	"net"
	"testing"
	"time"
)

// TestPeek follows a TCP connection through quiet, data waiting (not
// consumed by the peek) and the peer's close.
func TestPeek(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if st := Peek(c); st != PeerQuiet {
		t.Fatalf("fresh connection: %v, want quiet", st)
	}
	if _, err := peer.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	waitPeek(t, c, PeerSent)
	if st := Peek(c); st != PeerSent {
		t.Fatalf("second peek: %v, want the byte still waiting", st)
	}
	b := make([]byte, 1)
	if _, err := c.Read(b); err != nil || b[0] != 'x' {
		t.Fatalf("read after peeks: %q, %v", b, err)
	}
	peer.Close()
	waitPeek(t, c, PeerClosed)
}

// waitPeek waits for the loopback to deliver what the peer did.
func waitPeek(t *testing.T, c net.Conn, want PeerState) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for Peek(c) != want {
		if time.Now().After(deadline) {
			t.Fatalf("peek never showed %v", want)
		}
		time.Sleep(time.Millisecond)
	}
}
