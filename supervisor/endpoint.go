package supervisor

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"pisanix.io/pisanix/backend"
	"pisanix.io/pisanix/config"
)

// endpoint turns a [[mysql.node]] into a dialable backend endpoint.
func endpoint(n config.Node, l config.Listener) (*backend.Endpoint, error) {
	ep := &backend.Endpoint{
		Name: n.Name, Addr: n.Addr(), User: n.User, Password: n.Password, DB: n.DB,
		DialTimeout: l.DialTimeout.D(), ReadTimeout: l.BackendReadTimeout.D(),
		ProxyProtocol: n.ProxyProtocol,
	}
	switch n.TLS {
	case "", "off":
		return ep, nil
	case "skip-verify":
		ep.TLS = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the user asked for it by name
		return ep, nil
	}
	cfg := &tls.Config{ServerName: n.Host, MinVersion: tls.VersionTLS12}
	if n.TLSCA != "" {
		pem, err := os.ReadFile(n.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("mysql.node %s: tls_ca: %w", n.Name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mysql.node %s: tls_ca %s: no certificate found", n.Name, n.TLSCA)
		}
		cfg.RootCAs = pool
	}
	ep.TLS = cfg
	ep.TLSPreferred = n.TLS == "preferred"
	return ep, nil
}
