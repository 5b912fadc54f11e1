package wire

import (
	"net"
	"syscall"
)

// PeerState is what a look at a socket's receive queue shows.
type PeerState int

const (
	PeerQuiet  PeerState = iota // open, nothing waiting
	PeerSent                    // bytes waiting to be read
	PeerClosed                  // end of stream or a socket error: the peer is gone
)

// Peek looks at c's receive queue without reading or waiting (MSG_PEEK |
// MSG_DONTWAIT). It holds no read lock, so it may run beside a goroutine
// blocked reading c. A connection that is not a socket looks quiet.
func Peek(c net.Conn) PeerState {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return PeerQuiet
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return PeerQuiet
	}
	st := PeerQuiet
	var b [1]byte
	ctlErr := rc.Control(func(fd uintptr) {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK || err == syscall.EINTR:
		case err != nil || n == 0:
			st = PeerClosed
		default:
			st = PeerSent
		}
	})
	if ctlErr != nil { // closed on our side
		return PeerClosed
	}
	return st
}
