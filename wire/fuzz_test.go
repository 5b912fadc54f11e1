package wire

import (
	"bytes"
	"net"
	"net/netip"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// memConn is a net.Conn over a fixed input: reads end with io.EOF once it
// is consumed; writes are kept.
type memConn struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func newMemConn(in []byte) *memConn { return &memConn{in: bytes.NewReader(in)} }

func (c *memConn) Read(b []byte) (int, error)       { return c.in.Read(b) }
func (c *memConn) Write(b []byte) (int, error)      { return c.out.Write(b) }
func (c *memConn) Close() error                     { return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 3306} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 40000} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// taken is how much of its input p took from c (read and not left buffered).
func (c *memConn) taken(p *PacketIO) int { return int(c.in.Size()) - c.in.Len() - p.Buffered() }

// packets frames payloads as a stream with sequence ids from seq.
func packets(seq uint8, payloads ...[]byte) []byte {
	var b []byte
	for _, p := range payloads {
		n := len(p)
		b = append(b, byte(n), byte(n>>8), byte(n>>16), seq)
		b = append(b, p...)
		seq++
	}
	return b
}

// heapAllocs is the bytes allocated on the heap so far (runtime/metrics:
// no stop-the-world, unlike runtime.ReadMemStats).
func heapAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// maxRelayAlloc bounds what relaying one response may allocate, whatever
// the backend sends: a row read whole for Relay.Rows takes at most one
// physical packet's claimed size (16 MiB) before its bytes arrive.
const maxRelayAlloc = 2*MaxPayload + 1<<20

// FuzzRelayResponse relays arbitrary backend bytes as the response to a
// command of each kind. The relay must end (the input ends), never panic,
// allocate within maxRelayAlloc, and, when it rewrites nothing, send the
// client exactly the backend's bytes it consumed.
func FuzzRelayResponse(f *testing.F) {
	col := []byte("\x03def\x00\x01t\x01t\x01a\x01a\x0c\x21\x00\x00\x01\x00\x00\xfd\x00\x00\x00\x00\x00")
	ok := OKPayload(1, 7, 2, 0)
	f.Add(uint8(RespResult), uint8(0), packets(1, ok), []byte(nil))
	f.Add(uint8(RespResult), uint8(0), packets(1, []byte{1}, col, eof(2), []byte{1, 'x'}, eof(2)), []byte(nil))
	f.Add(uint8(RespResult), uint8(16), packets(1, []byte{1}, col, eof(2), []byte{1, 'x'}, eof(2)), []byte(nil))
	f.Add(uint8(RespResult), uint8(0), packets(1, []byte{1}, col, eof(0x0a), []byte{1, 'x'}, eof(0x0a), ok), []byte(nil))
	f.Add(uint8(RespResult), uint8(2), packets(1, []byte{1}, col, eof(0x42)), []byte(nil))
	f.Add(uint8(RespResult), uint8(4), packets(1, []byte{1, 0}, eof(2), []byte{1, 'x'}, eof(2)), []byte(nil))
	f.Add(uint8(RespResult), uint8(0), packets(1, progress(), []byte{1}, col, eof(2), progress(), []byte{1, 'x'}, eof(2)), []byte(nil))
	f.Add(uint8(RespResult), uint8(0), packets(1, ErrorPayload(NewError(1146, "no table"))), []byte(nil))
	infile := append([]byte{mysql.LocalInFile_HEADER}, "/tmp/x"...)
	f.Add(uint8(RespResult), uint8(1), packets(1, infile, ok), packets(2, []byte("a,b\n"), nil))
	f.Add(uint8(RespResult), uint8(0), packets(1, infile, ok), []byte(nil))
	f.Add(uint8(RespPrepare), uint8(0), packets(1, []byte{0, 7, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0}, col, col, eof(2), col, eof(2)), []byte(nil))
	f.Add(uint8(RespPrepare), uint8(8), packets(1, []byte{0, 7, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0}, col, col, eof(2), col, eof(2)), []byte(nil))
	f.Add(uint8(RespFieldList), uint8(0), packets(1, col, col, eof(2)), []byte(nil))
	f.Add(uint8(RespSingle), uint8(0), packets(1, []byte("Uptime: 5")), []byte(nil))
	f.Add(uint8(RespRows), uint8(0), packets(1, []byte{0, 0, 1}, []byte{0, 0, 2}, eof(0x82)), []byte(nil))
	f.Add(uint8(RespRows), uint8(16), []byte{0xff, 0xff, 0xff, 1, 0xfe}, []byte(nil))
	extCol := []byte("\x03def\x00\x01t\x01t\x01a\x01a\x06\x01\x04json\x0c\x21\x00\x00\x01\x00\x00\xfc\x00\x00\x00\x00\x00")
	f.Add(uint8(RespResult), uint8(33), packets(1, progress(), []byte{1}, extCol, eof(2), progress(), []byte{1, 'x'}, eof(2)), []byte(nil))
	f.Add(uint8(RespFieldList), uint8(33), packets(1, extCol, extCol, eof(2)), []byte(nil))
	f.Add(uint8(RespPrepare), uint8(33), packets(1, []byte{0, 7, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0}, extCol, eof(2), extCol, eof(2)), []byte(nil))
	f.Add(uint8(RespResult), uint8(160), packets(1, []byte{1, 0}, eof(2), []byte{1, 'x'}, eof(2)), []byte(nil))
	f.Add(uint8(RespResult), uint8(160), packets(1, []byte{1, 1}, extCol, eof(2), []byte{1, 'x'}, eof(2)), []byte(nil))
	f.Add(uint8(RespPrepare), uint8(160), packets(1, []byte{0, 7, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0}, extCol, eof(2), extCol, eof(2)), []byte(nil))
	const deprecateEOF = 0x80 // kind's high bit; the next seed's kind is RespResult (0)
	f.Add(uint8(deprecateEOF), uint8(1), packets(1, []byte{1}, col, eof(2), []byte{1, 'x'}, eof(0x0a), []byte{1}, col, eof(2), eof(2)), []byte(nil))
	f.Add(uint8(deprecateEOF+RespPrepare), uint8(1), packets(1, []byte{0, 7, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0}, col, eof(2), col, eof(2)), []byte(nil))
	tracked := []byte("\x00\x00\x00\x02\x40\x00\x00\x00\x08\x01\x06\x05mysql")
	f.Add(uint8(RespResult), uint8(65), packets(1, tracked), []byte(nil))
	f.Add(uint8(RespSingle), uint8(65), packets(1, tracked), []byte(nil))
	f.Fuzz(func(t *testing.T, kind, flags uint8, backend, client []byte) {
		be, cl := newMemConn(backend), newMemConn(client)
		r := Relay{Client: NewPacketIO(cl, 0), Backend: NewPacketIO(be, 0),
			ClientLocalFiles: flags&1 != 0, Cursor: flags&2 != 0, CacheMetadata: flags&4 != 0}
		if flags&8 != 0 {
			r.StmtID = 0x01020304
		}
		if flags&16 != 0 {
			r.Rows = func(row []byte) []byte { return append(row[:len(row):len(row)], 'x') }
		}
		if flags&32 != 0 { // a pooled connection's capabilities, undone
			r.Undo = MariaDBExtendedMetadata | MariaDBProgress | MariaDBCacheMetadata
		}
		if flags&160 == 128 { // a connection without what the client has
			r.Add = MariaDBExtendedMetadata | MariaDBCacheMetadata
		}
		if flags&128 != 0 {
			r.Meta = &StmtMeta{}
			r.Meta.add(col)
		}
		r.UndoTrack = flags&64 != 0
		r.DeprecateEOF = kind&deprecateEOF != 0
		before := heapAllocs()
		_, err := r.Response(ResponseKind(kind % 5))
		if n := heapAllocs() - before; n > maxRelayAlloc {
			t.Fatalf("relaying %d backend bytes allocated %d bytes", len(backend), n)
		}
		if r.Rows != nil || r.StmtID != 0 || !r.ClientLocalFiles || r.Undo != 0 || r.Add != 0 || r.UndoTrack || r.DeprecateEOF {
			// The relay may rewrite: rows, the statement id, a declined
			// LOCAL INFILE, extended metadata, progress reports and
			// session state changes, EOFs as OKs.
			return
		}
		got := cl.out.Bytes()
		if !bytes.HasPrefix(backend, got) {
			t.Fatalf("client got %x, not a prefix of what the backend sent (%x)", got, backend)
		}
		if n := be.taken(r.Backend); err == nil && len(got) != n {
			t.Fatalf("client got %d bytes, the relay took %d from the backend", len(got), n)
		}
	})
}

// Accounts of the authentication fuzz targets.
const (
	fuzzUser     = "app"
	fuzzPassword = "secret"
	fuzzNoPWUser = "nopw" // an account with an empty password
)

func fuzzLookup(u string) (string, bool) {
	switch u {
	case fuzzUser:
		return fuzzPassword, true
	case fuzzNoPWUser:
		return "", true
	}
	return "", false
}

// FuzzAuthenticate drives the server side of authentication with
// arbitrary client bytes: an Exchange whose fields come from the fuzzer
// (mysql_native_password or caching_sha2_password, auth switch, fast and
// full authentication, the RSA key request), or with mode&4 the whole
// connection phase (Accept) from the client's first byte. Invariant: no
// panic, and a login succeeds only with the account's credentials: an
// unknown user never, "app" only when the client bytes hold a proof of its
// password.
func FuzzAuthenticate(f *testing.F) {
	native := &Authenticator{Plugin: PluginNative, Lookup: fuzzLookup}
	sha2 := &Authenticator{Plugin: PluginCachingSHA2, Lookup: fuzzLookup}
	salt := []byte("abcdefghijklmnopqrst")
	scramble := mysql.CalcPassword(salt, []byte(fuzzPassword))
	sha2Scramble := mysql.CalcCachingSha2Password(salt, fuzzPassword)
	f.Add(uint8(0), fuzzUser, PluginNative, scramble, []byte(nil))
	f.Add(uint8(0), fuzzUser, PluginCachingSHA2, sha2Scramble, packets(3, scramble))
	f.Add(uint8(1), fuzzUser, PluginCachingSHA2, sha2Scramble, packets(3, []byte(fuzzPassword+"\x00")))
	f.Add(uint8(3), fuzzUser, PluginCachingSHA2, sha2Scramble, packets(3, []byte(fuzzPassword+"\x00")))
	f.Add(uint8(1), fuzzUser, PluginCachingSHA2, sha2Scramble, packets(3, []byte{requestPublicKey}, bytes.Repeat([]byte{7}, 256)))
	f.Add(uint8(1), fuzzUser, PluginNative, scramble, packets(2, sha2Scramble))
	f.Add(uint8(9), fuzzNoPWUser, PluginNative, []byte(nil), packets(2, nil))
	f.Add(uint8(0), "nobody", "", []byte(nil), []byte(nil))
	hello := &ClientHello{Capabilities: ServerCapabilities &^ mysql.CLIENT_COMPRESS, MaxPacket: 1 << 24, Collation: 45,
		User: fuzzUser, AuthResponse: scramble, Plugin: PluginNative, Attributes: map[string]string{"_client_name": "fuzz"}}
	f.Add(uint8(4), "", "", []byte(nil), packets(1, HandshakeResponse(hello, hello.Capabilities), scramble))
	f.Add(uint8(5), "", "", []byte(nil), packets(1, HandshakeResponse(hello, hello.Capabilities), scramble, []byte{requestPublicKey}))
	f.Fuzz(func(t *testing.T, mode uint8, user, plugin string, response, stream []byte) {
		a := native
		if mode&1 != 0 {
			a = sha2
		}
		p := NewPacketIO(newMemConn(stream), 0)
		if mode&4 != 0 {
			h, err := Accept(p, ServerConfig{Version: "8.0.36", ConnID: 1, Auth: a, RemoteHost: "127.0.0.1"})
			// The greeting's scramble is random: only the account without
			// a password can log in from bytes chosen in advance.
			if err == nil && h.User != fuzzNoPWUser {
				t.Fatalf("user %q logged in with a fuzzed handshake", h.User)
			}
			return
		}
		err := a.Authenticate(p, Exchange{User: user, Host: "127.0.0.1", Plugin: plugin, Response: response,
			Salt: salt, TLS: mode&2 != 0, SwitchSalt: mode&8 != 0})
		if err == nil {
			sent := append(append([]byte(nil), response...), stream...)
			switch {
			case user == fuzzNoPWUser:
			case user != fuzzUser:
				t.Fatalf("unknown user %q logged in", user)
			case !bytes.Contains(sent, scramble) && !bytes.Contains(sent, sha2Scramble) && !bytes.Contains(stream, []byte(fuzzPassword)):
				t.Fatalf("user %q logged in without its password: response %x, then %x", user, response, stream)
			}
		}
	})
}

// fuzzServerKey is an RSA public key a backend may send in caching_sha2's
// full authentication (seeds only; its private key was not kept).
const fuzzServerKey = `-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDaQxotfQoHnle6d3DNeqt0U37S
Q140S+gl/hRiwcsj6sK+Vp/Qr7oZx4xgV7CMNo2KnIEwDUEIjHS67s2+sXPo3suc
OYENXu8W5x/ZnJ+z38HSg5GxwyWtnNdH3Rkp22Z2I46DlxiZJYoO+j31p76PNdnD
K+uHuuUZmlNsEA11zwIDAQAB
-----END PUBLIC KEY-----
`

// FuzzUpstreamLogin parses arbitrary server bytes as a backend's greeting
// (ParseGreeting) and, when they parse, relays the rest as the backend's
// side of an auth passthrough login (Upstream.Login, AuthRelay) with
// arbitrary client answers. Invariant: no panic; a parsed greeting with
// a 20-byte scramble encodes (the proxy's own greeting to its client) to
// one that parses the same.
func FuzzUpstreamLogin(f *testing.F) {
	g := &Greeting{Version: "8.0.36", ConnID: 9, Salt: []byte("abcdefghijklmnopqrst"), Capabilities: ServerCapabilities | mysql.CLIENT_SSL,
		Collation: 45, Status: 2, Plugin: PluginCachingSHA2}
	greeting := g.Encode()
	fullAuth := []byte{mysql.MORE_DATE_HEADER, mysql.CACHE_SHA2_FULL_AUTH}
	key := append([]byte{mysql.MORE_DATE_HEADER}, fuzzServerKey...)
	sw := AuthSwitchRequest(PluginCachingSHA2, []byte("ABCDEFGHIJKLMNOPQRST"))
	f.Add(uint8(0), append(packets(0, greeting), packets(2, OKPayload(0, 0, 2, 0))...), []byte(nil))
	f.Add(uint8(0), append(packets(0, greeting), packets(2, []byte{1, 3}, OKPayload(0, 0, 2, 0))...), []byte(nil))
	f.Add(uint8(1), append(packets(0, greeting), packets(2, fullAuth, key, OKPayload(0, 0, 2, 0))...), packets(3, []byte("pw\x00")))
	f.Add(uint8(1), append(packets(0, greeting), packets(2, sw, fullAuth, key, OKPayload(0, 0, 2, 0))...), packets(3, []byte("scrambled"), []byte("pw\x00")))
	f.Add(uint8(0), append(packets(0, greeting), packets(2, ErrorPayload(NewError(1045, "denied")))...), []byte(nil))
	f.Add(uint8(0), packets(0, GreetingError(NewError(1040, "Too many connections"))), []byte(nil))
	f.Add(uint8(0), packets(0, []byte("\x0a5.5.5\x00\x01\x00\x00\x00abcdefgh\x00\xff\xf7")), []byte(nil))
	f.Fuzz(func(t *testing.T, flags uint8, server, client []byte) {
		sp := NewPacketIO(newMemConn(server), 0)
		b, err := sp.ReadPacket(nil, 4096)
		if err != nil {
			return
		}
		g, err := ParseGreeting(b)
		if err != nil {
			return
		}
		if len(g.Salt) < 8 {
			t.Fatalf("greeting %x: scramble of %d bytes", b, len(g.Salt))
		}
		if len(g.Salt) == 20 { // what servers send; others are passed on as they are
			back, err := ParseGreeting(g.Encode())
			if err != nil {
				t.Fatalf("greeting %x: its encoding does not parse: %v", b, err)
			}
			if back.Version != g.Version || back.ConnID != g.ConnID || !bytes.Equal(back.Salt, g.Salt) ||
				back.Capabilities != g.Capabilities || back.Collation != g.Collation || back.Status != g.Status {
				t.Fatalf("greeting %x: parsed %+v, encoded and parsed again %+v", b, *g, *back)
			}
		}
		up := &Upstream{IO: sp, Greeting: g, ProxyHeader: flags&2 != 0, Client: netip.MustParseAddrPort("192.0.2.1:50000")}
		hello := &ClientHello{Capabilities: ServerCapabilities, MaxPacket: 1 << 24, Collation: 45, User: "app",
			AuthResponse: []byte("0123456789abcdefghij"), Plugin: g.Plugin, TLS: flags&1 != 0}
		_ = up.Login(NewPacketIO(newMemConn(client), 0), hello)
	})
}

// FuzzLoginAs logs in to a scripted server as the proxy's pools do:
// whatever the server sends after its greeting (auth switches to any
// plugin, caching_sha2's fast and full authentication, a public key, OK,
// ERR), LoginAs must not panic, and without TLS the password never leaves
// in clear.
func FuzzLoginAs(f *testing.F) {
	const password = "pool-Secret-9f3e"
	switchTo := func(plugin string, salt []byte) []byte { return AuthSwitchRequest(plugin, salt) }
	salt32 := bytes.Repeat([]byte{'s'}, 32)
	key := append([]byte{mysql.MORE_DATE_HEADER}, fuzzServerKey...)
	ok := OKPayload(0, 0, mysql.SERVER_STATUS_AUTOCOMMIT, 0)
	f.Add(PluginNative, packets(2, ok))
	f.Add(PluginCachingSHA2, packets(2, []byte{mysql.MORE_DATE_HEADER, mysql.CACHE_SHA2_FAST_AUTH}, ok))
	f.Add(PluginCachingSHA2, packets(2, []byte{mysql.MORE_DATE_HEADER, mysql.CACHE_SHA2_FULL_AUTH}, key, ok))
	f.Add(PluginNative, packets(2, switchTo(mysql.AUTH_MARIADB_ED25519, salt32), ok))
	f.Add(PluginNative, packets(2, switchTo(mysql.AUTH_SHA256_PASSWORD, salt32[:20]), key, ok))
	f.Add(PluginNative, packets(2, switchTo(mysql.AUTH_CLEAR_PASSWORD, nil), ok))
	f.Add(PluginNative, packets(2, switchTo(PluginCachingSHA2, nil), []byte{mysql.MORE_DATE_HEADER, mysql.CACHE_SHA2_FULL_AUTH}, key, ok))
	f.Add("dialog", packets(2, ErrorPayload(NewError(1045, "Access denied"))))
	f.Fuzz(func(t *testing.T, plugin string, stream []byte) {
		c := newMemConn(stream)
		g := &Greeting{Version: "11.4.2-MariaDB", ConnID: 7, Salt: []byte("abcdefghijklmnopqrst"), Plugin: plugin,
			Capabilities: ServerCapabilities &^ mysql.CLIENT_LONG_PASSWORD, ExtCapabilities: PassthroughExtCapabilities}
		u := &Upstream{IO: NewPacketIO(c, 0), Greeting: g}
		_ = u.LoginAs(&Credentials{User: "pool", Password: password, DB: "app", ExtCapabilities: MariaDBExtendedMetadata})
		if bytes.Contains(c.out.Bytes(), []byte(password)) {
			t.Fatalf("the password left in clear without TLS: %q", c.out.Bytes())
		}
	})
}
