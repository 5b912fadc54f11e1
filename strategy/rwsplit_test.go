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

// A generic rule (Pisa-Proxy's, classifying by statement kind) sends every
// SELECT that may move to its target (read, when it names none), whatever
// the default target; other reads (SHOW) fall through to the next rule or
// the default, as Pisa-Proxy's generic rule matched only its SELECT token;
// writes and reads that must stay stay. Generic rules come after every
// regex rule, whatever their order in the file.
func TestGenericRule(t *testing.T) {
	cfg := &config.Config{Proxy: config.Proxy{Config: []config.Listener{{
		Name: "l", User: "u", ReadWriteSplitting: &config.ReadWriteSplitting{Static: &config.RWStatic{
			DefaultTarget: "readwrite",
			Rules: []config.RWRule{
				{Name: "g", Type: config.RWRuleGeneric},
				{Name: "reports", Type: config.RWRuleRegex, Regex: []string{"FROM report"}, Target: config.RoleReadWrite},
				{Name: "status", Type: config.RWRuleRegex, Regex: []string{"^SHOW STATUS"}, Target: config.RoleRead},
			},
		}},
	}}}}
	cfg.ApplyDefaults()
	rw := cfg.Proxy.Config[0].ReadWriteSplitting
	if got := rw.Static.Rules[0].Target; got != config.RoleRead {
		t.Fatalf("generic rule target defaults to %q, want read", got)
	}
	r, err := NewRouter(rw)
	if err != nil {
		t.Fatal(err)
	}
	for sql, want := range map[string]struct {
		route Route
		rule  string
	}{
		"SELECT v FROM marker":            {ToReplica, "g"},
		"select v from marker":            {ToReplica, "g"},
		"SELECT v FROM report":            {ToPrimary, "reports"}, // the regex rule first, though listed after
		"SHOW TABLES":                     {ToPrimary, ""},        // not a SELECT: the default target
		"SHOW STATUS":                     {ToReplica, "status"},
		"SELECT v FROM marker FOR UPDATE": {ToPrimary, ""},
		"INSERT INTO marker VALUES (1)":   {ToPrimary, ""},
		"SELECT @x":                       {ToPrimary, ""},
	} {
		if got, rule := r.RouteByRule([]byte(sql), sqlinfo.Classify([]byte(sql), "db")); got != want.route || rule != want.rule {
			t.Errorf("%q: %v by rule %q, want %v by %q", sql, got, rule, want.route, want.rule)
		}
	}
}
