package supervisor_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"pisanix.io/pisanix/internal/testenv"
)

// A client silent for client_idle_timeout is told why (4031, as MySQL 8
// does on wait_timeout) and disconnected; a statement running longer than
// the timeout is not cut.
func TestClientIdleTimeout(t *testing.T) {
	p := startProxy(t, oneNode("client_idle_timeout = \"300ms\"\n"))
	busy := pinnedConn(t, p.db(t, "main", ""))
	if _, err := busy.ExecContext(context.Background(), "DO SLEEP(0.6)"); err != nil {
		t.Fatalf("a statement longer than the idle timeout: %v", err)
	}
	r := dialRaw(t, p, "main")
	wantErrCode(t, r.read(), 4031)
	if _, err := r.io.ReadPacket(nil, 1<<20); err == nil {
		t.Fatal("the connection stayed open after the idle timeout")
	}
}

// A backend frozen with its TCP connection alive (SIGSTOP) is detected by
// backend_read_timeout: the client gets 1158 (08S01) instead of a hang, the node's
// breaker counts it, and the node serves again once it thaws.
func TestBackendReadTimeoutFrozenNode(t *testing.T) {
	srv := testenv.MariaDB(t)
	p := startProxy(t, listenerTOML("main", []string{"n1"}, "backend_read_timeout = \"1s\"\n")+nodeTOML("n1", srv, ""))
	db := p.db(t, "main", "")
	var conns []*sql.Conn
	for range 3 { // the failures that open a node's breaker
		conns = append(conns, pinnedConn(t, db))
	}
	if err := syscall.Kill(srv.PID(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			_ = syscall.Kill(srv.PID(), syscall.SIGCONT)
		}
	}
	defer thaw()
	waitFor(t, 5*time.Second, "mariadbd stopped", func() bool { return processState(srv.PID()) == 'T' })
	for _, c := range conns {
		start := time.Now()
		_, err := c.ExecContext(context.Background(), "SELECT 1")
		if me := mysqlErr(err); me == nil || me.Number != 1158 || me.SQLState != [5]byte{'0', '8', 'S', '0', '1'} {
			t.Fatalf("statement on a frozen node: want 1158 (08S01), got %v", err)
		}
		// One backend_read_timeout (1s), not two: a read error must not
		// be lost to a second read with a fresh deadline.
		if d := time.Since(start); d > 1800*time.Millisecond {
			t.Fatalf("the frozen node was detected after %s, want about backend_read_timeout (1s)", d)
		}
	}
	waitFor(t, 5*time.Second, "the node's breaker open", func() bool {
		return len(p.metric(t, `pisa_proxy_backend_breaker_state{domain="main",node="n1"} 2`)) == 1
	})
	thaw()
	waitFor(t, 10*time.Second, "the node serving again", func() bool {
		return execErr(p.db(t, "main", ""), "SELECT 1") == nil
	})
}

// A client that never reads a 1.1 GB result is cut after
// client_write_timeout: the proxy's memory stays bounded meanwhile, its
// session ends, the statement stops on the backend, and others go on.
func TestClientWriteTimeout(t *testing.T) {
	p := startProxy(t, oneNode("client_write_timeout = \"500ms\"\n"))
	other := pinnedConn(t, p.db(t, "main", ""))
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := dialRaw(t, p, "main")
	// A 1.1 GB result that r never reads: the proxy's writes to it block,
	// then time out.
	r.send(append([]byte{mysql.COM_QUERY}, "SELECT REPEAT('x', 1000000) /* never_read */ FROM seq_1_to_1100"...)...)
	var peak uint64
	waitFor(t, 10*time.Second, "the stalled session ended", func() bool {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		peak = max(peak, m.HeapInuse)
		return p.Registry.Len() == 1
	})
	if grew := int64(peak) - int64(before.HeapInuse); grew > 64<<20 {
		t.Errorf("heap grew %d MiB while a client did not read a 1.1 GB result; want it bounded by buffers", grew>>20)
	}
	// Its backend connection was dropped with the statement on it, which
	// the server stops when its next write fails.
	waitFor(t, 10*time.Second, "the statement gone from the backend", func() bool {
		return queryString(t, backendDB.RootDB(), "SELECT COUNT(*) FROM information_schema.processlist WHERE info LIKE '%never_read%' AND id <> CONNECTION_ID()") == "0"
	})
	assertAlive(t, other)
}

// processState is the state letter of pid in /proc (R, S, T, ...), 0 when
// unreadable.
func processState(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if i := bytes.LastIndexByte(b, ')'); err == nil && i >= 0 && i+2 < len(b) {
		return b[i+2]
	}
	return 0
}

// Connections that never log in cost the proxy little memory (small
// buffers until authentication, a small session mailbox) and are dropped
// after login_timeout.
func TestUnauthenticatedConnectionsAreCheap(t *testing.T) {
	p := startProxy(t, oneNode("max_connections = 2000\nlogin_timeout = \"30s\"\n"))
	addr := p.Addr("main").String()
	const n = 500
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	greeting := make([]byte, 4)
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := io.ReadFull(c, greeting); err != nil { // the session is up and waits
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapAlloc+after.StackInuse) - int64(before.HeapAlloc+before.StackInuse)) / n
	t.Logf("%d bytes per connection that has not logged in", per)
	if per > 32<<10 {
		t.Fatalf("%d bytes per connection that has not logged in, want at most 32 KiB", per)
	}
}

// TestMaxAllowedPacket: a command over the listener's max_allowed_packet
// fails as on MariaDB with the same max_allowed_packet (which sends 1153
// and closes, often before the client has written it all: a reset); the
// proxy reads the rest first, so its client gets the 1153 always. So
// whether the command fits one packet or continues past 16 MiB (then the
// backend connection that got part of it is dropped); the other sessions
// go on.
func TestMaxAllowedPacket(t *testing.T) {
	const limit = 1 << 20
	srv := testenv.MariaDB(t, testenv.WithArgs(fmt.Sprintf("--max-allowed-packet=%d", limit)))
	p := startProxy(t, listenerTOML("main", []string{"n1"}, fmt.Sprintf("max_allowed_packet = %d", limit))+nodeTOML("n1", srv, ""))
	big := "SELECT LENGTH('" + strings.Repeat("x", 2*limit) + "')"
	direct := openDB(t, srv.DSN(testenv.TestUser, testenv.TestPassword, "gotest"))
	_, wantErr := direct.Exec(big)
	proxied := p.db(t, "main", "")
	_, gotErr := proxied.Exec(big)
	me := mysqlErr(gotErr)
	if wantErr == nil || me == nil || me.Number != mysql.ER_NET_PACKET_TOO_LARGE || me.Message != "Got a packet bigger than 'max_allowed_packet' bytes" {
		t.Fatalf("through the proxy: %v; directly: %v", gotErr, wantErr)
	}
	// The session was closed, as MariaDB closes it; a new one serves a
	// command under the limit.
	var n int
	if err := p.db(t, "main", "").QueryRow("SELECT LENGTH(?)", strings.Repeat("y", limit/2)).Scan(&n); err != nil || n != limit/2 {
		t.Errorf("a command under the limit: %d, %v", n, err)
	}

	// Past one packet: the limit is counted over the continuation packets.
	p2 := startProxy(t, listenerTOML("main", []string{"n1"}, "max_allowed_packet = 17000000")+nodeTOML("n1", backendDB, ""))
	huge := "SELECT LENGTH('" + strings.Repeat("z", 18_000_000) + "')"
	db := p2.db(t, "main", "")
	if _, err := db.Exec(huge); mysqlErr(err) == nil || mysqlErr(err).Number != mysql.ER_NET_PACKET_TOO_LARGE {
		t.Fatalf("a command over the limit in its second packet: %v, want 1153", err)
	}
	if got := queryString(t, p2.db(t, "main", ""), "SELECT 'still serving'"); got != "still serving" {
		t.Errorf("after the refusal: %q", got)
	}
}
