package wire

import (
	"bytes"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// This file is the client side of a connection phase, for auth
// passthrough: the proxy greets its client with a backend's own scramble
// and plugin, hands the client's answers to the backend and the backend's
// to the client, so that the backend checks the client's credentials and
// the proxy never learns a password. go-mysql's client is not used here:
// it authenticates with a password it knows, while this relays an exchange
// between two other parties.

// Greeting is a server's protocol v10 handshake.
type Greeting struct {
	Version      string
	ConnID       uint32
	Salt         []byte
	Capabilities uint32
	// ExtCapabilities: MariaDB's, when CLIENT_MYSQL (CLIENT_LONG_PASSWORD)
	// is not in Capabilities.
	ExtCapabilities uint32
	Collation       uint8
	Status          uint16
	Plugin          string
}

// ParseGreeting decodes a server's initial handshake. A server that refuses
// the connection before greeting (too many connections, a blocked host)
// sends an ERR packet instead: it is returned as an *SQLError.
func ParseGreeting(b []byte) (*Greeting, error) {
	if len(b) > 0 && b[0] == mysql.ERR_HEADER {
		return nil, parseGreetingError(b)
	}
	if len(b) == 0 || b[0] != 10 {
		return nil, errors.New("server greeting: not protocol version 10")
	}
	g := &Greeting{}
	var pos int
	var ok bool
	if g.Version, pos, ok = nulString(b, 1); !ok || len(b) < pos+15 {
		return nil, errors.New("server greeting: truncated")
	}
	g.ConnID = uint32(b[pos]) | uint32(b[pos+1])<<8 | uint32(b[pos+2])<<16 | uint32(b[pos+3])<<24
	g.Salt = append([]byte(nil), b[pos+4:pos+12]...)
	pos += 13 // the salt's first part and a filler byte
	g.Capabilities = uint32(b[pos]) | uint32(b[pos+1])<<8
	pos += 2
	if pos+16 > len(b) {
		return g, nil // a pre-4.1 server: no more fields
	}
	g.Collation = b[pos]
	g.Status = uint16(b[pos+1]) | uint16(b[pos+2])<<8
	g.Capabilities |= uint32(b[pos+3])<<16 | uint32(b[pos+4])<<24
	saltLen := int(b[pos+5])
	if g.Capabilities&mysql.CLIENT_LONG_PASSWORD == 0 {
		g.ExtCapabilities = uint32(b[pos+12]) | uint32(b[pos+13])<<8 | uint32(b[pos+14])<<16 | uint32(b[pos+15])<<24
	}
	pos += 16 // the salt length and 10 reserved bytes (MariaDB's extended capabilities)
	if g.Capabilities&mysql.CLIENT_SECURE_CONNECTION != 0 {
		n := max(13, saltLen-8)
		if pos+n > len(b) {
			return nil, errors.New("server greeting: truncated scramble")
		}
		part := b[pos : pos+n]
		if part[len(part)-1] == 0 {
			part = part[:len(part)-1]
		}
		g.Salt = append(g.Salt, part...)
		pos += n
	}
	if g.Capabilities&mysql.CLIENT_PLUGIN_AUTH != 0 && pos < len(b) {
		if g.Plugin, _, ok = nulString(b, pos); !ok {
			g.Plugin = string(b[pos:])
		}
	}
	return g, nil
}

// parseGreetingError reads an ERR sent in place of a greeting: the client
// has not said it speaks protocol 4.1, so there is no SQLSTATE.
func parseGreetingError(b []byte) *SQLError {
	if len(b) < 3 {
		return NewError(mysql.ER_HANDSHAKE_ERROR, "Bad handshake")
	}
	code := uint16(b[1]) | uint16(b[2])<<8
	if len(b) > 3 && b[3] == '#' {
		return ParseError(b)
	}
	return NewError(code, string(b[3:]))
}

// SSLRequest encodes the short handshake response asking for TLS: the
// first 32 bytes of h's, MariaDB's extended capabilities included (MariaDB
// takes them from this packet, not from the full response after TLS).
func SSLRequest(h *ClientHello, caps uint32) []byte {
	return HandshakeResponse(h, caps|mysql.CLIENT_SSL)[:32]
}

// HandshakeResponse encodes h as a HandshakeResponse41 with capabilities
// caps (which decide the layout, as for ParseHandshakeResponse).
func HandshakeResponse(h *ClientHello, caps uint32) []byte {
	b := make([]byte, 32, 64+len(h.User)+len(h.AuthResponse)+len(h.DB)+len(h.Plugin))
	binary.LittleEndian.PutUint32(b, caps)
	binary.LittleEndian.PutUint32(b[4:], h.MaxPacket)
	b[8] = h.Collation
	binary.LittleEndian.PutUint32(b[28:], h.ExtCapabilities)
	b = append(append(b, h.User...), 0)
	switch {
	case caps&mysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0:
		b = mysql.AppendLengthEncodedInteger(b, uint64(len(h.AuthResponse)))
		b = append(b, h.AuthResponse...)
	case caps&mysql.CLIENT_SECURE_CONNECTION != 0:
		b = append(append(b, byte(len(h.AuthResponse))), h.AuthResponse...)
	default:
		b = append(append(b, h.AuthResponse...), 0)
	}
	if caps&mysql.CLIENT_CONNECT_WITH_DB != 0 {
		b = append(append(b, h.DB...), 0)
	}
	if caps&mysql.CLIENT_PLUGIN_AUTH != 0 {
		b = append(append(b, h.Plugin...), 0)
	}
	if caps&mysql.CLIENT_CONNECT_ATTRS != 0 {
		b = appendAttributes(b, h.Attributes)
	}
	return b
}

// appendAttributes encodes connection attributes, sorted by key so that
// the same attributes always encode the same.
func appendAttributes(b []byte, attrs map[string]string) []byte {
	var kv []byte
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		kv = mysql.AppendLengthEncodedInteger(kv, uint64(len(k)))
		kv = append(kv, k...)
		kv = mysql.AppendLengthEncodedInteger(kv, uint64(len(attrs[k])))
		kv = append(kv, attrs[k]...)
	}
	b = mysql.AppendLengthEncodedInteger(b, uint64(len(kv)))
	return append(b, kv...)
}

// Upstream is a backend connection in its connection phase: greeted, not
// yet logged in.
type Upstream struct {
	IO       *PacketIO
	Greeting *Greeting
	// TLS, when set, is used towards the backend (which offered it);
	// PlaintextFallback: TLS was preferred and the server offered none.
	TLS               *tls.Config
	PlaintextFallback bool
	// Keys lends its RSA key to a client without TLS in caching_sha2's
	// full authentication when the backend connection has TLS (AuthRelay).
	Keys *Authenticator
	// Status is the server status of the backend's login OK.
	Status uint16
	// OK is the server's login OK; Capabilities and ExtCapabilities are
	// the client flags and MariaDB capabilities LoginAs sent.
	OK              []byte
	Capabilities    uint32
	ExtCapabilities uint32
	// ProxyHeader: the login starts with a PROXY protocol v1 header naming
	// Client (the client's address, or what its own PROXY header named)
	// as the source of a connection to the backend's address.
	ProxyHeader bool
	Client      netip.AddrPort
	ClientLocal bool // the client is on a unix socket (its PROXY header said so)
	// started: Login began, so the server has heard from the client.
	started bool
}

// upstreamCaps are the client capabilities passed on to a backend:
// compression and TLS belong to each side of the proxy, and DEPRECATE_EOF
// is translated by the relay.
const upstreamCaps = (ServerCapabilities | PassthroughCapabilities) &^ (mysql.CLIENT_COMPRESS | mysql.CLIENT_SSL | mysql.CLIENT_DEPRECATE_EOF)

// PassthroughCapabilities are offered to a client, beside
// ServerCapabilities, when the backend offers them: CLIENT_SESSION_TRACK
// changes only what follows an OK's status and warnings. With passthrough
// the relay passes it on as it is; pooled connections have it too, and
// the relay cuts it out of OKs for a client that did not ask for it
// (Relay.UndoTrack). What the server reports is about the client's
// session: the proxy's own statements (resets, replays) are answered to
// the proxy.
const PassthroughCapabilities = mysql.CLIENT_SESSION_TRACK

// Login logs the client in at the backend: the client's handshake response
// is sent on (after a TLS upgrade when configured) and the authentication
// exchange relayed until the backend accepts (nil) or refuses (an
// *SQLError, not yet sent to the client). The client's capabilities
// decide the backend session's (CLIENT_FOUND_ROWS, CLIENT_INTERACTIVE,
// multi-statements), as on a direct connection.
func (u *Upstream) Login(client *PacketIO, hello *ClientHello) error {
	u.started = true
	caps := hello.Capabilities & upstreamCaps & u.Greeting.Capabilities
	h := *hello
	h.ExtCapabilities &= u.Greeting.ExtCapabilities & PassthroughExtCapabilities
	if err := u.respond(&h, caps); err != nil {
		return err
	}
	r := AuthRelay{Client: client, Server: u.IO, ClientTLS: hello.TLS, ServerTLS: u.TLS != nil, Salt: u.Greeting.Salt, Keys: u.Keys}
	err := r.Run()
	u.Status, u.OK = r.Status, r.OK
	return err
}

// respond sends the handshake response h, after the PROXY header and the
// TLS upgrade when they are due.
func (u *Upstream) respond(h *ClientHello, caps uint32) error {
	if u.ProxyHeader {
		if err := u.writeProxyHeader(); err != nil {
			return err
		}
	}
	if u.TLS != nil {
		if err := u.IO.WritePacketFlush(SSLRequest(h, caps)); err != nil {
			return &IOError{Side: BackendSide, Err: fmt.Errorf("ssl request: %w", err)}
		}
		if err := u.IO.upgradeClientTLS(u.TLS); err != nil {
			return &IOError{Side: BackendSide, Err: err}
		}
		caps |= mysql.CLIENT_SSL
	}
	if err := u.IO.WritePacketFlush(HandshakeResponse(h, caps)); err != nil {
		return &IOError{Side: BackendSide, Err: fmt.Errorf("handshake response: %w", err)}
	}
	return nil
}

// writeProxyHeader names the client to the server (buffered).
func (u *Upstream) writeProxyHeader() error {
	if !u.Client.IsValid() && !u.ClientLocal {
		return nil
	}
	hdr := ProxyHeaderV2Unix()
	if !u.ClientLocal {
		dst, _ := netip.ParseAddrPort(u.IO.Conn().RemoteAddr().String())
		hdr = ProxyHeaderV1(u.Client, dst)
	}
	if _, err := u.IO.w.Write(hdr); err != nil {
		return &IOError{Side: BackendSide, Err: fmt.Errorf("proxy header: %w", err)}
	}
	return nil
}

// abandonTimeout bounds what Abandon spends on the server.
const abandonTimeout = time.Second

// abandonedUser is the account Abandon logs in as; no server has it.
const abandonedUser = "pisa-proxy:abandoned-login"

// Abandon closes a backend connection whose client left, or failed, before
// it logged in. Closed bare, it would be a handshake error of the proxy's
// own address on the server, which blocks that address after
// max_connect_errors of them, and with it every client of the proxy (a
// balancer's TCP health checks get there within the hour). With a PROXY
// header the server is told the client's address and counts the error
// against it, as without the proxy. Without one the proxy finishes the
// login as an account no server has: a failed authentication, which the
// server does not count as a connection error.
func (u *Upstream) Abandon() {
	defer u.IO.Close()
	if u.started {
		return
	}
	_ = u.IO.Conn().SetDeadline(time.Now().Add(abandonTimeout))
	if u.ProxyHeader && (u.Client.IsValid() || u.ClientLocal) {
		if u.writeProxyHeader() == nil && u.IO.Flush() == nil {
			u.awaitClose()
		}
		return
	}
	salt, _ := NewSalt() // any 20 bytes: no password matches them
	h := &ClientHello{User: abandonedUser, Plugin: PluginNative, AuthResponse: salt, Collation: DefaultCollationID, MaxPacket: 1 << 24}
	if u.respond(h, upstreamCaps&u.Greeting.Capabilities&^mysql.CLIENT_CONNECT_WITH_DB) != nil {
		return
	}
	for range 3 { // an auth switch or two, then the refusal
		p, err := u.IO.ReadPacket(nil, 1<<16)
		if err != nil || len(p) == 0 || p[0] != mysql.EOF_HEADER {
			return
		}
		if u.IO.WritePacketFlush(salt) != nil {
			return
		}
	}
}

// awaitClose ends the proxy's side and waits (within the connection's
// deadline) for the server to close its own: then the server has counted
// the abandoned login, before the client's next attempt can reach it.
func (u *Upstream) awaitClose() {
	conn := u.IO.Conn()
	if tc, ok := conn.(*TimeoutConn); ok {
		conn = tc.Conn
	}
	cw, ok := conn.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	_, _ = io.Copy(io.Discard, conn)
}

// upgradeClientTLS performs a client-side TLS handshake and switches I/O
// onto it.
func (p *PacketIO) upgradeClientTLS(cfg *tls.Config) error {
	tc := tls.Client(p.conn, cfg)
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("tls handshake: %w", err)
	}
	p.conn, p.replies = tc, nil
	p.r.Reset(tc)
	p.w.Reset(tc)
	return nil
}

// fastAuthOK is caching_sha2_password's "fast authentication succeeded":
// the server's OK follows without an answer from the client.
func fastAuthOK(p []byte) bool {
	return len(p) == 2 && p[0] == mysql.MORE_DATE_HEADER && p[1] == mysql.CACHE_SHA2_FAST_AUTH
}

// fullAuth is caching_sha2_password's "perform full authentication": the
// client sends its password, in clear over TLS, else RSA-encrypted.
func fullAuth(p []byte) bool {
	return len(p) == 2 && p[0] == mysql.MORE_DATE_HEADER && p[1] == mysql.CACHE_SHA2_FULL_AUTH
}

// AuthRelay relays an authentication exchange between a client and a
// server, begun by the client's answer that was just sent to the server.
// Every packet from the server other than its final OK or ERR (an auth
// switch, more data of the plugin) goes to the client, whose answer goes
// back, with each side's own sequence numbers.
//
// Where caching_sha2_password's full authentication meets a client and a
// server connection of which only one is TLS, what the client sends is not
// what the server expects (the password in clear on one side, encrypted
// with the server's RSA key on the other): the relay translates, fetching
// the server's key, or lending the client the listener's key (Keys).
//
// Plugins whose server sends a packet that needs no answer, other than
// caching_sha2's fast-auth success, cannot pass (GSSAPI's last token):
// the relay would wait for the client until the login timeout.
type AuthRelay struct {
	Client, Server       *PacketIO
	ClientTLS, ServerTLS bool
	// Salt is the scramble the client answers to: the greeting's, then an
	// auth switch's.
	Salt []byte
	Keys *Authenticator
	// Status is the server status of the final OK; OK is that packet.
	Status uint16
	OK     []byte
}

// Run relays until the server's OK (nil) or ERR (an *SQLError, not sent
// to the client).
func (r *AuthRelay) Run() error {
	for {
		p, err := r.Server.ReadPacket(nil, maxHandshake)
		if err != nil {
			return &IOError{Side: BackendSide, Err: fmt.Errorf("auth: %w", err)}
		}
		if len(p) == 0 {
			return &IOError{Side: BackendSide, Err: errors.New("auth: empty packet")}
		}
		switch p[0] {
		case mysql.OK_HEADER:
			r.Status, r.OK = StatusOf(p), p
			return nil
		case mysql.ERR_HEADER:
			return ParseError(p)
		case mysql.EOF_HEADER: // an auth switch: plugin name, then its scramble
			if i := bytes.IndexByte(p, 0); i > 0 {
				r.Salt = bytes.TrimRight(p[i+1:], "\x00")
			}
		}
		if err := r.Client.WritePacketFlush(p); err != nil {
			return &IOError{Side: ClientSide, Err: fmt.Errorf("auth: %w", err)}
		}
		if fastAuthOK(p) {
			continue
		}
		resp, err := r.Client.ReadPacket(nil, maxAuthPacket)
		if err != nil {
			return &IOError{Side: ClientSide, Err: fmt.Errorf("auth: %w", err)}
		}
		if fullAuth(p) && r.ClientTLS != r.ServerTLS {
			if resp, err = r.translate(resp); err != nil {
				return err
			}
		}
		if err := r.Server.WritePacketFlush(resp); err != nil {
			return &IOError{Side: BackendSide, Err: fmt.Errorf("auth: %w", err)}
		}
	}
}

// translate turns the client's full-authentication answer into what the
// server's side of the proxy expects.
func (r *AuthRelay) translate(resp []byte) ([]byte, error) {
	if len(r.Salt) == 0 {
		// An auth switch without a scramble: the password is XORed with
		// it either way (an empty one divided by zero).
		return nil, &IOError{Side: BackendSide, Err: errors.New("auth: full authentication without a scramble")}
	}
	if r.ClientTLS { // the password in clear, for a server without TLS
		return r.encryptForServer(bytes.TrimRight(resp, "\x00"))
	}
	// A client without TLS, for a server with TLS: it asks for a key (ours)
	// and encrypts with it; the server takes the password in clear.
	plain, err := r.Keys.decryptAnswer(r.Client, resp, r.Salt)
	if err != nil {
		return nil, &IOError{Side: ClientSide, Err: fmt.Errorf("auth: %w", err)}
	}
	return append(plain, 0), nil
}

// encryptForServer asks the server for its RSA key and encrypts password
// with it, as a client without TLS does.
func (r *AuthRelay) encryptForServer(password []byte) ([]byte, error) {
	if err := r.Server.WritePacketFlush([]byte{requestPublicKey}); err != nil {
		return nil, &IOError{Side: BackendSide, Err: fmt.Errorf("auth: request public key: %w", err)}
	}
	p, err := r.Server.ReadPacket(nil, maxAuthPacket)
	if err != nil {
		return nil, &IOError{Side: BackendSide, Err: fmt.Errorf("auth: public key: %w", err)}
	}
	if len(p) > 0 && p[0] == mysql.ERR_HEADER {
		return nil, ParseError(p)
	}
	return encryptWithKey(bytes.TrimPrefix(p, []byte{mysql.MORE_DATE_HEADER}), string(password), r.Salt)
}

// encryptWithKey encrypts password for a server whose RSA public key is
// pemKey, as caching_sha2 and sha256_password clients without TLS do.
func encryptWithKey(pemKey []byte, password string, salt []byte) ([]byte, error) {
	if len(salt) == 0 {
		// The password is XORed with it: an empty one divides by zero.
		return nil, &IOError{Side: BackendSide, Err: errors.New("auth: full authentication without a scramble")}
	}
	block, _ := pem.Decode(pemKey)
	if block == nil {
		return nil, &IOError{Side: BackendSide, Err: errors.New("auth: the server's public key is not PEM")}
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	pub, ok := key.(*rsa.PublicKey)
	if err != nil || !ok {
		return nil, &IOError{Side: BackendSide, Err: fmt.Errorf("auth: the server's public key: %v", err)}
	}
	enc, err := mysql.EncryptPassword(password, salt, pub)
	if err != nil {
		return nil, fmt.Errorf("auth: encrypt password: %w", err)
	}
	return enc, nil
}
