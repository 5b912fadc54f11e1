package backend

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"
	"pisanix.io/pisanix/internal/testenv"
)

// mysql8 plays a MySQL 8 server whose account uses caching_sha2_password,
// which MariaDB cannot (go-mysql's server package; a real server is used
// everywhere else).
func mysql8(t *testing.T) string {
	t.Helper()
	files, err := testenv.WriteTLSFiles(t.TempDir(), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := files.ServerCertificate()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(leaf.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	// The TLS config only lends its key for RSA full auth; the proxy's
	// backend connection does not use TLS here.
	srv := server.NewServer("8.0.36", mysql.DEFAULT_COLLATION_ID, mysql.AUTH_CACHING_SHA2_PASSWORD, pub,
		&tls.Config{Certificates: []tls.Certificate{cert}})
	users := server.NewInMemoryProvider()
	users.AddUser("app8", "pw8")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				conn, err := srv.NewCustomizedConn(c, users, server.EmptyHandler{})
				if err != nil {
					c.Close()
					return
				}
				for !conn.Closed() && conn.HandleCommand() == nil {
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestDialMySQL8CachingSHA2(t *testing.T) {
	addr := mysql8(t)
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
