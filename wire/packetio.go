// Package wire is the only layer that knows MySQL packet bytes: framing with
// reused buffers, the server side of the handshake, error and OK packets, and
// the streaming relay of command responses. Everything above it speaks in
// commands and results.
//
// A PacketIO is owned by one goroutine at a time (the session's); it is not
// safe for concurrent use.
package wire

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
)

// MaxPayload is the largest payload of one physical packet; a logical packet
// of this size or more continues in the next physical packet.
const MaxPayload = 1<<24 - 1

const defaultBufSize = 32 * 1024

// PacketIO reads and writes MySQL packets on one connection with buffered I/O.
type PacketIO struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	hdr  [4]byte
	// Seq is the next sequence id this side writes with WritePacket.
	Seq uint8
	// MaxPacket bounds a logical packet ReadPart and ForwardRest take in
	// (0: no bound), as a server's max_allowed_packet does; total is the
	// size of the one being read so far.
	MaxPacket int
	total     int
	// rejected is the unread rest of the physical packet that went over
	// MaxPacket (for DiscardRejected).
	rejected int
	// replies is the reader's source when the connection awaits replies
	// (AwaitReplies), nil otherwise.
	replies *replyReader
}

// NewPacketIO wraps conn with read and write buffers of bufSize bytes (0 = default).
func NewPacketIO(conn net.Conn, bufSize int) *PacketIO {
	if bufSize <= 0 {
		bufSize = defaultBufSize
	}
	return &PacketIO{conn: conn, r: bufio.NewReaderSize(conn, bufSize), w: bufio.NewWriterSize(conn, bufSize)}
}

// Resize gives the connection buffers of size bytes (0 = default), e.g.
// small ones during a login and full ones after it. Unwritten bytes are
// flushed first; it does nothing while read bytes wait in the buffer.
func (p *PacketIO) Resize(size int) error {
	if size <= 0 {
		size = defaultBufSize
	}
	if p.r.Size() == size || p.r.Buffered() > 0 {
		return nil
	}
	if err := p.w.Flush(); err != nil {
		return err
	}
	var src io.Reader = p.conn
	if p.replies != nil {
		src = p.replies
	}
	p.r, p.w = bufio.NewReaderSize(src, size), bufio.NewWriterSize(p.conn, size)
	return nil
}

// Conn is the underlying connection (a *tls.Conn after UpgradeTLS).
func (p *PacketIO) Conn() net.Conn { return p.conn }

// Close closes the connection.
func (p *PacketIO) Close() error { return p.conn.Close() }

// Buffered reports how many bytes are already read from the socket but not consumed.
func (p *PacketIO) Buffered() int { return p.r.Buffered() }

// UpgradeTLS performs a server-side TLS handshake and switches I/O onto it.
// Clients may send their TLS ClientHello right behind the SSL request, so
// bytes already buffered are handed to the TLS layer first.
func (p *PacketIO) UpgradeTLS(cfg *tls.Config) error {
	raw := p.conn
	if n := p.r.Buffered(); n > 0 {
		pre, _ := p.r.Peek(n)
		raw = &prefixConn{Conn: p.conn, pre: append([]byte(nil), pre...)}
	}
	tc := tls.Server(raw, cfg)
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("tls handshake: %w", err)
	}
	p.conn, p.replies = tc, nil
	p.r.Reset(tc)
	p.w.Reset(tc)
	return nil
}

// ReadPacket reads one logical packet (joining continuation packets) into
// buf, growing it as needed, and returns the payload. max bounds the total
// payload; a larger packet yields ErrPacketTooLarge after it was drained.
func (p *PacketIO) ReadPacket(buf []byte, max int) ([]byte, error) {
	buf = buf[:0]
	for {
		n, seq, err := p.readHeader()
		if err != nil {
			return nil, err
		}
		p.Seq = seq + 1
		if len(buf)+n > max {
			if _, err := p.r.Discard(n); err != nil {
				return nil, err
			}
			if n == MaxPayload {
				continue
			}
			return nil, ErrPacketTooLarge
		}
		start := len(buf)
		buf = grow(buf, n)
		if _, err := io.ReadFull(p.r, buf[start:start+n]); err != nil {
			return nil, err
		}
		if n < MaxPayload {
			return buf, nil
		}
	}
}

// ReadPart reads one physical packet into buf and reports whether the
// logical packet continues in another physical packet.
// A packet over MaxPacket is not read: ErrPacketTooLarge.
func (p *PacketIO) ReadPart(buf []byte) (payload []byte, more bool, err error) {
	n, seq, err := p.readHeader()
	if err != nil {
		return nil, false, err
	}
	p.Seq = seq + 1
	if err := p.count(n, true); err != nil {
		p.rejected = n
		return nil, false, err
	}
	buf = grow(buf[:0], n)
	if _, err := io.ReadFull(p.r, buf); err != nil {
		return nil, false, err
	}
	return buf, n == MaxPayload, nil
}

func (p *PacketIO) readHeader() (n int, seq uint8, err error) {
	if _, err := io.ReadFull(p.r, p.hdr[:]); err != nil {
		return 0, 0, err
	}
	return int(p.hdr[0]) | int(p.hdr[1])<<8 | int(p.hdr[2])<<16, p.hdr[3], nil
}

// ErrPacketTooLarge is returned for packets over the configured maximum.
var ErrPacketTooLarge = errors.New("packet too large")

// count adds a physical packet of n bytes to the logical packet being read
// (a new one when first), against MaxPacket.
func (p *PacketIO) count(n int, first bool) error {
	if first {
		p.total = 0
	}
	p.total += n
	if p.MaxPacket > 0 && p.total > p.MaxPacket {
		return ErrPacketTooLarge
	}
	return nil
}

func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, max(2*cap(b), len(b)+n))
	copy(nb, b)
	return nb
}

// WritePacket buffers payload as one logical packet (split at MaxPayload)
// with the next sequence ids. Call Flush to send.
func (p *PacketIO) WritePacket(payload []byte) error {
	for {
		n := min(len(payload), MaxPayload)
		p.hdr = [4]byte{byte(n), byte(n >> 8), byte(n >> 16), p.Seq}
		p.Seq++
		if _, err := p.w.Write(p.hdr[:]); err != nil {
			return err
		}
		if _, err := p.w.Write(payload[:n]); err != nil {
			return err
		}
		payload = payload[n:]
		if n < MaxPayload {
			return nil
		}
	}
}

// WriteRaw buffers a packet whose header the caller already built (relay).
func (p *PacketIO) WriteRaw(hdr [4]byte, payload []byte) error {
	if _, err := p.w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := p.w.Write(payload)
	return err
}

// LastSeq is the sequence id of the last packet read.
func (p *PacketIO) LastSeq() uint8 { return p.Seq - 1 }

// ForwardRest copies the continuation packets of a logical packet whose
// first part (of MaxPayload bytes) was already handled, from p to dst.
// One that takes the logical packet over MaxPacket is not forwarded:
// ErrPacketTooLarge.
func (p *PacketIO) ForwardRest(dst *PacketIO, srcSide Side) error {
	for {
		hdr, err := p.r.Peek(4)
		if err != nil {
			return &IOError{srcSide, err}
		}
		if n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16; p.count(n, false) != nil {
			p.Seq = hdr[3] + 1 // an answer follows the packet not read
			p.rejected = n
			_, _ = p.r.Discard(4)
			return &IOError{srcSide, ErrPacketTooLarge}
		}
		_, n, err := forward(dst, p, srcSide)
		if err != nil {
			return err
		}
		if n < MaxPayload {
			return nil
		}
	}
}

// DiscardRejected skips the rest of a logical packet refused for
// MaxPacket, so that an answer to it reaches the client instead of being
// lost to the reset a close with unread data causes.
func (p *PacketIO) DiscardRejected() error {
	n := p.rejected
	p.rejected = 0
	if _, err := p.r.Discard(n); err != nil || n < MaxPayload {
		return err
	}
	return p.DiscardRest()
}

// DiscardRest skips the continuation packets of a logical packet whose
// first part was already read.
func (p *PacketIO) DiscardRest() error {
	for {
		n, seq, err := p.readHeader()
		if err != nil {
			return err
		}
		p.Seq = seq + 1
		if _, err := p.r.Discard(n); err != nil {
			return err
		}
		if n < MaxPayload {
			return nil
		}
	}
}

// Flush sends everything buffered.
func (p *PacketIO) Flush() error { return p.w.Flush() }

// WritePacketFlush writes one packet and flushes.
func (p *PacketIO) WritePacketFlush(payload []byte) error {
	if err := p.WritePacket(payload); err != nil {
		return err
	}
	return p.Flush()
}

// prefixConn replays bytes read ahead before reading from the connection.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(b, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}
