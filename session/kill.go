package session

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
	"pisanix.io/pisanix/backend"
	"pisanix.io/pisanix/sqlinfo"
	"pisanix.io/pisanix/wire"
)

// kill runs KILL [QUERY] for a proxy connection id: the id is translated to
// the target session's backend thread id and the KILL runs on that node,
// on this session's own backend connection when it is the same node.
// Killing a connection also closes the target's client socket, as MySQL does.
func (s *Session) kill(id uint64, queryOnly bool) error {
	target, be, e := s.killTarget(id)
	if e != nil {
		return s.clientError(e)
	}
	if target == s && !queryOnly {
		s.primary.dirty = true // the backend connection dies with the session
		s.Close()
		return errQuit
	}
	err := s.killBackend(target, be, queryOnly)
	if e, ok := err.(*wire.SQLError); ok {
		return s.clientError(e)
	}
	if err != nil {
		return err
	}
	if !queryOnly {
		target.Close()
	}
	return s.okToClient()
}

// killBackend runs the KILL for target's backend connection be on its
// node. A multiplexing target's connection is read again under its lock,
// held until the KILL ran: the target cannot park it meanwhile, where
// another session could take it and have its statement killed instead.
func (s *Session) killBackend(target *Session, be *backend.Conn, queryOnly bool) error {
	if target.env.Multiplex && target != s {
		target.legsMu.Lock()
		defer target.legsMu.Unlock()
		be = target.active.Load()
	}
	if be == nil {
		return nil // between statements: no query to stop, no connection of its own to end
	}
	verb := "KILL CONNECTION"
	if queryOnly {
		verb = "KILL QUERY"
	}
	stmt := fmt.Sprintf("%s %d", verb, be.ThreadID)
	if be.Endpoint == s.primary.conn.Endpoint && target != s {
		return s.primary.conn.Query(stmt)
	}
	if name := target.userName.Load(); s.primary.own && target != s && (name == nil || *name != s.user) {
		// The pool's account would kill with its privileges, not the
		// client's: only the backend can tell whether this client may.
		return wire.NewError(mysql.ER_NOT_SUPPORTED_YET, fmt.Sprintf("pisa-proxy: thread %d of another user runs on another backend node; with auth passthrough it can only be killed from a session on that node", target.ID()))
	}
	return s.killVia(be.Endpoint.Name, target, stmt)
}

// killTarget finds the session a KILL names, and the backend connection
// running its current command. The id is the proxy's connection id (the
// handshake's), else the backend thread id CONNECTION_ID() answered with:
// the session whose connection that is.
func (s *Session) killTarget(id uint64) (*Session, *backend.Conn, *wire.SQLError) {
	unknown := unknownThread(id)
	if id > math.MaxUint32 {
		return nil, nil, unknown
	}
	target := s.env.Registry.get(uint32(id))
	if target == nil || target.env.Tenant != s.env.Tenant {
		var node *backend.Endpoint
		if be := s.primary.conn; be != nil {
			node = be.Endpoint
		}
		target = s.env.Registry.byThread(s.env.Tenant, node, uint32(id))
	}
	if target == nil {
		return nil, nil, unknown
	}
	if !s.mayKill(target) {
		return nil, nil, wire.NewError(mysql.ER_KILL_DENIED_ERROR, fmt.Sprintf("You are not owner of thread %d", id))
	}
	be := target.active.Load()
	if be == nil && !target.env.Multiplex {
		return nil, nil, unknown
	}
	return target, be, nil
}

// translateKills writes, in a text of several statements, the backend
// thread id of each KILL's target in place of the proxy id (drivers send
// "KILL ?; SELECT SLEEP(...)"). The text runs on this session's primary,
// so every target must be on the same node, and this session may only
// KILL QUERY itself there; targets of KILL CONNECTION are returned, to
// have their client sockets closed once the text ran.
func (s *Session) translateKills(sql []byte, kills []sqlinfo.Kill) ([]byte, []*Session, *wire.SQLError) {
	out := make([]byte, 0, len(sql)+8*len(kills))
	var closing []*Session
	last := 0
	for _, k := range kills {
		if k.Start < 0 {
			return nil, nil, wire.NewError(mysql.ER_NOT_SUPPORTED_YET, "pisa-proxy: a KILL among other statements must be written plainly (KILL [QUERY | CONNECTION] id), not in a comment")
		}
		target, be, e := s.killTarget(k.ID)
		if e != nil {
			return nil, nil, e
		}
		if be == nil {
			// A multiplexing session between statements: nothing runs to
			// stop, so the KILL becomes a statement that does nothing (an
			// OK, as KILL answers); a KILL CONNECTION closes it afterwards.
			out = append(append(out, sql[last:k.StmtStart]...), "DO 0"...)
			last = k.End
			if !k.Query {
				closing = append(closing, target)
			}
			continue
		}
		switch {
		case target == s && !k.Query:
			return nil, nil, wire.NewError(mysql.ER_NOT_SUPPORTED_YET, "pisa-proxy: a KILL CONNECTION of this session must be sent as a statement of its own")
		case be.Endpoint != s.primary.conn.Endpoint:
			return nil, nil, wire.NewError(mysql.ER_NOT_SUPPORTED_YET, fmt.Sprintf("pisa-proxy: thread %d runs on another backend node; send its KILL as a statement of its own", k.ID))
		}
		out = append(out, sql[last:k.Start]...)
		out = strconv.AppendUint(out, uint64(be.ThreadID), 10)
		last = k.End
		if !k.Query {
			closing = append(closing, target)
		}
	}
	return append(out, sql[last:]...), closing, nil
}

// killVia runs stmt on a connection from the pool of node, where the
// target's statement runs.
func (s *Session) killVia(node string, target *Session, stmt string) error {
	pool := target.pools()[node]
	if pool == nil {
		return wire.NewError(mysql.ER_NO_SUCH_THREAD, "Unknown thread id: its node was removed by a configuration change")
	}
	c, err := pool.Acquire(context.Background())
	if err != nil {
		return &backendError{node: pool.Endpoint(), err: err}
	}
	if err := c.Query(stmt); err != nil {
		if _, isSQL := err.(*wire.SQLError); isSQL {
			pool.Release(c)
		} else {
			pool.Discard(c)
		}
		return err
	}
	pool.Release(c)
	return nil
}

func (s *Session) okToClient() error {
	if err := s.client.WriteOK(s.status); err != nil {
		return &wire.IOError{Side: wire.ClientSide, Err: err}
	}
	return nil
}

// killStmt is a KILL prepared with the binary protocol: the statement the
// backend prepared names target's backend thread, which must still be
// target's when it is executed. A nil target: the id named no session
// that this session may kill here, and executing says why.
type killStmt struct {
	target *Session
	thread uint32
	query  bool
	id     uint64         // the id as the client wrote it
	refuse *wire.SQLError // why it cannot run, for a nil target
	// expr is the text of a KILL of an expression, run at each execution
	// (killByExpression); the backend prepared a statement doing nothing.
	expr string
	// native: the proxy runs KILL id at each execution, as a text KILL
	// (a multiplexing session's statement has no one connection to
	// translate the id for); the backend prepared a statement doing nothing.
	native bool
}

// prepareKill rewrites a COM_STMT_PREPARE of one KILL with the target's
// backend thread id in place of the id the client wrote, as translateKills
// does for texts. A KILL that cannot run (unknown id, another node, this
// session's own connection) is prepared as a statement that does nothing,
// never executed: the server prepares any KILL and fails at execution.
func (s *Session) prepareKill(payload []byte, k sqlinfo.Kill) ([]byte, *killStmt, *wire.SQLError) {
	if k.Start < 0 {
		return nil, nil, wire.NewError(mysql.ER_NOT_SUPPORTED_YET, "pisa-proxy: a KILL to prepare must be written plainly (KILL [QUERY | CONNECTION] id), not in a comment")
	}
	ks := &killStmt{id: k.ID, query: k.Query}
	target, be, e := s.killTarget(k.ID)
	switch {
	case e != nil:
		ks.refuse = e
	case be == nil || target.env.Multiplex:
		ks.refuse = wire.NewError(mysql.ER_NOT_SUPPORTED_YET, fmt.Sprintf("pisa-proxy: thread %d multiplexes its backend connections; send its KILL as a statement of its own", k.ID))
	case target == s && !k.Query:
		ks.refuse = wire.NewError(mysql.ER_NOT_SUPPORTED_YET, "pisa-proxy: a KILL CONNECTION of this session must be sent as a statement of its own")
	case be.Endpoint != s.primary.conn.Endpoint:
		ks.refuse = wire.NewError(mysql.ER_NOT_SUPPORTED_YET, fmt.Sprintf("pisa-proxy: thread %d runs on another backend node; send its KILL as a statement of its own", k.ID))
	default:
		ks.target, ks.thread = target, be.ThreadID
	}
	sql := payload[1:]
	out := []byte{payload[0]} // COM_STMT_PREPARE
	if ks.target == nil {
		return append(out, "DO 0"...), ks, nil
	}
	out = append(out, sql[:k.Start]...)
	out = strconv.AppendUint(out, uint64(ks.thread), 10)
	return append(out, sql[k.End:]...), ks, nil
}

// killStillMeant checks, before a prepared KILL runs, that its target
// session still holds the backend thread the statement names: a thread id
// passes to another session with its pooled connection.
func (s *Session) killStillMeant(k killStmt) *wire.SQLError {
	if k.target == nil {
		return k.refuse
	}
	be := k.target.active.Load()
	if s.env.Registry.get(k.target.id) != k.target || be == nil || be.ThreadID != k.thread || be.Endpoint != s.primary.conn.Endpoint {
		return unknownThread(k.id)
	}
	return nil
}

// unknownThread is the server's answer to a KILL of an id it does not know.
func unknownThread(id uint64) *wire.SQLError {
	return wire.NewError(mysql.ER_NO_SUCH_THREAD, fmt.Sprintf("Unknown thread id: %d", id))
}

// killByExpression runs a KILL whose target the parser cannot read: an
// expression (KILL (SELECT ...), KILL @id), which the backend evaluates
// first. An unrestricted user's only: the value would come back in the
// error of an unknown thread, past the rules of a restricted one.
func (s *Session) killByExpression(sql []byte) error {
	expr, query, ok := sqlinfo.ParseKillExpr(sql)
	if !ok || s.restricted() || strings.ContainsRune(expr, ';') {
		return s.refuseKill(false)
	}
	v, err := s.primary.conn.QueryValue("SELECT " + expr)
	var e *wire.SQLError
	switch {
	case errors.As(err, &e):
		return s.clientError(e)
	case wire.FailedSide(err) == wire.BackendSide:
		s.primary.dirty = true
		return err
	case err != nil:
		return s.clientError(wire.NewError(mysql.ER_UNKNOWN_ERROR, "pisa-proxy: KILL: "+err.Error()))
	}
	return s.kill(threadID(v), query)
}

// threadID reads a value as MariaDB's KILL does (val_int): a number
// rounded to an integer, anything else 0.
func threadID(v string) uint64 {
	if id, err := strconv.ParseUint(v, 10, 64); err == nil {
		return id
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || f < 0 || f >= math.MaxUint64 {
		return 0
	}
	return uint64(math.Round(f))
}

// prepareKillExpr prepares a KILL of an expression (KILL (SELECT ...)):
// the backend prepares a statement that does nothing, and each execution
// evaluates the expression then (killByExpression). One with parameters is
// refused: their values would have to be read from the execution.
func (s *Session) prepareKillExpr(payload []byte) ([]byte, *killStmt, *wire.SQLError) {
	expr, query, ok := sqlinfo.ParseKillExpr(payload[1:])
	if !ok || strings.ContainsAny(expr, "?;") || s.restricted() {
		return nil, nil, wire.NewError(mysql.ER_NOT_SUPPORTED_YET, "pisa-proxy: KILL must be sent as a statement of its own")
	}
	return append([]byte{payload[0]}, "DO 0"...), &killStmt{expr: string(payload[1:]), query: query}, nil
}

// executedKill returns the SQL-level prepared KILL an EXECUTE runs.
func (s *Session) executedKill(info *sqlinfo.Info) (sqlinfo.Prepared, bool) {
	for _, name := range info.Executes {
		if p, ok := s.sqlPrepared[name]; ok && p.KillText != "" {
			return p, true
		}
	}
	return sqlinfo.Prepared{}, false
}

// executeUsing finds the one variable of EXECUTE ... USING.
var executeUsing = regexp.MustCompile(`(?is)\bUSING\s+(@[^\s;,]+)\s*;?\s*$`)

// killPrepared runs an EXECUTE of a prepared KILL here: with its id, or
// its one parameter (EXECUTE ... USING @v), or its expression.
func (s *Session) killPrepared(p sqlinfo.Prepared, execute []byte) error {
	text := []byte(p.KillText)
	if id, query, ok := sqlinfo.ParseKill(text); ok {
		return s.kill(id, query)
	}
	expr, _, ok := sqlinfo.ParseKillExpr(text)
	if ok && strings.TrimSpace(expr) == "?" {
		m := executeUsing.FindSubmatch(execute)
		if m == nil {
			return s.refuseKill(false)
		}
		i := bytes.LastIndexByte(text, '?')
		text = append(append([]byte(nil), text[:i]...), m[1]...)
	}
	return s.killByExpression(text)
}
