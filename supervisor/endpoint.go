package supervisor

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"pisanix.io/pisanix/backend"
	"pisanix.io/pisanix/config"
)

// endpoint turns a [[mysql.node]] into a dialable backend endpoint.
func endpoint(n config.Node, l config.Listener) (*backend.Endpoint, error) {
	ep := &backend.Endpoint{
		Name: n.Name, Addr: n.Addr(), User: n.User, Password: n.ResolvedPassword(), DB: n.DB,
		DialTimeout: l.DialTimeout.D(), ReadTimeout: l.BackendReadTimeout.D(),
		ProxyProtocol: n.ProxyProtocol,
		// Without multiplexing a session's statements are its own.
		CacheMetadata: !l.Multiplex,
	}
	switch n.TLS {
	case "", config.NodeTLSOff:
		return ep, nil
	case config.NodeTLSSkipVerify:
		ep.TLS = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the user asked for it by name
		return ep, nil
	}
	roots, err := nodeRoots(n)
	if err != nil {
		return nil, err
	}
	// preferred, required and verify-full: chain and host name.
	cfg := &tls.Config{ServerName: n.Host, MinVersion: tls.VersionTLS12, RootCAs: roots}
	if n.TLS == config.NodeTLSVerifyCA {
		// The chain only: crypto/tls verifies both or neither, so its
		// check is off and verifyChain does the one wanted.
		cfg.InsecureSkipVerify = true //nolint:gosec // VerifyConnection verifies the chain
		cfg.VerifyConnection = verifyChain(roots)
	}
	ep.TLS = cfg
	ep.TLSPreferred = n.TLS == config.NodeTLSPreferred
	return ep, nil
}

// nodeRoots are the CAs the node's certificate must chain to: tls_ca's,
// or nil for the system's.
func nodeRoots(n config.Node) (*x509.CertPool, error) {
	if n.TLSCA == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(n.TLSCA)
	if err != nil {
		return nil, fmt.Errorf("mysql.node %s: tls_ca: %w", n.Name, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("mysql.node %s: tls_ca %s: no certificate found", n.Name, n.TLSCA)
	}
	return pool, nil
}

// verifyChain checks that the server's certificate chains to roots (nil:
// the system's) for server authentication, whatever names it holds:
// tls = "verify-ca".
func verifyChain(roots *x509.CertPool) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("verify-ca: the server sent no certificate")
		}
		opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
		if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
			return fmt.Errorf("verify-ca: %w", err)
		}
		return nil
	}
}
