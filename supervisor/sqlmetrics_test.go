package supervisor_test

import (
	"fmt"
	"testing"
	"time"
)

// Statements that differ only in literals share a fingerprint series;
// errors are counted by fingerprint; the statement kind comes from the parser.
func TestFingerprintMetrics(t *testing.T) {
	p := startProxy(t, oneNode(""))
	db := p.db(t, "main", "")
	for i := range 3 {
		queryString(t, db, fmt.Sprintf("SELECT %d + 1 AS fpmetric", i))
	}
	for range 2 {
		if _, err := db.Exec("SELECT no_such_column FROM fp_no_such_table"); mysqlErr(err) == nil {
			t.Fatalf("want a backend error, got %v", err)
		}
	}
	// The counts are taken after the response reached the client: wait.
	waitFor(t, 5*time.Second, "statements by fingerprint", func() bool {
		return len(p.metric(t, `pisa_proxy_fingerprint_statements_total{`, `fingerprint="select ? + ? as `+"`fpmetric`"+`"} 3`)) == 1
	})
	waitFor(t, 5*time.Second, "errors by fingerprint", func() bool {
		return len(p.metric(t, `pisa_proxy_fingerprint_errors_total{`, "fp_no_such_table", "} 2")) == 1
	})
	if got := p.metric(t, `pisa_proxy_sql_processed_total{`, `kind="select"`, `result="error"`); len(got) == 0 {
		t.Errorf("sql_processed_total has no kind label: %v", p.metric(t, "sql_processed_total"))
	}
}

// Error packets are counted by code and origin: the server's, relayed, and
// the proxy's own.
func TestErrorsByCode(t *testing.T) {
	p := startProxy(t, oneNode(""))
	db := p.db(t, "main", "")
	for range 2 {
		if me := mysqlErr(execErr(db, "SELECT 1 FROM errcode_no_such_table")); me == nil || me.Number != 1146 {
			t.Fatalf("want the server's 1146, got %v", me)
		}
	}
	// A KILL of an id the proxy does not know: its own 1094 (the id is
	// the proxy's, never sent to the server).
	if me := mysqlErr(execErr(db, "KILL 987654")); me == nil || me.Number != 1094 {
		t.Fatalf("want the proxy's 1094, got %v", me)
	}
	waitFor(t, 5*time.Second, "errors by code", func() bool {
		return len(p.metric(t, `pisa_proxy_sql_errors_total{code="1146",domain="main",origin="backend"} 2`)) == 1 &&
			len(p.metric(t, `pisa_proxy_sql_errors_total{code="1094",domain="main",origin="proxy"} 1`)) == 1
	})
}
