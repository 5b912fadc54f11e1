package configclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// DefaultTokenFile is where the injected sidecar (and the daemon's
// DaemonSet) mount the projected ServiceAccount token for the controller.
const DefaultTokenFile = "/var/run/secrets/pisanix.io/token"

// Credentials are how a proxy or daemon proves who it is to pisa-controller
// and checks that it talks to pisa-controller.
type Credentials struct {
	// TokenFile holds a projected ServiceAccount token; it is re-read on
	// every request, because the kubelet rotates it in place.
	TokenFile string
	// CA (PEM) verifies the controller's certificate; without it the
	// system roots do (for https URLs).
	CA []byte
	// ServerName is the name checked in the controller's certificate when
	// it differs from the host dialled (e.g. the Service's DNS name when
	// the host is an IP).
	ServerName string
}

// LoadCredentials gathers the CA (as PEM, or from a file: not both) and
// the token file; without one named, the default token file is used when
// it exists, so that a program outside Kubernetes still runs against a
// controller with --config-auth=none.
func LoadCredentials(caPEM, caFile, tokenFile string) (Credentials, error) {
	c := Credentials{TokenFile: tokenFile}
	switch {
	case caPEM != "" && caFile != "":
		return c, errors.New("give the controller CA as PEM or as a file, not both")
	case caFile != "":
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return c, fmt.Errorf("controller CA: %w", err)
		}
		c.CA = pem
	case caPEM != "":
		c.CA = []byte(caPEM)
	}
	if c.TokenFile == "" {
		if _, err := os.Stat(DefaultTokenFile); err == nil {
			c.TokenFile = DefaultTokenFile
		}
	}
	return c, nil
}

// HTTPClient returns a client that sends the token and verifies the
// controller's certificate.
func (c Credentials) HTTPClient() (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if len(c.CA) > 0 || c.ServerName != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
		if len(c.CA) > 0 {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(c.CA) {
				return nil, errors.New("controller CA: no PEM certificate found")
			}
			cfg.RootCAs = pool
		}
		tr.TLSClientConfig = cfg
	}
	var rt http.RoundTripper = tr
	if c.TokenFile != "" {
		rt = bearer{file: c.TokenFile, next: tr}
	}
	return &http.Client{Transport: rt}, nil
}

// bearer adds the token from file to every request.
type bearer struct {
	file string
	next http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	tok, err := os.ReadFile(b.file)
	if err != nil {
		return nil, fmt.Errorf("controller token: %w", err)
	}
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	return b.next.RoundTrip(r)
}
