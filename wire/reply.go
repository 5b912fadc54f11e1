package wire

import (
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// AwaitReplies is for a connection to a server, which only ever answers
// what it was sent. A request ended with EndRequest stays in the write
// buffer until the read of its answer: that read sends it, then waits for
// the socket to become readable before reading. A plain read would first
// try the socket, find nothing (the answer cannot be there yet) and park:
// one system call per statement spent on EAGAIN.
//
// The wait is safe because Go's poller forgets readiness when a raw read
// starts (internal/poll's prepareRead) and the request is written after
// that: every byte of the answer arrives later, and its arrival is
// recorded. A server's unprompted bytes (an error before closing an idle
// connection) are not lost either: the request then meets a closed socket,
// whose reset is an event too.
//
// Only a plain TCP connection, possibly in a TimeoutConn, can do this; it
// reports false for others (TLS, compression) and for a connection with
// bytes read ahead, and a later TLS or compression switch ends it.
func (p *PacketIO) AwaitReplies() bool {
	tc, _ := p.conn.(*TimeoutConn)
	inner := p.conn
	if tc != nil {
		inner = tc.Conn
	}
	tcp, ok := inner.(*net.TCPConn)
	if !ok || p.r.Buffered() > 0 {
		return false
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		return false
	}
	p.replies = &replyReader{p: p, tcp: tcp, raw: raw, timeouts: tc}
	p.r.Reset(p.replies)
	return true
}

// EndRequest ends a request the caller reads the answer of next: on a
// connection that awaits replies the read sends it; on others it is
// flushed now.
func (p *PacketIO) EndRequest() error {
	if p.replies != nil {
		return nil
	}
	return p.w.Flush()
}

// replyReader is the read side of a connection that awaits replies.
type replyReader struct {
	p        *PacketIO
	tcp      *net.TCPConn
	raw      syscall.RawConn
	timeouts *TimeoutConn // nil: no per-read bound
}

func (r *replyReader) Read(b []byte) (int, error) {
	if r.p.w.Buffered() == 0 {
		return r.p.conn.Read(b)
	}
	if r.timeouts != nil {
		if err := r.timeouts.armRead(); err != nil {
			return 0, r.opError(err)
		}
	}
	var (
		n          int
		rerr, werr error
		sent       bool
	)
	err := r.raw.Read(func(fd uintptr) bool {
		if !sent {
			// Readiness was just reset: send, then wait for the answer.
			sent = true
			werr = r.p.w.Flush()
			return werr != nil
		}
		for {
			n, rerr = syscall.Read(int(fd), b)
			if rerr != syscall.EINTR {
				break
			}
		}
		return rerr != syscall.EAGAIN
	})
	switch {
	case werr != nil:
		return 0, werr // already a net.OpError from the write
	case err != nil:
		return 0, r.opError(err)
	case rerr != nil:
		return 0, r.opError(os.NewSyscallError("read", rerr))
	case n == 0 && len(b) > 0:
		return 0, io.EOF
	}
	return n, nil
}

// opError wraps err as net.Conn's Read would.
func (r *replyReader) opError(err error) error {
	return &net.OpError{Op: "read", Net: "tcp", Source: r.tcp.LocalAddr(), Addr: r.tcp.RemoteAddr(), Err: err}
}

// armRead starts a read's bound (ReadTimeout); os.ErrDeadlineExceeded
// when the connection was interrupted.
func (c *TimeoutConn) armRead() error {
	if c.ReadTimeout <= 0 {
		return nil
	}
	if c.stopped.Load() {
		return os.ErrDeadlineExceeded
	}
	return c.Conn.SetReadDeadline(time.Now().Add(c.ReadTimeout))
}
