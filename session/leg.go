package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/prometheus/client_golang/prometheus"
	"pisanix.io/pisanix/backend"
	"pisanix.io/pisanix/sqlinfo"
	"pisanix.io/pisanix/strategy"
	"pisanix.io/pisanix/wire"
)

// leg is one backend connection a session holds.
type leg struct {
	bal   *strategy.Balancer // told when the node fails
	pool  *backend.Pool
	conn  *backend.Conn
	dirty bool // a command is in flight on conn: it cannot be reused
	// own: conn is the session's own (auth passthrough: logged in as the
	// client), counted by pool but never put in it.
	own bool
}

// take acquires a connection from the balancer's pick, trying other nodes
// when one cannot be reached (and telling the balancer, whose breaker then
// takes the node out of new sessions' way).
func (l *leg) take(ctx context.Context, bal *strategy.Balancer, pools map[string]*backend.Pool) error {
	return tryNodes(bal, pools, func(pool *backend.Pool) error {
		c, err := pool.Acquire(ctx)
		if err == nil {
			l.bal, l.pool, l.conn, l.dirty = bal, pool, c, false
		}
		return err
	})
}

// tryNodes runs try for the balancer's picks until one succeeds, at most
// once per node. A node whose try fails is reported to the balancer,
// unless its pool was only busy.
func tryNodes(bal *strategy.Balancer, pools map[string]*backend.Pool, try func(*backend.Pool) error) error {
	snap := bal.Current()
	var lastErr error = errNoBackend
	tried := map[int]bool{}
	for attempt := 0; attempt < 2*len(snap.Targets) && len(tried) < len(snap.Targets); attempt++ {
		i := snap.Pick(func(node string) int64 {
			if p := pools[node]; p != nil {
				return p.InUse()
			}
			return 1 << 40
		})
		if i < 0 {
			break
		}
		if tried[i] {
			continue
		}
		tried[i] = true
		pool := pools[snap.Targets[i].Name]
		if pool == nil {
			continue // a reload is between publishing pools and targets
		}
		err := try(pool)
		if err == nil {
			return nil
		}
		if !busy(err) {
			bal.ReportFailure(pool.Endpoint().Name, err)
		}
		lastErr = &backendError{node: pool.Endpoint(), err: err}
	}
	return lastErr
}

// busy errors mean a full or replaced pool, or a server at its
// max_connections (its 1040 goes to the client, as directly), not a sick
// node: the breaker stays closed.
func busy(err error) bool {
	var full *wire.SQLError
	return errors.Is(err, backend.ErrPoolTimeout) || errors.Is(err, backend.ErrPoolQueueFull) ||
		errors.Is(err, backend.ErrPoolRetired) || errors.As(err, &full) && full.Code == mysql.ER_CON_COUNT_ERROR
}

// failed reports an I/O failure on the leg's node to its balancer.
func (l *leg) failed(err error) {
	if l.conn != nil && wire.FailedSide(err) == wire.BackendSide {
		l.bal.ReportFailure(l.conn.Endpoint.Name, err)
	}
}

// give returns the connection to its pool, or closes it when dirty. The
// session's own connection is closed, with a goodbye when clean.
func (l *leg) give() {
	switch {
	case l.conn == nil:
		return
	case l.own:
		l.pool.Disowned()
		l.own = false
		if l.dirty {
			_ = l.conn.Close()
		} else {
			_ = l.conn.Quit()
		}
	case l.dirty:
		l.pool.Discard(l.conn)
	default:
		l.pool.Release(l.conn)
	}
	l.conn, l.pool = nil, nil
}

// maxReplayedSets bounds the SET statements replayed on a replica; past it
// the session stays on its primary.
const maxReplayedSets = 64

// rwState is what read/write splitting knows of a session.
type rwState struct {
	lastWrite time.Time // reads stay on the primary for Router.Window after it
	pinned    bool      // temporary tables, locks, too much state: primary only
	sets      []string  // SET statements to replay on the replica
	replayed  int       // how many of sets the replica has seen
	recheck   bool      // EXECUTE or CALL ran: compare the replica's reading again
	// replicaRetry: after a failure to get a replica ready, reads stay on
	// the primary until then, instead of paying the failure on every read.
	replicaRetry time.Time
	routed       [2]prometheus.Counter // by strategy.Route, cached
	gtid         string                // last write's GTID, until a replica has shown it
}

// replicaBackoff is how long reads stay on the primary after a replica failure.
const replicaBackoff = time.Second

// legFor picks the connection for a COM_QUERY.
func (s *Session) legFor(sql []byte, info sqlinfo.Info) *leg {
	r := s.env.Live.Load().Router
	if r == nil {
		return &s.primary
	}
	// With no database the replica connection would still be in its last
	// one: unqualified names must fail (1046) on the primary instead.
	if s.rw.pinned || s.inTransaction() || time.Since(s.rw.lastWrite) < r.Window || s.db == "" {
		s.routed(strategy.ToPrimary)
		return &s.primary
	}
	route, rule := r.RouteByRule(sql, info)
	if rule != "" {
		s.env.Metrics.RWRuleHits.WithLabelValues(s.env.Tenant, rule).Inc()
	}
	if route != strategy.ToReplica || time.Now().Before(s.rw.replicaRetry) {
		s.routed(strategy.ToPrimary)
		return &s.primary
	}
	err := s.readyReplica()
	if err == nil && !s.replicaHasWrites(r.GTIDWait) {
		s.routed(strategy.ToPrimary)
		return &s.primary
	}
	if err != nil {
		s.rw.replicaRetry = time.Now().Add(replicaBackoff)
		level := slog.LevelWarn
		switch {
		case errors.Is(err, errNoBackend):
			level = slog.LevelDebug // none is eligible now (discovery, breakers): expected
		case errors.Is(err, errReadingDiffers):
			level = slog.LevelInfo // the session stays on the primary from now on
		}
		s.log.Log(context.Background(), level, "no replica available; reading from the primary", "err", err)
		s.routed(strategy.ToPrimary)
		return &s.primary
	}
	s.routed(strategy.ToReplica)
	return &s.replica
}

// replicaHasWrites waits (up to wait) until the replica has applied the
// session's last write, by GTID; false means read from the primary.
func (s *Session) replicaHasWrites(wait time.Duration) bool {
	if s.rw.gtid == "" {
		return true
	}
	v, err := s.replica.conn.QueryValue(fmt.Sprintf("SELECT MASTER_GTID_WAIT('%s', %g)", s.rw.gtid, wait.Seconds()))
	if wire.FailedSide(err) == wire.BackendSide {
		s.replica.dirty = true
		s.replica.give()
		return false
	}
	if err != nil || v != "0" {
		return false // timed out: the replica lags behind this session
	}
	s.rw.gtid = ""
	return true
}

// noteGTID remembers the GTID of the session's last write (MariaDB's
// @@last_gtid) for read-your-writes.
func (s *Session) noteGTID() {
	g, err := s.primary.conn.QueryValue("SELECT @@last_gtid")
	if wire.FailedSide(err) == wire.BackendSide {
		s.primary.dirty = true // the next command reports it
	}
	if err != nil || strings.Trim(g, "0123456789-,") != "" {
		return
	}
	if g != "" {
		s.rw.gtid = g
	}
}

// routed counts a routing decision (statements forced to the primary by
// transactions or the write window are counted too, as readwrite).
func (s *Session) routed(r strategy.Route) {
	c := s.rw.routed[r]
	if c == nil {
		c = s.env.Metrics.RWRouted.WithLabelValues(s.env.Tenant, r.String())
		s.rw.routed[r] = c
	}
	c.Inc()
}

func (s *Session) inTransaction() bool {
	st := s.status
	return st&mysql.SERVER_STATUS_IN_TRANS != 0 || st&mysql.SERVER_STATUS_AUTOCOMMIT == 0
}

// readyReplica takes a replica connection if needed and brings it to the
// session's state: schema, character set, and the SETs run so far.
func (s *Session) readyReplica() error {
	fresh := s.rw.replayed < len(s.rw.sets) || s.rw.recheck // state to give it, then to check
	if s.replica.conn == nil {
		if err := s.replica.take(context.Background(), s.env.ReplicaBalancer, s.pools()); err != nil {
			return err
		}
		s.rw.replayed, fresh = 0, true
		s.stats.reset() // the server label may change
	}
	err := s.align(&s.replica)
	for err == nil && s.rw.replayed < len(s.rw.sets) {
		err = s.replica.conn.Query(s.rw.sets[s.rw.replayed])
		s.rw.replayed++
	}
	if err == nil && fresh {
		err = s.sameReading(s.replica.conn)
		s.rw.recheck = false
	}
	if err != nil {
		s.replica.dirty = true
		s.replica.give()
	}
	return err
}

// errReadingDiffers: the replica connection reads text otherwise than the
// primary (sql_mode, character set, database).
var errReadingDiffers = errors.New("the replica connection reads statements otherwise than the primary")

// sameReading checks, for a restricted user, that the replica connection
// reads text as the primary does, where the session's statements are
// checked: a replica whose sql_mode or character set differs (its global
// settings, or state the proxy could not give it) would run a text
// otherwise than the check read it. A difference keeps the session on the
// primary.
func (s *Session) sameReading(be *backend.Conn) error {
	if !s.restricted() {
		return nil
	}
	st, ok, err := readState(be)
	if err != nil {
		return err
	}
	if !ok || st.mode != s.state.mode || st.charset != s.state.charset || st.db != s.db {
		s.rw.pinned = true
		return errReadingDiffers
	}
	return nil
}

// observe updates the read/write splitting state after a statement that
// ran on the primary: a COM_QUERY text (sql), or an executed prepared
// statement (sql nil).
func (s *Session) observe(sql []byte, info *sqlinfo.Info, ok bool) {
	if s.env.Live.Load().Router == nil {
		return
	}
	switch {
	case replayable(sql, info):
		if ok {
			s.rememberSet(string(sql))
		}
	case info.Kind == sqlinfo.KindSet || info.Kinds&(1<<sqlinfo.KindSet) != 0:
		// Session state changed in a way the replica cannot be given (SET
		// among other statements, reading tables, not understood by the
		// parser, binary-protocol SET): reads stay where that state is.
		s.rw.pinned = true
	case info.Kind == sqlinfo.KindUse, info.ReadOnly && !info.Locking:
	default:
		// EXECUTE and CALL may change session state too, unseen; pinning
		// on them would end splitting for applications that call
		// procedures, so the replica's reading is checked again instead
		// (for restricted users, whose checks depend on it).
		s.rw.recheck = s.rw.recheck || info.ChangesState
		s.rw.lastWrite = time.Now()
		s.rw.pinned = s.rw.pinned || info.CreatesTemporaryTable || strategy.PinsSession(sql, info.Kind)
		if r := s.env.Live.Load().Router; ok && r.GTIDWait > 0 && !s.inTransaction() {
			s.noteGTID()
		}
	}
}

// rememberSet adds a SET to replay. A text sent again moves to the end
// instead of growing the list: drivers repeat a few SETs around every
// transaction (autocommit, isolation), and replaying the last copy of each
// leaves the replica as the primary (a variable's value is its last SET's).
func (s *Session) rememberSet(set string) {
	// Only a SET naming no variable on its right is the same however often
	// it runs (SET @n = @n + 1 is not).
	if i := slices.Index(s.rw.sets, set); i >= 0 && !strings.Contains(set, "@") {
		s.rw.sets = slices.Delete(s.rw.sets, i, i+1)
		if i < s.rw.replayed {
			s.rw.replayed-- // the replica runs it again, as the primary did
		}
	}
	s.rw.sets = append(s.rw.sets, set)
	s.rw.pinned = s.rw.pinned || len(s.rw.sets) > maxReplayedSets
}

// replayable: a COM_QUERY text that is one SET statement naming no table,
// routine or server-wide target, which the replica connection can run
// again with the same effect in any database. A SET reading a table
// would read it where the replica happens to be, and the checks were made
// where the primary was.
func replayable(sql []byte, info *sqlinfo.Info) bool {
	return sql != nil && info.Kind == sqlinfo.KindSet && info.Statements == 1 &&
		len(info.Access) == 0 && !info.Unverifiable && !info.ParseError
}

// forgetState drops what a reset or change of user cleared on the server.
func (s *Session) forgetState() {
	s.replica.give()
	s.rw = rwState{}
	s.status = mysql.SERVER_STATUS_AUTOCOMMIT
	s.inTx.Store(false)
	clear(s.prepared)
	clear(s.killStmts)
	clear(s.meta)
	clear(s.sqlPrepared)
	s.forgetMux()
}
