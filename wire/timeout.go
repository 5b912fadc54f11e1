package wire

import (
	"errors"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// TimeoutConn bounds each Read and Write of a connection (0: no bound),
// as MySQL's net_read_timeout and net_write_timeout bound each transfer
// rather than a whole command: a long result set streams for as long as
// the peer keeps reading. A deadline set in the past (another goroutine
// interrupting the connection) sticks until cleared with a zero deadline,
// so the per-call deadlines cannot undo it.
type TimeoutConn struct {
	net.Conn
	ReadTimeout, WriteTimeout time.Duration
	stopped                   atomic.Bool
}

func (c *TimeoutConn) Read(b []byte) (int, error) {
	if err := c.armRead(); errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *TimeoutConn) Write(b []byte) (int, error) {
	if c.WriteTimeout > 0 {
		if c.stopped.Load() {
			return 0, os.ErrDeadlineExceeded
		}
		_ = c.Conn.SetWriteDeadline(time.Now().Add(c.WriteTimeout))
	}
	return c.Conn.Write(b)
}

// SetDeadline sets both deadlines; one not in the future interrupts the
// connection until a zero deadline clears it.
func (c *TimeoutConn) SetDeadline(t time.Time) error {
	c.note(t)
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline: see SetDeadline.
func (c *TimeoutConn) SetReadDeadline(t time.Time) error {
	c.note(t)
	return c.Conn.SetReadDeadline(t)
}

// SetWriteDeadline: see SetDeadline.
func (c *TimeoutConn) SetWriteDeadline(t time.Time) error {
	c.note(t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *TimeoutConn) note(t time.Time) {
	c.stopped.Store(!t.IsZero() && !t.After(time.Now()))
}
