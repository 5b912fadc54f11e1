package wire

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"runtime"
	"sync"

	"github.com/go-mysql-org/go-mysql/mysql"
	"pisanix.io/pisanix/credential"
)

// Plugin names.
const (
	PluginNative      = mysql.AUTH_NATIVE_PASSWORD
	PluginCachingSHA2 = mysql.AUTH_CACHING_SHA2_PASSWORD
)

// maxAuthPacket bounds auth-phase packets (an RSA-encrypted password is 256-512 bytes).
const maxAuthPacket = 4096

// maxCachedUsers bounds the caching_sha2 fast-auth cache.
const maxCachedUsers = 10000

// Authenticator verifies application users. It is shared by all sessions of
// one listener and safe for concurrent use.
//
// caching_sha2_password behaves as in MySQL 8: a user's first login (or the
// first after a password change) goes through full authentication, in
// cleartext over TLS or with RSA key exchange otherwise; later logins use
// the fast scramble, checked against SHA256(SHA256(password)) kept from
// that full authentication. A configured hash (native or caching_sha2)
// serves full authentication; mysql_native_password needs the clear
// password or its native hash.
type Authenticator struct {
	// Plugin is the account plugin; clients answering with another are switched.
	Plugin string
	// Lookup returns the password of user as configured: in clear text or
	// one of the hash forms credential.Parse reads.
	Lookup func(user string) (password string, ok bool)

	mu    sync.Mutex
	cache map[string]fastEntry // user -> caching_sha2 fast-auth key, after a full auth

	keyOnce sync.Once
	key     *rsa.PrivateKey
	keyPEM  []byte
	keyErr  error
	// slots bounds the CPU-heavy steps of full authentications running at
	// once (RSA decryptions, SHA-256-crypt of a caching_sha2 hash: a
	// millisecond or two each, and anyone may ask for one): a flood
	// queues here instead of taking every core.
	slotsOnce sync.Once
	slots     chan struct{}
}

// Exchange carries the state of one login.
type Exchange struct {
	User       string
	Host       string
	Plugin     string // the client's plugin in its response
	Response   []byte
	Salt       []byte
	TLS        bool
	SwitchSalt bool // COM_CHANGE_USER: always switch with a fresh salt
}

// Authenticate completes the auth phase on p. It returns an *SQLError for
// bad credentials (ER_ACCESS_DENIED_ERROR, revealing nothing else) and other
// errors for I/O or protocol failures.
func (a *Authenticator) Authenticate(p *PacketIO, ex Exchange) error {
	pw, known := a.lookup(ex.User)
	plugin := ex.Plugin
	if plugin == "" {
		plugin = PluginNative
	}
	if plugin != a.Plugin || ex.SwitchSalt {
		if ex.SwitchSalt {
			salt, err := NewSalt()
			if err != nil {
				return err
			}
			ex.Salt = salt
		}
		if err := p.WritePacketFlush(AuthSwitchRequest(a.Plugin, ex.Salt)); err != nil {
			return fmt.Errorf("auth switch: %w", err)
		}
		resp, err := p.ReadPacket(nil, maxAuthPacket)
		if err != nil {
			return fmt.Errorf("auth switch response: %w", err)
		}
		plugin, ex.Response = a.Plugin, resp
	}
	var ok bool
	var err error
	switch plugin {
	case PluginNative:
		ok = known && pw.cred.CheckNative(ex.Salt, ex.Response)
	case PluginCachingSHA2:
		ok, err = a.cachingSHA2(p, ex, pw, known)
	}
	if err != nil {
		return err
	}
	if !ok {
		return AccessDenied(ex.User, ex.Host, len(ex.Response) > 0)
	}
	return nil
}

// AccessDenied is MySQL's ER_ACCESS_DENIED_ERROR.
func AccessDenied(user, host string, usingPassword bool) *SQLError {
	yes := "NO"
	if usingPassword {
		yes = "YES"
	}
	return NewError(mysql.ER_ACCESS_DENIED_ERROR, fmt.Sprintf("Access denied for user '%s'@'%s' (using password: %s)", user, host, yes))
}

// storedPassword is a user's password as configured (identifying it in
// the fast-auth cache) and as read.
type storedPassword struct {
	configured string
	cred       credential.Credential
}

// lookup finds user's password; one that does not parse (config
// validation refuses those) lets nobody in.
func (a *Authenticator) lookup(user string) (storedPassword, bool) {
	s, ok := a.Lookup(user)
	if !ok {
		return storedPassword{}, false
	}
	c, err := credential.Parse(s)
	if err != nil {
		return storedPassword{}, false
	}
	return storedPassword{configured: s, cred: c}, true
}

func (a *Authenticator) cachingSHA2(p *PacketIO, ex Exchange, pw storedPassword, known bool) (bool, error) {
	if len(ex.Response) == 0 {
		return known && pw.cred.Empty(), nil
	}
	if key, ok := a.cached(ex.User, pw.configured); ok && known {
		if key.CheckFast(ex.Salt, ex.Response) {
			return true, p.WritePacketFlush([]byte{mysql.MORE_DATE_HEADER, mysql.CACHE_SHA2_FAST_AUTH})
		}
		return false, nil
	}
	if err := p.WritePacketFlush([]byte{mysql.MORE_DATE_HEADER, mysql.CACHE_SHA2_FULL_AUTH}); err != nil {
		return false, fmt.Errorf("request full auth: %w", err)
	}
	plain, err := a.fullAuthPassword(p, ex)
	if err != nil {
		return false, err
	}
	ok := known && a.checkClear(pw.cred, plain)
	if ok {
		a.remember(ex.User, pw.configured, credential.NewFastKey(plain))
	}
	return ok, nil
}

// fullAuthPassword reads the cleartext password: sent as is over TLS, or
// RSA-OAEP encrypted (after the client asked for our public key) otherwise.
func (a *Authenticator) fullAuthPassword(p *PacketIO, ex Exchange) ([]byte, error) {
	resp, err := p.ReadPacket(nil, maxAuthPacket)
	if err != nil {
		return nil, fmt.Errorf("full auth: %w", err)
	}
	if ex.TLS {
		return bytes.TrimRight(resp, "\x00"), nil
	}
	return a.decryptAnswer(p, resp, ex.Salt)
}

// decryptAnswer reads the password of a full authentication without TLS
// from the client's answer resp: encrypted with the listener's key, which
// the client may first ask for (then it is sent and the next answer read).
func (a *Authenticator) decryptAnswer(p *PacketIO, resp, salt []byte) ([]byte, error) {
	if len(resp) == 1 && resp[0] == requestPublicKey {
		_, pemBytes, err := a.rsaKey()
		if err != nil {
			return nil, err
		}
		if err := p.WritePacketFlush(append([]byte{mysql.MORE_DATE_HEADER}, pemBytes...)); err != nil {
			return nil, fmt.Errorf("send public key: %w", err)
		}
		if resp, err = p.ReadPacket(nil, maxAuthPacket); err != nil {
			return nil, fmt.Errorf("full auth: %w", err)
		}
	}
	return a.decrypt(resp, salt)
}

// requestPublicKey is a client's request for the server's RSA key in
// caching_sha2's full authentication.
const requestPublicKey = 2

// decrypt reads a password encrypted with the listener's RSA key (and
// XORed with the scramble); one that does not decrypt is nil, which no
// password matches.
func (a *Authenticator) decrypt(enc, salt []byte) ([]byte, error) {
	key, _, err := a.rsaKey()
	if err != nil {
		return nil, err
	}
	var plain []byte
	a.heavy(func() { plain, err = rsa.DecryptOAEP(sha1.New(), rand.Reader, key, enc, nil) })
	if err != nil {
		return nil, nil
	}
	for i := range plain {
		plain[i] ^= salt[i%len(salt)]
	}
	return bytes.TrimRight(plain, "\x00"), nil
}

func (a *Authenticator) rsaKey() (*rsa.PrivateKey, []byte, error) {
	a.keyOnce.Do(func() {
		a.key, a.keyErr = rsa.GenerateKey(rand.Reader, 2048)
		if a.keyErr != nil {
			return
		}
		der, err := x509.MarshalPKIXPublicKey(&a.key.PublicKey)
		if err != nil {
			a.keyErr = err
			return
		}
		a.keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	})
	if a.keyErr != nil {
		return nil, nil, fmt.Errorf("rsa key: %w", a.keyErr)
	}
	return a.key, a.keyPEM, nil
}

// checkClear checks a full authentication's clear password; against a
// caching_sha2 hash (thousands of SHA-256 rounds) it takes a slot.
func (a *Authenticator) checkClear(c credential.Credential, plain []byte) bool {
	if c.Kind() != credential.CachingSHA2Hash {
		return c.CheckClear(plain)
	}
	var ok bool
	a.heavy(func() { ok = c.CheckClear(plain) })
	return ok
}

// heavy runs f, a CPU-heavy step of a full authentication, in one of the
// slots: at most half the CPUs are at such work at once.
func (a *Authenticator) heavy(f func()) {
	a.slotsOnce.Do(func() { a.slots = make(chan struct{}, max(1, runtime.NumCPU()/2)) })
	a.slots <- struct{}{}
	defer func() { <-a.slots }()
	f()
}

// fastEntry is a user's fast-auth key and the configured password it was
// learnt under: a changed password needs a full authentication again.
type fastEntry struct {
	configured string
	key        credential.FastKey
}

func (a *Authenticator) cached(user, configured string) (credential.FastKey, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.cache[user]
	return e.key, ok && e.configured == configured
}

func (a *Authenticator) remember(user, configured string, key credential.FastKey) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cache == nil {
		a.cache = map[string]fastEntry{}
	}
	if len(a.cache) >= maxCachedUsers {
		clear(a.cache)
	}
	a.cache[user] = fastEntry{configured: configured, key: key}
}
