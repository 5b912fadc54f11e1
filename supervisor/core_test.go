package supervisor_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

func TestQueriesThroughProxy(t *testing.T) {
	p := startProxy(t, oneNode(""))
	db := p.db(t, "main", "multiStatements=true")
	ctx := context.Background()
	mustExec(t, db, "DROP TABLE IF EXISTS core_t",
		"CREATE TABLE core_t (id INT PRIMARY KEY, v VARCHAR(20))",
		"INSERT INTO core_t VALUES (1,'a'),(2,'b'),(3,'c')")
	if got := queryString(t, db, "SELECT GROUP_CONCAT(v ORDER BY id) FROM core_t"); got != "a,b,c" {
		t.Fatalf("select: %q", got)
	}
	// Multi-statements and several result sets in one COM_QUERY.
	rows, err := db.QueryContext(ctx, "SELECT 1; SELECT v FROM core_t WHERE id=2; UPDATE core_t SET v='B' WHERE id=2; SELECT v FROM core_t WHERE id=2")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			got = append(got, s)
		}
		if !rows.NextResultSet() {
			break
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if strings.Join(got, ",") != "1,b,B" {
		t.Fatalf("multi-statement results: %v", got)
	}
	// A procedure with two result sets.
	mustExec(t, db, "DROP PROCEDURE IF EXISTS two_sets",
		"CREATE PROCEDURE two_sets() BEGIN SELECT 10; SELECT 20; END")
	rows, err = db.QueryContext(ctx, "CALL two_sets()")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		for rows.Next() {
			n++
		}
		if !rows.NextResultSet() {
			break
		}
	}
	rows.Close()
	if n != 2 {
		t.Fatalf("CALL returned %d rows over its result sets, want 2", n)
	}
	// Backend errors pass through with their code and state.
	_, err = db.ExecContext(ctx, "SELECT * FROM no_such_table")
	if me := mysqlErr(err); me == nil || me.Number != 1146 || string(me.SQLState[:]) != "42S02" {
		t.Fatalf("want 1146/42S02, got %v", err)
	}
	// Warnings survive the relay.
	conn, _ := db.Conn(ctx)
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT CAST('x' AS SIGNED)"); err != nil {
		t.Fatal(err)
	}
	if w := queryString(t, conn, "SELECT @@warning_count"); w != "1" {
		t.Fatalf("warning_count %s", w)
	}
	// SQL the parser cannot read (MariaDB's CREATE OR REPLACE) is proxied
	// anyway and counted.
	mustExec(t, db, "CREATE OR REPLACE TABLE parse_me (a INT)")
	if len(p.metric(t, `pisa_proxy_sql_parse_errors_total{domain="main"}`)) != 1 {
		t.Fatal("parse error not counted")
	}
	// Metrics carry tenant, user, db, type, kind and result.
	if len(p.metric(t, `pisa_proxy_sql_processed_total{`, `domain="main"`, `user="app"`, `db="gotest"`, `type="COM_QUERY"`, `kind="select"`, `result="ok"`)) == 0 {
		t.Fatal("sql_processed_total with labels missing")
	}
	if len(p.metric(t, `pisa_proxy_sql_processed_total{`, `result="error"`)) == 0 {
		t.Fatal("failed statement not counted")
	}
	if len(p.metric(t, `pisa_proxy_sql_processed_duration_bucket{`, `domain="main"`)) == 0 {
		t.Fatal("sql_processed_duration missing")
	}
}

func mustExec(t *testing.T, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.ExecContext(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestPreparedStatementsAllTypes(t *testing.T) {
	p := startProxy(t, oneNode(""))
	db := p.db(t, "main", "parseTime=true&interpolateParams=false")
	mustExec(t, db, "DROP TABLE IF EXISTS types_t", `CREATE TABLE types_t (
		id INT PRIMARY KEY, ti TINYINT, si SMALLINT, mi MEDIUMINT, bi BIGINT UNSIGNED, dec1 DECIMAL(20,6),
		f FLOAT, d DOUBLE, dt DATE, dtm DATETIME(6), ts TIMESTAMP(3) NULL, tm TIME(3), y YEAR,
		c CHAR(5), vc VARCHAR(100), tx MEDIUMTEXT, bl BLOB, bn BINARY(4), js JSON, en ENUM('x','y'), st SET('a','b'),
		bt BIT(8), nl INT NULL)`)
	ins := `INSERT INTO types_t VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`
	dtm := time.Date(2024, 2, 29, 13, 14, 15, 123456000, time.UTC)
	args := []any{1, -128, 32767, -8388608, uint64(18446744073709551615), "12345678901234.123456",
		float32(1.5), 2.25, "2024-02-29", dtm, "2024-02-29 13:14:15.123", "-838:59:59.000", 2155,
		"abc", "héllo wörld", strings.Repeat("t", 70000), []byte{0, 1, 2, 255}, []byte{9, 8, 7, 6},
		`{"a": [1, 2]}`, "y", "a,b", []byte{0xA5}, nil}
	if _, err := db.Exec(ins, args...); err != nil {
		t.Fatal(err)
	}
	stmt, err := db.Prepare("SELECT ti, si, mi, bi, dec1, f, d, dt, dtm, tm, y, c, vc, tx, bl, bn, js, en, st, bt, nl FROM types_t WHERE id = ?")
	if err != nil {
		t.Fatal(err)
	}
	defer stmt.Close()
	var (
		ti, si, mi, y       int64
		bi                  uint64
		dec1, tm, c, vc, tx string
		js, en, st          string
		f                   float32
		d                   float64
		dt, dtmGot          time.Time
		bl, bn, bt          []byte
		nl                  sql.NullInt64
	)
	err = stmt.QueryRow(1).Scan(&ti, &si, &mi, &bi, &dec1, &f, &d, &dt, &dtmGot, &tm, &y, &c, &vc, &tx, &bl, &bn, &js, &en, &st, &bt, &nl)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"tinyint", ti == -128}, {"smallint", si == 32767}, {"mediumint", mi == -8388608},
		{"bigint unsigned", bi == 18446744073709551615}, {"decimal", dec1 == "12345678901234.123456"},
		{"float", f == 1.5}, {"double", d == 2.25}, {"date", dt.Format("2006-01-02") == "2024-02-29"},
		{"datetime(6)", dtmGot.Equal(dtm)}, {"time", tm == "-838:59:59.000"}, {"year", y == 2155},
		{"char", c == "abc"}, {"varchar utf8", vc == "héllo wörld"}, {"text 70k", len(tx) == 70000},
		{"blob", bytes.Equal(bl, []byte{0, 1, 2, 255})}, {"binary", bytes.Equal(bn, []byte{9, 8, 7, 6})},
		{"json", strings.Contains(js, `"a"`)}, {"enum", en == "y"}, {"set", st == "a,b"},
		{"bit", bytes.Equal(bt, []byte{0xA5})}, {"null", !nl.Valid},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("column %s did not round-trip", c.name)
		}
	}
	if len(p.metric(t, `pisa_proxy_sql_processed_total{`, `type="COM_STMT_EXECUTE"`)) == 0 {
		t.Error("COM_STMT_EXECUTE not counted")
	}
}

func TestLoadDataLocalInfile(t *testing.T) {
	p := startProxy(t, oneNode(""))
	db := p.db(t, "main", "allowAllFiles=false")
	mustExec(t, db, "DROP TABLE IF EXISTS load_t", "CREATE TABLE load_t (id INT, v VARCHAR(20))")
	var buf bytes.Buffer
	for i := range 5000 {
		fmt.Fprintf(&buf, "%d\tv%d\n", i, i)
	}
	mysql.RegisterReaderHandler("load_t_data", func() io.Reader { return bytes.NewReader(buf.Bytes()) })
	defer mysql.DeregisterReaderHandler("load_t_data")
	res, err := db.Exec("LOAD DATA LOCAL INFILE 'Reader::load_t_data' INTO TABLE load_t")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 5000 {
		t.Fatalf("loaded %d rows", n)
	}
	if got := queryString(t, db, "SELECT SUM(id) FROM load_t"); got != fmt.Sprint(4999*5000/2) {
		t.Fatalf("sum %s", got)
	}
}

func TestHugeRow64MiB(t *testing.T) {
	p := startProxy(t, oneNode(""))
	db := p.db(t, "main", "maxAllowedPacket=0")
	db.SetMaxOpenConns(1)
	mustExec(t, db, "DROP TABLE IF EXISTS big_t", "CREATE TABLE big_t (id INT PRIMARY KEY, b LONGBLOB)")
	blob := make([]byte, 64<<20+1000) // crosses the 16 MiB packet boundary four times
	for i := range blob {
		blob[i] = byte(i * 7)
	}
	if _, err := db.Exec("INSERT INTO big_t VALUES (1, ?)", blob); err != nil {
		t.Fatal(err)
	}
	var got []byte
	if err := db.QueryRow("SELECT b FROM big_t WHERE id=1").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(blob) {
		t.Fatalf("64 MiB row corrupted: len %d", len(got))
	}
	// Text protocol too, and packets of exactly 16 MiB - 1 and 16 MiB.
	for _, n := range []int{1<<24 - 1 - 5, 1<<24 - 1, 1 << 24} {
		var s string
		if err := db.QueryRow(fmt.Sprintf("SELECT REPEAT('z', %d)", n)).Scan(&s); err != nil {
			t.Fatalf("repeat %d: %v", n, err)
		}
		if len(s) != n {
			t.Fatalf("repeat %d: got %d bytes", n, len(s))
		}
	}
}

func TestBadPassword(t *testing.T) {
	p := startProxy(t, oneNode(""))
	db, _ := sql.Open("mysql", p.dsnUser("main", "app", "wrong", ""))
	defer db.Close()
	err := db.Ping()
	me := mysqlErr(err)
	if me == nil || me.Number != 1045 || string(me.SQLState[:]) != "28000" {
		t.Fatalf("want 1045/28000, got %v", err)
	}
	if !strings.Contains(me.Message, "Access denied for user 'app'") {
		t.Fatalf("message %q", me.Message)
	}
	db2, _ := sql.Open("mysql", p.dsnUser("main", "nobody", "app-secret", ""))
	defer db2.Close()
	if me := mysqlErr(db2.Ping()); me == nil || me.Number != 1045 {
		t.Fatalf("unknown user must look the same: %v", me)
	}
	if len(p.metric(t, `pisa_proxy_connections_rejected_total{`, `reason="auth"`)) == 0 {
		t.Fatal("auth rejection not counted")
	}
}

// TestPisaProxyMetricNames: Pisa-Proxy's own series are exported beside
// ours, under its names, labels and type values, so dashboards built for
// Pisanix keep working: each command counted once, with its duration.
func TestPisaProxyMetricNames(t *testing.T) {
	p := startProxy(t, oneNode(""))
	c := pinnedConn(t, p.db(t, "main", ""))
	mustExec(t, c, "SELECT 1", "SELECT 2")
	stmt, err := c.PrepareContext(context.Background(), "SELECT ?")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := stmt.Exec(i); err != nil {
			t.Fatal(err)
		}
	}
	stmt.Close()
	server := fmt.Sprintf(`server="%s"`, backendDB.Addr())
	// COM_QUERY: pinnedConn's SET and the two SELECTs.
	// A command is counted when it ends, which its client may see first.
	for typ, want := range map[string]string{"COM_QUERY": "3", "COM_PREPARE": "1", "COM_EXECUTE": "3"} {
		series := fmt.Sprintf(`{domain="main",%s,type="%s"}`, server, typ)
		waitFor(t, 5*time.Second, fmt.Sprintf("sql_processed_total and _duration_count%s = %s, sql_under_processing 0", series, want), func() bool {
			return metricValue(t, p, "sql_processed_total"+series) == want &&
				metricValue(t, p, "sql_processed_duration_count"+series) == want &&
				metricValue(t, p, "sql_under_processing"+series) == "0"
		})
	}
}
