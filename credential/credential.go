// Package credential reads an application user's password as configured —
// in clear text, or as the hash MySQL keeps in mysql.user's
// authentication_string — and checks what a client sends against it: the
// mysql_native_password scramble, the clear password of caching_sha2's
// full authentication, and caching_sha2's fast scramble.
//
// Forms (see Parse):
//
//   - "*" and 40 hex digits: mysql_native_password's SHA1(SHA1(password)).
//     It verifies the native scramble and, over caching_sha2, the clear
//     password of a full authentication.
//   - "$A$" and three hex digits (rounds / 1000), "$", a 20-byte salt and a
//     43-character digest, 70 bytes: caching_sha2_password's SHA-256-crypt
//     hash. MySQL shows it with SELECT HEX(authentication_string) (its salt
//     is not printable), so "0x" followed by those 140 hex digits is read
//     too. It verifies the clear password of a full authentication only:
//     it holds nothing a native scramble can be checked against.
//   - anything else: the password in clear text.
//
// SHA-256-crypt with MySQL's 20-byte salt is TiDB's implementation
// (github.com/pingcap/tidb/pkg/parser/auth, already a dependency through
// the SQL parser); the tests check it against a hash MySQL 8 made.
package credential

import (
	"bytes"
	"crypto/sha1" //nolint:gosec // mysql_native_password is defined with SHA-1
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/pingcap/tidb/pkg/parser/auth"
	"github.com/pingcap/tidb/pkg/parser/mysql"
)

// Kind is the form a password was given in.
type Kind uint8

const (
	// Clear is a password in clear text.
	Clear Kind = iota
	// NativeHash is mysql_native_password's hash, SHA1(SHA1(password)).
	NativeHash
	// CachingSHA2Hash is caching_sha2_password's SHA-256-crypt hash.
	CachingSHA2Hash
)

func (k Kind) String() string {
	switch k {
	case NativeHash:
		return "mysql_native_password hash"
	case CachingSHA2Hash:
		return "caching_sha2_password hash"
	}
	return "clear text"
}

// Credential is one user's password as configured. The zero value is the
// empty clear-text password.
type Credential struct {
	kind  Kind
	clear string
	// stage2 is SHA1(SHA1(password)): for Clear (when not empty) and NativeHash.
	stage2 []byte
	// sha2 is the 70-byte caching_sha2 hash, for CachingSHA2Hash.
	sha2 []byte
}

// caching_sha2_password's stored form: "$A$" + 3 hex digits of rounds/1000
// + "$" + salt + digest.
const (
	sha2Prefix    = "$A$"
	sha2SaltLen   = 20
	sha2DigestLen = 43
	sha2HashLen   = len(sha2Prefix) + 3 + 1 + sha2SaltLen + sha2DigestLen
	// minRounds is MySQL's least caching_sha2_password_digest_rounds.
	minRounds = 5
	// cryptAlphabet is SHA-crypt's base-64 alphabet, the digest's characters.
	cryptAlphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// Parse reads a configured password. A value in one of the hash forms
// is the hash (a clear password of exactly that shape cannot be given, as
// with MySQL's IDENTIFIED BY PASSWORD); one starting with "$A$" (or hex of
// that) that is not a well-formed caching_sha2 hash is an error.
func Parse(s string) (Credential, error) {
	if isNativeHash(s) {
		stage2, _ := hex.DecodeString(s[1:]) // checked by isNativeHash
		return Credential{kind: NativeHash, stage2: stage2}, nil
	}
	if h, ok := sha2Candidate(s); ok {
		if err := checkSHA2Hash(h); err != nil {
			return Credential{}, err
		}
		return Credential{kind: CachingSHA2Hash, sha2: h}, nil
	}
	c := Credential{kind: Clear, clear: s}
	if s != "" {
		c.stage2 = nativeStage2([]byte(s))
	}
	return c, nil
}

// Kind is the form the password was given in.
func (c Credential) Kind() Kind { return c.kind }

// Empty reports the empty password, which only an empty answer matches.
func (c Credential) Empty() bool { return c.kind == Clear && c.clear == "" }

func isNativeHash(s string) bool {
	if len(s) != 41 || s[0] != '*' {
		return false
	}
	_, err := hex.DecodeString(s[1:])
	return err == nil
}

// sha2Candidate returns the caching_sha2 hash s stands for, raw or in
// 0x-hex, when it starts like one.
func sha2Candidate(s string) ([]byte, bool) {
	if strings.HasPrefix(s, sha2Prefix) {
		return []byte(s), true
	}
	if len(s) < 2 || (s[:2] != "0x" && s[:2] != "0X") {
		return nil, false
	}
	raw, err := hex.DecodeString(s[2:])
	if err != nil || !bytes.HasPrefix(raw, []byte(sha2Prefix)) {
		return nil, false
	}
	return raw, true
}

// checkSHA2Hash checks the layout MySQL writes.
func checkSHA2Hash(h []byte) error {
	const what = "a caching_sha2_password hash (as SELECT HEX(authentication_string) shows it, with 0x before it)"
	if len(h) != sha2HashLen {
		return fmt.Errorf("starts as %s but is %d bytes long, not %d", what, len(h), sha2HashLen)
	}
	rounds, err := strconv.ParseUint(string(h[3:6]), 16, 16)
	if err != nil || rounds < minRounds || h[6] != '$' {
		return fmt.Errorf("%s must start with $A$ and three hex digits of at least 005 (rounds / 1000), then $", what)
	}
	salt, digest := h[7:7+sha2SaltLen], h[7+sha2SaltLen:]
	if bytes.ContainsAny(salt, "$\x00") {
		return fmt.Errorf("%s has a salt with $ or NUL, which MySQL never makes", what)
	}
	for _, b := range digest {
		if strings.IndexByte(cryptAlphabet, b) < 0 {
			return fmt.Errorf("%s has a digest with a character outside SHA-crypt's base-64 alphabet", what)
		}
	}
	return nil
}

func nativeStage2(password []byte) []byte {
	s1 := sha1.Sum(password) //nolint:gosec // the protocol's hash
	s2 := sha1.Sum(s1[:])    //nolint:gosec
	return s2[:]
}

// CheckNative checks a mysql_native_password answer to salt:
// SHA1(password) XOR SHA1(salt + SHA1(SHA1(password))). Only
// SHA1(SHA1(password)) is needed, so a native hash serves as well as the
// clear password; a caching_sha2 hash never matches. The empty password
// matches only an empty answer.
func (c Credential) CheckNative(salt, resp []byte) bool {
	if c.Empty() {
		return len(resp) == 0
	}
	if c.stage2 == nil || len(resp) != sha1.Size {
		return false
	}
	h := sha1.New() //nolint:gosec
	h.Write(salt)
	h.Write(c.stage2)
	stage1 := h.Sum(nil)
	for i := range stage1 {
		stage1[i] ^= resp[i]
	}
	candidate := sha1.Sum(stage1) //nolint:gosec
	return subtle.ConstantTimeCompare(candidate[:], c.stage2) == 1
}

// CheckClear checks the clear password a client sent in caching_sha2's
// full authentication, against whatever form was configured.
func (c Credential) CheckClear(password []byte) bool {
	switch c.kind {
	case NativeHash:
		return len(password) > 0 && subtle.ConstantTimeCompare(nativeStage2(password), c.stage2) == 1
	case CachingSHA2Hash:
		ok, err := auth.CheckHashingPassword(c.sha2, string(password), mysql.AuthCachingSha2Password)
		return err == nil && ok
	}
	return subtle.ConstantTimeCompare(password, []byte(c.clear)) == 1
}

// FastKey is SHA256(SHA256(password)), what caching_sha2's fast
// authentication checks against (MySQL's cache holds the same): known
// only after a full authentication gave the clear password.
type FastKey [sha256.Size]byte

// NewFastKey is the fast-authentication key of a clear password.
func NewFastKey(password []byte) FastKey {
	s1 := sha256.Sum256(password)
	return sha256.Sum256(s1[:])
}

// CheckFast checks caching_sha2's fast answer to salt, SHA256(password)
// XOR SHA256(SHA256(SHA256(password)) + salt), against k.
func (k FastKey) CheckFast(salt, resp []byte) bool {
	if len(resp) != sha256.Size {
		return false
	}
	h := sha256.New()
	h.Write(k[:])
	h.Write(salt)
	stage1 := h.Sum(nil)
	for i := range stage1 {
		stage1[i] ^= resp[i]
	}
	candidate := sha256.Sum256(stage1)
	return subtle.ConstantTimeCompare(candidate[:], k[:]) == 1
}
