package wire

import (
	"crypto/sha1" //nolint:gosec // mysql_native_password's hash
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/pingcap/tidb/pkg/parser/auth"
	tidbmysql "github.com/pingcap/tidb/pkg/parser/mysql"
)

// nativeHash is MySQL's PASSWORD(pw): "*" and hex of SHA1(SHA1(pw)).
func nativeHash(pw string) string {
	s1 := sha1.Sum([]byte(pw)) //nolint:gosec
	return fmt.Sprintf("*%X", sha1.Sum(s1[:]))
}

// TestHashedPasswords: configured hashes let the right password in and
// no other, full authentication then the fast path for caching_sha2.
func TestHashedPasswords(t *testing.T) {
	sha2 := auth.NewHashPassword("s3cret", tidbmysql.AuthCachingSha2Password)
	for _, tc := range []struct {
		name, plugin, stored string
		fast                 bool // a second login takes caching_sha2's fast path
	}{
		{"native hash, native", PluginNative, nativeHash("s3cret"), false},
		{"native hash, caching_sha2", PluginCachingSHA2, nativeHash("s3cret"), true},
		{"caching_sha2 hash", PluginCachingSHA2, sha2, true},
		{"caching_sha2 hash in hex", PluginCachingSHA2, fmt.Sprintf("0x%X", sha2), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &Authenticator{Plugin: tc.plugin, Lookup: func(u string) (string, bool) { return tc.stored, u == "app" }}
			if _, err := login(t, a, "wrong"); err == nil {
				t.Fatal("wrong password accepted")
			}
			full, err := login(t, a, "s3cret")
			if err != nil {
				t.Fatalf("first login: %v", err)
			}
			if full != tc.fast {
				t.Fatalf("first login: full authentication %v", full)
			}
			full, err = login(t, a, "s3cret")
			if err != nil || (tc.fast && full) {
				t.Fatalf("second login: full=%v err=%v", full, err)
			}
			if _, err := login(t, a, "s3cres"); err == nil {
				t.Fatal("wrong password accepted after a login")
			}
		})
	}
}

// TestFastAuthForgetsChangedPassword: the fast-auth key learnt under one
// configured password is not used under another, even when both are forms
// of the same password (the new form gets a full authentication).
func TestFastAuthForgetsChangedPassword(t *testing.T) {
	var stored atomic.Value
	stored.Store("s3cret")
	a := &Authenticator{Plugin: PluginCachingSHA2, Lookup: func(string) (string, bool) { return stored.Load().(string), true }}
	for range 2 {
		if _, err := login(t, a, "s3cret"); err != nil {
			t.Fatal(err)
		}
	}
	stored.Store("n3w")
	if _, err := login(t, a, "s3cret"); err == nil {
		t.Fatal("the old password still logs in")
	}
	if full, err := login(t, a, "n3w"); err != nil || !full {
		t.Fatalf("new password: full=%v err=%v", full, err)
	}
	stored.Store(nativeHash("n3w"))
	if full, err := login(t, a, "n3w"); err != nil || !full {
		t.Fatalf("same password as a hash: full=%v err=%v", full, err)
	}
}
