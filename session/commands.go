package session

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"pisanix.io/pisanix/backend"
	"pisanix.io/pisanix/sqlinfo"
	"pisanix.io/pisanix/strategy"
	"pisanix.io/pisanix/wire"
)

// errQuit ends the loop normally.
var errQuit = errors.New("client quit")

// bigBuffer: a read buffer grown past this is dropped after the command.
const bigBuffer = 1 << 20

// refreshHosts is COM_REFRESH's REFRESH_HOSTS flag.
const refreshHosts = 0x08

func (s *Session) loop(ctx context.Context) error {
	for ctx.Err() == nil {
		s.release()
		if !s.waitCommand() {
			return nil // drained at a transaction boundary
		}
		if d := s.env.IdleTimeout; d > 0 {
			_ = s.conn.SetReadDeadline(time.Now().Add(d))
		}
		payload, more, err := s.client.ReadPart(s.buf)
		if !s.startCommand() || err != nil && isClientGone(err) {
			return nil
		}
		if s.env.IdleTimeout > 0 {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return s.idleTimeout()
			}
			_ = s.conn.SetReadDeadline(time.Time{}) // the rest of the command has no such bound
		}
		if errors.Is(err, wire.ErrPacketTooLarge) {
			return s.packetTooLarge()
		}
		if err != nil {
			return fmt.Errorf("read command: %w", err)
		}
		if seq := s.client.LastSeq(); seq != 0 {
			s.client.Seq = seq + 1
			_ = s.client.WriteError(wire.NewError(mysql.ER_NET_PACKETS_OUT_OF_ORDER, "Got packets out of order"))
			return fmt.Errorf("command packet with sequence id %d", seq)
		}
		err = s.dispatch(payload, more)
		if cap(payload) > bigBuffer {
			s.buf = nil
		} else {
			s.buf = payload[:0]
		}
		switch {
		case errors.Is(err, errQuit):
			return nil
		case errors.Is(err, wire.ErrPacketTooLarge):
			return s.packetTooLarge()
		case err != nil:
			return s.fail(err)
		}
	}
	return ctx.Err()
}

// packetTooLarge answers a command over max_allowed_packet with MariaDB's
// 1153 and ends the session, as MariaDB does. Unlike MariaDB it first
// reads the rest of the command (for at most rejectDrain), so that the
// client reads the error rather than a reset connection. A backend
// connection that got part of the command is dropped (its leg is dirty).
func (s *Session) packetTooLarge() error {
	s.log.Info("command over max_allowed_packet: session closed", "max_allowed_packet", s.env.MaxAllowedPacket)
	e := wire.NewError(mysql.ER_NET_PACKET_TOO_LARGE, "Got a packet bigger than 'max_allowed_packet' bytes")
	e.State = "08S01"
	_ = s.conn.SetDeadline(time.Now().Add(rejectDrain))
	if s.client.DiscardRejected() == nil {
		_ = s.client.WriteError(e)
	}
	return nil
}

// rejectDrain bounds the reading of a command refused for its size.
const rejectDrain = 5 * time.Second

// errClientInteractionTimeout is MySQL 8's ER_CLIENT_INTERACTION_TIMEOUT.
const errClientInteractionTimeout = 4031

// idleTimeout ends a session whose client was silent for IdleTimeout,
// telling it why as MySQL 8 does (an unsolicited error packet).
func (s *Session) idleTimeout() error {
	_ = s.conn.SetWriteDeadline(time.Now().Add(time.Second))
	s.client.Seq = 0
	_ = s.client.WriteError(wire.NewError(errClientInteractionTimeout,
		"The client was disconnected by the server because of inactivity (pisa-proxy client_idle_timeout)"))
	return nil
}

// midResponse: the failure came after part of the response reached the
// client; an error packet would not fit the stream there.
type midResponse struct{ err error }

func (e *midResponse) Error() string { return e.err.Error() }
func (e *midResponse) Unwrap() error { return e.err }

// fail ends the session after err: a backend failure is reported to the
// client as an error packet, unless part of the response was already
// relayed (then the connection is closed: the client reports it lost); a
// client failure needs no answer.
func (s *Session) fail(err error) error {
	if wire.FailedSide(err) == wire.ClientSide {
		if isClientGone(err) {
			return nil
		}
		return err
	}
	var mid *midResponse
	if errors.As(err, &mid) {
		return err
	}
	s.client.Seq = 1
	e := toSQLError(err, s.env.Tenant)
	if s.shutdown.Load() {
		e = errShutdown()
	}
	_ = s.client.WriteError(e)
	return err
}

// dispatch handles one command whose first packet part is payload.
func (s *Session) dispatch(payload []byte, more bool) error {
	if len(payload) == 0 {
		s.client.Seq = 1
		return s.clientError(wire.NewError(mysql.ER_MALFORMED_PACKET, "Malformed communication packet: empty command"))
	}
	if payload[0] == mysql.COM_QUIT {
		return errQuit
	}
	if s.env.Multiplex {
		if err := s.borrow(); err != nil {
			return s.borrowFailed(err, more)
		}
	}
	switch cmd := payload[0]; cmd {
	case mysql.COM_QUERY:
		return s.query(payload, more)
	case mysql.COM_STMT_EXECUTE:
		return s.execute(payload, more)
	case mysql.COM_STMT_PREPARE:
		return s.prepare(payload, more)
	case mysql.COM_STMT_FETCH:
		return s.fetch(payload, more)
	case mysql.COM_STMT_SEND_LONG_DATA:
		return s.sendLongData(payload, more) // no response
	case mysql.COM_STMT_CLOSE:
		return s.closeStmt(payload, more)
	case mysql.COM_FIELD_LIST:
		return s.fieldList(payload, more)
	case mysql.COM_INIT_DB:
		return s.initDB(payload, more)
	case mysql.COM_RESET_CONNECTION:
		return s.resetConnection(payload, more)
	case mysql.COM_STMT_RESET:
		return s.resetStmt(payload, more)
	case mysql.COM_PING, mysql.COM_STATISTICS, mysql.COM_DEBUG:
		return s.relay(payload, more, wire.RespSingle, sqlinfo.KindOther)
	case mysql.COM_REFRESH: // mysql_refresh(): FLUSH by flags
		if s.restricted() {
			return s.clientError(wire.NewError(mysql.ER_SPECIFIC_ACCESS_DENIED_ERROR,
				"Access denied; you need (at least one of) the RELOAD privilege(s) for this operation (pisa-proxy access rules)"))
		}
		if len(payload) > 1 && payload[1]&refreshHosts != 0 { // mariadb-admin flush-hosts
			s.settled = s.flushHosts
			defer func() { s.settled = nil }()
		}
		return s.relay(payload, more, wire.RespSingle, sqlinfo.KindOther)
	case mysql.COM_SET_OPTION:
		return s.setOption(payload, more)
	case mysql.COM_PROCESS_KILL:
		if len(payload) < 5 {
			s.client.Seq = 1
			return s.clientError(wire.NewError(mysql.ER_MALFORMED_PACKET, "Malformed communication packet: COM_PROCESS_KILL"))
		}
		id := uint32(payload[1]) | uint32(payload[2])<<8 | uint32(payload[3])<<16 | uint32(payload[4])<<24
		return s.kill(uint64(id), false)
	case mysql.COM_CHANGE_USER:
		return s.changeUser(payload)
	case wire.ComStmtBulkExecute:
		if s.hello.ExtCapabilities&wire.MariaDBBulkOperations != 0 { // negotiated
			return s.execute(payload, more)
		}
		fallthrough
	default:
		if more {
			if err := s.client.DiscardRest(); err != nil {
				return &wire.IOError{Side: wire.ClientSide, Err: err}
			}
		}
		return s.clientError(wire.NewError(mysql.ER_UNKNOWN_COM_ERROR, fmt.Sprintf("Unknown command %#x", cmd)))
	}
}

// borrowFailed answers a command no backend connection could be borrowed
// for; the session goes on, as it holds no connection.
func (s *Session) borrowFailed(err error, more bool) error {
	if wire.FailedSide(err) == wire.ClientSide {
		return err
	}
	s.primary.give()
	if more {
		if err := s.client.DiscardRest(); err != nil {
			return &wire.IOError{Side: wire.ClientSide, Err: err}
		}
	}
	return s.clientError(toSQLError(err, s.env.Tenant))
}

// clientError answers the current command with e; the session goes on.
func (s *Session) clientError(e *wire.SQLError) error {
	s.countError(e.Code, "proxy")
	if err := s.client.WriteError(e); err != nil {
		return &wire.IOError{Side: wire.ClientSide, Err: err}
	}
	return nil
}

// countError counts an error packet sent to the client (off the success
// path: the label lookup costs a map access).
func (s *Session) countError(code uint16, origin string) {
	s.env.Metrics.SQLErrors.WithLabelValues(s.env.Tenant, strconv.Itoa(int(code)), origin).Inc()
}

// admitTries bounds how often a statement is admitted again after reloads
// replaced the limiter it waited in.
const admitTries = 3

// admitPlugins passes a statement through the listener's plugins. One that
// waited in a limiter a reload replaced is admitted again under the rules
// now in force (a reload must not fail statements), at most admitTries
// times.
func (s *Session) admitPlugins(sql []byte, digest string) (release func(), err error) {
	for try := 1; ; try++ {
		pl := s.env.Live.Load().Plugins
		if pl.Empty() {
			return nil, nil
		}
		release, err = pl.Admit(context.Background(), s.user, sql, digest)
		if !errors.Is(err, strategy.ErrLimiterGone) || try == admitTries {
			return release, err
		}
	}
}

func (s *Session) query(payload []byte, more bool) error {
	sql := payload[1:]
	kind := sqlinfo.FirstKeyword(sql)
	if kind == sqlinfo.KindKill {
		if id, q, ok := sqlinfo.ParseKill(sql); ok && !more {
			return s.kill(id, q)
		}
	}
	if s.env.Fault != nil {
		s.env.Fault(s, sql)
	}
	info := s.classify(sql)
	if info.Kind == sqlinfo.KindShow && sqlinfo.IsShowSessionStatus(sql) {
		s.rows = s.statusRow
		defer func() { s.rows = nil }()
	}
	if info.FlushesHosts || info.SetsGlobal || info.SetsConnGlobal {
		// Done before the client learns of the success: its next
		// connection may be opened the moment it does.
		s.settled = func(o wire.Outcome) { s.settleGlobals(&info, o) }
		defer func() { s.settled = nil }()
	}
	if p, ok := s.executedKill(&info); ok {
		if more || info.Statements != 1 {
			return s.refuseKill(more)
		}
		return s.killPrepared(p, sql)
	}
	var killed []*Session // sessions a KILL CONNECTION of this text ends
	if len(info.Kills) > 0 || info.Kind == sqlinfo.KindKill || info.PreparesKill() {
		// Never forwarded as sent: the backend would take the proxy's id
		// for one of its own threads.
		switch {
		case more:
			return s.refuseKill(more)
		case info.PreparesKill() && info.Statements == 1:
			// PREPARE of a KILL: the backend checks the text, and its
			// EXECUTE runs here (executedKill).
		case len(info.Kills) == 0 && info.Statements <= 1:
			return s.killByExpression(sql)
		case len(info.Kills) == 0 || info.PreparesKill():
			return s.refuseKill(more)
		case info.Statements == 1:
			return s.kill(info.Kills[0].ID, info.Kills[0].Query)
		default:
			var e *wire.SQLError
			if sql, killed, e = s.translateKills(sql, info.Kills); e != nil {
				return s.clientError(e)
			}
			payload = append([]byte{mysql.COM_QUERY}, sql...)
		}
	}
	if d := s.checkStatement(sql, &info, more); d != nil {
		return s.deny(d, more, &info)
	}
	kind = info.Kind
	release, err := s.admitPlugins(sql, info.Digest)
	if err != nil {
		return s.reject(err, more, &info)
	}
	if release != nil {
		defer release()
	}
	live := s.env.Live.Load()
	if err := live.Fuse.Check(info.Digest, info.Fingerprint); err != nil {
		return s.reject(err, more, &info)
	}
	start, db := time.Now(), s.db
	l := &s.primary
	if !more {
		l = s.legFor(sql, info)
	}
	if info.ReadsLastInsertID && s.env.Multiplex && l == &s.primary {
		if err := s.alignLastInsertID(l.conn); err != nil {
			return err
		}
	}
	out, err := s.exchange(l, payload, more, wire.RespResult, kind)
	if err != nil {
		s.audit(&info, db, start, wire.Outcome{ErrCode: errServerLost}, l.conn.Endpoint.Name, "")
		return err
	}
	s.afterStatement(l, sql, &info, out)
	took := time.Since(start)
	live.Fuse.Observe(info.Digest, info.Fingerprint, out.ErrCode, took)
	s.env.Fingerprints.Observe(info.Digest, info.Fingerprint, took, out.ErrCode != 0)
	s.audit(&info, db, start, out, l.conn.Endpoint.Name, "")
	if l == &s.primary {
		s.observe(sql, &info, out.ErrCode == 0)
	}
	if out.ErrCode == 0 {
		for _, t := range killed {
			t.Close() // as MySQL closes a killed connection's socket
		}
	}
	return s.afterQuery(l, sql, &info, out)
}

// classify describes a COM_QUERY or COM_STMT_PREPARE text.
func (s *Session) classify(sql []byte) sqlinfo.Info {
	var spend func(int) bool
	if b := s.env.ParseBudget; b != nil {
		spend = func(n int) bool { return b.Spend(s.user, n) }
	}
	info := s.env.SQL.ClassifyMode(sql, s.db, s.mode, spend)
	if info.Unverifiable && !info.ParseError && !info.Throttled && len(sql) > sqlinfo.MaxParsed && (s.env.Live.Load().Audit != nil || s.restricted()) {
		// A long text is parsed whole when its tables matter: for the audit
		// log's filters, and for a user with rules, whose session state
		// (database, mode, character set, prepared names) must follow what
		// the text does, not only the check.
		if spend == nil || spend(len(sql)) {
			info = sqlinfo.ClassifyLong(sql, s.db, s.mode)
		} else {
			info.Throttled = true
		}
	}
	if info.Throttled {
		s.env.Metrics.ParseThrottled.WithLabelValues(s.env.Tenant).Inc()
	}
	if info.ParseError {
		s.env.Metrics.ParseErrors.WithLabelValues(s.env.Tenant).Inc()
		s.log.Debug("statement not understood by the parser; routed to the primary", "sql", truncate(sql, 200))
	}
	return info
}

// prepare checks a COM_STMT_PREPARE text like a COM_QUERY one: what a
// prepared statement does is decided once, here.
func (s *Session) prepare(payload []byte, more bool) error {
	info := s.classify(payload[1:])
	var kill *killStmt
	if len(info.Kills) > 0 || info.Kind == sqlinfo.KindKill || info.PreparesKill() {
		var e *wire.SQLError
		switch {
		case more || info.Statements > 1 || info.PreparesKill():
			return s.refuseKill(more)
		case len(info.Kills) == 1 && s.muxStmts():
			// The statement lives on whichever connection an execution
			// borrows: the proxy runs the KILL itself at each one.
			payload, kill = append([]byte{payload[0]}, "DO 0"...), &killStmt{id: info.Kills[0].ID, query: info.Kills[0].Query, native: true}
		case len(info.Kills) == 1:
			payload, kill, e = s.prepareKill(payload, info.Kills[0])
		default:
			payload, kill, e = s.prepareKillExpr(payload)
		}
		if e != nil {
			return s.clientError(e)
		}
	}
	if d := s.checkStatement(payload[1:], &info, more); d != nil {
		return s.deny(d, more, &info)
	}
	if pl := s.env.Live.Load().Plugins; !pl.Empty() {
		if err := pl.Check(payload[1:], info.Digest); err != nil {
			return s.reject(err, more, &info)
		}
	}
	if s.muxStmts() {
		return s.prepareMux(payload, more, &info, kill)
	}
	meta := s.stmtMeta()
	s.relayMeta = meta
	out, err := s.exchange(&s.primary, payload, more, wire.RespPrepare, sqlinfo.KindPrepare)
	if err == nil && out.ErrCode == 0 {
		s.remember(out.StmtID, &info)
		s.rememberKill(out.StmtID, kill)
		if meta != nil {
			s.meta[out.StmtID] = meta
		}
	}
	return err
}

// stmtMeta is a new statement's wire.StmtMeta when the session's client
// lacks MariaDB's metadata caching and its connection has it, else nil.
func (s *Session) stmtMeta() *wire.StmtMeta {
	if be := s.primary.conn; be == nil || be.ExtCapabilities&^s.hello.ExtCapabilities&wire.MariaDBCacheMetadata == 0 {
		return nil
	}
	if s.meta == nil {
		s.meta = map[uint32]*wire.StmtMeta{}
	}
	return &wire.StmtMeta{}
}

// prepareMux prepares a statement under an id of the proxy's
// (multiplexing, see stmts.go).
func (s *Session) prepareMux(payload []byte, more bool, info *sqlinfo.Info, kill *killStmt) error {
	var e *wire.SQLError
	switch {
	case more:
		e = wire.NewError(mysql.ER_NOT_SUPPORTED_YET, "pisa-proxy: a statement to prepare of 16 MiB or more is not supported with multiplexing")
	case len(s.stmts) >= maxPrepared:
		e = wire.NewError(mysql.ER_MAX_PREPARED_STMT_COUNT_REACHED, fmt.Sprintf("Can't create more than max_prepared_stmt_count statements (current value: %d)", maxPrepared))
	}
	if e != nil {
		if more {
			if err := s.client.DiscardRest(); err != nil {
				return &wire.IOError{Side: wire.ClientSide, Err: err}
			}
		}
		return s.clientError(e)
	}
	id := s.newStmtID()
	s.relayStmtID = id
	out, err := s.exchange(&s.primary, payload, more, wire.RespPrepare, sqlinfo.KindPrepare)
	if err == nil && out.ErrCode == 0 {
		s.preparedMux(id, string(payload[1:]), out, s.primary.conn)
		s.remember(id, info)
		s.rememberKill(id, kill)
	}
	return err
}

// rememberKill notes that statement id is a prepared KILL.
func (s *Session) rememberKill(id uint32, kill *killStmt) {
	if kill == nil {
		return
	}
	if s.killStmts == nil {
		s.killStmts = map[uint32]killStmt{}
	}
	s.killStmts[id] = *kill
}

// refuseKill answers a KILL the proxy cannot translate: prepared, or
// where its id cannot be found in the text, it would reach the backend
// with a proxy connection id, which the backend reads as one of its own
// threads.
func (s *Session) refuseKill(more bool) error {
	if more {
		if err := s.client.DiscardRest(); err != nil {
			return &wire.IOError{Side: wire.ClientSide, Err: err}
		}
	}
	return s.clientError(wire.NewError(mysql.ER_NOT_SUPPORTED_YET, "pisa-proxy: KILL must be sent as a statement of its own"))
}

// truncate shortens sql for logs.
func truncate(sql []byte, n int) string {
	if len(sql) > n {
		return string(sql[:n]) + "..."
	}
	return string(sql)
}

// reject answers a command a plugin refused with ERR 1047 (08S01), as
// Pisa-Proxy did; the session goes on.
func (s *Session) reject(err error, more bool, info *sqlinfo.Info) error {
	if more {
		if err := s.client.DiscardRest(); err != nil {
			return &wire.IOError{Side: wire.ClientSide, Err: err}
		}
	}
	plugin := "unknown"
	var rej *strategy.Rejected
	if errors.As(err, &rej) {
		plugin = rej.Plugin
	}
	s.env.Metrics.PluginRejections.WithLabelValues(s.env.Tenant, plugin).Inc()
	s.audit(info, s.db, time.Now(), wire.Outcome{ErrCode: mysql.ER_UNKNOWN_COM_ERROR}, "", plugin)
	return s.clientError(wire.NewError(mysql.ER_UNKNOWN_COM_ERROR, err.Error()))
}

// send forwards a client command to a leg's backend connection.
func (s *Session) send(l *leg, payload []byte, more bool) error {
	if err := s.request(l, payload, more); err != nil {
		return err
	}
	if err := l.conn.IO.Flush(); err != nil {
		return &wire.IOError{Side: wire.BackendSide, Err: err}
	}
	l.dirty = false
	return nil
}

// request writes a command on leg l whose answer is read next: the read
// sends it (wire.PacketIO.EndRequest).
func (s *Session) request(l *leg, payload []byte, more bool) error {
	l.dirty = true
	be := l.conn.IO
	hdr := [4]byte{byte(len(payload)), byte(len(payload) >> 8), byte(len(payload) >> 16), 0}
	if err := be.WriteRaw(hdr, payload); err != nil {
		return &wire.IOError{Side: wire.BackendSide, Err: err}
	}
	if more {
		if err := s.client.ForwardRest(be, wire.ClientSide); err != nil {
			return err
		}
	}
	if err := be.EndRequest(); err != nil {
		return &wire.IOError{Side: wire.BackendSide, Err: err}
	}
	return nil
}

// relay forwards a command to the primary and streams its response back.
func (s *Session) relay(payload []byte, more bool, kind wire.ResponseKind, stmt sqlinfo.Kind) error {
	_, err := s.exchange(&s.primary, payload, more, kind, stmt)
	return err
}

// exchange forwards a command on leg l and streams the response back,
// recording metrics.
// hot path: no allocation once the session's metric handles are cached.
func (s *Session) exchange(l *leg, payload []byte, more bool, kind wire.ResponseKind, stmt sqlinfo.Kind) (wire.Outcome, error) {
	start := time.Now()
	h := s.stats.handles(s, l, payload[0], stmt)
	h.begin()
	defer h.end()
	if l != &s.primary {
		s.active.Store(l.conn)
		defer s.active.Store(s.primary.conn)
	}
	relayID, meta := s.relayStmtID, s.relayMeta
	s.relayStmtID, s.relayMeta = 0, nil // this command's only
	if err := s.request(l, payload, more); err != nil {
		l.failed(err)
		return wire.Outcome{}, err
	}
	l.dirty = true
	r := wire.Relay{Client: s.client, Backend: l.conn.IO, ClientLocalFiles: s.hello.Capabilities&mysql.CLIENT_LOCAL_FILES != 0,
		StmtID: relayID, Rows: s.rows, Settled: s.settled, CacheMetadata: s.hello.ExtCapabilities&wire.MariaDBCacheMetadata != 0,
		Undo:      l.conn.ExtCapabilities &^ s.hello.ExtCapabilities,
		Add:       s.hello.ExtCapabilities &^ l.conn.ExtCapabilities,
		UndoTrack: l.conn.Capabilities&^s.hello.Capabilities&mysql.CLIENT_SESSION_TRACK != 0, Meta: meta,
		DeprecateEOF: s.hello.Capabilities&mysql.CLIENT_DEPRECATE_EOF != 0,
		// COM_STMT_EXECUTE: id (4 bytes), then flags; the cursor types are
		// the low 3 bits (MariaDB's 0x08 is not one).
		Cursor: payload[0] == mysql.COM_STMT_EXECUTE && len(payload) > 5 && payload[5]&0x07 != 0}
	out, err := r.Response(kind)
	if err != nil {
		h.record(false, time.Since(start))
		l.failed(err)
		if r.Forwarded > 0 {
			err = &midResponse{err}
		}
		return out, err
	}
	l.dirty = false
	h.record(out.ErrCode == 0, time.Since(start))
	if out.ErrCode != 0 {
		s.countError(out.ErrCode, "backend")
	}
	if l == &s.primary {
		s.observeStatus(l.conn, out, kind)
	}
	return out, nil
}

// observeStatus follows the primary's status, LAST_INSERT_ID() and
// diagnostics after a response.
func (s *Session) observeStatus(be *backend.Conn, out wire.Outcome, kind wire.ResponseKind) {
	if out.ErrCode == 0 && kind != wire.RespPrepare {
		// A prepare's OK carries no status; an ERR leaves it as it was.
		s.status = out.Status
		s.inTx.Store(out.Status&mysql.SERVER_STATUS_IN_TRANS != 0)
	}
	if out.InsertID != 0 {
		s.mux.lastInsertID, be.LastInsertID = out.InsertID, out.InsertID
	}
	// SHOW WARNINGS and the like read them on this connection.
	s.mux.hold = out.ErrCode != 0 || out.Warnings > 0
}

func (s *Session) initDB(payload []byte, more bool) error {
	if d := s.accessUser().CheckDB(string(payload[1:])); d != nil {
		return s.deny(d, more, nil)
	}
	start := time.Now()
	out, err := s.exchange(&s.primary, payload, more, wire.RespSingle, sqlinfo.KindUse)
	s.audit(&sqlinfo.Info{Kind: sqlinfo.KindUse}, string(payload[1:]), start, out, s.primary.conn.Endpoint.Name, "")
	if err == nil && out.ErrCode == 0 && !more {
		s.db = string(payload[1:])
		s.primary.conn.DB = s.db
		s.stats.reset()
	}
	return err
}

// fieldList checks and forwards COM_FIELD_LIST, which reads a table's
// columns; it is audited like SHOW COLUMNS.
func (s *Session) fieldList(payload []byte, more bool) error {
	table := fieldListTable(payload)
	if d := s.checkFieldList(table); d != nil {
		return s.deny(d, more, nil)
	}
	start := time.Now()
	out, err := s.exchange(&s.primary, payload, more, wire.RespFieldList, sqlinfo.KindShow)
	info := &sqlinfo.Info{Kind: sqlinfo.KindShow, Tables: []sqlinfo.Table{{DB: s.db, Name: table}}}
	s.audit(info, s.db, start, out, s.primary.conn.Endpoint.Name, "")
	return err
}

// resetConnection forwards COM_RESET_CONNECTION and then restores what the
// server reset but the client did not ask to change: its character set.
func (s *Session) resetConnection(payload []byte, more bool) error {
	s.forgetState()
	out, err := s.exchange(&s.primary, payload, more, wire.RespSingle, sqlinfo.KindOther)
	if err != nil || out.ErrCode != 0 {
		return err
	}
	s.primary.conn.Collation = 0 // unknown: MariaDB resets to the handshake charset, MySQL to the global default
	if err := s.alignCollation(s.primary.conn); err != nil {
		s.primary.dirty = true
		return err
	}
	return s.refreshReading(s.primary.conn)
}

func (s *Session) setOption(payload []byte, more bool) error {
	out, err := s.exchange(&s.primary, payload, more, wire.RespSingle, sqlinfo.KindSet)
	if err == nil && out.ErrCode == 0 && len(payload) >= 3 {
		s.multiOff = payload[1] == 1
		s.primary.conn.MultiStatementsOff = s.multiOff
		s.replica.give() // re-aligned on its next use
	}
	return err
}

// settleGlobals follows a statement's success in what it changed for
// everyone: the host cache (FLUSH HOSTS), the globals the pools' next
// sessions must see.
func (s *Session) settleGlobals(info *sqlinfo.Info, o wire.Outcome) {
	if o.ErrCode != 0 {
		return
	}
	if info.FlushesHosts {
		s.env.Hosts.Flush()
	}
	if info.SetsGlobal {
		s.env.Registry.Globals().Add(1)
	}
	if info.SetsConnGlobal {
		s.env.Registry.ConnGlobals().Add(1)
	}
}
