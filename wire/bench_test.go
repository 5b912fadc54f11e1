package wire

import (
	"bytes"
	"net"
	"testing"
	"time"
)

// loopConn replays one response forever and discards writes: it isolates
// the relay's own cost from the network.
type loopConn struct {
	data []byte
	off  int
}

func (c *loopConn) Read(b []byte) (int, error) {
	n := copy(b, c.data[c.off:])
	c.off = (c.off + n) % len(c.data)
	return n, nil
}
func (c *loopConn) Write(b []byte) (int, error)      { return len(b), nil }
func (c *loopConn) Close() error                     { return nil }
func (c *loopConn) LocalAddr() net.Addr              { return nil }
func (c *loopConn) RemoteAddr() net.Addr             { return nil }
func (c *loopConn) SetDeadline(time.Time) error      { return nil }
func (c *loopConn) SetReadDeadline(time.Time) error  { return nil }
func (c *loopConn) SetWriteDeadline(time.Time) error { return nil }

func encode(packets [][]byte) []byte {
	var b bytes.Buffer
	for i, p := range packets {
		n := len(p)
		b.Write([]byte{byte(n), byte(n >> 8), byte(n >> 16), byte(i + 1)})
		b.Write(p)
	}
	return b.Bytes()
}

// BenchmarkRelayPointSelect relays a sysbench point-select response (one
// column, one 120-byte row).
func BenchmarkRelayPointSelect(b *testing.B) {
	col := []byte("\x03def\x06sbtest\x07sbtest1\x07sbtest1\x01c\x01c\x0c\x21\x00\xe0\x01\x00\x00\xfe\x00\x00\x00\x00\x00")
	row := append([]byte{120}, bytes.Repeat([]byte("7"), 120)...)
	resp := encode([][]byte{{1}, col, eof(2), row, eof(2)})
	r := Relay{Client: NewPacketIO(&loopConn{data: []byte{0}}, 0), Backend: NewPacketIO(&loopConn{data: resp}, 0)}
	b.SetBytes(int64(len(resp)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Response(RespResult); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRelayPointSelectUndo is BenchmarkRelayPointSelect from a
// pooled connection with MariaDB's extended metadata and session tracking,
// for a client that asked for neither (go-sql-driver): the column
// definition is written without its (empty) extended metadata.
func BenchmarkRelayPointSelectUndo(b *testing.B) {
	col := []byte("\x03def\x06sbtest\x07sbtest1\x07sbtest1\x01c\x01c\x00\x0c\x21\x00\xe0\x01\x00\x00\xfe\x00\x00\x00\x00\x00")
	row := append([]byte{120}, bytes.Repeat([]byte("7"), 120)...)
	resp := encode([][]byte{{1}, col, eof(2), row, eof(2)})
	r := Relay{Client: NewPacketIO(&loopConn{data: []byte{0}}, 0), Backend: NewPacketIO(&loopConn{data: resp}, 0),
		Undo: MariaDBExtendedMetadata | MariaDBProgress, UndoTrack: true}
	b.SetBytes(int64(len(resp)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Response(RespResult); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRelayRows streams a 1000-row result set.
func BenchmarkRelayRows(b *testing.B) {
	col := []byte("\x03def\x00\x01t\x01t\x01a\x01a\x0c\x21\x00\x00\x01\x00\x00\xfd\x00\x00\x00\x00\x00")
	packets := [][]byte{{1}, col, eof(2)}
	for range 1000 {
		packets = append(packets, append([]byte{100}, bytes.Repeat([]byte("x"), 100)...))
	}
	packets = append(packets, eof(2))
	resp := encode(packets)
	r := Relay{Client: NewPacketIO(&loopConn{data: []byte{0}}, 0), Backend: NewPacketIO(&loopConn{data: resp}, 0)}
	b.SetBytes(int64(len(resp)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Response(RespResult); err != nil {
			b.Fatal(err)
		}
	}
}
