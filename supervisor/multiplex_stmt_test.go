package supervisor_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
	"pisanix.io/pisanix/internal/testenv"
	"pisanix.io/pisanix/wire"
)

// rawDirect is a raw client of MariaDB itself, the reference.
func rawDirect(t *testing.T, srv *testenv.Server) *rawConn {
	t.Helper()
	c, err := client.Connect(srv.Addr(), testenv.TestUser, testenv.TestPassword, "gotest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, io: wire.NewPacketIO(c.Conn.Conn, 0)}
}

// prepare sends COM_STMT_PREPARE and returns the statement id.
func (r *rawConn) prepare(sql string) uint32 {
	r.t.Helper()
	r.send(append([]byte{mysql.COM_STMT_PREPARE}, sql...)...)
	ok := r.read()
	if ok[0] != mysql.OK_HEADER {
		r.t.Fatalf("prepare %q: %q", sql, ok)
	}
	for _, n := range []uint16{binary.LittleEndian.Uint16(ok[7:9]), binary.LittleEndian.Uint16(ok[5:7])} {
		if n > 0 {
			r.untilEOF()
		}
	}
	return binary.LittleEndian.Uint32(ok[1:5])
}

// execute sends COM_STMT_EXECUTE of one parameter (types nil: the
// new-params-bound flag 0, as libmysqlclient after the first execution)
// and returns the response's packets after the column count, or the error.
func (r *rawConn) execute(id uint32, types, value []byte) string {
	r.t.Helper()
	p := binary.LittleEndian.AppendUint32([]byte{mysql.COM_STMT_EXECUTE}, id)
	p = append(p, 0, 1, 0, 0, 0, 0) // no cursor, 1 iteration, NULL bitmap
	if types != nil {
		p = append(append(p, 1), types...)
	} else {
		p = append(p, 0)
	}
	r.send(append(p, value...)...)
	first := r.read()
	if first[0] == mysql.ERR_HEADER {
		return "ERR " + string(first[9:])
	}
	r.untilEOF()         // column definitions
	rows := r.untilEOF() // rows, then EOF
	return fmt.Sprintf("%q", rows[:len(rows)-1])
}

// TestMultiplexPreparedStatements: two sessions over one shared backend
// connection prepare the same text and execute it with parameter types of
// their own, the second execution of each sending no types (as
// libmysqlclient does); the results must be those of MariaDB directly,
// where each session has its statement to itself.
func TestMultiplexPreparedStatements(t *testing.T) {
	p := startProxy(t, strings.Replace(listenerTOML("main", []string{"n1"}, "multiplex = true\npool_min_idle = 0"), "pool_size = 8", "pool_size = 1", 1)+nodeTOML("n1", backendDB, ""))
	longlong := []byte{mysql.MYSQL_TYPE_LONGLONG, 0}
	varString := []byte{mysql.MYSQL_TYPE_VAR_STRING, 0}
	num := func(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
	str := func(s string) []byte { return append([]byte{byte(len(s))}, s...) }
	script := func(a, b *rawConn) []string {
		ia, ib := a.prepare("SELECT ?"), b.prepare("SELECT ?")
		return []string{
			a.execute(ia, longlong, num(7)),
			b.execute(ib, varString, str("seven")),
			a.execute(ia, nil, num(8)),
			b.execute(ib, nil, str("eight")),
			a.execute(ia+1000, longlong, num(9)), // no such statement
		}
	}
	want := script(rawDirect(t, backendDB), rawDirect(t, backendDB))
	got := script(dialRaw(t, p, "main"), dialRaw(t, p, "main"))
	for i := range want {
		if got[i] != want[i] && !(strings.HasPrefix(want[i], "ERR") && strings.HasPrefix(got[i], "ERR")) {
			t.Errorf("step %d: proxy %s, direct %s", i, got[i], want[i])
		}
	}
	if !bytes.Contains([]byte(got[4]), []byte("Unknown prepared statement handler")) {
		t.Errorf("unknown statement: %s", got[4])
	}
	if v := p.metricValue(t, "pisa_proxy_pool_dials_total", `domain="main"`); v != 1 {
		t.Errorf("%v connections dialled, want 1 shared", v)
	}
}

// TestMultiplexPreparedStatementsMove: statements a session keeps open do
// not pin it; executed from many sessions interleaved over few backend
// connections they are prepared where they run and give the same answers.
func TestMultiplexPreparedStatementsMove(t *testing.T) {
	p := muxProxy(t, 2)
	ctx := context.Background()
	cs := conns(t, p.db(t, "main", ""), 8)
	stmts := make([]func(int) string, len(cs))
	for i, c := range cs {
		mustExec(t, c, fmt.Sprintf("SET @s = %d", i))
		st, err := c.PrepareContext(ctx, "SELECT CONCAT(@s, '-', ?)")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		stmts[i] = func(j int) string {
			var v string
			if err := st.QueryRowContext(ctx, j).Scan(&v); err != nil {
				t.Fatalf("session %d: %v", i, err)
			}
			return v
		}
	}
	for j := 0; j < 5; j++ {
		for i := range cs {
			if got, want := stmts[i](j), fmt.Sprintf("%d-%d", i, j); got != want {
				t.Fatalf("session %d execution %d: %q, want %q", i, j, got, want)
			}
		}
	}
	if v := p.metricValue(t, "pisa_proxy_pinned_sessions", `domain="main"`); v != 0 {
		t.Fatalf("%v sessions pinned with open prepared statements", v)
	}
	if v := p.metricValue(t, "pisa_proxy_pool_dials_total", `domain="main"`); v > 2 {
		t.Fatalf("%v connections dialled, pool_size 2", v)
	}
}

// A SET run as a prepared statement (mysqltest --ps-protocol, drivers that
// prepare everything) changes the connection's state with values the proxy
// cannot replay as text: the session keeps its connection, so the state
// neither leaks to another session nor is lost.
func TestMultiplexPreparedSet(t *testing.T) {
	p := muxProxy(t, 2)
	db := p.db(t, "main", "")
	a := pinnedConn(t, db) // pinnedConn's SET is replayable: A is not pinned by it
	ctx := context.Background()
	st, err := a.PrepareContext(ctx, "SET @v = ?")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.ExecContext(ctx, 42); err != nil {
		t.Fatal(err)
	}
	st.Close()
	// The gauge follows the command's end, which the client may see first.
	waitFor(t, 5*time.Second, "one session pinned by a prepared SET", func() bool {
		return p.metricValue(t, "pisa_proxy_pinned_sessions", `reason="prepared_set"`) == 1
	})
	for range 4 {
		if got := queryString(t, db, "SELECT COALESCE(@v, 'unset')"); got != "unset" {
			t.Fatalf("another session sees the prepared SET's variable: %q", got)
		}
	}
	if got := queryString(t, a, "SELECT @v"); got != "42" {
		t.Fatalf("the session lost its prepared SET: @v = %q", got)
	}
}

// bulk sends MariaDB's COM_STMT_BULK_EXECUTE of one parameter, a row per
// value (types nil: the send-types flag unset, as libmariadb after the
// first execution), and returns the OK's affected rows or the error.
func (r *rawConn) bulk(id uint32, types []byte, values ...[]byte) string {
	r.t.Helper()
	p := binary.LittleEndian.AppendUint32([]byte{wire.ComStmtBulkExecute}, id)
	if types != nil {
		p = append(append(p, 128, 0), types...) // STMT_BULK_FLAG_CLIENT_SEND_TYPES
	} else {
		p = append(p, 0, 0)
	}
	for _, v := range values {
		p = append(append(p, 0), v...) // indicator: a value follows
	}
	r.send(p...)
	ok := r.read()
	if ok[0] == mysql.ERR_HEADER {
		return "ERR " + string(ok[9:])
	}
	return fmt.Sprintf("OK %d rows", ok[1])
}

// TestMultiplexBulkExecute: as TestMultiplexPreparedStatements for
// MariaDB's bulk execution, whose later executions rely on the types the
// first sent, in a flags bit of their own.
func TestMultiplexBulkExecute(t *testing.T) {
	p := startProxy(t, strings.Replace(listenerTOML("main", []string{"n1"}, "multiplex = true\npool_min_idle = 0"), "pool_size = 8", "pool_size = 1", 1)+nodeTOML("n1", backendDB, ""))
	longlong := []byte{mysql.MYSQL_TYPE_LONGLONG, 0}
	varString := []byte{mysql.MYSQL_TYPE_VAR_STRING, 0}
	num := func(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
	str := func(s string) []byte { return append([]byte{byte(len(s))}, s...) }
	bulkClient := func(addr, user, password string) *rawConn {
		x := dialExt(t, addr, user, password, wire.MariaDBBulkOperations)
		if x.ext != wire.MariaDBBulkOperations {
			t.Fatalf("%s does not offer bulk execution", addr)
		}
		return &rawConn{t: t, io: x.io}
	}
	script := func(a, b *rawConn) []string {
		a.query("DROP TABLE IF EXISTS mux_bulk")
		a.query("CREATE TABLE mux_bulk (v BIGINT)")
		ia, ib := a.prepare("INSERT INTO mux_bulk VALUES (?)"), b.prepare("INSERT INTO mux_bulk VALUES (?)")
		steps := []string{
			a.bulk(ia, longlong, num(1), num(2)),
			b.bulk(ib, varString, str("3"), str("4")),
			a.bulk(ia, nil, num(5), num(6)),
			b.bulk(ib, nil, str("7"), str("8")),
		}
		return append(steps, fmt.Sprintf("%q", a.query("SELECT GROUP_CONCAT(v ORDER BY v) FROM mux_bulk")))
	}
	want := script(bulkClient(backendDB.Addr(), testenv.TestUser, testenv.TestPassword), bulkClient(backendDB.Addr(), testenv.TestUser, testenv.TestPassword))
	addr := p.Addr("main").String()
	got := script(bulkClient(addr, "app", "app-secret"), bulkClient(addr, "app", "app-secret"))
	if !strings.Contains(want[4], "1,2,3,4,5,6,7,8") {
		t.Fatalf("the server itself: %q", want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("step %d: proxy %s, direct %s", i, got[i], want[i])
		}
	}
}
