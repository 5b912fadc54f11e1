package session

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
	"pisanix.io/pisanix/backend"
	"pisanix.io/pisanix/sqlinfo"
	"pisanix.io/pisanix/wire"
)

// Prepared statements under multiplexing. A statement lives on every
// backend connection that ran it, under ids of their own: the client sees
// the proxy's id, and a connection that lacks the statement prepares it
// before its first use there. Each connection keeps a bounded LRU of
// them (backend.MaxStmtsPerConn), shared by the sessions whose state
// matches (the key is the text, the schema and the SETs it was prepared
// under), so an application's statements end up prepared once per
// connection, not once per session.

// muxStmt is one of the session's prepared statements.
type muxStmt struct {
	sql    string
	db     string // the schema it was prepared in, which names resolve in
	params int
	// types are the parameter types the client last sent (2 bytes each):
	// clients send them once, the server keeps them per statement, and
	// another connection's statement may have been given others.
	types string
	// on, gen and be: where it was found last, valid while that
	// connection's statements did not change.
	on     *backend.Conn
	gen    uint64
	be     *backend.Stmt
	cursor bool // an execution opened a cursor, not yet closed
}

// Commands on a statement id, for the unknown-statement error.
var stmtCommandNames = map[byte]string{
	mysql.COM_STMT_EXECUTE: "mysqld_stmt_execute", mysql.COM_STMT_FETCH: "mysqld_stmt_fetch",
	mysql.COM_STMT_SEND_LONG_DATA: "mysqld_stmt_send_long_data", mysql.COM_STMT_RESET: "mysqld_stmt_reset",
	wire.ComStmtBulkExecute: "mysqld_stmt_bulk_execute",
}

// muxStmts: this session's prepared statements are the proxy's (multiplexing).
func (s *Session) muxStmts() bool { return s.env.Multiplex }

// newStmtID is the next id the client sees (never 0, nor MariaDB's
// "last prepared" 0xFFFFFFFF).
func (s *Session) newStmtID() uint32 {
	s.nextStmt++
	if s.nextStmt == 0 || s.nextStmt == lastStmt {
		s.nextStmt = 1
	}
	return s.nextStmt
}

// stmtKey is what a connection's statement cache knows st by: its text
// and the state it is prepared under.
func (s *Session) stmtKey(st *muxStmt) string {
	m := &s.mux
	if m.setsKey == "" {
		m.setsKey = "\x00" + strings.Join(m.sets, "\x00")
	}
	return st.db + "\x00" + st.sql + m.setsKey
}

// preparedMux records a statement the client prepared on be, whose
// backend id is bid, under the client's id.
func (s *Session) preparedMux(id uint32, sql string, out wire.Outcome, be *backend.Conn) {
	st := &muxStmt{sql: sql, db: s.db, params: int(out.Params)}
	if s.stmts == nil {
		s.stmts = map[uint32]*muxStmt{}
	}
	s.stmts[id] = st
	st.on, st.be = be, be.AddStmt(s.stmtKey(st), out.StmtID)
	st.gen = be.StmtGen
}

// stmtOn returns st as prepared on be, preparing it there first if needed
// (in the schema it was prepared in).
func (s *Session) stmtOn(st *muxStmt, be *backend.Conn) (*backend.Stmt, error) {
	if st.on == be && st.gen == be.StmtGen {
		return st.be, nil
	}
	key := s.stmtKey(st)
	bst := be.Stmt(key)
	if bst == nil {
		id, err := s.prepareOn(be, st)
		if err != nil {
			return nil, err
		}
		bst = be.AddStmt(key, id)
	}
	st.on, st.gen, st.be = be, be.StmtGen, bst
	return bst, nil
}

func (s *Session) prepareOn(be *backend.Conn, st *muxStmt) (uint32, error) {
	if st.db == s.db || st.db == "" {
		return be.Prepare(st.sql)
	}
	if err := be.Command(mysql.COM_INIT_DB, []byte(st.db)); err != nil {
		return 0, err
	}
	id, err := be.Prepare(st.sql)
	if err2 := be.Command(mysql.COM_INIT_DB, []byte(s.db)); err == nil {
		err = err2
	}
	return id, err
}

// stmtCommand readies a COM_STMT_EXECUTE, FETCH, SEND_LONG_DATA or RESET
// for the primary connection: the client's id becomes the statement's id
// there, and an execution that relies on parameter types the client sent
// earlier (new-params-bound 0) gets them, unless that statement was last
// given the same. e is the client's error for an unknown id.
func (s *Session) stmtCommand(payload []byte, more bool) (out []byte, st *muxStmt, e *wire.SQLError, err error) {
	id, _ := stmtID(payload)
	if id == lastStmt {
		id = s.lastPrepared
	}
	st = s.stmts[id]
	if st == nil {
		return nil, nil, wire.NewError(mysql.ER_UNKNOWN_STMT_HANDLER,
			fmt.Sprintf("Unknown prepared statement handler (%d) given to %s", id, stmtCommandNames[payload[0]])), nil
	}
	bst, err := s.stmtOn(st, s.primary.conn)
	if err != nil {
		return nil, nil, nil, err
	}
	binary.LittleEndian.PutUint32(payload[1:5], bst.ID)
	if st.params == 0 {
		return payload, st, nil, nil
	}
	var at int // where the types go, after a byte or flag saying they are sent
	var sent bool
	switch payload[0] {
	case mysql.COM_STMT_EXECUTE:
		// id (4), flags (1), iterations (4), NULL bitmap, new-params-bound, types
		bound := 1 + 4 + 1 + 4 + (st.params+7)/8
		if len(payload) <= bound {
			return payload, st, nil, nil // malformed: the server says so
		}
		at, sent = bound+1, payload[bound] == 1
	case wire.ComStmtBulkExecute:
		// id (4), flags (2), types when flags say so, then the rows
		if len(payload) < 7 {
			return payload, st, nil, nil
		}
		at, sent = 7, binary.LittleEndian.Uint16(payload[5:7])&bulkSendTypes != 0
	default:
		return payload, st, nil, nil
	}
	if sent {
		if end := at + 2*st.params; len(payload) >= end {
			st.types = string(payload[at:end])
			bst.Types = st.types
		}
		return payload, st, nil, nil
	}
	if st.types == "" || bst.Types == st.types {
		return payload, st, nil, nil
	}
	if more {
		// The first packet's length cannot change under the parts that follow.
		cmd := "COM_STMT_EXECUTE"
		if payload[0] == wire.ComStmtBulkExecute {
			cmd = "COM_STMT_BULK_EXECUTE"
		}
		return nil, nil, wire.NewError(mysql.ER_NOT_SUPPORTED_YET,
			"pisa-proxy: a "+cmd+" of 16 MiB or more must send its parameter types (multiplexing)"), nil
	}
	// The statement runs where its types were never sent: they are.
	out = append(s.stmtBuf[:0], payload[:at]...)
	if payload[0] == mysql.COM_STMT_EXECUTE {
		out[at-1] = 1
	} else {
		binary.LittleEndian.PutUint16(out[5:7], binary.LittleEndian.Uint16(out[5:7])|bulkSendTypes)
	}
	out = append(append(out, st.types...), payload[at:]...)
	s.stmtBuf = out[:0]
	bst.Types = st.types
	return out, st, nil, nil
}

// bulkSendTypes is COM_STMT_BULK_EXECUTE's STMT_BULK_FLAG_CLIENT_SEND_TYPES.
const bulkSendTypes = 128

// closeMuxStmt forgets a statement; it stays prepared on the connections
// that have it, for the sessions that share their statements.
func (s *Session) closeMuxStmt(payload []byte) {
	id, ok := stmtID(payload)
	if st := s.stmts[id]; ok && st != nil {
		if st.cursor {
			s.cursors--
		}
		delete(s.stmts, id)
	}
}

// stmtFailed answers a statement command that could not be readied: an
// unknown id (e), or a failure to prepare it on the borrowed connection.
func (s *Session) stmtFailed(e *wire.SQLError, err error, more bool) error {
	if err != nil {
		var sqlErr *wire.SQLError
		if !errors.As(err, &sqlErr) {
			return err // the connection failed: the session reports it
		}
		e = sqlErr // e.g. the table is gone since the client prepared
	}
	if more {
		if err := s.client.DiscardRest(); err != nil {
			return &wire.IOError{Side: wire.ClientSide, Err: err}
		}
	}
	if e.Code == 0 { // COM_STMT_SEND_LONG_DATA has no response, not even an error
		return nil
	}
	return s.clientError(e)
}

// readyStmt is stmtCommand for a multiplexing session (payload as it is
// otherwise); done: the command was answered, or failed with err, instead.
func (s *Session) readyStmt(payload []byte, more bool) (out []byte, st *muxStmt, done bool, err error) {
	if !s.muxStmts() {
		return payload, nil, false, nil
	}
	out, st, e, err := s.stmtCommand(payload, more)
	if e != nil || err != nil {
		return nil, nil, true, s.stmtFailed(e, err, more)
	}
	return out, st, false, nil
}

// followCursor notes whether st has a cursor open after a command.
func (s *Session) followCursor(st *muxStmt, open bool) {
	if open != st.cursor {
		st.cursor = open
		if open {
			s.cursors++
		} else {
			s.cursors--
		}
	}
}

// fetch relays COM_STMT_FETCH; the cursor ends with its last row.
func (s *Session) fetch(payload []byte, more bool) error {
	payload, st, done, err := s.readyStmt(payload, more)
	if done {
		return err
	}
	out, err := s.exchange(&s.primary, payload, more, wire.RespRows, sqlinfo.KindOther)
	if st != nil && err == nil && (out.ErrCode != 0 || out.Status&mysql.SERVER_STATUS_LAST_ROW_SEND != 0) {
		s.followCursor(st, false)
	}
	return err
}

// resetStmt relays COM_STMT_RESET, which also closes the statement's cursor.
func (s *Session) resetStmt(payload []byte, more bool) error {
	payload, st, done, err := s.readyStmt(payload, more)
	if done {
		return err
	}
	_, err = s.exchange(&s.primary, payload, more, wire.RespSingle, sqlinfo.KindOther)
	if st != nil && err == nil {
		s.followCursor(st, false)
	}
	return err
}

// sendLongData forwards COM_STMT_SEND_LONG_DATA (no response); the data
// waits on the statement of this connection, which the session keeps
// until the execution that sends it.
func (s *Session) sendLongData(payload []byte, more bool) error {
	if s.muxStmts() {
		var e *wire.SQLError
		var err error
		if payload, _, e, err = s.stmtCommand(payload, more); e != nil || err != nil {
			if e != nil {
				e.Code = 0 // no response: the execution reports the unknown statement
			}
			return s.stmtFailed(e, err, more)
		}
		s.mux.hold = true
	}
	return s.send(&s.primary, payload, more)
}
