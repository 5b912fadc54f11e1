package session

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"pisanix.io/pisanix/backend"
	"pisanix.io/pisanix/sqlinfo"
	"pisanix.io/pisanix/wire"
)

// Multiplexing (Env.Multiplex): between statements a session holds no
// backend connection unless its state cannot move. Each command borrows a
// connection from the balancer's pick, which is first given the session's
// state (database, character set, client flags, the SETs it ran, in
// order), and parks it again afterwards, state kept, so that the next
// session with the same state (most of an application's sessions) takes
// it as it is.

// Pin reasons the session layer adds to sqlinfo's.
const (
	pinTransaction  = "transaction"
	pinCursor       = "cursor"
	pinSQLPrepared  = "sql_prepared_statement"
	pinManyPrepared = "too_many_prepared_statements"
	pinManySets     = "too_many_sets"
	pinPreparedSet  = "prepared_set"
)

// maxMuxSets bounds the SETs replayed on a borrowed connection; past it the
// session pins.
const maxMuxSets = 64

// muxState is what a multiplexing session keeps of its own state.
type muxState struct {
	// sets are the SETs to replay, in order; keys the variable each
	// assigns a constant ("" when it is not that simple). The slices are
	// replaced, never modified in place: connections share them (Conn.Sets).
	sets, keys []string
	// pinned is the first lasting reason the session cannot move ("" for
	// none); lockTables is LOCK TABLES, which UNLOCK TABLES ends.
	pinned     string
	lockTables bool
	// hold keeps the connection for the next command only: the last one
	// left what the next may read there (warnings or an error for SHOW
	// WARNINGS, SQL_CALC_FOUND_ROWS for FOUND_ROWS(), a SET TRANSACTION
	// for the next transaction).
	hold bool
	// lastInsertID is what LAST_INSERT_ID() returns in this session.
	lastInsertID uint64
	// gauged is the reason counted in the pinned-sessions gauge.
	gauged string
	// last is the connection the previous command ran on: a restricted
	// user's reading is checked again on any other.
	last *backend.Conn
	// borrows caches the borrow counters: [reused, aligned].
	borrows [2]prometheus.Counter
	// setsKey is sets in a prepared statement's key; "" until made for
	// the current sets.
	setsKey string
}

// countBorrow counts a borrowed connection, by whether it had to be given
// the session's state.
func (s *Session) countBorrow(aligned bool) {
	i := 0
	if aligned {
		i = 1
	}
	c := s.mux.borrows[i]
	if c == nil {
		c = s.env.Metrics.Borrows.WithLabelValues(s.env.Tenant, [2]string{"reused", "aligned"}[i])
		s.mux.borrows[i] = c
	}
	c.Inc()
}

// pinReason says why the session must keep its connection now ("" when it
// may move).
func (s *Session) pinReason() string {
	m := &s.mux
	switch {
	case m.pinned != "":
		return m.pinned
	case m.lockTables:
		return sqlinfo.PinLockTables
	case s.inTransaction():
		return pinTransaction
	case s.cursors > 0:
		return pinCursor
	case len(s.sqlPrepared) > 0:
		return pinSQLPrepared
	}
	return ""
}

// pin makes reason last until a reset or change of user.
func (s *Session) pin(reason string, sql []byte) {
	if s.env.Multiplex && s.mux.pinned == "" {
		s.mux.pinned = reason
		s.log.Info("session pinned to its backend connection", "reason", reason, "sql", truncate(sql, 200))
	}
}

// gauge keeps the pinned-sessions gauge at reason for this session.
func (s *Session) gauge(reason string) {
	if reason == s.mux.gauged {
		return
	}
	g := s.env.Metrics.PinnedSessions
	if s.mux.gauged != "" {
		g.WithLabelValues(s.env.Tenant, s.mux.gauged).Dec()
	}
	if reason != "" {
		g.WithLabelValues(s.env.Tenant, reason).Inc()
	}
	s.mux.gauged = reason
}

// borrow gives the session a primary connection for the command about to
// run, when it holds none (multiplexing).
func (s *Session) borrow() error {
	if s.primary.conn != nil {
		return nil
	}
	if err := s.connectBackend(context.Background()); err != nil {
		return err
	}
	if be := s.primary.conn; be != s.mux.last {
		s.mux.last = be
		// A restricted user's statements are checked as this connection
		// reads them.
		return s.refreshReading(be)
	}
	return nil
}

// release parks the primary connection after a command, unless the
// session's state pins it there.
func (s *Session) release() {
	if !s.env.Multiplex || s.primary.conn == nil || s.primary.dirty {
		return
	}
	reason := s.pinReason()
	s.gauge(reason)
	if reason != "" || s.mux.hold {
		return
	}
	s.legsMu.Lock()
	s.active.Store(nil)
	closing := s.closing.Load()
	s.legsMu.Unlock()
	// The replica is reset: its SETs are replayed by readyReplica.
	s.replica.give()
	if closing {
		s.primary.give() // Release clears the deadline Close may have set
		return
	}
	s.primary.pool.Park(s.primary.conn)
	s.primary.conn, s.primary.pool = nil, nil
}

// afterStatement follows what a COM_QUERY text did to the session's
// state, on the connection l it ran on.
func (s *Session) afterStatement(l *leg, sql []byte, info *sqlinfo.Info, out wire.Outcome) {
	if !s.env.Multiplex || l != &s.primary {
		return
	}
	m := &s.mux
	m.hold = m.hold || info.OneShot || sqlinfo.ContainsFold(sql, "SQL_CALC_FOUND_ROWS")
	if !s.followPins(sql, info, out) && info.Replay && out.ErrCode == 0 {
		s.rememberMuxSet(strings.TrimRight(string(sql), " \t\r\n;"), info.SetVar)
		l.conn.Sets = m.sets
	}
}

// followPins follows the table locks and pins a statement takes or
// releases, and says whether it did any.
func (s *Session) followPins(sql []byte, info *sqlinfo.Info, out wire.Outcome) bool {
	switch {
	case info.Pin == sqlinfo.PinLockTables:
		s.mux.lockTables = true
	case info.Pin != "":
		s.pin(info.Pin, sql)
	case info.UnlocksTables && out.ErrCode == 0:
		s.mux.lockTables = false
	default:
		return false
	}
	return true
}

// afterExecute follows what an executed prepared statement did to its
// connection's state, as afterStatement does for texts. A SET run with the
// binary protocol cannot be replayed as text (its values are parameters):
// the session pins instead, or its connection would go back to the pool
// with the state and the session would lose it.
func (s *Session) afterExecute(info *sqlinfo.Info, out wire.Outcome) {
	if !s.env.Multiplex {
		return
	}
	s.mux.hold = s.mux.hold || info.OneShot
	if !s.followPins(nil, info, out) && (info.Replay || info.Kind == sqlinfo.KindSet) {
		s.pin(pinPreparedSet, nil)
	}
}

// rememberMuxSet adds a SET to replay. A SET of a variable to a constant
// replaces an earlier one of the same variable when only such SETs follow
// it (none of them reads a variable): drivers repeat a few around every
// transaction (autocommit, isolation).
func (s *Session) rememberMuxSet(sql, key string) {
	m := &s.mux
	sets, keys := slices.Clone(m.sets), slices.Clone(m.keys)
	if key != "" {
		if i := slices.Index(keys, key); i >= 0 && !slices.Contains(keys[i:], "") {
			sets, keys = slices.Delete(sets, i, i+1), slices.Delete(keys, i, i+1)
		}
	}
	m.sets, m.keys, m.setsKey = append(sets, sql), append(keys, key), ""
	if len(m.sets) > maxMuxSets {
		s.pin(pinManySets, []byte(sql))
	}
}

// alignSets resets be unless the SETs it ran are a prefix of the
// session's (the rest are replayed by replaySets) and its client flags and
// character set can be given on top: giving them to a connection that ran
// SETs would undo a replayed SET NAMES or sql_mode.
func (s *Session) alignSets(be *backend.Conn) error {
	m := &s.mux
	flags := s.hello.Capabilities & clientFlagSettings
	prefix := len(be.Sets) <= len(m.sets) && slices.Equal(be.Sets, m.sets[:len(be.Sets)])
	if prefix && be.ClientFlags&^flags == 0 && (s.db != "" || be.DB == "") &&
		(len(be.Sets) == 0 || be.ClientFlags == flags && (s.hello.Collation == 0 || be.Collation == s.hello.Collation)) {
		return nil
	}
	return s.resetConn(be)
}

// replaySets runs on be the session's SETs it has not run, in one round
// trip when multi-statements are on.
func (s *Session) replaySets(be *backend.Conn) error {
	tail := s.mux.sets[len(be.Sets):]
	if len(tail) == 0 {
		return nil
	}
	var err error
	if len(tail) == 1 || be.MultiStatementsOff {
		for _, q := range tail {
			if err = be.Query(q); err != nil {
				break
			}
		}
	} else {
		// A newline before each ';' ends a trailing -- or # comment.
		err = be.Query(strings.Join(tail, "\n;"))
	}
	if err != nil {
		return err
	}
	be.Sets = s.mux.sets
	return nil
}

// alignLastInsertID gives be the session's LAST_INSERT_ID() before a
// statement that reads it.
func (s *Session) alignLastInsertID(be *backend.Conn) error {
	if be.LastInsertID == s.mux.lastInsertID {
		return nil
	}
	if err := be.Query("DO LAST_INSERT_ID(" + strconv.FormatUint(s.mux.lastInsertID, 10) + ")"); err != nil {
		return err
	}
	be.LastInsertID = s.mux.lastInsertID
	return nil
}

// forgetMux drops what a reset or change of user cleared on the server.
func (s *Session) forgetMux() {
	s.mux = muxState{gauged: s.mux.gauged, last: s.mux.last, borrows: s.mux.borrows}
	clear(s.stmts)
	s.cursors = 0
	if be := s.primary.conn; be != nil {
		be.Sets, be.LastInsertID = nil, 0
		be.ForgetStmts()
	}
}
