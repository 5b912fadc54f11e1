package wire

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// This file is the client side of a connection phase with a password the
// proxy holds: how its pools log in to a backend. go-mysql's client is
// passed over for this because it cannot ask for MariaDB's extended
// capabilities (it writes zeros where they go), and without them a pooled
// connection could not serve a client that asked for extended metadata,
// progress reports or bulk execution. Each plugin's arithmetic is
// go-mysql's (mysql.CalcPassword and friends).

// Credentials are what LoginAs logs in with.
type Credentials struct {
	User, Password, DB string
	// Capabilities are the client flags to ask for beyond those the
	// exchange itself needs; only those the server offers are sent.
	Capabilities uint32
	// ExtCapabilities are MariaDB's, likewise.
	ExtCapabilities uint32
	Attributes      map[string]string
}

// loginCaps are the client flags every login uses (when offered).
const loginCaps = mysql.CLIENT_PROTOCOL_41 | mysql.CLIENT_SECURE_CONNECTION | mysql.CLIENT_TRANSACTIONS |
	mysql.CLIENT_PLUGIN_AUTH | mysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | mysql.CLIENT_LONG_FLAG

// LoginAs logs in to the greeted server as c: the handshake response
// (after the TLS upgrade when u.TLS is set), then the plugin exchange,
// auth switches included, until the server's OK (nil) or ERR (an
// *SQLError). Status and the negotiated extended capabilities are in u
// afterwards.
func (u *Upstream) LoginAs(c *Credentials) error {
	u.started = true
	g := u.Greeting
	caps := (loginCaps | c.Capabilities) & g.Capabilities
	if c.DB != "" {
		caps |= mysql.CLIENT_CONNECT_WITH_DB
	}
	if g.ExtCapabilities == 0 {
		// CLIENT_MYSQL: a MariaDB server reads extended capabilities only
		// from a client that leaves it unset.
		caps |= mysql.CLIENT_LONG_PASSWORD & g.Capabilities
	}
	a := authAnswerer{password: c.Password, tls: u.TLS != nil, io: u.IO}
	plugin := g.Plugin
	if !a.knows(plugin) {
		plugin = PluginNative // the server switches us to the account's
	}
	resp, err := a.answer(plugin, g.Salt)
	if err != nil {
		return err
	}
	h := &ClientHello{
		Capabilities: caps, ExtCapabilities: c.ExtCapabilities & g.ExtCapabilities,
		Collation: DefaultCollationID, User: c.User, AuthResponse: resp, DB: c.DB,
		Plugin: plugin, Attributes: c.Attributes,
	}
	if err := u.respond(h, caps); err != nil {
		return err
	}
	u.Capabilities, u.ExtCapabilities = caps, h.ExtCapabilities
	return a.finish(u, plugin, g.Salt)
}

// authAnswerer computes a client's answers for the plugins go-mysql's
// client knows.
type authAnswerer struct {
	password string
	tls      bool
	io       *PacketIO
}

func (a *authAnswerer) knows(plugin string) bool {
	switch plugin {
	case PluginNative, PluginCachingSHA2, mysql.AUTH_SHA256_PASSWORD, mysql.AUTH_MARIADB_ED25519:
		return true
	}
	return false
}

// answer is the first answer to plugin's challenge salt.
func (a *authAnswerer) answer(plugin string, salt []byte) ([]byte, error) {
	switch plugin {
	case PluginNative:
		if len(salt) < 20 {
			return nil, authErr(errors.New("mysql_native_password scramble shorter than 20 bytes"))
		}
		return mysql.CalcPassword(salt[:20], []byte(a.password)), nil
	case PluginCachingSHA2:
		return mysql.CalcCachingSha2Password(salt, a.password), nil
	case mysql.AUTH_SHA256_PASSWORD:
		switch {
		case a.password == "":
			return []byte{0}, nil
		case a.tls:
			return append([]byte(a.password), 0), nil
		}
		return []byte{1}, nil // asks for the server's public key
	case mysql.AUTH_MARIADB_ED25519:
		r, err := mysql.CalcEd25519Password(salt, a.password)
		if err != nil {
			return nil, authErr(fmt.Errorf("client_ed25519: %w", err))
		}
		return r, nil
	case mysql.AUTH_CLEAR_PASSWORD:
		if !a.tls {
			// Never a password in clear over plaintext because a server
			// asked for it.
			return nil, authErr(errors.New("the server asks for the password in clear (mysql_clear_password) on a connection without TLS; give the node tls"))
		}
		return append([]byte(a.password), 0), nil
	}
	return nil, authErr(fmt.Errorf("the server asks for authentication plugin %q, which pisa-proxy does not support towards backends", plugin))
}

// finish reads the server's verdict, answering auth switches and the
// plugins' further requests.
func (a *authAnswerer) finish(u *Upstream, plugin string, salt []byte) error {
	for switches := 0; ; {
		p, err := a.io.ReadPacket(nil, maxAuthPacket)
		if err != nil {
			return &IOError{Side: BackendSide, Err: fmt.Errorf("auth: %w", err)}
		}
		if len(p) == 0 {
			return authErr(errors.New("empty packet"))
		}
		var resp []byte
		switch {
		case p[0] == mysql.OK_HEADER:
			u.Status, u.OK = StatusOf(p), p
			return nil
		case p[0] == mysql.ERR_HEADER:
			return ParseError(p)
		case p[0] == mysql.EOF_HEADER: // an auth switch: plugin name, then its scramble
			if switches++; switches > 1 {
				return authErr(errors.New("the server switched plugins twice"))
			}
			name, rest, _ := bytes.Cut(p[1:], []byte{0})
			plugin, salt = string(name), bytes.TrimRight(rest, "\x00")
			if resp, err = a.answer(plugin, salt); err != nil {
				return err
			}
		case fastAuthOK(p):
			continue
		case fullAuth(p) && plugin == PluginCachingSHA2 && a.tls:
			resp = append([]byte(a.password), 0)
		case fullAuth(p) && plugin == PluginCachingSHA2:
			r := AuthRelay{Server: a.io, Salt: salt}
			if resp, err = r.encryptForServer([]byte(a.password)); err != nil {
				return err
			}
		case p[0] == mysql.MORE_DATE_HEADER && plugin == mysql.AUTH_SHA256_PASSWORD:
			if resp, err = encryptWithKey(p[1:], a.password, salt); err != nil {
				return err
			}
		default:
			return authErr(fmt.Errorf("unexpected packet %#x from plugin %s", p[0], plugin))
		}
		if err := a.io.WritePacketFlush(resp); err != nil {
			return &IOError{Side: BackendSide, Err: fmt.Errorf("auth: %w", err)}
		}
	}
}

func authErr(err error) error {
	return &IOError{Side: BackendSide, Err: fmt.Errorf("auth: %w", err)}
}
