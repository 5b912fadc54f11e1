package sqlinfo

import (
	"strings"
	"testing"
)

// Literals the parser's test driver could not build (a decimal of more
// than 81 digits panicked it and ended the session) parse and classify.
func TestLiterals(t *testing.T) {
	long := strings.Repeat("9", 90)
	for _, tc := range []struct {
		sql  string
		kind Kind
	}{
		{"SELECT 1 + " + long, KindSelect},
		{"SELECT " + long + "." + long + " FROM t", KindSelect},
		{"INSERT INTO t VALUES (-" + long + ", 0x" + strings.Repeat("f", 301) + ")", KindInsert},
		{"SELECT x'4142', X'', 0xA, b'101', B'', 0b1, _binary x'00', _utf8mb4 'a' 'b'", KindSelect},
		{"UPDATE t SET a = 1.5e300, b = .5, c = NULL, d = TRUE", KindUpdate},
		{"PREPARE s FROM 'SELECT ? + " + long + "'", KindPrepare},
	} {
		info := Classify([]byte(tc.sql), "db")
		if info.ParseError || info.Kind != tc.kind {
			t.Errorf("%.60s: kind %v, parse error %v; want %v", tc.sql, info.Kind, info.ParseError, tc.kind)
		}
	}
	for _, bad := range []string{"SELECT x'414'", "SELECT b'102'"} {
		if info := Classify([]byte(bad), "db"); !info.ParseError {
			t.Errorf("%s: parsed (MariaDB refuses it)", bad)
		}
	}
}

func TestBinaryLiteralValues(t *testing.T) {
	for in, want := range map[string]string{
		"x'4142'": "AB", "0x141": "\x01\x41", "X''": "",
		"b'1000001'": "A", "0b100000101000010": "AB", "B''": "",
	} {
		parse := parseHexLiteral
		if strings.ContainsAny(in[:2], "bB") {
			parse = parseBitLiteral
		}
		v, err := parse(in)
		if err != nil || v.(binaryLiteral).ToString() != want {
			t.Errorf("%s: %q, %v; want %q", in, v, err, want)
		}
	}
}
