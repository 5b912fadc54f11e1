package wire

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// ServerConfig is what the server side of a handshake needs.
type ServerConfig struct {
	Version     string
	ConnID      uint32
	TLS         *tls.Config // nil: TLS not offered
	TLSRequired bool
	Auth        *Authenticator
	RemoteHost  string
	// Upstream, when set, authenticates the client in Auth's place (auth
	// passthrough): the greeting carries the backend's scramble, plugin
	// and collation, and the backend decides.
	Upstream *Upstream
	// ProxyHeader: the client connects from a trusted network and may
	// start with a PROXY protocol header; the address it names is then the
	// client's (RemoteHost, Peer, Upstream.Client).
	ProxyHeader bool
	// Peer, when set, receives the client a PROXY header named.
	Peer *ProxySource
	// Admit, when set, checks the client's address (the PROXY header's
	// when one came) before it authenticates; an error is its answer.
	Admit func(host string) *SQLError
	// Capabilities (of PassthroughCapabilities) and ExtCapabilities are
	// offered without an Upstream: those of the pooled connections (the
	// relay undoes them for a client that does not take them).
	Capabilities, ExtCapabilities uint32
	// Failed, when set, is told of a client address refused for its
	// credentials or a malformed handshake, before the client is answered
	// (so that its next attempt already finds it counted).
	Failed func(host string)
}

// maxHandshake bounds the handshake response (attributes included).
const maxHandshake = 64 * 1024

// Accept runs the server side of the connection phase on p: greeting,
// optional TLS upgrade and authentication. It does not write the final OK:
// the caller first readies a backend, so that a failure there still reaches
// the client as the answer to its login. A client that fails here gets an
// ERR packet; the returned error says why.
func Accept(p *PacketIO, cfg ServerConfig) (*ClientHello, error) {
	g, err := greeting(cfg)
	if err != nil {
		return nil, err
	}
	salt, caps := g.Salt, g.Capabilities
	p.Seq = 0
	if err := p.WritePacketFlush(g.Encode()); err != nil {
		return nil, fmt.Errorf("write greeting: %w", err)
	}
	if err := proxyHeader(p, &cfg); err != nil {
		return nil, err
	}
	resp, err := p.ReadPacket(nil, maxHandshake)
	if err != nil {
		if cfg.Peer != nil && cfg.Peer.Addr.IsValid() {
			// A client a PROXY header named that leaves without
			// logging in is a connection error of its address, as on
			// MariaDB; a balancer's health check names no client.
			cfg.failed()
		}
		return nil, fmt.Errorf("read handshake response: %w", err)
	}
	if cfg.Admit != nil {
		// Answered after the client's response, which it writes before
		// reading: an answer before that could be lost to a reset.
		if e := cfg.Admit(cfg.RemoteHost); e != nil {
			return nil, reject(p, e, e)
		}
	}
	usedTLS := false
	if IsSSLRequest(resp) && cfg.TLS != nil {
		if err := p.UpgradeTLS(cfg.TLS); err != nil {
			return nil, err
		}
		usedTLS = true
		if resp, err = p.ReadPacket(nil, maxHandshake); err != nil {
			return nil, fmt.Errorf("read handshake response after tls: %w", err)
		}
	}
	hello, err := ParseHandshakeResponse(resp)
	if err != nil {
		cfg.failed()
		return nil, reject(p, NewError(mysql.ER_HANDSHAKE_ERROR, "Bad handshake"), err)
	}
	hello.TLS = usedTLS
	hello.Capabilities &= caps
	hello.ExtCapabilities &= g.ExtCapabilities
	if cfg.TLSRequired && !usedTLS {
		e := NewError(errSecureTransportRequired, "Connections using insecure transport are prohibited while --require_secure_transport=ON.")
		return nil, reject(p, e, errors.New("client refused TLS"))
	}
	if cfg.Upstream != nil {
		err = cfg.Upstream.Login(p, hello)
	} else {
		err = cfg.Auth.Authenticate(p, Exchange{
			User: hello.User, Host: cfg.RemoteHost, Plugin: hello.Plugin,
			Response: hello.AuthResponse, Salt: salt, TLS: usedTLS,
		})
	}
	var sqlErr *SQLError
	if errors.As(err, &sqlErr) {
		if sqlErr.Code == mysql.ER_ACCESS_DENIED_ERROR {
			cfg.failed()
		}
		return nil, reject(p, sqlErr, err)
	}
	if err != nil {
		return nil, err
	}
	return hello, nil
}

// proxyHeader reads a trusted client's PROXY protocol header, if it sent
// one, and makes its address the client's.
func proxyHeader(p *PacketIO, cfg *ServerConfig) error {
	if !cfg.ProxyHeader {
		return nil
	}
	src, found, err := p.ReadProxyHeader()
	switch {
	case err != nil && found:
		cfg.failed()
		// MariaDB's answer, word for word: clients test for it.
		return reject(p, NewError(mysql.ER_UNKNOWN_ERROR, "Failed to parse proxy header"), err)
	case err != nil:
		return fmt.Errorf("read handshake response: %w", err)
	case src.Local:
		cfg.RemoteHost = "localhost"
	case src.Addr.IsValid():
		cfg.RemoteHost = src.Addr.Addr().String()
	default:
		return nil // none, or one naming no client (a balancer's health check)
	}
	if cfg.Peer != nil {
		*cfg.Peer = src
	}
	if cfg.Upstream != nil {
		cfg.Upstream.Client, cfg.Upstream.ClientLocal = src.Addr, src.Local
	}
	return nil
}

// greeting decides what the greeting offers: the proxy's own scramble and
// the account plugin, or with an upstream the backend's, and of the
// proxy's capabilities those the backend has too (compression and TLS are
// the proxy's own, towards the client), with MariaDB's extended metadata.
func greeting(cfg ServerConfig) (*Greeting, error) {
	g := &Greeting{Version: cfg.Version, ConnID: cfg.ConnID, Capabilities: ServerCapabilities,
		Collation: DefaultCollationID, Status: mysql.SERVER_STATUS_AUTOCOMMIT}
	if cfg.TLS != nil {
		g.Capabilities |= mysql.CLIENT_SSL
	}
	if u := cfg.Upstream; u != nil {
		b := u.Greeting
		g.Salt, g.Plugin, g.Collation = b.Salt, cmp.Or(b.Plugin, PluginNative), b.Collation
		g.Capabilities = (g.Capabilities | PassthroughCapabilities) & (b.Capabilities | mysql.CLIENT_COMPRESS | mysql.CLIENT_SSL)
		g.ExtCapabilities = b.ExtCapabilities & PassthroughExtCapabilities
		return g, nil
	}
	salt, err := NewSalt()
	g.Salt, g.Plugin, g.ExtCapabilities = salt, cfg.Auth.Plugin, cfg.ExtCapabilities
	g.Capabilities |= cfg.Capabilities & PassthroughCapabilities
	if g.ExtCapabilities != 0 {
		// CLIENT_MYSQL unset: MariaDB's clients then read the extended
		// capabilities, and answer with theirs.
		g.Capabilities &^= mysql.CLIENT_LONG_PASSWORD
	}
	return g, err
}

func (cfg *ServerConfig) failed() {
	if cfg.Failed != nil {
		cfg.Failed(cfg.RemoteHost)
	}
}

func reject(p *PacketIO, e *SQLError, cause error) error {
	_ = p.WriteError(e)
	if cause == error(e) {
		return e
	}
	return fmt.Errorf("%w: %v", e, cause)
}

// errSecureTransportRequired is MySQL's ER_SECURE_TRANSPORT_REQUIRED (3159,
// SQLSTATE HY000), missing from go-mysql's table.
const errSecureTransportRequired = 3159
