package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// Side names which peer an I/O error came from.
type Side uint8

// The two peers of a session.
const (
	ClientSide Side = iota + 1
	BackendSide
)

func (s Side) String() string {
	if s == ClientSide {
		return "client"
	}
	return "backend"
}

// IOError tags a read or write failure with the side that failed, so the
// session can decide whom to tell (the client gets an error only when the
// backend failed).
type IOError struct {
	Side Side
	Err  error
}

func (e *IOError) Error() string { return fmt.Sprintf("%s: %v", e.Side, e.Err) }
func (e *IOError) Unwrap() error { return e.Err }

// FailedSide reports the side of an IOError in err's chain, or 0.
func FailedSide(err error) Side {
	var ioe *IOError
	if errors.As(err, &ioe) {
		return ioe.Side
	}
	return 0
}

// ResponseKind is the shape of the response a command expects.
type ResponseKind uint8

// Response shapes, one per family of commands.
const (
	// RespResult: OK, ERR, LOCAL INFILE request, or result sets, possibly
	// several (COM_QUERY, COM_STMT_EXECUTE).
	RespResult ResponseKind = iota
	// RespSingle: exactly one packet (OK/ERR, COM_STATISTICS, COM_SET_OPTION, COM_DEBUG).
	RespSingle
	// RespFieldList: column definitions up to EOF, or ERR.
	RespFieldList
	// RespPrepare: the COM_STMT_PREPARE OK with parameter and column definitions, or ERR.
	RespPrepare
	// RespRows: rows up to EOF, or ERR (COM_STMT_FETCH).
	RespRows
)

// Outcome summarises a relayed response.
type Outcome struct {
	// Status is the server status of the final OK or EOF packet.
	Status uint16
	// ErrCode is set when the response ended with an ERR packet.
	ErrCode uint16
	// Warnings of the final OK or EOF packet.
	Warnings uint16
	// AffectedRows sums the OK packets' affected rows; Rows counts the rows
	// relayed (over every result of a multi-result response).
	AffectedRows, Rows uint64
	// InsertID is the last non-zero insert id of the OK packets: the value
	// LAST_INSERT_ID() returns on that connection afterwards.
	InsertID uint64
	// StmtID is the id of a statement COM_STMT_PREPARE prepared (the
	// backend's), Params its number of parameters.
	StmtID uint32
	Params uint16
}

// Relay streams responses from a backend to a client. Packets are copied as
// they arrive through the two connections' buffers: a result set is never
// held whole, and a slow client slows only its own backend connection.
type Relay struct {
	Client, Backend *PacketIO
	// ClientLocalFiles: the client accepts LOCAL INFILE requests.
	ClientLocalFiles bool
	// StmtID, when set, replaces the statement id in a COM_STMT_PREPARE's
	// OK: the id the client sees (multiplexing: the statement lives on
	// whichever backend connection runs it, under ids of their own).
	StmtID uint32
	// Cursor: the command is a COM_STMT_EXECUTE that asked for a cursor.
	// Only then does SERVER_STATUS_CURSOR_EXISTS mean that no rows follow
	// the column definitions: the server also leaves that flag set on the
	// text-protocol results of a stored procedure that opened a cursor of
	// its own (CALL p() with DECLARE ... CURSOR), whose rows do follow.
	Cursor bool
	// Rows, when set, rewrites each row of the response's result sets
	// (read whole, then written): for the few statements whose answer the
	// proxy corrects (SHOW STATUS about the client's connection).
	Rows func(row []byte) []byte
	// Settled, when set, is told the outcome before the response reaches
	// the client, so that what the proxy does on a statement's success is
	// done when the client learns of it. The response is held back until
	// it is whole: for short answers (FLUSH HOSTS).
	Settled func(Outcome)
	// CacheMetadata: the client and the backend negotiated MariaDB's
	// metadata caching: a column count's next byte says whether column
	// definitions follow.
	CacheMetadata bool
	// Undo are MariaDB capabilities the backend connection negotiated and
	// the client did not (a pooled connection's): MariaDBProgress drops
	// progress reports, MariaDBExtendedMetadata cuts the extended metadata
	// out of column definitions, MariaDBCacheMetadata removes a column
	// count's metadata-follows byte and sends Meta's column definitions
	// where the server skipped them.
	Undo uint32
	// Add are MariaDB capabilities the client negotiated and the backend
	// connection did not (a node of another version than the one the
	// client was greeted for): MariaDBExtendedMetadata adds an empty
	// extended metadata block to column definitions, MariaDBCacheMetadata
	// a metadata-follows byte (1) to column counts. (The others need
	// nothing: the client gets no progress reports, and a bulk execution
	// the server does not know it refuses.)
	Add uint32
	// DeprecateEOF: the client negotiated CLIENT_DEPRECATE_EOF, which
	// backend connections never have: an EOF after definitions is dropped
	// (kept, as below, where it tells of an open cursor), and one that ends
	// rows becomes the OK with an EOF header that the server sends such a
	// client.
	DeprecateEOF bool
	// Meta, with MariaDBCacheMetadata undone, keeps the column definitions
	// of the prepared statement this command prepares or executes, as its
	// client saw them.
	Meta *StmtMeta
	// UndoTrack: the backend connection negotiated CLIENT_SESSION_TRACK
	// and the client did not: OK packets lose the session state changes.
	UndoTrack bool

	// seqShift is how many packets were dropped: the client's sequence
	// ids run that far behind the backend's.
	seqShift uint8
	hdr      [4]byte   // a rewritten packet's header
	capture  *StmtMeta // where column() keeps the definitions it writes
	eofHead  [9]byte   // an EOF read
	eof      [11]byte  // the OK written for it
	lastSeq  uint8     // sequence id of the last packet forwarded from the backend
	// Forwarded counts the packets of this response already sent on.
	Forwarded int
}

// peekLen is how much of a packet the state machine inspects.
const peekLen = 24

// hot path: forward copies one physical packet from src to dst, returning
// its payload length and up to peekLen leading payload bytes, valid until
// the next read from src.
func forward(dst, src *PacketIO, srcSide Side) (head []byte, n int, err error) {
	return forwardPacket(dst, src, srcSide, true)
}

// forwardPacket is forward; with flushIdle false it leaves dst unflushed
// even when src has nothing more buffered.
func forwardPacket(dst, src *PacketIO, srcSide Side, flushIdle bool) (head []byte, n int, err error) {
	hdr, err := src.r.Peek(4)
	if err != nil {
		return nil, 0, &IOError{srcSide, err}
	}
	n = int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	if 4+n <= src.r.Size() {
		b, err := src.r.Peek(4 + n)
		if err != nil {
			return nil, 0, &IOError{srcSide, err}
		}
		if _, err := dst.w.Write(b); err != nil {
			return nil, 0, &IOError{other(srcSide), err}
		}
		_, _ = src.r.Discard(4 + n)
		head = b[4 : 4+min(n, peekLen)]
	} else {
		// Larger than the read buffer: stream it through.
		b, err := src.r.Peek(4 + peekLen)
		if err != nil {
			return nil, 0, &IOError{srcSide, err}
		}
		var small [peekLen]byte
		copy(small[:], b[4:])
		head = small[:]
		if err := copyN(dst, src, int64(4+n), srcSide); err != nil {
			return nil, 0, err
		}
	}
	if flushIdle && src.r.Buffered() == 0 {
		// About to block on src: let dst see what it has so far.
		if err := dst.w.Flush(); err != nil {
			return nil, 0, &IOError{other(srcSide), err}
		}
	}
	return head, n, nil
}

func copyN(dst, src *PacketIO, n int64, srcSide Side) error {
	for n > 0 {
		b, err := src.r.Peek(min(int(n), src.r.Size()))
		if len(b) == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return &IOError{srcSide, err}
		}
		if _, err := dst.w.Write(b); err != nil {
			return &IOError{other(srcSide), err}
		}
		_, _ = src.r.Discard(len(b))
		n -= int64(len(b))
	}
	return nil
}

func other(s Side) Side {
	if s == ClientSide {
		return BackendSide
	}
	return ClientSide
}

// fwd forwards one logical packet from the backend, skipping over
// continuation parts, and returns the head of its first part.
func (r *Relay) fwd() (head []byte, n int, err error) {
	// A failed peek must end here: bufio returns a read error once, and
	// forward's own peek would start a new read, with a fresh deadline
	// (a frozen node was noticed after twice backend_read_timeout).
	hdr, err := r.peekHeader()
	if err != nil {
		return nil, 0, err
	}
	r.lastSeq = hdr[3]
	// With Settled the answer is held back until it is whole (Response).
	head, n, err = forwardPacket(r.Client, r.Backend, BackendSide, r.Settled == nil)
	if err != nil {
		return nil, 0, err
	}
	r.Forwarded++
	if n == MaxPayload {
		var first [peekLen]byte
		copy(first[:], head)
		for more := true; more; {
			if _, err := r.peekHeader(); err != nil {
				return nil, 0, err
			}
			_, m, err := forward(r.Client, r.Backend, BackendSide)
			if err != nil {
				return nil, 0, err
			}
			more = m == MaxPayload
		}
		head = first[:min(n, peekLen)]
	}
	return head, n, nil
}

// fwdResult is fwd for a packet that may be a command's OK: one that
// reports session state changes to a client that did not ask for them
// loses them, as the server would have sent it.
func (r *Relay) fwdResult() (head []byte, n int, err error) {
	if !r.UndoTrack {
		return r.fwd()
	}
	hdr, err := r.Backend.r.Peek(4)
	if err != nil {
		return nil, 0, &IOError{BackendSide, err}
	}
	n = int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	if n < 7 || 4+n > r.Backend.r.Size() {
		return r.fwd()
	}
	b, err := r.Backend.r.Peek(4 + n)
	if err != nil {
		return nil, 0, &IOError{BackendSide, err}
	}
	keep := untracked(b[4:])
	if keep == n {
		return r.fwd()
	}
	b[3] -= r.seqShift
	r.lastSeq = b[3]
	w := r.Client.w
	r.hdr = [4]byte{byte(keep), byte(keep >> 8), byte(keep >> 16), b[3]}
	_, _ = w.Write(r.hdr[:])
	if _, err := w.Write(b[4 : 4+keep]); err != nil {
		return nil, 0, &IOError{ClientSide, err}
	}
	var small [peekLen]byte
	head = small[:copy(small[:], b[4:4+keep])]
	_, _ = r.Backend.r.Discard(4 + n)
	r.Forwarded++
	return head, keep, nil
}

// untracked turns an OK payload with session state changes into the OK a
// client without CLIENT_SESSION_TRACK gets (in place: the status flag
// cleared) and returns its length: up to the warnings, then the info
// when there is one. An empty info alone goes too (MySQL writes one for
// tracking clients). Any other packet is left whole.
func untracked(p []byte) int {
	if len(p) == 0 || p[0] != mysql.OK_HEADER {
		return len(p)
	}
	pos := 1
	for range 2 { // affected rows, insert id
		_, sz, ok := lenEncInt(p[pos:])
		if !ok {
			return len(p)
		}
		pos += sz
	}
	if len(p) == pos+5 && p[pos+4] == 0 {
		return pos + 4 // MySQL's empty info, sent to tracking clients only
	}
	if len(p) < pos+4 || p[pos+1]&byte(mysql.SERVER_SESSION_STATE_CHANGED>>8) == 0 {
		return len(p)
	}
	p[pos+1] &^= byte(mysql.SERVER_SESSION_STATE_CHANGED >> 8)
	pos += 4
	l, sz, ok := lenEncInt(p[pos:])
	if !ok || uint64(len(p)-pos-sz) < l {
		return pos
	}
	if l == 0 {
		return pos // no info: the server sends none
	}
	return pos + sz + int(l)
}

// peekHeader peeks at the backend's next packet header, its sequence id
// already renumbered for the client in the buffer (seqShift) so that
// forwarding it sends the client's.
func (r *Relay) peekHeader() ([]byte, error) {
	hdr, err := r.Backend.r.Peek(4)
	if err != nil {
		return nil, &IOError{BackendSide, err}
	}
	hdr[3] -= r.seqShift // the buffer's byte: forwarded next, then discarded
	return hdr, nil
}

// dropProgress consumes the progress reports waiting at the head of the
// response, for a client that did not ask for them, and reports whether
// it dropped any.
func (r *Relay) dropProgress() (bool, error) {
	if r.Undo&MariaDBProgress == 0 {
		return false, nil
	}
	dropped := false
	for {
		// The header first: a shorter packet may be all the server sends
		// before waiting (LOAD DATA LOCAL INFILE '' is one byte).
		b, err := r.Backend.r.Peek(4)
		if err != nil {
			return dropped, &IOError{BackendSide, err}
		}
		if n := int(b[0]) | int(b[1])<<8 | int(b[2])<<16; n < 3 {
			return dropped, nil
		}
		if b, err = r.Backend.r.Peek(7); err != nil {
			return dropped, &IOError{BackendSide, err}
		}
		if !isProgress(b[4:], 3) {
			return dropped, nil
		}
		if _, err := r.Backend.ReadPacket(nil, 1<<16); err != nil {
			return dropped, &IOError{BackendSide, err}
		}
		r.seqShift++
		dropped = true
	}
}

// column forwards a column definition, without its extended metadata for
// a client that did not ask for it, and keeps it in r.capture when set:
// the packet is written from the read buffer around the cut, without a
// copy.
func (r *Relay) column() error {
	if (r.Undo|r.Add)&MariaDBExtendedMetadata == 0 && r.capture == nil {
		_, _, err := r.fwd()
		return err
	}
	hdr, err := r.peekHeader()
	if err != nil {
		return err
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	if 4+n > r.Backend.r.Size() { // not a column definition: left as it is
		_, _, err := r.fwd()
		return err
	}
	b, err := r.Backend.r.Peek(4 + n)
	if err != nil {
		return &IOError{BackendSide, err}
	}
	r.lastSeq = b[3]
	off, cut, add := 0, 0, 0
	switch {
	case r.Undo&MariaDBExtendedMetadata != 0:
		off, cut = extendedMetadata(b[4:])
	case r.Add&MariaDBExtendedMetadata != 0:
		if off = namesEnd(b[4:]); off >= 0 {
			add = 1 // an empty block
		} else {
			off = 0
		}
	}
	m := n - cut + add
	w := r.Client.w
	r.hdr = [4]byte{byte(m), byte(m >> 8), byte(m >> 16), b[3]}
	_, _ = w.Write(r.hdr[:])
	_, _ = w.Write(b[4 : 4+off])
	r.hdr[0] = 0
	insert := r.hdr[:add] // written after the header was: reused
	_, _ = w.Write(insert)
	if _, err := w.Write(b[4+off+cut:]); err != nil {
		return &IOError{ClientSide, err}
	}
	if r.capture != nil {
		r.capture.add(b[4:4+off], insert, b[4+off+cut:])
	}
	_, _ = r.Backend.r.Discard(4 + n)
	r.Forwarded++
	if r.Settled == nil && r.Backend.r.Buffered() == 0 {
		if err := w.Flush(); err != nil { // as forwardPacket does
			return &IOError{ClientSide, err}
		}
	}
	return nil
}

// StmtMeta is a prepared statement's column definitions as its client
// last saw them.
type StmtMeta struct {
	defs []byte // each: a 3-byte length, then the payload
	n    uint64
}

func (m *StmtMeta) reset() { m.defs, m.n = m.defs[:0], 0 }

// add keeps one column definition, given in parts.
func (m *StmtMeta) add(parts ...[]byte) {
	l := 0
	for _, p := range parts {
		l += len(p)
	}
	m.defs = append(m.defs, byte(l), byte(l>>8), byte(l>>16))
	for _, p := range parts {
		m.defs = append(m.defs, p...)
	}
	m.n++
}

// writeMeta writes r.Meta's definitions as packets numbered from seq on.
func (r *Relay) writeMeta(seq uint8) error {
	for d := r.Meta.defs; len(d) >= 3; seq++ {
		l := int(d[0]) | int(d[1])<<8 | int(d[2])<<16
		r.hdr = [4]byte{d[0], d[1], d[2], seq}
		_, _ = r.Client.w.Write(r.hdr[:])
		if _, err := r.Client.w.Write(d[3 : 3+l]); err != nil {
			return err
		}
		d = d[3+l:]
	}
	return nil
}

// namesEnd is where a column definition's six names end (-1 when p is not
// a column definition): where MariaDB's extended metadata goes.
func namesEnd(p []byte) int {
	off := 0
	for range 6 { // catalog, schema, table, org_table, name, org_name
		l, sz, ok := lenEncInt(p[off:])
		if !ok || uint64(len(p)-off-sz) < l {
			return -1
		}
		off += sz + int(l)
	}
	return off
}

// extendedMetadata finds MariaDB's extended metadata in a column
// definition: a length-encoded block after the column's six names. It
// returns its offset and length; length 0 when p is not such a packet.
func extendedMetadata(p []byte) (off, n int) {
	if off = namesEnd(p); off < 0 {
		return 0, 0
	}
	l, sz, ok := lenEncInt(p[off:])
	if !ok || uint64(len(p)-off-sz) < l {
		return 0, 0
	}
	return off, sz + int(l)
}

// rewriteRow is fwd for a packet read whole and written through r.Rows
// when it is a row, with the backend's sequence id.
func (r *Relay) rewriteRow() (head []byte, n int, err error) {
	p, err := r.Backend.ReadPacket(nil, MaxPayload*64)
	if err != nil {
		return nil, 0, &IOError{BackendSide, err}
	}
	n = len(p)
	r.lastSeq = r.Backend.Seq - 1 - r.seqShift
	out := p
	if !isEOF(p, n) && (n == 0 || p[0] != mysql.ERR_HEADER) {
		out = r.Rows(p)
	}
	r.Client.Seq = r.lastSeq - uint8(n/MaxPayload) // the first part's
	if err := r.Client.WritePacket(out); err != nil {
		return nil, 0, &IOError{ClientSide, err}
	}
	r.Forwarded++
	return p[:min(n, peekLen)], n, nil
}

// Response relays one command's whole response and flushes the client.
func (r *Relay) Response(kind ResponseKind) (Outcome, error) {
	var out Outcome
	var err error
	switch kind {
	case RespResult:
		out, err = r.results()
	case RespSingle:
		out, err = r.single()
	case RespFieldList:
		out, err = r.fieldList()
	case RespPrepare:
		out, err = r.prepare()
	case RespRows:
		out, err = r.untilEOF()
	}
	if err != nil {
		return out, err
	}
	if r.Settled != nil {
		r.Settled(out)
	}
	if err := r.Client.Flush(); err != nil {
		return out, &IOError{ClientSide, err}
	}
	return out, nil
}

func (r *Relay) single() (Outcome, error) {
	head, n, err := r.fwdResult()
	if err != nil {
		return Outcome{}, err
	}
	return outcomeOf(head, n), nil
}

func (r *Relay) results() (Outcome, error) {
	var affected, rows, insertID uint64
	for {
		if _, err := r.dropProgress(); err != nil {
			return Outcome{}, err
		}
		if !r.ClientLocalFiles || (r.Undo|r.Add)&MariaDBCacheMetadata != 0 {
			first, err := r.peekFirst()
			if err != nil {
				return Outcome{}, err
			}
			switch {
			case first == mysql.LocalInFile_HEADER && !r.ClientLocalFiles:
				return r.declineLocalInfile()
			case (r.Undo|r.Add)&MariaDBCacheMetadata != 0 && isColumnCount(first):
				out, err := r.flaggedResultSet()
				if err != nil || out.ErrCode != 0 || out.Status&mysql.SERVER_MORE_RESULTS_EXISTS == 0 {
					out.AffectedRows, out.Rows, out.InsertID = affected, rows+out.Rows, insertID
					return out, err
				}
				rows += out.Rows
				continue
			}
		}
		head, n, err := r.fwdResult()
		if err != nil {
			return Outcome{}, err
		}
		if n == 0 {
			return Outcome{}, &IOError{BackendSide, errors.New("empty response packet")}
		}
		if isProgress(head, n) {
			if err := r.Client.Flush(); err != nil { // shown as it comes
				return Outcome{}, &IOError{ClientSide, err}
			}
			continue
		}
		var out Outcome
		switch head[0] {
		case mysql.OK_HEADER, mysql.ERR_HEADER:
			out = outcomeOf(head, n)
		case mysql.LocalInFile_HEADER:
			if out, err = r.localInfile(); err != nil {
				return out, err
			}
		default:
			if out, err = r.resultSet(head); err != nil {
				return out, err
			}
		}
		affected += out.AffectedRows
		rows += out.Rows
		if out.InsertID != 0 {
			insertID = out.InsertID
		}
		if out.ErrCode != 0 || out.Status&mysql.SERVER_MORE_RESULTS_EXISTS == 0 {
			out.AffectedRows, out.Rows, out.InsertID = affected, rows, insertID
			return out, nil
		}
	}
}

// resultSet relays the column definitions, EOF and rows of one result set
// whose column-count packet was already forwarded.
func (r *Relay) resultSet(head []byte) (Outcome, error) {
	cols, sz, ok := lenEncInt(head)
	if !ok {
		return Outcome{}, &IOError{BackendSide, fmt.Errorf("bad column count packet %x", head)}
	}
	if r.CacheMetadata && len(head) > sz && head[sz] == 0 {
		cols = 0 // the client has them: only the EOF follows
	}
	for i := uint64(0); i < cols; i++ {
		if err := r.column(); err != nil {
			return Outcome{}, err
		}
	}
	return r.afterColumns()
}

// isColumnCount: a response's first packet beginning with b is a result
// set's column count (not an OK, ERR, EOF or LOCAL INFILE request).
func isColumnCount(b byte) bool {
	return b != mysql.OK_HEADER && b != mysql.ERR_HEADER && b != mysql.EOF_HEADER && b != mysql.LocalInFile_HEADER
}

// flaggedResultSet relays a result set whose column count has a
// metadata-follows byte on one side of the proxy only.
func (r *Relay) flaggedResultSet() (Outcome, error) {
	if r.Undo&MariaDBCacheMetadata != 0 {
		return r.uncachedResultSet()
	}
	head, err := r.withMetadataFlag()
	if err != nil {
		return Outcome{}, err
	}
	return r.resultSet(head)
}

// uncachedResultSet relays a result set from a connection with metadata
// caching to a client without: the column count loses its
// metadata-follows byte, and where the server skipped the column
// definitions (the statement's unchanged since it last sent them) the
// client gets them from r.Meta, the packets after them renumbered.
func (r *Relay) uncachedResultSet() (Outcome, error) {
	hdr, err := r.peekHeader()
	if err != nil {
		return Outcome{}, err
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	b, err := r.Backend.r.Peek(4 + n)
	if err != nil {
		return Outcome{}, &IOError{BackendSide, err}
	}
	cols, sz, ok := lenEncInt(b[4:])
	if !ok || sz >= n {
		return Outcome{}, &IOError{BackendSide, fmt.Errorf("bad column count packet %x", b[4:])}
	}
	follows := b[4+sz] != 0
	r.lastSeq = b[3]
	r.hdr = [4]byte{byte(sz), 0, 0, b[3]}
	_, _ = r.Client.w.Write(r.hdr[:])
	if _, err := r.Client.w.Write(b[4 : 4+sz]); err != nil {
		return Outcome{}, &IOError{ClientSide, err}
	}
	_, _ = r.Backend.r.Discard(4 + n)
	r.Forwarded++
	switch {
	case follows:
		if r.Meta != nil {
			r.Meta.reset()
			r.capture = r.Meta
			defer func() { r.capture = nil }()
		}
		for i := uint64(0); i < cols; i++ {
			if err := r.column(); err != nil {
				return Outcome{}, err
			}
		}
	case r.Meta == nil || r.Meta.n != cols:
		return Outcome{}, &IOError{BackendSide, fmt.Errorf("the server skipped %d column definitions the proxy does not have", cols)}
	default:
		if err := r.writeMeta(r.lastSeq + 1); err != nil {
			return Outcome{}, &IOError{ClientSide, err}
		}
		r.seqShift -= uint8(cols) // the client's ids now run ahead
		r.lastSeq += uint8(cols)
	}
	return r.afterColumns()
}

// withMetadataFlag forwards a column count with a metadata-follows byte
// (1: they follow) for a client with metadata caching from a connection
// without, and returns its payload.
func (r *Relay) withMetadataFlag() ([]byte, error) {
	hdr, err := r.peekHeader()
	if err != nil {
		return nil, err
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	if n > peekLen-1 {
		return nil, &IOError{BackendSide, fmt.Errorf("bad column count packet of %d bytes", n)}
	}
	b, err := r.Backend.r.Peek(4 + n)
	if err != nil {
		return nil, &IOError{BackendSide, err}
	}
	r.lastSeq = b[3]
	var head [peekLen]byte
	copy(head[:], b[4:])
	r.hdr = [4]byte{byte(n + 1), 0, 0, b[3]}
	_, _ = r.Client.w.Write(r.hdr[:])
	_, _ = r.Client.w.Write(b[4:])
	r.hdr[0] = 1 // metadata follows
	if _, err = r.Client.w.Write(r.hdr[:1]); err != nil {
		return nil, &IOError{ClientSide, err}
	}
	_, _ = r.Backend.r.Discard(4 + n)
	r.Forwarded++
	return head[:n], nil
}

// afterColumns relays the EOF after a result set's column definitions and
// its rows.
func (r *Relay) afterColumns() (Outcome, error) {
	head, n, err := r.fwdOrEOF(r.fwd, true)
	if err != nil {
		return Outcome{}, err
	}
	out := outcomeOf(head, n)
	if !isEOF(head, n) {
		return out, &IOError{BackendSide, fmt.Errorf("expected EOF after column definitions, got %x", head)}
	}
	if r.Cursor && out.Status&mysql.SERVER_STATUS_CURSOR_EXISTS != 0 &&
		out.Status&mysql.SERVER_MORE_RESULTS_EXISTS == 0 {
		return out, nil // rows come with COM_STMT_FETCH
	}
	return r.untilEOF()
}

// fwdOrEOF is fwd, except that for a client with CLIENT_DEPRECATE_EOF an
// EOF is written as the OK that ends rows there, or dropped when it
// follows definitions (between, true) and opens no cursor. It returns the
// backend's packet head either way.
func (r *Relay) fwdOrEOF(fwd func() ([]byte, int, error), between bool) ([]byte, int, error) {
	if !r.DeprecateEOF {
		return fwd()
	}
	hdr, err := r.Backend.r.Peek(4)
	if err != nil {
		return nil, 0, &IOError{BackendSide, err}
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	if n == 0 || n >= 9 {
		return fwd()
	}
	b, err := r.Backend.r.Peek(4 + n)
	if err != nil {
		return nil, 0, &IOError{BackendSide, err}
	}
	if b[4] != mysql.EOF_HEADER {
		return fwd()
	}
	seq := b[3] - r.seqShift
	copy(r.eofHead[:], b[4:4+n])
	head := r.eofHead[:n]
	out := outcomeOf(head, n)
	_, _ = r.Backend.r.Discard(4 + n)
	cursor := r.Cursor && out.Status&mysql.SERVER_STATUS_CURSOR_EXISTS != 0 && out.Status&mysql.SERVER_MORE_RESULTS_EXISTS == 0
	if between && !cursor {
		r.seqShift++
		return head, n, nil
	}
	r.lastSeq = seq
	st, warn := out.Status, out.Warnings
	r.eof = [11]byte{7, 0, 0, seq, mysql.EOF_HEADER, 0, 0, byte(st), byte(st >> 8), byte(warn), byte(warn >> 8)}
	if _, err := r.Client.w.Write(r.eof[:]); err != nil {
		return nil, 0, &IOError{ClientSide, err}
	}
	r.Forwarded++
	if r.Settled == nil && r.Backend.r.Buffered() == 0 {
		if err := r.Client.w.Flush(); err != nil { // as forwardPacket does
			return nil, 0, &IOError{ClientSide, err}
		}
	}
	return head, n, nil
}

// fieldList relays COM_FIELD_LIST's column definitions up to the EOF or
// ERR.
func (r *Relay) fieldList() (Outcome, error) {
	if (r.Undo|r.Add)&MariaDBExtendedMetadata == 0 {
		return r.untilEOF()
	}
	for {
		first, err := r.peekFirst()
		if err != nil {
			return Outcome{}, err
		}
		if first == mysql.EOF_HEADER || first == mysql.ERR_HEADER {
			head, n, err := r.fwdOrEOF(r.fwd, false)
			return outcomeOf(head, n), err
		}
		if err := r.column(); err != nil {
			return Outcome{}, err
		}
	}
}

// untilEOF relays packets up to and including an EOF or ERR, counting
// the packets before it as rows.
func (r *Relay) untilEOF() (Outcome, error) {
	fwd := r.fwd
	if r.Rows != nil {
		fwd = r.rewriteRow
	}
	for rows := uint64(0); ; rows++ {
		if dropped, err := r.dropProgress(); err != nil || dropped {
			if err != nil {
				return Outcome{}, err
			}
			rows--
			continue
		}
		head, n, err := r.fwdOrEOF(fwd, false)
		if err != nil {
			return Outcome{}, err
		}
		if isEOF(head, n) || (n > 0 && head[0] == mysql.ERR_HEADER) {
			if isProgress(head, n) {
				// Between the metadata and the rows of a statement that
				// sends its columns first and works after (REPAIR, CHECK).
				rows--
				if err := r.Client.Flush(); err != nil {
					return Outcome{}, &IOError{ClientSide, err}
				}
				continue
			}
			out := outcomeOf(head, n)
			out.Rows = rows
			return out, nil
		}
	}
}

func (r *Relay) prepare() (Outcome, error) {
	id, rewritten := r.rewriteStmtID()
	head, n, err := r.fwd()
	if err != nil {
		return Outcome{}, err
	}
	if n == 0 || head[0] != mysql.OK_HEADER || n < 9 {
		return outcomeOf(head, n), nil
	}
	if !rewritten {
		id = uint32(head[1]) | uint32(head[2])<<8 | uint32(head[3])<<16 | uint32(head[4])<<24
	}
	cols := int(head[5]) | int(head[6])<<8
	params := int(head[7]) | int(head[8])<<8
	if r.Meta != nil && r.Undo&MariaDBCacheMetadata != 0 {
		r.Meta.reset()
	}
	for g, count := range []int{params, cols} {
		if count == 0 {
			continue
		}
		if g == 1 && r.Meta != nil && r.Undo&MariaDBCacheMetadata != 0 {
			r.capture = r.Meta
		}
		for i := 0; i < count; i++ {
			if err := r.column(); err != nil {
				r.capture = nil
				return Outcome{}, err
			}
		}
		r.capture = nil
		if _, _, err := r.fwdOrEOF(r.fwd, true); err != nil { // EOF
			return Outcome{}, err
		}
	}
	return Outcome{StmtID: id, Params: uint16(params)}, nil
}

// rewriteStmtID puts r.StmtID in place of the statement id of the
// prepare OK waiting in the backend's buffer, before it is forwarded, and
// returns the backend's id.
func (r *Relay) rewriteStmtID() (uint32, bool) {
	if r.StmtID == 0 {
		return 0, false
	}
	b, err := r.Backend.r.Peek(4 + 9)
	if err != nil || b[4] != mysql.OK_HEADER || int(b[0])|int(b[1])<<8|int(b[2])<<16 < 9 {
		return 0, false
	}
	id := binary.LittleEndian.Uint32(b[5:9])
	binary.LittleEndian.PutUint32(b[5:9], r.StmtID) // the buffer's bytes: forwarded next, then discarded
	return id, true
}

// peekFirst returns the first payload byte of the backend's next packet
// (0 for an empty one, which the forward that follows reports).
func (r *Relay) peekFirst() (byte, error) {
	b, err := r.Backend.r.Peek(5)
	if err != nil {
		return 0, &IOError{BackendSide, err}
	}
	if b[0]|b[1]|b[2] == 0 {
		return 0, nil
	}
	return b[4], nil
}

// declineLocalInfile answers a LOCAL INFILE request for a client that never
// negotiated CLIENT_LOCAL_FILES: the backend gets an empty file and its
// answer is consumed; the client gets ER_NOT_ALLOWED_COMMAND in place of
// the request it could not handle.
func (r *Relay) declineLocalInfile() (Outcome, error) {
	if _, err := r.Backend.ReadPacket(nil, 1<<16); err != nil {
		return Outcome{}, &IOError{BackendSide, err}
	}
	seq := r.Backend.LastSeq()
	r.Backend.Seq = seq + 1
	if err := r.Backend.WritePacketFlush(nil); err != nil {
		return Outcome{}, &IOError{BackendSide, err}
	}
	for { // its answer, after any progress reports
		p, err := r.Backend.ReadPacket(nil, 1<<16)
		if err != nil {
			return Outcome{}, &IOError{BackendSide, err}
		}
		if !isProgress(p, len(p)) {
			break
		}
	}
	r.Client.Seq = seq
	e := NewError(mysql.ER_NOT_ALLOWED_COMMAND, "The used command is not allowed because the client did not enable LOCAL INFILE")
	if err := r.Client.WritePacket(ErrorPayload(e)); err != nil {
		return Outcome{}, &IOError{ClientSide, err}
	}
	return Outcome{ErrCode: e.Code}, nil
}

// localInfile handles the LOCAL INFILE exchange after the request was
// forwarded: the client's file content streams to the backend up to the
// empty terminating packet (one that does not continue a 16 MiB part),
// then the backend's OK/ERR follows.
func (r *Relay) localInfile() (Outcome, error) {
	if err := r.Client.Flush(); err != nil {
		return Outcome{}, &IOError{ClientSide, err}
	}
	for prev := -1; ; {
		_, n, err := forward(r.Backend, r.Client, ClientSide)
		if err != nil {
			return Outcome{}, err
		}
		if n == 0 && prev != MaxPayload {
			break
		}
		prev = n
	}
	if err := r.Backend.Flush(); err != nil {
		return Outcome{}, &IOError{BackendSide, err}
	}
	for {
		if _, err := r.dropProgress(); err != nil {
			return Outcome{}, err
		}
		head, n, err := r.fwdResult()
		if err != nil || !isProgress(head, n) {
			return outcomeOf(head, n), err
		}
		if err := r.Client.Flush(); err != nil {
			return Outcome{}, &IOError{ClientSide, err}
		}
	}
}

// isProgress recognises MariaDB's progress report: an ERR packet with
// error code 0xFFFF, sent during a long statement to clients that asked
// for MARIADB_CLIENT_PROGRESS; the response follows it.
func isProgress(head []byte, n int) bool {
	return n >= 3 && head[0] == mysql.ERR_HEADER && head[1] == 0xff && head[2] == 0xff
}

func isEOF(head []byte, n int) bool {
	return n > 0 && n < 9 && head[0] == mysql.EOF_HEADER
}

// outcomeOf reads status and error code from an OK, EOF or ERR head.
func outcomeOf(head []byte, n int) Outcome {
	if n == 0 {
		return Outcome{}
	}
	switch {
	case head[0] == mysql.ERR_HEADER && n >= 3:
		return Outcome{ErrCode: uint16(head[1]) | uint16(head[2])<<8}
	case isEOF(head, n) && n >= 5:
		return Outcome{Warnings: uint16(head[1]) | uint16(head[2])<<8, Status: uint16(head[3]) | uint16(head[4])<<8}
	case head[0] == mysql.OK_HEADER:
		return okOutcome(head)
	}
	return Outcome{}
}

// okOutcome parses an OK packet head; the two length-encoded integers are
// at most 9 bytes each, so a long head may be cut: then status stays 0.
func okOutcome(head []byte) Outcome {
	pos := 1
	var v [2]uint64 // affected rows, insert id
	for i := range v {
		n, sz, ok := lenEncInt(head[pos:])
		if !ok {
			return Outcome{}
		}
		v[i] = n
		pos += sz
	}
	out := Outcome{AffectedRows: v[0], InsertID: v[1]}
	if len(head) >= pos+4 {
		out.Status, out.Warnings = uint16(head[pos])|uint16(head[pos+1])<<8, uint16(head[pos+2])|uint16(head[pos+3])<<8
	}
	return out
}

// lenEncInt decodes a length-encoded integer: (value, size, ok).
func lenEncInt(b []byte) (uint64, int, bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	switch b[0] {
	case 0xfc:
		if len(b) < 3 {
			return 0, 0, false
		}
		return uint64(b[1]) | uint64(b[2])<<8, 3, true
	case 0xfd:
		if len(b) < 4 {
			return 0, 0, false
		}
		return uint64(b[1]) | uint64(b[2])<<8 | uint64(b[3])<<16, 4, true
	case 0xfe:
		if len(b) < 9 {
			return 0, 0, false
		}
		var v uint64
		for i := 8; i >= 1; i-- {
			v = v<<8 | uint64(b[i])
		}
		return v, 9, true
	case 0xfb, 0xff:
		return 0, 0, false
	}
	return uint64(b[0]), 1, true
}

// StatusOf returns the server status of an OK or EOF payload (0 otherwise).
func StatusOf(payload []byte) uint16 {
	return outcomeOf(payload[:min(len(payload), peekLen)], len(payload)).Status
}

// LenEncInt decodes a length-encoded integer: (value, size, ok).
func LenEncInt(b []byte) (uint64, int, bool) { return lenEncInt(b) }
