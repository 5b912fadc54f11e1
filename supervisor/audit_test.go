package supervisor_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// auditLine is one record as written.
type auditLine struct {
	Time         string   `json:"time"`
	Tenant       string   `json:"tenant"`
	User         string   `json:"user"`
	Client       string   `json:"client"`
	ConnID       uint32   `json:"conn_id"`
	DB           string   `json:"db"`
	Kind         string   `json:"kind"`
	Fingerprint  string   `json:"fingerprint"`
	Digest       string   `json:"digest"`
	Tables       []string `json:"tables"`
	DurationUS   int64    `json:"duration_us"`
	RowsAffected uint64   `json:"rows_affected"`
	RowsSent     uint64   `json:"rows_sent"`
	ErrorCode    uint16   `json:"error_code"`
	Denied       string   `json:"denied"`
	Backend      string   `json:"backend"`
}

// readAudit waits until the log holds n lines and returns them.
func readAudit(t *testing.T, path string, n int) []auditLine {
	t.Helper()
	var lines []auditLine
	waitFor(t, 5*time.Second, "audit records", func() bool {
		f, err := os.Open(path)
		if err != nil {
			return false
		}
		defer f.Close()
		lines = lines[:0]
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var l auditLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatalf("not a JSON line: %q: %v", sc.Text(), err)
			}
			lines = append(lines, l)
		}
		return len(lines) >= n
	})
	if len(lines) != n {
		t.Fatalf("%d audit records, want %d: %+v", len(lines), n, lines)
	}
	return lines
}

func TestAuditLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs", "audit.log")
	extra := accessUsers + `
[proxy.config.audit]
path = "` + path + `"
kinds = ["insert", "select", "delete"]
tables = ["gotest.audit_*", "gotest.acl_secret"]
`
	mustExec(t, backendDB.RootDB(), "CREATE OR REPLACE TABLE gotest.audit_t (id INT, card VARCHAR(20))")
	accessTables(t)
	p := startProxy(t, oneNode(extra))
	db := p.db(t, "main", "")
	mustExec(t, db,
		"INSERT INTO audit_t VALUES (1, '4111-1111'), (2, '4222-2222'), (3, '4333-3333')", // 1
		"UPDATE audit_t SET id = id", // kind not wanted
		"SELECT * FROM acl_orders",   // table not wanted
		"SELECT 1",                   // no table: not wanted with a tables filter
	)
	if got := queryString(t, db, "SELECT COUNT(*) FROM audit_t WHERE id < 3"); got != "2" { // 2
		t.Fatal(got)
	}
	if _, err := db.Exec("INSERT INTO audit_t VALUES (1, 2, 3)"); mysqlErr(err) == nil { // 3: column count error
		t.Fatalf("want an error, got %v", err)
	}
	stmt, err := db.Prepare("DELETE FROM audit_t WHERE id = ?")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stmt.Exec(3); err != nil { // 4: executed prepared statement
		t.Fatal(err)
	}
	stmt.Close()
	spy := p.userDB(t, "spy", "spy-pw", "")
	wantDenied(t, spy, 1142, "SELECT * FROM acl_secret") // 5: refused

	lines := readAudit(t, path, 5)
	ins, sel, bad, del, denied := lines[0], lines[1], lines[2], lines[3], lines[4]
	if ins.Tenant != "main" || ins.User != "app" || ins.DB != "gotest" || ins.Kind != "insert" ||
		ins.RowsAffected != 3 || ins.ErrorCode != 0 || ins.Backend != "n1" || !strings.HasPrefix(ins.Client, "127.0.0.1:") ||
		ins.ConnID == 0 || len(ins.Digest) != 64 || len(ins.Tables) != 1 || ins.Tables[0] != "gotest.audit_t" {
		t.Errorf("insert record: %+v", ins)
	}
	if strings.Contains(ins.Fingerprint, "4111") || !strings.Contains(ins.Fingerprint, "insert into `audit_t`") {
		t.Errorf("the fingerprint must carry the shape, not the data: %q", ins.Fingerprint)
	}
	if _, err := time.Parse(time.RFC3339Nano, ins.Time); err != nil {
		t.Errorf("time %q: %v", ins.Time, err)
	}
	if sel.Kind != "select" || sel.RowsSent != 1 {
		t.Errorf("select record: %+v", sel)
	}
	if bad.ErrorCode != 1136 {
		t.Errorf("failed insert record: %+v", bad)
	}
	if del.Kind != "delete" || del.RowsAffected != 1 || !strings.Contains(del.Fingerprint, "?") {
		t.Errorf("prepared delete record: %+v", del)
	}
	if denied.User != "spy" || denied.Denied != "table" || denied.ErrorCode != 1142 || denied.Backend != "" {
		t.Errorf("denied record: %+v", denied)
	}
	if len(p.metric(t, `pisa_proxy_audit_records_written_total{domain="main"} 5`)) != 1 {
		t.Error("written records not counted")
	}
}

// A listener whose audit log cannot be opened is refused at start and at
// reload, with the path in the error; the running config is kept.
func TestAuditBadPath(t *testing.T) {
	file := filepath.Join(t.TempDir(), "plain-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, oneNode(""))
	bad := oneNode("[proxy.config.audit]\npath = \"" + file + "/audit.log\"\n")
	err := p.Apply(parse(t, bad))
	if err == nil || !strings.Contains(err.Error(), file+"/audit.log") {
		t.Fatalf("want an error naming the path, got %v", err)
	}
	if got := queryString(t, p.db(t, "main", ""), "SELECT 'still serving'"); got != "still serving" {
		t.Fatal(got)
	}
}
