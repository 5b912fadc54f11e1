package supervisor_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"pisanix.io/pisanix/audit"
)

func readAudit(t *testing.T, p *proxy, path string, n int) []audit.Line {
	t.Helper()
	written := `pisa_proxy_audit_records_written_total{domain="main"}`
	waitFor(t, 5*time.Second, fmt.Sprintf("%d audit records written", n), func() bool {
		return metricValue(t, p, written) == strconv.Itoa(n)
	})
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []audit.Line
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l audit.Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("not a JSON line: %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(lines) != n {
		t.Fatalf("%d audit records, want %d: %+v", len(lines), n, lines)
	}
	return lines
}

// metricValue is the value of one series on /metrics ("" when absent).
func metricValue(t *testing.T, p *proxy, series string) string {
	t.Helper()
	for _, line := range p.metric(t, series+" ") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
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

	lines := readAudit(t, p, path, 5)
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

// auditWriterMessages counts the messages of audit writer actors: each new
// writer adds at least Started, so an unchanged count means the same
// writer kept running.
func auditWriterMessages(t *testing.T, p *proxy) string {
	t.Helper()
	return metricValue(t, p, `pisa_proxy_actor_messages_total{kind="audit"}`)
}

// A reload that changes only the filters keeps the running log (one
// writer per file) and applies the new filters at once.
func TestAuditReloadFilters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	mustExec(t, backendDB.RootDB(), "CREATE OR REPLACE TABLE gotest.audit_f (id INT)")
	conf := func(kinds string) string {
		return "[proxy.config.audit]\npath = \"" + path + "\"\nkinds = [" + kinds + "]\ntables = [\"gotest.audit_f\"]\n"
	}
	p := startProxy(t, oneNode(conf(`"insert"`)))
	db := p.db(t, "main", "")
	mustExec(t, db, "INSERT INTO audit_f VALUES (1)", "SELECT * FROM audit_f")
	readAudit(t, p, path, 1)
	writer := auditWriterMessages(t, p)

	next := strings.Replace(oneNode(conf(`"select"`)), `listen_addr = "127.0.0.1:0"`, `listen_addr = "`+p.Addr("main").String()+`"`, 1)
	if err := p.Apply(parse(t, next)); err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, "INSERT INTO audit_f VALUES (2)", "SELECT * FROM audit_f")
	lines := readAudit(t, p, path, 2)
	if lines[0].Kind != "insert" || lines[1].Kind != "select" {
		t.Fatalf("records: %+v", lines)
	}
	if got := auditWriterMessages(t, p); got != writer {
		t.Fatalf("a filters-only reload started another writer (audit actor messages %s, then %s)", writer, got)
	}

	// A new sink setting on the same file: a new log, which writes after
	// the old one closed; nothing lost, nothing twice.
	next = strings.Replace(next, "[proxy.config.audit]\n", "[proxy.config.audit]\nmax_backups = 2\n", 1)
	if err := p.Apply(parse(t, next)); err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, "SELECT * FROM audit_f")
	if lines := readAudit(t, p, path, 3); lines[2].Kind != "select" {
		t.Fatalf("records: %+v", lines)
	}
	if auditWriterMessages(t, p) == writer {
		t.Fatal("a new sink setting must start a new writer")
	}
	if v := metricValue(t, p, `pisa_proxy_audit_records_dropped_total{domain="main"}`); v != "0" {
		t.Fatalf("%s records dropped", v)
	}
}

// A kinds filter sees every statement of a text, what a PREPARE prepares
// and what an EXECUTE runs, not only the first keyword.
func TestAuditKindsAcrossStatements(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	mustExec(t, backendDB.RootDB(), "CREATE OR REPLACE TABLE gotest.audit_k (id INT)")
	p := startProxy(t, oneNode("[proxy.config.audit]\npath = \""+path+"\"\nkinds = [\"delete\"]\n"))
	c := pinnedConn(t, p.db(t, "main", "multiStatements=true"))
	mustExec(t, c,
		"SELECT 1",                      // not wanted
		"SELECT 1; DELETE FROM audit_k", // 1
		"PREPARE d FROM 'DELETE FROM audit_k WHERE id = 7'", // 2
		"EXECUTE d",                      // 3
		"INSERT INTO audit_k VALUES (1)", // not wanted
	)
	lines := readAudit(t, p, path, 3)
	for i, want := range []string{"select", "prepare", "execute"} {
		if lines[i].Kind != want || len(lines[i].Tables) != 1 || lines[i].Tables[0] != "gotest.audit_k" {
			t.Errorf("record %d: %+v (want kind %s on gotest.audit_k)", i, lines[i], want)
		}
	}
}

// COM_FIELD_LIST reads a table's columns: it is audited like SHOW COLUMNS
// (found by the ninth review: it left no record).
func TestAuditFieldList(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	accessTables(t)
	p := startProxy(t, oneNode(accessUsers+"[proxy.config.audit]\npath = \""+path+"\"\ntables = [\"gotest.acl_orders\"]\n"))
	r := dialRawAs(t, p, "main", "spy", "spy-pw")
	r.send(append([]byte{mysql.COM_FIELD_LIST}, "acl_orders\x00\x00"...)...)
	if cols := r.untilEOF(); len(cols) == 0 {
		t.Fatalf("COM_FIELD_LIST acl_orders: %d columns", len(cols))
	}
	lines := readAudit(t, p, path, 1)
	if l := lines[0]; l.User != "spy" || l.Kind != "show" || len(l.Tables) != 1 || l.Tables[0] != "gotest.acl_orders" {
		t.Fatalf("record: %+v", l)
	}
}
