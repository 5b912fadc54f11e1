package wire

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"fmt"
	"io"
	"net"
)

// The compressed protocol (CLIENT_COMPRESS) wraps the stream of ordinary
// packets in frames of their own: a 7-byte header (3 bytes compressed
// length, a sequence id, 3 bytes uncompressed length, 0 when the payload is
// stored as is) and a zlib payload. A frame may hold several packets or
// part of one, so it is a layer below the packets: compressConn turns the
// framed stream back into the plain one, and PacketIO reads and relays
// packets on top unchanged. go-mysql implements the same inside its own
// client and server connection types, which the relay does not use.

// compressHeaderLen is the frame header's length.
const compressHeaderLen = 7

// minCompressLength is the payload below which frames are sent stored, as
// MySQL's MIN_COMPRESS_LENGTH.
const minCompressLength = 50

// compressConn reads and writes the compressed protocol on a connection.
// Its sequence follows the peer's: a command starts at 0, and each frame
// read or written takes the next id.
type compressConn struct {
	net.Conn
	r     *bufio.Reader
	in    []byte // decompressed bytes not yet read
	inBuf []byte
	raw   []byte // a frame's payload as read
	zr    io.ReadCloser
	zw    *zlib.Writer
	zout  bytes.Buffer
	frame []byte
	seq   uint8
}

func newCompressConn(conn net.Conn) *compressConn {
	return &compressConn{Conn: conn, r: bufio.NewReaderSize(conn, 16*1024)}
}

func (c *compressConn) Read(b []byte) (int, error) {
	for len(c.in) == 0 {
		if err := c.readFrame(); err != nil {
			return 0, err
		}
	}
	n := copy(b, c.in)
	c.in = c.in[n:]
	return n, nil
}

// compressKeep is the buffer capacity a compressed connection keeps
// between frames; larger ones (a big row or statement) are dropped once
// used, so an idle session does not hold megabytes.
const compressKeep = 64 << 10

func (c *compressConn) readFrame() error {
	if cap(c.inBuf) > compressKeep || cap(c.raw) > compressKeep { // consumed: Read calls only when c.in is empty
		c.inBuf, c.raw = nil, nil
	}
	var hdr [compressHeaderLen]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return err
	}
	clen := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	ulen := int(hdr[4]) | int(hdr[5])<<8 | int(hdr[6])<<16
	c.seq = hdr[3] + 1
	c.raw = grow(c.raw[:0], clen)
	if _, err := io.ReadFull(c.r, c.raw); err != nil {
		return noEOF(err)
	}
	if ulen == 0 {
		c.in = c.raw // stored: read as it came, until the next frame
		return nil
	}
	if err := c.inflate(ulen); err != nil {
		return fmt.Errorf("compressed protocol: frame of %d bytes announcing %d: %w", clen, ulen, err)
	}
	c.in = c.inBuf
	return nil
}

func (c *compressConn) inflate(ulen int) error {
	var err error
	if c.zr == nil {
		c.zr, err = zlib.NewReader(bytes.NewReader(c.raw))
	} else {
		err = c.zr.(zlib.Resetter).Reset(bytes.NewReader(c.raw), nil)
	}
	if err != nil {
		return err
	}
	c.inBuf = grow(c.inBuf[:0], ulen)
	if _, err := io.ReadFull(c.zr, c.inBuf); err != nil {
		return noEOF(err)
	}
	// The payload must end where its length said.
	var one [1]byte
	if n, _ := c.zr.Read(one[:]); n != 0 {
		return fmt.Errorf("more than %d bytes inflated", ulen)
	}
	return nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Write sends b as frames of at most MaxPayload bytes each. PacketIO's
// buffered writer calls it once per flush, so a flush is a frame.
func (c *compressConn) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		chunk := b[:min(len(b), MaxPayload)]
		if err := c.writeFrame(chunk); err != nil {
			return written, err
		}
		written += len(chunk)
		b = b[len(chunk):]
	}
	return written, nil
}

func (c *compressConn) writeFrame(p []byte) error {
	payload, ulen := p, 0
	if len(p) >= minCompressLength {
		c.zout.Reset()
		if c.zw == nil {
			c.zw = zlib.NewWriter(&c.zout)
		} else {
			c.zw.Reset(&c.zout)
		}
		if _, err := c.zw.Write(p); err != nil {
			return err
		}
		if err := c.zw.Close(); err != nil {
			return err
		}
		// Stored when compression does not pay, as the server does.
		if c.zout.Len() < len(p) {
			payload, ulen = c.zout.Bytes(), len(p)
		}
	}
	n := len(payload)
	c.frame = append(c.frame[:0], byte(n), byte(n>>8), byte(n>>16), c.seq, byte(ulen), byte(ulen>>8), byte(ulen>>16))
	c.frame = append(c.frame, payload...)
	c.seq++
	_, err := c.Conn.Write(c.frame)
	if cap(c.frame) > compressKeep {
		c.frame, c.zout = nil, bytes.Buffer{}
	}
	return err
}

// Compress switches the connection to the compressed protocol, for a
// client that asked for CLIENT_COMPRESS, once the login's OK is sent.
// Bytes already read ahead are frames too and are read first.
func (p *PacketIO) Compress() error {
	if err := p.w.Flush(); err != nil {
		return err
	}
	raw := p.conn
	if n := p.r.Buffered(); n > 0 {
		pre, _ := p.r.Peek(n)
		raw = &prefixConn{Conn: p.conn, pre: append([]byte(nil), pre...)}
	}
	cc := newCompressConn(raw)
	p.conn, p.replies = cc, nil
	p.r.Reset(cc)
	p.w.Reset(cc)
	return nil
}
