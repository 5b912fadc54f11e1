package sqlinfo

import "testing"

func TestFirstKeyword(t *testing.T) {
	cases := map[string]Kind{
		"SELECT 1":                              KindSelect,
		"  /* hint */ select * from t":          KindSelect,
		"-- c\nINSERT INTO t VALUES (1)":        KindInsert,
		"# c\nupdate t set a=1":                 KindUpdate,
		"(SELECT 1) UNION (SELECT 2)":           KindSelect,
		"with x as (select 1) select * from x":  KindSelect,
		"WITH x AS (SELECT 1) UPDATE t SET a=1": KindOther,
		"CREATE TABLE t (a int)":                KindDDL,
		"start transaction":                     KindBegin,
		"KILL QUERY 5":                          KindKill,
		"":                                      KindOther,
		"/* unterminated":                       KindOther,
		"GRANT ALL ON *.* TO x":                 KindOther,
	}
	for sql, want := range cases {
		if got := FirstKeyword([]byte(sql)); got != want {
			t.Errorf("%q: got %v want %v", sql, got, want)
		}
	}
}

func TestParseKill(t *testing.T) {
	cases := []struct {
		sql   string
		id    uint64
		query bool
		ok    bool
	}{
		{"KILL 12", 12, false, true},
		{"kill query 7", 7, true, true},
		{"KILL CONNECTION 3;", 3, false, true},
		{"KILL HARD QUERY ID 9", 9, true, true},
		{"KILL USER bob", 0, false, false},
		{"KILL 12; SELECT 1", 0, false, false},
		{"SELECT 1", 0, false, false},
	}
	for _, c := range cases {
		id, q, ok := ParseKill([]byte(c.sql))
		if id != c.id || q != c.query || ok != c.ok {
			t.Errorf("%q: got (%d,%v,%v)", c.sql, id, q, ok)
		}
	}
}

func BenchmarkFirstKeyword(b *testing.B) {
	sql := []byte("/* app */ SELECT c FROM sbtest1 WHERE id=4711")
	b.ReportAllocs()
	for b.Loop() {
		FirstKeyword(sql)
	}
}

func TestParseKillExpr(t *testing.T) {
	for sql, want := range map[string]struct {
		expr  string
		query bool
		ok    bool
	}{
		"KILL (('x' IN (SELECT 1)) MOD 44)": {"(('x' IN (SELECT 1)) MOD 44)", false, true},
		"kill soft query @id ;":             {"@id", true, true},
		"KILL CONNECTION ?":                 {"?", false, true},
		"KILL USER app":                     {"", false, false},
		"KILL ":                             {"", false, false},
		"SELECT 1":                          {"", false, false},
	} {
		expr, query, ok := ParseKillExpr([]byte(sql))
		if expr != want.expr || query != want.query || ok != want.ok {
			t.Errorf("%q: got %q %v %v, want %+v", sql, expr, query, ok, want)
		}
	}
}

func TestIsShowSessionStatus(t *testing.T) {
	for sql, want := range map[string]bool{
		"SHOW STATUS LIKE 'Ssl%'":    true,
		"show session status":        true,
		"/* x */ SHOW LOCAL STATUS":  true,
		"SHOW GLOBAL STATUS":         false,
		"SHOW VARIABLES LIKE 'Ssl%'": false,
		"SHOW SLAVE STATUS":          false,
		"SELECT 'SHOW STATUS'":       false,
	} {
		if got := IsShowSessionStatus([]byte(sql)); got != want {
			t.Errorf("%q: %v, want %v", sql, got, want)
		}
	}
}
