package supervisor_test

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/vishvananda/netlink"

	"pisanix.io/pisanix/internal/testenv"
)

// Addresses on a veth end in this namespace: MariaDB's host cache (and so
// max_connect_errors) ignores loopback addresses, so the proxy reaches the
// server, and one client reaches the proxy, from these.
const (
	abandonProxyIP  = "10.199.0.1"
	abandonClientIP = "10.199.0.2"
)

// TestPassthroughAbandonedLogins: with auth passthrough the proxy dials the
// backend before the client says anything, so a client that connects and
// leaves (a balancer's TCP health check) leaves a half-open login on the
// server. Closed bare, each is a connection error of the proxy's address,
// and max_connect_errors of them block the proxy, every client with it.
// Without a PROXY header to the node the proxy ends such a login as a
// failed authentication, which the server does not count; with one, the
// server counts it against the client, as it would without the proxy.
// FLUSH HOSTS through the proxy unblocks it on both.
func TestPassthroughAbandonedLogins(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: adds a veth pair with two addresses")
	}
	vethAddresses(t, abandonProxyIP, abandonClientIP)
	srv, err := testenv.StartMariaDB(context.Background(), testenv.NewOptions(testenv.WithArgs(
		// Name resolution on: with skip-name-resolve the server keeps no
		// host cache, so max_connect_errors blocks nobody.
		"--bind-address=0.0.0.0", "--skip-name-resolve=0", "--max-connect-errors=3", "--proxy-protocol-networks="+abandonProxyIP)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	node := func(name, extra string) string {
		return fmt.Sprintf("\n[[mysql.node]]\nname = %q\nuser = %q\npassword = %q\nhost = %q\nport = %d\n%s\n",
			name, testenv.TestUser, testenv.TestPassword, abandonProxyIP, srv.Port(), extra)
	}
	login := func(p *proxy, from string) error {
		cfg := mysql.NewConfig()
		cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = testenv.TestUser, testenv.TestPassword, "dial-"+from, p.Addr("main").String(), "gotest"
		return ping(cfg.FormatDSN())
	}
	for _, ip := range []string{"127.0.0.1", abandonClientIP} {
		mysql.RegisterDialContext("dial-"+ip, func(ctx context.Context, addr string) (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
			return d.DialContext(ctx, "tcp", addr)
		})
	}

	// leave has n clients connect and leave, and waits until the server
	// has dealt with each of their logins.
	leave := func(t *testing.T, p *proxy, n int) {
		t.Helper()
		before := aborted(t, srv)
		for range n {
			connectAndLeave(t, p.Addr("main").String(), abandonClientIP)
		}
		waitFor(t, 20*time.Second, "the server to count the abandoned logins", func() bool { return aborted(t, srv) >= before+n })
	}

	t.Run("no PROXY header", func(t *testing.T) {
		p := startProxy(t, passthroughListener("")+node("n1", ""))
		leave(t, p, 6)
		if err := login(p, abandonClientIP); err != nil {
			t.Fatalf("after 6 clients left before logging in: %v (the server blocked the proxy)", err)
		}
	})
	t.Run("PROXY header", func(t *testing.T) {
		p := startProxy(t, passthroughListener("")+node("n1", "proxy_protocol = true"))
		leave(t, p, 3)
		if me := mysqlErr(login(p, abandonClientIP)); me == nil || me.Number != 1129 {
			t.Fatalf("the client that left 3 times: %v, want the server's 1129 (max_connect_errors = 3)", me)
		}
		if err := login(p, "127.0.0.1"); err != nil {
			t.Fatalf("another client: %v", err)
		}
		if err := execAs(p, "127.0.0.1", "FLUSH HOSTS"); err != nil {
			t.Fatal(err)
		}
		if err := login(p, abandonClientIP); err != nil {
			t.Fatalf("after FLUSH HOSTS: %v", err)
		}
	})
}

// aborted is the server's Aborted_connects.
func aborted(t *testing.T, srv *testenv.Server) int {
	t.Helper()
	var name string
	var n int
	if err := srv.RootDB().QueryRow("SHOW GLOBAL STATUS LIKE 'Aborted_connects'").Scan(&name, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// connectAndLeave opens a connection from the address from, reads the
// greeting and closes, as a TCP health check does.
func connectAndLeave(t *testing.T, addr, from string) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 512)); err != nil {
		t.Fatalf("greeting: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// execAs runs one statement as the test user from address from.
func execAs(p *proxy, from, stmt string) error {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = testenv.TestUser, testenv.TestPassword, "dial-"+from, p.Addr("main").String()
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec(stmt); err != nil {
		return fmt.Errorf("%s: %w", stmt, err)
	}
	return nil
}

// vethAddresses adds a veth pair in this namespace with addrs on one end.
func vethAddresses(t *testing.T, addrs ...string) {
	t.Helper()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "pab0"}, PeerName: "pab1"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("add veth pair: %v", err)
	}
	t.Cleanup(func() { _ = netlink.LinkDel(veth) })
	here, err := netlink.NewHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer here.Close()
	for _, a := range addrs {
		up(t, here, "pab0", a+"/32")
	}
}
