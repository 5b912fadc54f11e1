package supervisor_test

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
)

// abortedClients is the backend's count of connections closed without
// COM_QUIT.
func abortedClients(t *testing.T) string {
	t.Helper()
	var name, v string
	if err := backendDB.RootDB().QueryRow("SHOW GLOBAL STATUS LIKE 'Aborted_clients'").Scan(&name, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// A graceful drain: readiness turns false and no new connection is
// accepted at once; an idle session is closed right away, a running
// statement finishes, an open transaction may go on until it commits and
// loses nothing; backend connections are closed with COM_QUIT.
func TestDrain(t *testing.T) {
	mustExec(t, backendDB.RootDB(), "CREATE OR REPLACE TABLE gotest.drain_t (id INT)")
	p := startProxy(t, oneNode(""))
	db := p.db(t, "main", "")
	ctx := context.Background()
	idle, running, inTx := pinnedConn(t, db), pinnedConn(t, db), pinnedConn(t, db)
	mustExec(t, inTx, "BEGIN", "INSERT INTO drain_t VALUES (1)")
	slept := make(chan error, 1)
	go func() {
		_, err := running.ExecContext(ctx, "SELECT SLEEP(1)")
		slept <- err
	}()
	waitFor(t, 5*time.Second, "the sleep running", func() bool {
		return queryString(t, backendDB.RootDB(), "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(1)'") == "1"
	})
	aborted := abortedClients(t)
	addr := p.Addr("main").String()

	drained := make(chan error, 1)
	var cut int
	go func() {
		dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		var err error
		cut, err = p.Drain(dctx)
		drained <- err
	}()
	waitFor(t, 5*time.Second, "readiness false", func() bool { return p.Ready() != nil })
	waitFor(t, 5*time.Second, "no new connection accepted", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	waitFor(t, 5*time.Second, "the idle session closed", func() bool {
		_, err := idle.ExecContext(ctx, "SELECT 1")
		return err != nil
	})
	if err := <-slept; err != nil {
		t.Fatalf("the running statement failed: %v", err)
	}
	// The transaction goes on and commits.
	mustExec(t, inTx, "INSERT INTO drain_t VALUES (2)", "COMMIT")
	if err := <-drained; err != nil || cut != 0 {
		t.Fatalf("drain: %d sessions cut, %v", cut, err)
	}
	if got := queryString(t, backendDB.RootDB(), "SELECT COUNT(*) FROM gotest.drain_t"); got != "2" {
		t.Fatalf("%s rows committed, want 2", got)
	}
	if _, err := inTx.ExecContext(ctx, "SELECT 1"); err == nil {
		t.Fatal("the session survived the drain after its transaction")
	}
	if got := abortedClients(t); got != aborted {
		t.Errorf("Aborted_clients went from %s to %s: backend connections closed without COM_QUIT", aborted, got)
	}
}

// A transaction still open at the drain deadline is cut: the client is
// told why (1053, SQLSTATE 08S01) and nothing it did is committed.
func TestDrainDeadline(t *testing.T) {
	mustExec(t, backendDB.RootDB(), "CREATE OR REPLACE TABLE gotest.drain_d (id INT)")
	p := startProxy(t, oneNode(""))
	r := dialRaw(t, p, "main")
	for _, q := range []string{"BEGIN", "INSERT INTO drain_d VALUES (1)"} {
		if b := r.query(q); b[0][0] != mysql.OK_HEADER {
			t.Fatalf("%s: %q", q, b[0])
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	cut, err := p.Drain(ctx)
	if err != nil || cut != 1 {
		t.Fatalf("drain: %d sessions cut, %v; want 1", cut, err)
	}
	wantErrCode(t, r.read(), mysql.ER_SERVER_SHUTDOWN)
	if _, err := r.io.ReadPacket(nil, 1<<20); err == nil {
		t.Fatal("the connection stayed open after the shutdown error")
	}
	var n int
	err = backendDB.RootDB().QueryRow("SELECT COUNT(*) FROM gotest.drain_d").Scan(&n)
	if err != nil && !errors.Is(err, sql.ErrNoRows) || n != 0 {
		t.Fatalf("%d rows of the cut transaction committed (%v)", n, err)
	}
}

// A session that finishes its login while the proxy drains (it was
// accepted before the listener closed) is drained too, not left open
// until the deadline.
func TestDrainCatchesLateLogins(t *testing.T) {
	p := startProxy(t, oneNode(""))
	p.Registry.Drain() // as Drain does after closing the listeners
	c, err := client.Connect(p.Addr("main").String(), "app", "app-secret", "gotest")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Execute("SELECT 1"); err == nil {
		t.Fatal("a session that logged in during the drain ran a statement")
	}
	waitFor(t, 5*time.Second, "no session left", func() bool { return p.Registry.Len() == 0 })
}
