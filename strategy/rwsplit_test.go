package strategy

import (
	"testing"

	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/sqlinfo"
)

func TestRouter(t *testing.T) {
	r, err := NewRouter(&config.ReadWriteSplitting{Static: &config.RWStatic{
		DefaultTarget: "read",
		Rules:         []config.RWRule{{Name: "reports", Type: "regex", Regex: []string{"FROM accounts"}, Target: "readwrite"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]Route{
		"SELECT v FROM marker":                    ToReplica,
		"select v from marker where id = 1;":      ToReplica,
		"SELECT @@session.sql_mode":               ToReplica,
		"SELECT balance FROM accounts":            ToPrimary, // rule
		"SELECT v FROM marker FOR UPDATE":         ToPrimary,
		"select v from marker lock in share mode": ToPrimary,
		"SELECT @x":                     ToPrimary,
		"SELECT LAST_INSERT_ID()":       ToPrimary,
		"SELECT 1; DELETE FROM marker":  ToPrimary,
		"SELECT v INTO @x FROM marker":  ToPrimary,
		"INSERT INTO marker VALUES (1)": ToPrimary,
		"UPDATE marker SET v = 'a'":     ToPrimary,
		"SHOW TABLES":                   ToReplica,
	}
	for sql, want := range cases {
		if got := r.Route([]byte(sql), sqlinfo.Classify([]byte(sql), "db")); got != want {
			t.Errorf("%q: %v, want %v", sql, got, want)
		}
	}
}

func BenchmarkRoutePointSelect(b *testing.B) {
	r, _ := NewRouter(&config.ReadWriteSplitting{Static: &config.RWStatic{DefaultTarget: "read"}})
	sql := []byte("SELECT c FROM sbtest1 WHERE id=4711")
	info := sqlinfo.Classify(sql, "sbtest")
	b.ReportAllocs()
	for b.Loop() {
		r.Route(sql, info)
	}
}
