package backend

import (
	"context"
	"strings"
	"testing"
	"time"

	"pisanix.io/pisanix/internal/testenv"
)

func TestDialMySQL8CachingSHA2(t *testing.T) {
	addr := testenv.MySQL8(t, map[string]string{"app8": "pw8"})
	ep := &Endpoint{Name: "mysql8", Addr: addr, User: "app8", Password: "pw8", DialTimeout: 3 * time.Second}
	// First: full authentication with RSA key exchange; then the fast path.
	for i := range 2 {
		c, err := Dial(context.Background(), ep)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		if err := c.Ping(); err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
		c.Close()
	}
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
