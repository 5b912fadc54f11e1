package testenv

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"
)

// MySQL8 plays a MySQL 8 server whose accounts (user -> password) use
// caching_sha2_password, which MariaDB cannot: go-mysql's server package,
// answering every query with an error. As MySQL 8, it asks a user for full
// authentication until one succeeded, then takes the fast scramble. It returns the server's address;
// it stops at the test's end. Real servers are used everywhere else.
func MySQL8(t testing.TB, accounts map[string]string) string {
	t.Helper()
	cert, pub, err := rsaCertificate()
	if err != nil {
		t.Fatal(err)
	}
	// The certificate's RSA key serves TLS and RSA full authentication.
	srv := server.NewServer("8.0.36", mysql.DEFAULT_COLLATION_ID, mysql.AUTH_CACHING_SHA2_PASSWORD, pub,
		&tls.Config{Certificates: []tls.Certificate{cert}})
	mem := server.NewInMemoryProvider()
	for u, p := range accounts {
		mem.AddUser(u, p)
	}
	users := cachingProvider{mem}
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
			go serveMySQL8(srv, users, c)
		}
	}()
	return ln.Addr().String()
}

// cachingProvider hides the InMemoryProvider's type, which go-mysql
// authenticates by the fast path always: with another provider it behaves
// as MySQL 8, full authentication until a login put the user in its cache.
type cachingProvider struct{ *server.InMemoryProvider }

func serveMySQL8(srv *server.Server, users server.CredentialProvider, c net.Conn) {
	conn, err := srv.NewCustomizedConn(c, users, server.EmptyHandler{})
	if err != nil {
		c.Close()
		return
	}
	for !conn.Closed() && conn.HandleCommand() == nil {
	}
}

// rsaCertificate makes a self-signed RSA certificate for 127.0.0.1 and
// its public key in PEM: MySQL's RSA key exchange needs an RSA key, where
// WriteTLSFiles makes ECDSA ones.
func rsaCertificate() (tls.Certificate, []byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mysql8"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), nil
}
