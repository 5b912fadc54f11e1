package credential

import (
	"strings"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/pingcap/tidb/pkg/parser/auth"
	tidbmysql "github.com/pingcap/tidb/pkg/parser/mysql"
)

// Hashes of known passwords made elsewhere, as HEX(authentication_string).
const (
	// MySQL 8's for "foobar" (CREATE USER ... IDENTIFIED BY 'foobar'),
	// from TiDB's parser tests.
	mysqlFoobar = "24412430303524031A69251C34295C4B35167C7F1E5A7B63091349503974624D34504B5A424679354856336868686F52485A736E4A733368786E427575516C73446469496537"
	// An independent implementation's (C#, github.com/MircoBabin/MySqlPasswords) for "secret".
	otherSecret = "24412430303524517D22565B3D67635E4136625E414272223A522F373248496B496B7368563976366D73677476794E6F574C6C4346554662416E66753746637958455047332E"
	// MySQL's PASSWORD('password'), mysql_native_password.
	nativePassword = "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
)

func mustParse(t *testing.T, s string) Credential {
	t.Helper()
	c, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return c
}

func TestCachingSHA2HashFullAuth(t *testing.T) {
	for _, tc := range []struct{ hash, password string }{
		{"0x" + mysqlFoobar, "foobar"},
		{"0X" + strings.ToLower(otherSecret), "secret"},
	} {
		c := mustParse(t, tc.hash)
		if c.Kind() != CachingSHA2Hash {
			t.Fatalf("%s: kind %v", tc.hash, c.Kind())
		}
		if !c.CheckClear([]byte(tc.password)) {
			t.Errorf("%q does not match its hash", tc.password)
		}
		for _, wrong := range []string{"", tc.password + "x", strings.ToUpper(tc.password)} {
			if c.CheckClear([]byte(wrong)) {
				t.Errorf("%q matches the hash of %q", wrong, tc.password)
			}
		}
		if c.CheckNative(make([]byte, 20), mysql.CalcPassword(make([]byte, 20), []byte(tc.password))) {
			t.Error("a caching_sha2 hash checked a native scramble")
		}
	}
	// The raw form, as made with a random salt (printable here by chance
	// or not: Parse takes bytes).
	raw := auth.NewHashPassword("pw", tidbmysql.AuthCachingSha2Password)
	if c := mustParse(t, raw); c.Kind() != CachingSHA2Hash || !c.CheckClear([]byte("pw")) {
		t.Fatalf("raw hash %q: kind %v", raw, c.Kind())
	}
}

func TestNativeHash(t *testing.T) {
	for _, s := range []string{nativePassword, strings.ToLower(nativePassword)} {
		c := mustParse(t, s)
		if c.Kind() != NativeHash {
			t.Fatalf("%s: kind %v", s, c.Kind())
		}
		salt := []byte("12345678901234567890")
		if !c.CheckNative(salt, mysql.CalcPassword(salt, []byte("password"))) {
			t.Error("native scramble of the right password refused")
		}
		if c.CheckNative(salt, mysql.CalcPassword(salt, []byte("passwore"))) || c.CheckNative(salt, nil) {
			t.Error("native scramble of a wrong password accepted")
		}
		if !c.CheckClear([]byte("password")) || c.CheckClear([]byte("Password")) || c.CheckClear(nil) {
			t.Error("full authentication against a native hash")
		}
	}
}

func TestClear(t *testing.T) {
	salt := []byte("abcdefghijabcdefghij")
	for _, pw := range []string{"s3cret", "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E1", "0xdeadbeef", "$5$abc"} {
		c := mustParse(t, pw)
		if c.Kind() != Clear || c.Empty() {
			t.Fatalf("%q: kind %v", pw, c.Kind())
		}
		if !c.CheckNative(salt, mysql.CalcPassword(salt, []byte(pw))) || !c.CheckClear([]byte(pw)) {
			t.Errorf("%q refused", pw)
		}
		if c.CheckNative(salt, nil) || c.CheckClear([]byte(pw+" ")) {
			t.Errorf("wrong answer for %q accepted", pw)
		}
	}
	empty := mustParse(t, "")
	if !empty.Empty() || !empty.CheckNative(salt, nil) || empty.CheckNative(salt, mysql.CalcPassword(salt, []byte("x"))) {
		t.Error("the empty password")
	}
}

func TestFastKey(t *testing.T) {
	salt := []byte("abcdefghijabcdefghij")
	k := NewFastKey([]byte("s3cret"))
	if !k.CheckFast(salt, mysql.CalcCachingSha2Password(salt, "s3cret")) {
		t.Fatal("fast answer of the right password refused")
	}
	if k.CheckFast(salt, mysql.CalcCachingSha2Password(salt, "s3cres")) || k.CheckFast(salt, nil) {
		t.Fatal("fast answer of a wrong password accepted")
	}
}

func TestParseMalformedCachingSHA2Hash(t *testing.T) {
	good := "$A$005$" + strings.Repeat("s", 20) + strings.Repeat("d", 43)
	if _, err := Parse(good); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want string }{
		{good[:69], "69 bytes long, not 70"},
		{"0x" + mysqlFoobar[:len(mysqlFoobar)-2], "69 bytes long"},
		{"$A$004$" + good[7:], "at least 005"},
		{"$A$0G5$" + good[7:], "three hex digits"},
		{"$A$005x" + good[7:], "then $"},
		{"$A$005$" + "$" + good[8:], "salt with $"},
		{good[:69] + "$", "outside SHA-crypt's base-64 alphabet"},
	} {
		if _, err := Parse(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q): want %q, got %v", tc.in, tc.want, err)
		}
	}
}
