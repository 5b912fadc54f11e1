package session_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"pisanix.io/pisanix/acl"
	"pisanix.io/pisanix/actors"
	"pisanix.io/pisanix/backend"
	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/metrics"
	"pisanix.io/pisanix/session"
	"pisanix.io/pisanix/sqlinfo"
	"pisanix.io/pisanix/strategy"
	"pisanix.io/pisanix/wire"
)

// This file drives one session's command loop in-process: the client is
// one end of a net.Pipe given to session.New, the backend a scripted
// MySQL server on a loopback port (fakeBackend) that the session's pools
// dial as they would a real node.

// stepTimeout bounds each step of a fuzzed session: a write the session
// must read, an answer it must give, its end once the client is gone.
const stepTimeout = 5 * time.Second

// Fuzz modes (the first argument's bits).
const (
	modeMultiplex   = 1 << iota // the multiplexing listener
	modeRestricted              // log in as a read-only user
	modeNoMulti                 // client without CLIENT_MULTI_STATEMENTS
	modeNoLocal                 // client without CLIENT_LOCAL_FILES
	modeNoFoundRows             // client without CLIENT_FOUND_ROWS
	modeNoDB                    // no schema in the handshake
	modeLatin1                  // latin1 as the client's collation
	modeRaw                     // the bytes are the client's stream as they are, not commands to frame
)

// Accounts of the fuzzed listeners: the owner, and a read-only user.
const (
	appUser, appPassword = "app", "app-pw"
	roUser, roPassword   = "ro", "ro-pw"
)

// FuzzSessionCommands logs a client in and sends arbitrary command
// packets: data is a sequence of commands, each a length byte and that
// many bytes (or, with modeRaw, the client's byte stream itself). The
// session runs against a scripted backend. Invariants: no panic; the
// session reads what the client writes within stepTimeout; every command
// that has a response is answered (or the session closes), and a probe
// after each command is answered; once the client is gone the session
// ends within stepTimeout.
func FuzzSessionCommands(f *testing.F) {
	h := newSessionHarness(f)
	for _, seed := range sessionSeeds() {
		f.Add(seed.mode, seed.data)
	}
	f.Fuzz(func(t *testing.T, mode uint8, data []byte) {
		h.run(t, mode, data)
	})
}

type seed struct {
	mode uint8
	data []byte
}

// cmds frames commands as FuzzSessionCommands reads them.
func cmds(cs ...[]byte) []byte {
	var b []byte
	for _, c := range cs {
		c = c[:min(len(c), 255)]
		b = append(append(b, byte(len(c))), c...)
	}
	return b
}

func query(sql string) []byte { return append([]byte{mysql.COM_QUERY}, sql...) }

func stmt(cmd byte, id uint32, rest ...byte) []byte {
	b := []byte{cmd, byte(id), byte(id >> 8), byte(id >> 16), byte(id >> 24)}
	return append(b, rest...)
}

func sessionSeeds() []seed {
	changeUser := append(append([]byte{mysql.COM_CHANGE_USER}, "app\x00\x00fuzz\x00"...), 45, 0)
	changeUser = append(changeUser, "mysql_native_password\x00"...)
	long := []byte{mysql.MYSQL_TYPE_LONG, 0}
	// COM_STMT_EXECUTE: id, flags, iterations, NULL bitmap, new-params-bound, types, values.
	execWithTypes := stmt(mysql.COM_STMT_EXECUTE, 1, append([]byte{0, 1, 0, 0, 0, 0, 1}, append(long, 7, 0, 0, 0)...)...)
	execNoTypes := stmt(mysql.COM_STMT_EXECUTE, 1, 0, 1, 0, 0, 0, 0, 0, 8, 0, 0, 0)
	execCursor := stmt(mysql.COM_STMT_EXECUTE, 1, 1, 1, 0, 0, 0, 0, 1, long[0], long[1], 9, 0, 0, 0)
	var seeds []seed
	for _, mode := range []uint8{0, modeMultiplex, modeRestricted, modeMultiplex | modeRestricted | modeNoMulti} {
		seeds = append(seeds,
			seed{mode, cmds(query("SELECT 1"), query("SET autocommit = 0"), query("BEGIN"), query("INSERT INTO t VALUES (1)"),
				query("COMMIT"), query("USE fuzz"), query("SHOW SESSION STATUS LIKE 'Ssl%'"), query("SELECT 1; SELECT 2"))},
			seed{mode, cmds(query("SET NAMES latin1"), query("SET sql_mode = 'ANSI_QUOTES'"), query("SELECT @a := 1"),
				query("SELECT LAST_INSERT_ID()"), query("PREPARE s FROM 'SELECT ?'"), query("EXECUTE s USING @a"), query("DEALLOCATE PREPARE s"))},
			seed{mode, cmds(append([]byte{mysql.COM_STMT_PREPARE}, "SELECT ?"...), execWithTypes, execNoTypes, execCursor,
				stmt(mysql.COM_STMT_FETCH, 1, 10, 0, 0, 0), stmt(mysql.COM_STMT_RESET, 1),
				stmt(mysql.COM_STMT_SEND_LONG_DATA, 1, 0, 0, 'x'), stmt(mysql.COM_STMT_CLOSE, 1), execNoTypes)},
			// An execution without flags of a statement without parameters.
			seed{mode, cmds(append([]byte{mysql.COM_STMT_PREPARE}, "SELECT 1"...), stmt(mysql.COM_STMT_EXECUTE, 1), stmt(mysql.COM_STMT_EXECUTE, 0xffffffff))},
			seed{mode, cmds(query("KILL 5"), query("KILL QUERY 1073741825"), query("KILL (SELECT 5)"), query("SELECT 1; KILL QUERY 7"),
				append([]byte{mysql.COM_STMT_PREPARE}, "KILL ?"...), []byte{mysql.COM_PROCESS_KILL, 5, 0, 0, 0})},
			seed{mode, cmds([]byte{mysql.COM_FIELD_LIST, 't', 0}, []byte{mysql.COM_INIT_DB, 'f', 'u', 'z', 'z'}, []byte{mysql.COM_STATISTICS},
				[]byte{mysql.COM_PING}, []byte{mysql.COM_SET_OPTION, 1, 0}, []byte{mysql.COM_SET_OPTION, 0, 0}, []byte{mysql.COM_RESET_CONNECTION},
				[]byte{mysql.COM_REFRESH, 1}, []byte{mysql.COM_DEBUG}, []byte{0x1f}, nil, []byte{wire.ComStmtBulkExecute, 1, 0, 0, 0})},
			seed{mode, cmds(changeUser, query("SELECT 1"))},
			seed{mode, cmds(query("LOAD DATA LOCAL INFILE 'x' INTO TABLE t"), query("SELECT 1"), []byte{mysql.COM_QUIT}, query("SELECT 2"))},
		)
	}
	seeds = append(seeds,
		seed{modeNoLocal, cmds(query("LOAD DATA LOCAL INFILE 'x' INTO TABLE t"))},
		seed{modeNoDB | modeLatin1 | modeNoFoundRows, cmds(query("SELECT DATABASE()"), query("USE fuzz"))},
		// Raw streams: a command with a sequence id out of order; a
		// header over max_allowed_packet; a packet cut short.
		seed{modeRaw, []byte{1, 0, 0, 3, mysql.COM_PING}},
		seed{modeRaw | modeMultiplex, []byte{0xff, 0xff, 0x01, 0, mysql.COM_QUERY, 'S'}},
		seed{modeRaw, []byte{0xff, 0xff, 0xff, 0, mysql.COM_QUERY, 'S', 'E'}},
		seed{modeRaw, append([]byte{9, 0, 0, 0}, query("SELECT 1")...)},
	)
	return seeds
}

// sessionHarness is what the fuzzed sessions share: the scripted backend,
// the actor system with the pools and balancers, and two listeners'
// environments (multiplexing or not).
type sessionHarness struct {
	reg  *session.Registry
	envs [2]*session.Env
}

func newSessionHarness(tb testing.TB) *sessionHarness {
	be, err := startFakeBackend()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(be.close)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := metrics.New()
	sys := actors.NewSystem(log, m)
	tb.Cleanup(sys.Shutdown)
	users, err := acl.New(appUser, appPassword, []config.User{{User: roUser, Password: roPassword, ReadOnly: true}}, false)
	if err != nil {
		tb.Fatal(err)
	}
	h := &sessionHarness{reg: session.NewRegistry()}
	for i := range h.envs {
		tenant := fmt.Sprintf("fuzz%d", i)
		pool := func(foundRows bool) *backend.Pool {
			ep := &backend.Endpoint{Name: "node", Addr: be.addr(), User: "be", Password: "be-pw", DB: "fuzz",
				DialTimeout: stepTimeout, ReadTimeout: stepTimeout, FoundRows: foundRows}
			p, err := backend.NewPool(sys, sys.Root, fmt.Sprintf("pool-%s-%v", tenant, foundRows), backend.PoolConfig{
				Tenant: tenant, Endpoint: ep, Size: 4, AcquireTimeout: stepTimeout / 2, Globals: h.reg.Globals()})
			if err != nil {
				tb.Fatal(err)
			}
			return p
		}
		bal, err := strategy.NewBalancer(sys, sys.Root, "balancer-"+tenant, strategy.Random,
			[]strategy.Target{{Name: "node", Weight: 1}}, strategy.Health{Tenant: tenant})
		if err != nil {
			tb.Fatal(err)
		}
		live := &atomic.Pointer[session.Live]{}
		live.Store(&session.Live{Pools: map[string]*backend.Pool{"node": pool(false)},
			FoundRowsPools: map[string]*backend.Pool{"node": pool(true)}, Users: users})
		h.envs[i] = &session.Env{
			Tenant: tenant, ServerVersion: "8.0.36-fuzz", DefaultDB: "fuzz",
			Auth:         &wire.Authenticator{Plugin: wire.PluginNative, Lookup: users.Password},
			LoginTimeout: stepTimeout, WriteTimeout: stepTimeout, Balancer: bal, Live: live,
			SQL: sqlinfo.NewCache(1024), Registry: h.reg, Metrics: m, Fingerprints: m.Fingerprints.Table(tenant), Log: log,
			Multiplex: i == 1, MaxAllowedPacket: 64 << 10,
		}
	}
	return h
}

// ended is how a session's Run returned.
type ended struct {
	err   error
	panic string
}

func (h *sessionHarness) run(t *testing.T, mode uint8, data []byte) {
	env := h.envs[mode&modeMultiplex]
	srv, cli := net.Pipe()
	s := session.New(env, srv, h.reg.NextID())
	done := make(chan ended, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- ended{panic: fmt.Sprintf("%v\n%s", r, debug.Stack())}
			}
		}()
		done <- ended{err: s.Run(context.Background())}
	}()
	c := &fuzzClient{t: t, conn: cli, io: wire.NewPacketIO(cli, 0), done: done}
	defer c.finish()
	c.login(mode)
	c.readers.Add(1)
	go c.readAll()
	if mode&modeRaw != 0 {
		_ = cli.SetWriteDeadline(time.Now().Add(stepTimeout))
		if _, err := cli.Write(data); errors.Is(err, os.ErrDeadlineExceeded) {
			c.fatalf("the session read none of %d bytes for %s", len(data), stepTimeout)
		}
		return
	}
	for len(data) > 0 && !c.closed {
		n := int(data[0])
		cmd := data[1:min(1+n, len(data))]
		data = data[min(1+n, len(data)):]
		c.command(cmd)
	}
}

// fuzzClient is the client side of a fuzzed session.
type fuzzClient struct {
	t       *testing.T
	conn    net.Conn
	io      *wire.PacketIO
	done    chan ended
	packets chan []byte // what the session sent, in order; closed when its side closed
	closed  bool        // the session closed the connection
	probes  int
	readers sync.WaitGroup
}

func (c *fuzzClient) fatalf(format string, args ...any) {
	c.t.Helper()
	c.conn.Close()
	c.t.Fatalf(format, args...)
}

// login runs the connection phase, which must succeed.
func (c *fuzzClient) login(mode uint8) {
	_ = c.conn.SetDeadline(time.Now().Add(stepTimeout))
	defer func() { _ = c.conn.SetDeadline(time.Time{}) }()
	b, err := c.io.ReadPacket(nil, 1<<16)
	if err != nil {
		c.fatalf("read greeting: %v", err)
	}
	g, err := wire.ParseGreeting(b)
	if err != nil {
		c.fatalf("greeting: %v", err)
	}
	user, password := appUser, appPassword
	if mode&modeRestricted != 0 {
		user, password = roUser, roPassword
	}
	caps := uint32(wire.ServerCapabilities &^ mysql.CLIENT_COMPRESS)
	for bit, flag := range map[uint8]uint32{modeNoMulti: mysql.CLIENT_MULTI_STATEMENTS, modeNoLocal: mysql.CLIENT_LOCAL_FILES, modeNoFoundRows: mysql.CLIENT_FOUND_ROWS} {
		if mode&bit != 0 {
			caps &^= flag
		}
	}
	hello := &wire.ClientHello{Capabilities: caps, MaxPacket: 1 << 24, Collation: wire.DefaultCollationID, User: user,
		AuthResponse: mysql.CalcPassword(g.Salt, []byte(password)), DB: "fuzz", Plugin: wire.PluginNative}
	if mode&modeNoDB != 0 {
		hello.DB = ""
	}
	if mode&modeLatin1 != 0 {
		hello.Collation = 8
	}
	c.io.Seq = 1
	if err := c.io.WritePacketFlush(wire.HandshakeResponse(hello, caps)); err != nil {
		c.fatalf("write handshake response: %v", err)
	}
	b, err = c.io.ReadPacket(nil, 1<<16)
	if err != nil || len(b) == 0 || b[0] != mysql.OK_HEADER {
		c.fatalf("login as %s: %x %v", user, b, err)
	}
	c.packets = make(chan []byte, 1024)
}

// readAll reads what the session sends until its side closes, so that it
// never waits on the client to read.
func (c *fuzzClient) readAll() {
	defer c.readers.Done()
	defer close(c.packets)
	for {
		b, err := c.io.ReadPacket(nil, 1<<26)
		if err != nil {
			return
		}
		c.packets <- append([]byte{c.io.LastSeq()}, b...)
	}
}

// write sends one packet; false when the session closed the connection.
func (c *fuzzClient) write(seq uint8, payload []byte) bool {
	if c.closed {
		return false
	}
	n := len(payload)
	_ = c.conn.SetWriteDeadline(time.Now().Add(stepTimeout))
	_, err := c.conn.Write(append([]byte{byte(n), byte(n >> 8), byte(n >> 16), seq}, payload...))
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.fatalf("the session read nothing for %s", stepTimeout)
	case err != nil:
		c.closed = true
		return false
	}
	return true
}

// next is the session's next packet (its sequence id first); nil when it
// closed the connection.
func (c *fuzzClient) next(what string) []byte {
	select {
	case p, ok := <-c.packets:
		if !ok {
			c.closed = true
			return nil
		}
		return p
	case <-time.After(stepTimeout):
		c.fatalf("no %s from the session within %s", what, stepTimeout)
		return nil
	}
}

// noResponse are the commands a server does not answer.
func noResponse(cmd []byte) bool {
	return len(cmd) > 0 && (cmd[0] == mysql.COM_STMT_CLOSE || cmd[0] == mysql.COM_STMT_SEND_LONG_DATA || cmd[0] == mysql.COM_QUIT)
}

// command sends cmd, waits for the first packet of its answer (playing a
// client's part in an auth switch or a LOCAL INFILE request), then sends a
// probe (COM_STATISTICS, which the scripted backend answers with the
// probe's own text) and waits for its answer: every command before it
// was then handled.
func (c *fuzzClient) command(cmd []byte) {
	if !c.write(0, cmd) {
		return
	}
	if !noResponse(cmd) {
		p := c.next(fmt.Sprintf("answer to %x", cmd))
		switch {
		case p == nil:
			return
		case len(p) > 9 && p[1] == mysql.EOF_HEADER: // an auth switch (COM_CHANGE_USER)
			sw := p[2:]
			if i := bytes.IndexByte(sw, 0); i >= 0 {
				salt := bytes.TrimRight(sw[i+1:], "\x00")
				c.write(p[0]+1, mysql.CalcPassword(salt, []byte(appPassword)))
			}
		case len(p) > 1 && p[1] == mysql.LocalInFile_HEADER:
			if c.write(p[0]+1, []byte("1\n")) {
				c.write(p[0]+2, nil)
			}
		}
	}
	c.probes++
	probe := fmt.Sprintf("pisa-fuzz-probe-%d", c.probes)
	if !c.write(0, append([]byte{mysql.COM_STATISTICS}, probe...)) {
		return
	}
	for {
		p := c.next(fmt.Sprintf("answer to a probe after %x", cmd))
		if p == nil || string(p[1:]) == probe {
			return
		}
	}
}

// finish closes the client's side: the session must end.
func (c *fuzzClient) finish() {
	c.conn.Close()
	select {
	case e := <-c.done:
		if e.panic != "" {
			c.t.Errorf("session panicked: %s", e.panic)
		}
	case <-time.After(stepTimeout):
		c.t.Errorf("session still running %s after its client left", stepTimeout)
	}
	c.readers.Wait()
}

// fakeBackend is a scripted MySQL server: it accepts any login and
// answers each command with a response of the right shape.
type fakeBackend struct {
	ln    net.Listener
	conns sync.WaitGroup
	ids   atomic.Uint32
}

func startFakeBackend() (*fakeBackend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &fakeBackend{ln: ln}
	b.conns.Add(1)
	go func() {
		defer b.conns.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			b.conns.Add(1)
			go func() {
				defer b.conns.Done()
				defer nc.Close()
				fc := &fakeConn{io: wire.NewPacketIO(nc, 0), status: mysql.SERVER_STATUS_AUTOCOMMIT, stmts: map[uint32]*fakeStmt{}}
				_ = fc.serve(b.ids.Add(1))
			}()
		}
	}()
	return b, nil
}

func (b *fakeBackend) addr() string { return b.ln.Addr().String() }

func (b *fakeBackend) close() { _ = b.ln.Close() }

type fakeStmt struct {
	params, cols int
	cursor       bool
}

// fakeConn is one connection to the scripted backend.
type fakeConn struct {
	io     *wire.PacketIO
	status uint16
	stmts  map[uint32]*fakeStmt
	nextID uint32
}

// fakeColumn is a column definition (protocol 4.1) of a VARCHAR column.
const fakeColumn = "\x03def\x04fuzz\x01t\x01t\x01a\x01a\x0c\x21\x00\x00\x01\x00\x00\xfd\x00\x00\x00\x00\x00"

// stateAnswer is what the session's reading of the backend's state
// (session.stateQuery) gets: sql_mode, character set, schema in hex.
const stateAnswer = "STRICT_TRANS_TABLES|utf8mb4|66757a7a" // fuzz

func (c *fakeConn) serve(id uint32) error {
	salt := bytes.Repeat([]byte{'s'}, 20)
	g := &wire.Greeting{Version: "8.0.36-fake", ConnID: id, Salt: salt, Capabilities: wire.ServerCapabilities,
		Collation: wire.DefaultCollationID, Status: c.status, Plugin: wire.PluginNative}
	if err := c.io.WritePacketFlush(g.Encode()); err != nil {
		return err
	}
	if _, err := c.io.ReadPacket(nil, 1<<16); err != nil {
		return err
	}
	if err := c.ok(); err != nil {
		return err
	}
	for {
		p, err := c.io.ReadPacket(nil, 1<<26)
		if err != nil {
			return err
		}
		if len(p) == 0 {
			if err := c.err(mysql.ER_MALFORMED_PACKET, "empty command"); err != nil {
				return err
			}
			continue
		}
		if p[0] == mysql.COM_QUIT {
			return nil
		}
		if err := c.answer(p); err != nil {
			return err
		}
		if err := c.io.Flush(); err != nil {
			return err
		}
	}
}

func (c *fakeConn) ok() error { return c.io.WritePacketFlush(wire.OKPayload(0, 0, c.status, 0)) }

func (c *fakeConn) err(code uint16, msg string) error {
	return c.io.WritePacketFlush(wire.ErrorPayload(wire.NewError(code, msg)))
}

func (c *fakeConn) eof(status uint16) error {
	return c.io.WritePacket([]byte{mysql.EOF_HEADER, 0, 0, byte(status), byte(status >> 8)})
}

// rows writes a text result set of one column and the given rows.
func (c *fakeConn) rows(values ...string) error {
	if err := c.io.WritePacket([]byte{1}); err != nil {
		return err
	}
	if err := c.io.WritePacket([]byte(fakeColumn)); err != nil {
		return err
	}
	if err := c.eof(c.status); err != nil {
		return err
	}
	for _, v := range values {
		if err := c.io.WritePacket(append(mysql.AppendLengthEncodedInteger(nil, uint64(len(v))), v...)); err != nil {
			return err
		}
	}
	return c.eof(c.status)
}

func (c *fakeConn) answer(p []byte) error {
	switch p[0] {
	case mysql.COM_QUERY:
		return c.query(string(p[1:]))
	case mysql.COM_STMT_PREPARE:
		return c.prepare(string(p[1:]))
	case mysql.COM_STMT_EXECUTE, mysql.COM_STMT_FETCH, mysql.COM_STMT_RESET, mysql.COM_STMT_CLOSE, mysql.COM_STMT_SEND_LONG_DATA:
		return c.stmt(p)
	case mysql.COM_FIELD_LIST:
		if err := c.io.WritePacket([]byte(fakeColumn)); err != nil {
			return err
		}
		return c.eof(c.status)
	case mysql.COM_STATISTICS:
		if len(p) > 1 { // the fuzz client's probe: its text back
			return c.io.WritePacket(p[1:])
		}
		return c.io.WritePacket([]byte("Uptime: 1  Threads: 1  Questions: 1"))
	case mysql.COM_SET_OPTION:
		return c.eof(c.status)
	case mysql.COM_RESET_CONNECTION, mysql.COM_CHANGE_USER:
		c.status = mysql.SERVER_STATUS_AUTOCOMMIT
		c.stmts = map[uint32]*fakeStmt{}
		return c.ok()
	case mysql.COM_PING, mysql.COM_INIT_DB, mysql.COM_REFRESH, mysql.COM_DEBUG, mysql.COM_PROCESS_KILL:
		return c.ok()
	}
	return c.err(mysql.ER_UNKNOWN_COM_ERROR, "Unknown command")
}

// isSelect: the text returns rows.
func isSelect(sql string) bool {
	switch sqlinfo.FirstKeyword([]byte(sql)) {
	case sqlinfo.KindSelect, sqlinfo.KindShow:
		return true
	}
	return false
}

func (c *fakeConn) query(sql string) error {
	upper := strings.ToUpper(sql)
	switch {
	case strings.Contains(upper, "LOCAL INFILE"):
		if err := c.io.WritePacketFlush(append([]byte{mysql.LocalInFile_HEADER}, "x"...)); err != nil {
			return err
		}
		for { // the file, up to an empty packet
			b, err := c.io.ReadPacket(nil, 1<<26)
			if err != nil {
				return err
			}
			if len(b) == 0 {
				return c.ok()
			}
		}
	case strings.Contains(upper, "ERROR"):
		return c.err(mysql.ER_NO_SUCH_TABLE, "Table 'fuzz.error' doesn't exist")
	case strings.HasPrefix(upper, "SELECT CONCAT(@@SESSION.SQL_MODE"):
		return c.rows(stateAnswer)
	case upper == "SELECT DATABASE()":
		return c.rows("fuzz")
	case upper == "SELECT @@LAST_GTID":
		return c.rows("0-1-1")
	case isSelect(sql):
		return c.rows(sql[:min(len(sql), 200)])
	case strings.HasPrefix(upper, "BEGIN") || strings.HasPrefix(upper, "START"):
		c.status |= mysql.SERVER_STATUS_IN_TRANS
	case strings.HasPrefix(upper, "COMMIT") || strings.HasPrefix(upper, "ROLLBACK"):
		c.status &^= mysql.SERVER_STATUS_IN_TRANS
	}
	return c.ok()
}

func (c *fakeConn) prepare(sql string) error {
	if strings.Contains(strings.ToUpper(sql), "ERROR") {
		return c.err(mysql.ER_PARSE_ERROR, "You have an error in your SQL syntax")
	}
	c.nextID++
	st := &fakeStmt{params: min(strings.Count(sql, "?"), 100)}
	if isSelect(sql) {
		st.cols = 1
	}
	c.stmts[c.nextID] = st
	ok := []byte{mysql.OK_HEADER, 0, 0, 0, 0, byte(st.cols), 0, byte(st.params), 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(ok[1:], c.nextID)
	if err := c.io.WritePacket(ok); err != nil {
		return err
	}
	for _, n := range []int{st.params, st.cols} {
		for range n {
			if err := c.io.WritePacket([]byte(fakeColumn)); err != nil {
				return err
			}
		}
		if n > 0 {
			if err := c.eof(c.status); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *fakeConn) stmt(p []byte) error {
	var st *fakeStmt
	if len(p) >= 5 {
		st = c.stmts[binary.LittleEndian.Uint32(p[1:5])]
	}
	switch p[0] {
	case mysql.COM_STMT_CLOSE:
		if len(p) >= 5 {
			delete(c.stmts, binary.LittleEndian.Uint32(p[1:5]))
		}
		return nil
	case mysql.COM_STMT_SEND_LONG_DATA:
		return nil
	}
	if st == nil {
		return c.err(mysql.ER_UNKNOWN_STMT_HANDLER, "Unknown prepared statement handler")
	}
	switch p[0] {
	case mysql.COM_STMT_RESET:
		st.cursor = false
		return c.ok()
	case mysql.COM_STMT_FETCH:
		if !st.cursor {
			return c.err(mysql.ER_STMT_HAS_NO_OPEN_CURSOR, "The statement does not have an open cursor")
		}
		st.cursor = false
		if err := c.io.WritePacket([]byte{0, 0, 1, '1'}); err != nil {
			return err
		}
		return c.eof(c.status | mysql.SERVER_STATUS_LAST_ROW_SEND)
	}
	if st.cols == 0 {
		return c.ok()
	}
	if err := c.io.WritePacket([]byte{1}); err != nil {
		return err
	}
	if err := c.io.WritePacket([]byte(fakeColumn)); err != nil {
		return err
	}
	if len(p) > 5 && p[5]&0x07 != 0 {
		st.cursor = true
		return c.eof(c.status | mysql.SERVER_STATUS_CURSOR_EXISTS)
	}
	if err := c.eof(c.status); err != nil {
		return err
	}
	if err := c.io.WritePacket([]byte{0, 0, 1, '1'}); err != nil { // a binary row: header, NULL bitmap, value
		return err
	}
	return c.eof(c.status)
}
