// Package session owns one client connection: the server side of the
// handshake, the command loop and session state, and the relay to the
// backend connection the session holds for its life.
//
// Concurrency contract: one goroutine (started by the session actor) runs a
// session; only Close may be called from elsewhere.
package session

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/pingcap/tidb/pkg/parser/charset"
	"pisanix.io/pisanix/acl"
	"pisanix.io/pisanix/audit"
	"pisanix.io/pisanix/backend"
	"pisanix.io/pisanix/metrics"
	"pisanix.io/pisanix/sqlinfo"
	"pisanix.io/pisanix/strategy"
	"pisanix.io/pisanix/wire"
)

// Env is what a session needs from the tenant that owns it. It is built
// once per tenant and shared read-only by its sessions.
type Env struct {
	Tenant        string
	ServerVersion string
	DefaultDB     string
	Auth          *wire.Authenticator
	TLS           *tls.Config
	TLSRequired   bool
	// LoginTimeout bounds the connection phase (MySQL's connect_timeout).
	LoginTimeout time.Duration
	// IdleTimeout ends a session whose client sends no command for this
	// long (wait_timeout); WriteTimeout bounds each write to the client
	// (net_write_timeout). 0: no bound.
	IdleTimeout, WriteTimeout time.Duration
	Balancer                  *strategy.Balancer
	// ReplicaBalancer is set for read/write splitting; Balancer then picks
	// among the primaries.
	ReplicaBalancer *strategy.Balancer
	// Live is republished by the tenant on every reload; sessions read it
	// at each use, so open sessions follow new pools and rules.
	Live *atomic.Pointer[Live]
	// SQL classifies statements (kind, read-only, tables) through a cache
	// keyed by the literal-free text; shared by the tenant's sessions.
	// ParseBudget bounds each user's parsing of texts the cache does not
	// know (nil: no bound).
	SQL         *sqlinfo.Cache
	ParseBudget *sqlinfo.Budget
	Registry    *Registry
	Metrics     *metrics.Proxy
	// Fingerprints follows statement time and errors by fingerprint.
	Fingerprints *metrics.FingerprintTable
	Log          *slog.Logger
	// Multiplex: between statements outside a transaction a session holds
	// no backend connection (multiplex.go).
	Multiplex bool
	// MaxAllowedPacket bounds a client's command (0: no bound).
	MaxAllowedPacket int
	// Hosts blocks client addresses after failed logins (nil: never).
	Hosts *HostGuard
	// ProxyNets are the client networks that may start with a PROXY
	// protocol header naming the real client.
	ProxyNets []netip.Prefix
	// Passthrough: clients log in as the backend's own accounts; each
	// session has a backend connection of its own (passthrough.go).
	Passthrough bool
	// Fault is a test hook run for every COM_QUERY; nil in production.
	Fault func(s *Session, sql []byte)
}

// Live is the part of a tenant's configuration that changes under open
// sessions: the pools by node name (matching the balancers' current
// targets), the read/write router and the plugins.
type Live struct {
	Pools map[string]*backend.Pool
	// FoundRowsPools dial with CLIENT_FOUND_ROWS, for clients that ask for
	// it (Connector/J by default): affected rows then mean matched rows.
	FoundRowsPools map[string]*backend.Pool
	Router         *strategy.Router
	Plugins        *strategy.Plugins // circuit breaking, concurrency control, rate limiting
	Fuse           *strategy.Fuse    // error-rate breaker per fingerprint; nil when off
	Users          *acl.Policy       // application users and their access rules
	Audit          *audit.Logger     // nil when off
}

// Session is one client connection.
type Session struct {
	env    *Env
	id     uint32
	conn   net.Conn
	client *wire.PacketIO
	remote string
	host   string // client address without the port, for error messages
	log    *slog.Logger

	hello *wire.ClientHello
	user  string
	db    string

	// primary is the connection chosen at login, held for the session's
	// life; replica is taken on the first read routed to a replica
	// (read/write splitting only).
	primary, replica leg
	// active is the connection running the current command (or primary),
	// for KILL and Close, which run on other goroutines.
	active atomic.Pointer[backend.Conn]
	rw     rwState
	mux    muxState
	// status is the primary's status after its last OK or EOF (for
	// read/write splitting, multiplexing and drain's inTx).
	status uint16
	// stmts are the prepared statements by the client's id, with
	// multiplexing (stmts.go); nextStmt the last id given, cursors how
	// many have a cursor open, relayStmtID the id the next prepare's OK
	// shows the client, stmtBuf a scratch buffer for rewritten executions.
	stmts       map[uint32]*muxStmt
	nextStmt    uint32
	cursors     int
	relayStmtID uint32
	stmtBuf     []byte
	// multiOff: multi-statements are off for this client (its login flags,
	// then COM_SET_OPTION).
	multiOff bool
	// tlsState is the client connection's TLS (nil without), for the
	// answers about it (SHOW STATUS: see status.go); rows rewrites the rows
	// of the current command's result, when set.
	tlsState *tls.ConnectionState
	rows     func([]byte) []byte
	// settled, when set, is the current command's wire.Relay.Settled.
	settled func(wire.Outcome)

	buf        []byte
	stats      stmtStats
	acl        aclCache
	registered bool // in env.Registry, from just before the login's OK
	// prepared describes the session's prepared statements by id;
	// lastPrepared is the newest (MariaDB's id 0xFFFFFFFF); sqlPrepared
	// the SQL-level ones by name.
	prepared  map[uint32]*sqlinfo.Info
	killStmts map[uint32]killStmt // prepared KILLs (kill.go)
	// meta keeps each statement's column definitions for a client without
	// MariaDB's metadata caching on a connection with it (wire.StmtMeta);
	// relayMeta is the current command's.
	meta         map[uint32]*wire.StmtMeta
	relayMeta    *wire.StmtMeta
	lastPrepared uint32
	sqlPrepared  map[string]sqlinfo.Prepared
	// unsafeCharset: the client character set lets a backslash end a
	// multi-byte character (restricted users only; see checkReadings).
	unsafeCharset bool
	// foreignGrammar: sql_mode is ORACLE or MSSQL, a grammar the parser
	// does not read (restricted users only; see checkReadings).
	foreignGrammar bool
	// blind: the backend's answer about that state did not read right
	// (restricted users only; see refreshReading).
	blind bool
	// state is the primary's answer as last read right (restricted users
	// only): the replica connection must read text the same way.
	state backendState
	// mode is how the backend reads statement text (NO_BACKSLASH_ESCAPES),
	// from the status flags of its last response.
	mode sqlinfo.Mode

	// phase, draining, shutdown and inTx let a drain on another goroutine
	// end the session at a transaction boundary (see drain.go).
	phase    atomic.Int32
	draining atomic.Bool
	shutdown atomic.Bool
	inTx     atomic.Bool // the primary's last status said IN_TRANS
	// commands counts the commands started, so a sweep can tell one long
	// command from two (gone.go); clientLost: the sweep found the client
	// gone during a command.
	commands   atomic.Uint32
	clientLost atomic.Bool

	closeOnce sync.Once
	closing   atomic.Bool // Close was called
	// legsMu orders Close (another goroutine) against finish handing the
	// backend connections back, so Close never touches a returned one.
	legsMu sync.Mutex
	// userName is user for other goroutines (the registry).
	userName atomic.Pointer[string]
}

// loginBufSize sizes a client's buffers until it logged in: the handshake's
// packets are small (a caching_sha2 RSA exchange is about 600 bytes).
const loginBufSize = 2048

// New prepares a session for an accepted connection.
func New(env *Env, conn net.Conn, id uint32) *Session {
	remote := conn.RemoteAddr().String()
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	conn = &wire.TimeoutConn{Conn: conn, WriteTimeout: env.WriteTimeout}
	return &Session{
		env: env, id: id, conn: conn, remote: remote, host: host,
		client: wire.NewPacketIO(conn, loginBufSize),
		log:    env.Log.With("conn", id, "client", remote),
		status: mysql.SERVER_STATUS_AUTOCOMMIT,
	}
}

func (s *Session) setUser(u string) {
	s.user = u
	s.userName.Store(&u)
	s.acl = aclCache{}
}

// ID is the connection id the client sees.
func (s *Session) ID() uint32 { return s.id }

// User is the authenticated user ("" before login).
func (s *Session) User() string { return s.user }

// Close ends the session from outside its goroutine: the client socket is
// closed and a backend read in progress is interrupted.
func (s *Session) Close() {
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		_ = s.conn.Close()
		s.interruptBackend()
	})
}

// interruptBackend makes a backend read in progress return at once.
func (s *Session) interruptBackend() {
	s.legsMu.Lock()
	defer s.legsMu.Unlock()
	if be := s.active.Load(); be != nil {
		_ = be.IO.Conn().SetDeadline(time.Now())
	}
}

// Run serves the connection until the client quits or fails. It returns nil
// for a normal end.
func (s *Session) Run(ctx context.Context) (err error) {
	defer func() {
		s.finish()
		// Only once its backend connections are back in their pools: a
		// drain that sees the registry empty stops the pools next.
		if s.registered {
			s.env.Registry.remove(s.id)
		}
	}()
	defer func() {
		if r := recover(); r != nil {
			s.abort()
			panic(r) // the session actor's supervisor decides
		}
	}()
	if err := s.login(ctx); err != nil {
		return err
	}
	return s.loop(ctx)
}

func (s *Session) login(ctx context.Context) error {
	// A silent client cannot hold a max_connections slot.
	deadline := time.Now().Add(s.env.LoginTimeout)
	_ = s.conn.SetDeadline(deadline)
	defer func() { _ = s.conn.SetDeadline(time.Time{}) }()
	cfg := wire.ServerConfig{
		ConnID: s.id, TLS: s.env.TLS, TLSRequired: s.env.TLSRequired, Auth: s.env.Auth, RemoteHost: s.host,
		Failed: s.env.Hosts.Failed,
	}
	var proxied wire.ProxySource
	if s.proxyTrusted() {
		// The client is known only once its PROXY header is read.
		cfg.ProxyHeader, cfg.Peer, cfg.Admit = true, &proxied, s.admitHost
	} else if e := s.admitHost(s.host); e != nil {
		_ = s.client.WritePacketFlush(wire.GreetingError(e)) // in place of the greeting, as MySQL
		return fmt.Errorf("login: %w", e)
	}
	var node *backend.Pool
	if s.env.Passthrough {
		var err error
		if cfg.Upstream, node, err = s.upstream(ctx, deadline); err != nil {
			return s.refuseLogin(err)
		}
		cfg.Version = cmp.Or(s.env.ServerVersion, cfg.Upstream.Greeting.Version)
	} else {
		info := s.server(ctx)
		cfg.Version, cfg.Capabilities, cfg.ExtCapabilities = info.Version, info.Capabilities, info.ExtCapabilities
	}
	if cfg.Upstream != nil {
		cfg.Upstream.Client, _ = netip.ParseAddrPort(s.remote)
	}
	hello, err := wire.Accept(s.client, cfg)
	switch {
	case proxied.Local:
		s.remote, s.host = "localhost", "localhost"
		s.log = s.log.With("proxied_client", s.remote)
	case proxied.Addr.IsValid():
		s.remote, s.host = proxied.Addr.String(), proxied.Addr.Addr().String()
		s.log = s.log.With("proxied_client", s.remote)
	}
	if err != nil {
		return s.loginFailed(cfg.Upstream, node, err)
	}
	s.hello, s.db = hello, hello.DB
	s.multiOff = hello.Capabilities&mysql.CLIENT_MULTI_STATEMENTS == 0
	if tc, ok := s.client.Conn().(*tls.Conn); ok {
		cs := tc.ConnectionState()
		s.tlsState = &cs
	}
	s.setUser(hello.User)
	if cfg.Upstream != nil {
		// The session holds it from here, to close it on any failure.
		s.adopt(cfg.Upstream, node)
	}
	if e := s.admit(hello.DB); e != nil {
		s.env.Metrics.ConnRejected.WithLabelValues(s.env.Tenant, "access").Inc()
		_ = s.client.WriteError(e)
		return fmt.Errorf("login: %w", e)
	}
	if s.db == "" {
		s.db = s.env.DefaultDB
	}
	if cfg.Upstream != nil {
		err = s.readyOwn()
	} else {
		err = s.connectBackend(ctx)
	}
	if err != nil {
		s.env.Metrics.ConnRejected.WithLabelValues(s.env.Tenant, "backend").Inc()
		_ = s.client.WriteError(toSQLError(err, s.env.Tenant))
		return fmt.Errorf("login: %w", err)
	}
	s.env.Hosts.Succeeded(s.host)
	// Registered before the client learns it is logged in: a KILL of its
	// id sent right after must find it.
	s.env.Registry.add(s)
	s.registered = true
	s.status = startStatus(s.primary.conn)
	s.setMode(s.status)
	if err := s.client.WritePacketFlush(s.loginOK()); err != nil {
		return fmt.Errorf("write auth ok: %w", err)
	}
	if hello.Capabilities&mysql.CLIENT_COMPRESS != 0 {
		if err := s.client.Compress(); err != nil {
			return fmt.Errorf("write auth ok: %w", err)
		}
	}
	s.client.MaxPacket = s.env.MaxAllowedPacket
	// Full buffers only for clients that logged in: a flood of connections
	// that never authenticate costs loginBufSize each.
	if err := s.client.Resize(0); err != nil {
		return fmt.Errorf("write auth ok: %w", err)
	}
	s.log = s.log.With("user", s.user)
	s.log.Debug("session started", "db", s.db, "backend", s.primary.conn.Endpoint.Name, "backend_thread", s.primary.conn.ThreadID)
	return nil
}

// loginFailed counts a failed connection phase; with passthrough it closes
// the backend connection, and tells the client of a backend that failed
// (a refusal by the backend was relayed already).
func (s *Session) loginFailed(up *wire.Upstream, node *backend.Pool, err error) error {
	reason := "handshake"
	var sqlErr *wire.SQLError
	switch {
	case errors.As(err, &sqlErr) && sqlErr.Code == mysql.ER_ACCESS_DENIED_ERROR:
		reason = "auth" // counted against the address by wire.Accept
	case up != nil && wire.FailedSide(err) == wire.BackendSide:
		// The backend could not be logged in to (its TLS, a dropped
		// connection): as a pooled dial's failure, 1429 naming the node.
		reason = "backend"
		_ = s.client.WriteError(toSQLError(&backendError{node: node.Endpoint(), err: err}, s.env.Tenant))
	}
	if up != nil {
		up.Abandon()
	}
	s.env.Metrics.ConnRejected.WithLabelValues(s.env.Tenant, reason).Inc()
	return fmt.Errorf("login: %w", err)
}

// proxyTrusted reports whether the client connects from a network that
// may send a PROXY protocol header.
func (s *Session) proxyTrusted() bool {
	if len(s.env.ProxyNets) == 0 {
		return false
	}
	addr, err := netip.ParseAddr(s.host)
	if err != nil {
		return false
	}
	for _, n := range s.env.ProxyNets {
		if n.Contains(addr.Unmap()) {
			return true
		}
	}
	return false
}

// admitHost refuses an address blocked for failed logins.
func (s *Session) admitHost(host string) *wire.SQLError {
	if !s.env.Hosts.Blocked(host) {
		return nil
	}
	s.env.Metrics.ConnRejected.WithLabelValues(s.env.Tenant, "host_blocked").Inc()
	return hostBlocked(host)
}

// startStatus is the status a session starts with on be, as the server's
// login or change-user OK says it: autocommit or not (its global
// default), backslashes read or not (sql_mode).
func startStatus(be *backend.Conn) uint16 {
	return be.Status & (mysql.SERVER_STATUS_AUTOCOMMIT | mysql.SERVER_STATUS_NO_BACKSLASH_ESCAPED)
}

// loginOK is the OK that ends the client's login: the server's own when
// the client logged in to it through the proxy, else one with the
// session's status that, as the server's, names the schema to a client
// tracking session state.
func (s *Session) loginOK() []byte {
	be := s.primary.conn
	if s.env.Passthrough && len(be.LoginOK) > 0 {
		return be.LoginOK
	}
	if s.hello.Capabilities&mysql.CLIENT_SESSION_TRACK == 0 || s.db == "" || !tracksSchema(be) {
		return wire.OKPayload(0, 0, s.status, 0)
	}
	ok := wire.OKPayload(0, 0, s.status|mysql.SERVER_SESSION_STATE_CHANGED, 0)
	schema := mysql.AppendLengthEncodedInteger(nil, uint64(len(s.db)))
	schema = append(schema, s.db...)
	change := mysql.AppendLengthEncodedInteger([]byte{sessionTrackSchema}, uint64(len(schema)))
	change = append(change, schema...)
	ok = append(ok, 0) // no info
	ok = mysql.AppendLengthEncodedInteger(ok, uint64(len(change)))
	return append(ok, change...)
}

// sessionTrackSchema is SESSION_TRACK_SCHEMA, a session state change's type.
const sessionTrackSchema = 1

// tracksSchema: the server reports schema changes to clients that track
// session state, as the login OK of be showed, or (be logged in without a
// schema) as it does by default.
func tracksSchema(be *backend.Conn) bool {
	return be.Endpoint.DB == "" || wire.StatusOf(be.LoginOK)&mysql.SERVER_SESSION_STATE_CHANGED != 0
}

// fallbackVersion is announced when server_version is unset and no
// backend node could be reached to learn its own.
const fallbackVersion = "5.7.37"

// server is what the handshake announces: server_version when configured,
// else the version a backend node announced to its pool, so that drivers
// take the code paths of the server behind the proxy, and the MariaDB
// capabilities that node's pooled connections have. Before any pool has
// dialled, one connection is opened for it (and parked in the pool for
// the sessions to come).
func (s *Session) server(ctx context.Context) backend.ServerInfo {
	info := s.learnServer(ctx)
	info.Version = cmp.Or(s.env.ServerVersion, info.Version, fallbackVersion)
	return info
}

func (s *Session) learnServer(ctx context.Context) backend.ServerInfo {
	pools := s.env.Live.Load().Pools // before the handshake: no client flags yet
	var info *backend.ServerInfo
	for _, t := range s.env.Balancer.Current().Targets {
		p := pools[t.Name]
		if p == nil || p.Server() == nil {
			continue
		}
		si := *p.Server()
		if info == nil {
			info = &si
			continue
		}
		// Nodes of other versions (a rolling upgrade): what they all have.
		info.Capabilities &= si.Capabilities
		info.ExtCapabilities &= si.ExtCapabilities
	}
	if info != nil {
		return *info
	}
	var l leg
	if err := l.take(ctx, s.env.Balancer, pools); err != nil {
		return backend.ServerInfo{}
	}
	defer l.give()
	return backend.ServerInfo{Version: l.conn.ServerVersion, Capabilities: l.conn.Capabilities, ExtCapabilities: l.conn.ExtCapabilities}
}

// errNoBackend: the balancer has no eligible node.
var errNoBackend = errors.New("no backend node is available")

// pools are the pools matching the client's CLIENT_FOUND_ROWS choice.
func (s *Session) pools() map[string]*backend.Pool {
	live := s.env.Live.Load()
	if s.hello.Capabilities&mysql.CLIENT_FOUND_ROWS != 0 {
		return live.FoundRowsPools
	}
	return live.Pools
}

// connectBackend takes a primary connection from the balancer's choice
// and aligns it with what the client asked for.
func (s *Session) connectBackend(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		if err := s.primary.take(ctx, s.env.Balancer, s.pools()); err != nil {
			// A reload retired the pool while the session waited for
			// it: its replacement is in the live pools now.
			if errors.Is(err, backend.ErrPoolRetired) && attempt < 2 {
				continue
			}
			return err
		}
		issued := s.primary.conn.Issued
		err := s.align(&s.primary)
		if err == nil && s.env.Multiplex {
			s.countBorrow(s.primary.conn.Issued != issued)
		}
		if err == nil {
			err = s.refreshReading(s.primary.conn)
		}
		if err == nil {
			s.active.Store(s.primary.conn)
			if s.db == "" {
				// Unqualified names run in the backend connection's database.
				s.db = s.primary.conn.DB
			}
			return nil
		}
		// A connection that died while idle: drop it and try again. One
		// in a schema the session cannot be given none of (multiplexing,
		// a node naming no schema) is dropped as often as the pool has them.
		s.primary.failed(err)
		s.primary.dirty = true
		s.primary.give()
		if errors.Is(err, backend.ErrSchemaStuck) {
			attempt--
			continue
		}
		if wire.FailedSide(err) != wire.BackendSide || attempt == 2 {
			return err
		}
	}
}

// align gives a leg's connection the client's schema, character set,
// client flags and multi-statements setting, and with multiplexing the
// session's SETs.
func (s *Session) align(l *leg) error {
	be := l.conn
	if s.env.Multiplex && l == &s.primary {
		if err := s.alignSets(be); err != nil {
			return err
		}
	}
	if s.db != "" && s.db != be.DB {
		if err := be.Command(mysql.COM_INIT_DB, []byte(s.db)); err != nil {
			return err
		}
		be.DB = s.db
	}
	if err := s.alignCollation(be); err != nil {
		return err
	}
	if err := s.alignClientFlags(be); err != nil {
		return err
	}
	if s.env.Multiplex && l == &s.primary {
		if err := s.replaySets(be); err != nil {
			return err
		}
	}
	// A parked connection may come from a session with the other setting.
	if off := s.multiOff; off != be.MultiStatementsOff {
		opt := byte(0) // MYSQL_OPTION_MULTI_STATEMENTS_ON
		if off {
			opt = 1
		}
		if err := be.Command(mysql.COM_SET_OPTION, []byte{opt, 0}); err != nil {
			return err
		}
		be.MultiStatementsOff = off
	}
	return nil
}

// clientFlagSettings are the client flags alignClientFlags gives.
const clientFlagSettings = mysql.CLIENT_IGNORE_SPACE | mysql.CLIENT_INTERACTIVE

// alignClientFlags gives the backend connection what a server derives from
// the client's capability flags at login, which the proxy offers clients
// but does not send on (its backend connections are dialled once, with
// flags of their own): CLIENT_IGNORE_SPACE (mysql -i) puts IGNORE_SPACE in
// the session's sql_mode, CLIENT_INTERACTIVE sets wait_timeout to
// interactive_timeout. A connection given flags the session lacks was
// reset before (pools reset on release; alignSets with multiplexing).
func (s *Session) alignClientFlags(be *backend.Conn) error {
	missing := s.hello.Capabilities & clientFlagSettings &^ be.ClientFlags
	if missing == 0 {
		return nil
	}
	var sets []string
	if missing&mysql.CLIENT_IGNORE_SPACE != 0 {
		sets = append(sets, "sql_mode = CONCAT(@@session.sql_mode, ',IGNORE_SPACE')")
	}
	if missing&mysql.CLIENT_INTERACTIVE != 0 {
		sets = append(sets, "wait_timeout = @@global.interactive_timeout")
	}
	if err := be.Query("SET SESSION " + strings.Join(sets, ", ")); err != nil {
		return err
	}
	be.ClientFlags |= missing
	return nil
}

// alignCollation gives the backend connection the client's character set.
// A collation the backend does not know (MySQL 8's utf8mb4_0900_ai_ci on
// MariaDB) falls back to the character set's default collation, as a server
// does for an unknown collation in the handshake.
func (s *Session) alignCollation(be *backend.Conn) error {
	c := s.hello.Collation
	if c == 0 || c == be.Collation {
		return nil
	}
	coll, err := charset.GetCollationByID(int(c))
	if err != nil {
		return nil // unknown to us too: keep the connection's default
	}
	err = be.Query("SET NAMES " + coll.CharsetName + " COLLATE " + coll.Name)
	var sqlErr *wire.SQLError
	if errors.As(err, &sqlErr) && sqlErr.Code == mysql.ER_UNKNOWN_COLLATION {
		err = be.Query("SET NAMES " + coll.CharsetName)
	}
	if err != nil {
		return err
	}
	be.Collation = c
	return nil
}

// finish returns or closes the backend connections and the client socket.
func (s *Session) finish() {
	s.legsMu.Lock()
	s.active.Store(nil)
	s.legsMu.Unlock()
	s.replica.give()
	s.primary.give()
	s.gauge("")
	s.Close()
}

// abort is the panic path: the client is told, the backend connection is
// dropped (its state is unknown), and the panic is counted.
func (s *Session) abort() {
	s.env.Metrics.SessionPanic.WithLabelValues(s.env.Tenant).Inc()
	s.primary.dirty, s.replica.dirty = true, true
	s.client.Seq = 1
	_ = s.client.WriteError(wire.NewError(mysql.ER_UNKNOWN_ERROR, "pisa-proxy: internal error in this session; it was closed, other sessions are unaffected"))
}

// isClientGone reports errors that just mean the client went away.
func isClientGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF)
}
