package supervisor_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	"pisanix.io/pisanix/internal/testenv"
)

// partitionNet is a network namespace joined to the test's by a veth pair:
// the proxy's side (10.198.0.1) here, the backend's (10.198.0.2) there.
// A tc filter on the proxy's side drops what the proxy sends: a partition
// (no FIN, no reset: only silence), unlike a stopped or killed server.
type partitionNet struct {
	ns   netns.NsHandle
	link netlink.Link // the proxy's side
}

const partitionBackendIP = "10.198.0.2"

func newPartitionNet(t *testing.T) *partitionNet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace, a veth pair and a tc filter")
	}
	pn := &partitionNet{ns: newNetns(t)}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "pp0"}, PeerName: "pq0", PeerNamespace: netlink.NsFd(pn.ns)}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("add veth pair: %v", err)
	}
	t.Cleanup(func() { _ = netlink.LinkDel(veth) })
	var err error
	if pn.link, err = netlink.LinkByName("pp0"); err != nil {
		t.Fatal(err)
	}
	here, err := netlink.NewHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer here.Close()
	inside, err := netlink.NewHandleAt(pn.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer inside.Close()
	up(t, here, "pp0", "10.198.0.1/24")
	up(t, inside, "pq0", partitionBackendIP+"/24")
	lo, err := inside.LinkByName("lo")
	if err == nil {
		err = inside.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("lo up: %v", err)
	}
	return pn
}

func up(t *testing.T, nl *netlink.Handle, dev, cidr string) {
	t.Helper()
	link, err := nl.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := netlink.ParseAddr(cidr)
	if err != nil {
		t.Fatal(err)
	}
	if err := nl.AddrAdd(link, addr); err != nil {
		t.Fatalf("address %s: %v", cidr, err)
	}
	if err := nl.LinkSetUp(link); err != nil {
		t.Fatalf("%s up: %v", dev, err)
	}
}

// newNetns makes an unnamed network namespace (gone with its last file
// descriptor, even when the test binary dies).
func newNetns(t *testing.T) netns.NsHandle {
	t.Helper()
	ch := make(chan netns.NsHandle, 1)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // ends inside the new namespace: never reused
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		ns, err := netns.New()
		if err != nil {
			errc <- err
			return
		}
		_ = netns.Set(orig)
		ch <- ns
	}()
	select {
	case ns := <-ch:
		t.Cleanup(func() { _ = ns.Close() })
		return ns
	case err := <-errc:
		t.Fatalf("network namespace: %v", err)
	}
	return 0
}

// startMariaDBIn starts a MariaDB inside the namespace, listening on every
// address there.
func (pn *partitionNet) startMariaDBIn(t *testing.T) *testenv.Server {
	t.Helper()
	fd, err := unix.Dup(int(pn.ns))
	if err != nil {
		t.Fatal(err)
	}
	nsFile := os.NewFile(uintptr(fd), "netns")
	t.Cleanup(func() { nsFile.Close() })
	opts := testenv.NewOptions(testenv.WithArgs("--bind-address=0.0.0.0"))
	opts.Netns = nsFile
	srv, err := testenv.StartMariaDB(context.Background(), opts)
	if err != nil {
		t.Fatalf("MariaDB in the namespace: %v", err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	return srv
}

// partition drops everything the proxy sends to the namespace: a tc
// egress filter (clsact) whose BPF program answers TC_ACT_SHOT to every
// packet. (tc netem loss 100% would do the same; these kernels are built
// without netem.) heal removes it.
func (pn *partitionNet) partition(t *testing.T) (heal func()) {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.SchedCLS, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}, // TC_ACT_SHOT
	})
	if err != nil {
		t.Fatalf("load the dropping program: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	idx := pn.link.Attrs().Index
	q := &netlink.GenericQdisc{QdiscType: "clsact",
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Parent: netlink.HANDLE_CLSACT, Handle: netlink.MakeHandle(0xffff, 0)}}
	if err := netlink.QdiscAdd(q); err != nil {
		t.Fatalf("clsact: %v", err)
	}
	f := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: idx, Parent: netlink.HANDLE_MIN_EGRESS, Handle: 1, Protocol: unix.ETH_P_ALL, Priority: 1},
		Fd:          prog.FD(), Name: "partition", DirectAction: true,
	}
	if err := netlink.FilterAdd(f); err != nil {
		t.Fatalf("drop filter: %v", err)
	}
	healed := false
	heal = func() {
		if !healed {
			healed = true
			if err := netlink.QdiscDel(q); err != nil {
				t.Errorf("remove the partition: %v", err)
			}
		}
	}
	t.Cleanup(heal)
	return heal
}

// TestBackendPartitioned: a node cut off by the network (packets dropped:
// no reset, no FIN) under load. Statements on it fail with 1158 after
// backend_read_timeout instead of hanging, its breaker opens, new sessions
// go to the healthy node, and once the network heals the node serves
// again; goroutines and file descriptors return to their baseline.
func TestBackendPartitioned(t *testing.T) {
	pn := newPartitionNet(t)
	far := pn.startMariaDBIn(t)
	p := startProxy(t, listenerTOML("main", []string{"far", "near"}, "backend_read_timeout = \"1s\"\ndial_timeout = \"1s\"\n")+
		fmt.Sprintf(`
[[mysql.node]]
name = "far"
db = "gotest"
user = %q
password = %q
host = %q
port = %d
`, testenv.TestUser, testenv.TestPassword, partitionBackendIP, far.Port())+nodeTOML("near", backendDB, ""))
	db := p.db(t, "main", "")
	var conns []*sql.Conn
	ports := map[string]int{}
	for range 4 { // round robin: two on each node
		c := pinnedConn(t, db)
		port := queryString(t, c, "SELECT @@port")
		ports[port]++
		conns = append(conns, c)
	}
	if len(ports) != 2 {
		t.Fatalf("sessions by node port: %v, want both nodes", ports)
	}
	goroutines, fds := runtime.NumGoroutine(), openFDs(t)

	heal := pn.partition(t)
	farPort := fmt.Sprint(far.Port())
	for _, c := range conns {
		start := time.Now()
		port, err := portOf(c)
		switch {
		case err == nil && port == farPort:
			t.Fatalf("a statement on the partitioned node succeeded")
		case err != nil && (mysqlErr(err) == nil || mysqlErr(err).Number != 1158):
			t.Fatalf("a statement on the partitioned node: %v, want 1158", err)
		case time.Since(start) > 5*time.Second:
			t.Fatalf("the partition was noticed after %v", time.Since(start))
		}
	}
	// New sessions: any that lands on the far node fails over to the near
	// one, and the failures open the far node's breaker.
	fresh := func() (string, error) {
		c, err := db.Conn(context.Background())
		if err != nil {
			return "", err
		}
		defer c.Raw(func(any) error { return driver.ErrBadConn }) // not back to database/sql's pool
		return portOf(c)
	}
	waitFor(t, 30*time.Second, "the far node's breaker open", func() bool {
		_, _ = fresh()
		return len(p.metric(t, `pisa_proxy_backend_breaker_state{domain="main",node="far"} 2`)) == 1
	})
	for i := range 10 {
		start := time.Now()
		if port, err := fresh(); err != nil || port == farPort || time.Since(start) > time.Second {
			t.Fatalf("new session %d while partitioned: port %s, %v, after %v", i, port, err, time.Since(start))
		}
	}

	heal()
	waitFor(t, 30*time.Second, "the far node serving again", func() bool {
		port, err := fresh()
		return err == nil && port == farPort
	})
	for _, c := range conns {
		_ = c.Close()
	}
	db.Close()
	waitFor(t, 30*time.Second, "goroutines and file descriptors back to their baseline", func() bool {
		return runtime.NumGoroutine() <= goroutines+4 && openFDs(t) <= fds+4
	})
}

func portOf(c *sql.Conn) (string, error) {
	var port string
	err := c.QueryRowContext(context.Background(), "SELECT @@port").Scan(&port)
	return port, err
}

func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}
