// Package backend owns connections to real MySQL/MariaDB servers: dialling
// and authenticating as a client (wire.Upstream.LoginAs), the per-node pool
// actor, and resetting a connection before reuse.
package backend

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"pisanix.io/pisanix/wire"
)

// Capabilities requested from every backend. They fix the packet shapes the
// relay sees (no DEPRECATE_EOF) and match wire.ServerCapabilities. Session
// tracking is offered to clients when the backend has it and cut out of
// OKs for a client that did not ask (wire.Relay's UndoTrack).
const Capabilities = mysql.CLIENT_MULTI_STATEMENTS | mysql.CLIENT_MULTI_RESULTS |
	mysql.CLIENT_PS_MULTI_RESULTS | mysql.CLIENT_LOCAL_FILES | mysql.CLIENT_CONNECT_ATTRS |
	mysql.CLIENT_SESSION_TRACK

// ExtCapabilities are the MariaDB capabilities requested for pooled
// connections (when the server offers them). A session whose client did
// not ask for one has the relay undo it (wire.Relay's ClientExt): progress
// reports are dropped, extended metadata is cut from column definitions.
// Bulk execution changes nothing unless the client uses it. Metadata
// caching is asked for per Endpoint (CacheMetadata).
const ExtCapabilities = wire.MariaDBProgress | wire.MariaDBBulkOperations | wire.MariaDBExtendedMetadata

// defaultCollation is wire.DefaultCollationID by name.
const defaultCollation = "utf8mb4_general_ci"

// relayBufSize is the read/write buffer of a backend connection.
const relayBufSize = 64 * 1024

// Endpoint is where and how to dial one backend node.
type Endpoint struct {
	Name     string
	Addr     string
	User     string
	Password string
	DB       string
	// TLS, when set, is used; TLSPreferred falls back to plaintext when the
	// server does not offer TLS.
	TLS          *tls.Config
	TLSPreferred bool
	DialTimeout  time.Duration
	// ReadTimeout: the node has failed when it sends nothing for this long
	// while an answer is awaited (0: no bound).
	ReadTimeout time.Duration
	// FoundRows dials with CLIENT_FOUND_ROWS (affected rows = matched rows).
	FoundRows bool
	// CacheMetadata asks for MariaDB's metadata caching too: only where a
	// session's prepared statements are its own (no multiplexing), since
	// the server skips the column definitions of a statement whose
	// connection was sent them before.
	CacheMetadata bool
	// ProxyProtocol: a connection logged in as a client (DialUpstream)
	// opens with a PROXY protocol header naming the client.
	ProxyProtocol bool
}

// Conn is one authenticated backend connection. It is used by one session
// at a time; the pool hands it over.
type Conn struct {
	IO       *wire.PacketIO
	ThreadID uint32 // the backend's connection id, for KILL
	// ServerVersion is what the backend announced in its handshake
	// (MariaDB's with its "5.5.5-" prefix).
	ServerVersion string
	Endpoint      *Endpoint
	DB            string // current schema as far as the proxy knows
	Collation     uint8  // current collation id; 0 when unknown
	// MultiStatementsOff: COM_SET_OPTION turned multi-statements off.
	MultiStatementsOff bool
	// ClientFlags are the client capability flags whose session settings
	// a server derives at login (CLIENT_IGNORE_SPACE adds IGNORE_SPACE to
	// sql_mode, CLIENT_INTERACTIVE takes wait_timeout from
	// interactive_timeout) given to this connection; Reset clears them.
	ClientFlags uint32
	// Sets are the SET statements a multiplexing session replayed or ran
	// here, in order; never modified in place (sessions share the slice).
	// LastInsertID is what LAST_INSERT_ID() returns here, as far as known.
	// Reset clears both.
	Sets         []string
	LastInsertID uint64
	// Scramble is the greeting's, for a COM_CHANGE_USER answered with it
	// (auth passthrough).
	Scramble []byte
	// Capabilities and ExtCapabilities are the client flags and MariaDB
	// capabilities the login negotiated (a client's own connection, with
	// auth passthrough, has the client's).
	Capabilities    uint32
	ExtCapabilities uint32
	// LoginOK is the server's OK to the login.
	LoginOK []byte
	// PlaintextFallback: TLS was preferred and the server offered none
	// (the pool logs and counts it).
	PlaintextFallback bool
	// Status is the server status of the last OK or EOF the proxy read
	// itself (its own commands, the login): whether a new session starts
	// in autocommit mode, as the server's login OK would say.
	Status uint16
	// Issued counts the commands the proxy sent on its own behalf.
	Issued uint64
	// stmts are prepared statements of multiplexing sessions (stmts.go);
	// StmtGen changes whenever one is added or dropped.
	stmts   stmtCache
	StmtGen uint64

	raw      net.Conn // the TCP connection under TLS, for alive
	lastUsed time.Time
	globals  uint64 // the pool's Globals count when this connection was last reset
	// connGlobals: the pool's ConnGlobals count when it was dialled.
	connGlobals uint64
}

// Dial connects and authenticates to ep within its dial timeout.
func Dial(ctx context.Context, ep *Endpoint) (*Conn, error) {
	c, err := dial(ctx, ep)
	if err != nil {
		return nil, fmt.Errorf("dial backend %s (%s): %w", ep.Name, ep.Addr, err)
	}
	return c, nil
}

func dial(ctx context.Context, ep *Endpoint) (*Conn, error) {
	deadline := time.Now().Add(ep.DialTimeout)
	raw, err := (&net.Dialer{Deadline: deadline}).DialContext(ctx, "tcp", ep.Addr)
	if err != nil {
		return nil, err
	}
	// The login is bounded by the dial timeout too; cleared below.
	_ = raw.SetDeadline(deadline)
	tc := &wire.TimeoutConn{Conn: raw}
	up, err := greet(tc, ep)
	if err == nil {
		err = up.LoginAs(credentials(ep))
	}
	if err != nil {
		_ = raw.Close()
		return nil, err
	}
	_ = raw.SetDeadline(time.Time{})
	tc.ReadTimeout = ep.ReadTimeout
	up.IO.AwaitReplies() // plain TCP only: a statement's answer is read without a try first
	return &Conn{
		IO:                up.IO,
		Status:            up.Status,
		ThreadID:          up.Greeting.ConnID,
		ServerVersion:     up.Greeting.Version,
		Capabilities:      up.Capabilities,
		ExtCapabilities:   up.ExtCapabilities,
		LoginOK:           up.OK,
		PlaintextFallback: up.PlaintextFallback,
		Endpoint:          ep,
		DB:                ep.DB,
		Collation:         wire.DefaultCollationID,
		raw:               raw,
		lastUsed:          time.Now(),
	}, nil
}

// credentials are a pooled connection's login.
func credentials(ep *Endpoint) *wire.Credentials {
	caps, ext := uint32(Capabilities), uint32(ExtCapabilities)
	if ep.FoundRows {
		caps |= mysql.CLIENT_FOUND_ROWS
	}
	if ep.CacheMetadata {
		ext |= wire.MariaDBCacheMetadata
	}
	return &wire.Credentials{
		User: ep.User, Password: ep.Password, DB: ep.DB,
		Capabilities: caps, ExtCapabilities: ext,
		Attributes: map[string]string{"program_name": "pisa-proxy", "_client_name": "pisa-proxy"},
	}
}

// alive reports that the server has not closed the connection while it sat
// idle: a non-blocking peek at the socket (one syscall) finds a FIN, a
// reset, or bytes the server sent unasked (an error packet before closing
// on a timeout); any of them means it is gone. Cheaper than a ping, which
// costs a round trip.
func (c *Conn) alive() bool {
	return c.IO.Buffered() == 0 && wire.Peek(c.raw) == wire.PeerQuiet
}

// PeerGone reports, from any goroutine, that the server closed the
// connection or sent something unasked (an error before closing): for a
// connection known idle, that it is gone. One non-blocking syscall.
func (c *Conn) PeerGone() bool { return wire.Peek(c.raw) != wire.PeerQuiet }

// ErrSchemaStuck: a session selected a schema on a connection whose node
// names none; it is closed rather than reused.
var ErrSchemaStuck = errors.New("connection has a schema its node does not name")

// Close closes the connection without telling the server.
func (c *Conn) Close() error { return c.IO.Close() }

// Quit says goodbye (COM_QUIT) and closes: the server sees a clean
// disconnect, not an aborted connection (Aborted_clients).
func (c *Conn) Quit() error {
	_ = c.IO.Conn().SetWriteDeadline(time.Now().Add(time.Second))
	c.IO.Seq = 0
	_ = c.IO.WritePacketFlush([]byte{mysql.COM_QUIT})
	return c.Close()
}

// Command sends a command the proxy issues on its own behalf and reads its
// response, which must be OK/EOF (several with MORE_RESULTS) or ERR.
func (c *Conn) Command(cmd byte, arg []byte) error {
	c.Issued++
	c.IO.Seq = 0
	buf := make([]byte, 0, 1+len(arg))
	buf = append(append(buf, cmd), arg...)
	if err := c.IO.WritePacketFlush(buf); err != nil {
		return &wire.IOError{Side: wire.BackendSide, Err: err}
	}
	for {
		resp, err := c.IO.ReadPacket(nil, 1<<20)
		if err != nil {
			return &wire.IOError{Side: wire.BackendSide, Err: err}
		}
		if len(resp) == 0 {
			return &wire.IOError{Side: wire.BackendSide, Err: errors.New("empty response")}
		}
		switch resp[0] {
		case mysql.ERR_HEADER:
			return wire.ParseError(resp)
		case mysql.OK_HEADER, mysql.EOF_HEADER:
			c.Status = wire.StatusOf(resp)
			if c.Status&mysql.SERVER_MORE_RESULTS_EXISTS == 0 {
				return nil
			}
		default:
			return fmt.Errorf("unexpected response %#x to command %#x", resp[0], cmd)
		}
	}
}

// Query runs a statement that returns no rows.
func (c *Conn) Query(sql string) error { return c.Command(mysql.COM_QUERY, []byte(sql)) }

// Ping checks the connection.
func (c *Conn) Ping() error { return c.Command(mysql.COM_PING, nil) }

// Reset returns the connection to a clean state for the next session:
// COM_RESET_CONNECTION (session variables, temporary tables, prepared
// statements, user variables, open transaction), then the endpoint's schema
// and the default character set, in one round trip.
func (c *Conn) Reset() error {
	if err := c.Command(mysql.COM_RESET_CONNECTION, nil); err != nil {
		return fmt.Errorf("reset connection: %w", err)
	}
	if c.MultiStatementsOff {
		if err := c.Command(mysql.COM_SET_OPTION, []byte{0, 0}); err != nil {
			return fmt.Errorf("re-enable multi statements: %w", err)
		}
		c.MultiStatementsOff = false
	}
	sql := "SET NAMES utf8mb4 COLLATE " + defaultCollation
	if c.Endpoint.DB != "" {
		sql += "; USE " + QuoteIdent(c.Endpoint.DB)
	}
	if err := c.Query(sql); err != nil {
		return fmt.Errorf("restore session defaults: %w", err)
	}
	c.Collation = wire.DefaultCollationID
	c.ClientFlags, c.Sets, c.LastInsertID = 0, nil, 0
	c.ForgetStmts()
	if c.Endpoint.DB == "" && c.DB != "" {
		// MySQL cannot unselect a schema: the connection is clean but for
		// that, which does not matter to a caller selecting one next.
		return ErrSchemaStuck
	}
	c.DB = c.Endpoint.DB
	return nil
}

// QuoteIdent quotes a MySQL identifier with backticks.
func QuoteIdent(s string) string {
	b := make([]byte, 0, len(s)+2)
	b = append(b, '`')
	for i := 0; i < len(s); i++ {
		if s[i] == '`' {
			b = append(b, '`')
		}
		b = append(b, s[i])
	}
	return string(append(b, '`'))
}

// QueryValue runs a statement the proxy issues on its own behalf that
// returns one row of one column (e.g. SELECT @@last_gtid) and returns it as
// text ("" for NULL). Any other number of rows is an error: the client's
// session settings (sql_select_limit) apply to these statements too.
func (c *Conn) QueryValue(sql string) (string, error) {
	c.Issued++
	c.IO.Seq = 0
	if err := c.IO.WritePacketFlush(append([]byte{mysql.COM_QUERY}, sql...)); err != nil {
		return "", &wire.IOError{Side: wire.BackendSide, Err: err}
	}
	var value string
	rows := 0
	for stage := 0; ; {
		p, err := c.IO.ReadPacket(nil, 1<<20)
		if err != nil {
			return "", &wire.IOError{Side: wire.BackendSide, Err: err}
		}
		switch {
		case len(p) > 0 && p[0] == mysql.ERR_HEADER:
			return "", wire.ParseError(p)
		case stage == 0 && len(p) > 0 && p[0] == mysql.OK_HEADER:
			return "", fmt.Errorf("%q returned no result set", sql)
		case len(p) > 0 && p[0] == mysql.EOF_HEADER && len(p) < 9:
			if stage++; stage == 3 { // after column defs, then after rows
				if rows != 1 {
					// e.g. the session set sql_select_limit = 0
					return "", fmt.Errorf("%q returned %d rows, not 1", sql, rows)
				}
				return value, nil
			}
		case stage == 0:
			stage = 1 // the column count; definitions follow
		case stage == 2 && len(p) > 0 && p[0] == 0xfb: // a NULL
			rows++
		case stage == 2 && len(p) > 0: // a row
			n, sz, ok := wire.LenEncInt(p)
			if !ok || sz+int(n) > len(p) {
				return "", fmt.Errorf("%q: malformed row", sql)
			}
			value = string(p[sz : sz+int(n)])
			rows++
		}
	}
}

// DialUpstream opens a connection to ep for auth passthrough: it reads the
// greeting and stops there, for a client to log in through it
// (wire.Upstream.Login). Backend TLS is as for Dial, with the client's
// credentials where the pool's would be. The connection phase must end by
// deadline; Adopt clears it.
func DialUpstream(ctx context.Context, ep *Endpoint, deadline time.Time) (*wire.Upstream, error) {
	d := net.Dialer{Deadline: deadline}
	if dt := time.Now().Add(ep.DialTimeout); ep.DialTimeout > 0 && dt.Before(deadline) {
		d.Deadline = dt
	}
	raw, err := d.DialContext(ctx, "tcp", ep.Addr)
	if err != nil {
		return nil, fmt.Errorf("dial backend %s (%s): %w", ep.Name, ep.Addr, err)
	}
	_ = raw.SetDeadline(deadline)
	// Under TLS too, so that its read timeout applies once logged in.
	up, err := greet(&wire.TimeoutConn{Conn: raw}, ep)
	if err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("dial backend %s (%s): %w", ep.Name, ep.Addr, err)
	}
	return up, nil
}

// greet reads the server's greeting and decides TLS.
func greet(conn net.Conn, ep *Endpoint) (*wire.Upstream, error) {
	p := wire.NewPacketIO(conn, relayBufSize)
	b, err := p.ReadPacket(nil, 4096)
	if err != nil {
		return nil, fmt.Errorf("read greeting: %w", err)
	}
	g, err := wire.ParseGreeting(b)
	if err != nil {
		return nil, err
	}
	up := &wire.Upstream{IO: p, Greeting: g, ProxyHeader: ep.ProxyProtocol}
	if ep.TLS != nil {
		switch {
		case g.Capabilities&mysql.CLIENT_SSL != 0:
			up.TLS = ep.TLS
		case !ep.TLSPreferred:
			return nil, errors.New("the server does not support TLS, which this node requires")
		default:
			up.PlaintextFallback = true
		}
	}
	return up, nil
}

// Adopt makes the connection a client logged in through (DialUpstream) a
// Conn, with what the login gave its session. It is logged in as that
// client: the session closes it at its end, it is never pooled.
func Adopt(up *wire.Upstream, ep *Endpoint, hello *wire.ClientHello) *Conn {
	nc := up.IO.Conn()
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	tc := nc.(*wire.TimeoutConn)
	_ = tc.SetDeadline(time.Time{})
	tc.ReadTimeout = ep.ReadTimeout
	up.IO.AwaitReplies()
	return &Conn{
		IO:            up.IO,
		ThreadID:      up.Greeting.ConnID,
		ServerVersion: up.Greeting.Version,
		Scramble:      up.Greeting.Salt,
		Status:        up.Status,
		LoginOK:       up.OK,
		// The client's own: it negotiated with the server through the proxy.
		Capabilities:       hello.Capabilities,
		ExtCapabilities:    hello.ExtCapabilities,
		Endpoint:           ep,
		DB:                 hello.DB,
		Collation:          hello.Collation,
		MultiStatementsOff: hello.Capabilities&mysql.CLIENT_MULTI_STATEMENTS == 0,
		raw:                tc.Conn,
		lastUsed:           time.Now(),
	}
}
