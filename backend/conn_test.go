package backend

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"pisanix.io/pisanix/internal/testenv"
)

func TestDialMySQL8CachingSHA2(t *testing.T) {
	addr := testenv.MySQL8(t, map[string]string{"app8": "pw8", "tls8": "pw8"})
	ep := &Endpoint{Name: "mysql8", Addr: addr, User: "app8", Password: "pw8", DialTimeout: 3 * time.Second}
	// First: full authentication with RSA key exchange; then the fast path.
	dialTwice(t, ep)
	// Over TLS, full authentication sends the password in clear.
	tlsEP := *ep
	tlsEP.TLS = &tls.Config{InsecureSkipVerify: true} // the fake's self-signed certificate
	tlsEP.User = "tls8"
	dialTwice(t, &tlsEP)
	bad := *ep
	bad.Password = "wrong"
	_, err := Dial(context.Background(), &bad)
	if err == nil || !strings.Contains(err.Error(), "1045") {
		t.Fatalf("wrong password: want 1045, got %v", err)
	}
	if !strings.Contains(err.Error(), "mysql8") {
		t.Fatalf("dial errors must name the node: %v", err)
	}
}

func dialTwice(t *testing.T, ep *Endpoint) {
	t.Helper()
	for i := range 2 {
		c, err := Dial(context.Background(), ep)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		if err := c.Ping(); err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
		if c.ServerVersion != "8.0.36" || c.ExtCapabilities != 0 {
			t.Fatalf("dial %d: version %q, MariaDB capabilities %#x", i, c.ServerVersion, c.ExtCapabilities)
		}
		c.Close()
	}
}
