package qosd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// testNet is two fresh network namespaces joined by a veth pair:
// devA (10.199.0.1, fd99::1) in a, devB (10.199.0.2, fd99::2) in b.
// Unnamed namespaces: they vanish with their last file descriptor, even
// when the test binary dies.
type testNet struct {
	a, b       netns.NsHandle
	nlA, nlB   *netlink.Handle
	devA, devB string
	ipA, ipB   netip.Addr
	ip6B       netip.Addr
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, qdiscs and BPF programs")
	}
}

// inNS runs fn on a thread switched into ns. The thread is never unlocked,
// so Go discards it afterwards instead of reusing a thread in the wrong
// namespace.
func inNS(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("enter netns: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

func newNS(t *testing.T) netns.NsHandle {
	t.Helper()
	type res struct {
		ns  netns.NsHandle
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread() // the thread ends inside the new namespace; never reuse it
		ns, err := netns.New()
		ch <- res{ns, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("create network namespace: %v", r.err)
	}
	t.Cleanup(func() { _ = r.ns.Close() })
	return r.ns
}

func newTestNet(t *testing.T) *testNet {
	t.Helper()
	requireRoot(t)
	tn := &testNet{
		devA: "qa0", devB: "qb0",
		ipA: netip.MustParseAddr("10.199.0.1"), ipB: netip.MustParseAddr("10.199.0.2"),
		ip6B: netip.MustParseAddr("fd99::2"),
	}
	tn.a, tn.b = newNS(t), newNS(t)
	var err error
	if tn.nlA, err = netlink.NewHandleAt(tn.a); err != nil {
		t.Fatalf("netlink handle: %v", err)
	}
	t.Cleanup(tn.nlA.Close)
	if tn.nlB, err = netlink.NewHandleAt(tn.b); err != nil {
		t.Fatalf("netlink handle: %v", err)
	}
	t.Cleanup(tn.nlB.Close)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: tn.devA}, PeerName: tn.devB, PeerNamespace: netlink.NsFd(tn.b)}
	if err := tn.nlA.LinkAdd(veth); err != nil {
		t.Fatalf("add veth pair: %v", err)
	}
	for _, side := range []struct {
		nl          *netlink.Handle
		dev, v4, v6 string
	}{{tn.nlA, tn.devA, "10.199.0.1/24", "fd99::1/64"}, {tn.nlB, tn.devB, "10.199.0.2/24", "fd99::2/64"}} {
		link, err := side.nl.LinkByName(side.dev)
		if err != nil {
			t.Fatalf("find %s: %v", side.dev, err)
		}
		for _, cidr := range []string{side.v4, side.v6} {
			addr, err := netlink.ParseAddr(cidr)
			if err != nil {
				t.Fatal(err)
			}
			addr.Flags = 0x02 // IFA_F_NODAD: usable at once
			if err := side.nl.AddrAdd(link, addr); err != nil {
				t.Fatalf("add %s to %s: %v", cidr, side.dev, err)
			}
		}
		lo, err := side.nl.LinkByName("lo")
		if err != nil {
			t.Fatalf("find lo: %v", err)
		}
		for _, l := range []netlink.Link{lo, link} {
			if err := side.nl.LinkSetUp(l); err != nil {
				t.Fatalf("set %s up: %v", l.Attrs().Name, err)
			}
		}
	}
	return tn
}

// newTestReconciler loads the classifier for namespace a, skipping only when
// the kernel reports BPF as not supported.
func newTestReconciler(t *testing.T, tn *testNet) *Reconciler {
	t.Helper()
	r, err := NewReconciler(slog.New(slog.NewTextHandler(io.Discard, nil)), tn.nlA)
	if errors.Is(err, ebpf.ErrNotSupported) {
		t.Skipf("BPF not supported here: %v", err)
	}
	if err != nil {
		t.Fatalf("load classifier: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// transfer is one TCP stream from namespace a to a listener in b.
type transfer struct {
	received atomic.Int64
	sent     atomic.Int64
	retrans  atomic.Int64 // segments the sender retransmitted (TCP_INFO)
	done     chan error
}

// startTransfer sends as fast as TCP allows from a to dst (in b) until ctx
// ends; wait() returns when the receiver has read everything.
func startTransfer(ctx context.Context, t *testing.T, tn *testNet, dst netip.AddrPort) *transfer {
	t.Helper()
	var ln net.Listener
	if err := inNS(tn.b, func() (err error) {
		ln, err = net.Listen("tcp", dst.String())
		return err
	}); err != nil {
		t.Fatalf("listen in b: %v", err)
	}
	var conn net.Conn
	if err := inNS(tn.a, func() (err error) {
		conn, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", dst.String())
		return err
	}); err != nil {
		_ = ln.Close()
		t.Fatalf("dial from a: %v", err)
	}
	tr := &transfer{done: make(chan error, 2)}
	srv, err := ln.Accept()
	_ = ln.Close()
	if err != nil {
		_ = conn.Close()
		t.Fatalf("accept in b: %v", err)
	}
	drained := make(chan struct{})
	go func() {
		defer srv.Close()
		defer close(drained)
		buf := make([]byte, 256<<10)
		for {
			n, err := srv.Read(buf)
			tr.received.Add(int64(n))
			if errors.Is(err, io.EOF) {
				tr.done <- nil
				return
			}
			if err != nil {
				tr.done <- fmt.Errorf("receive: %w", err)
				return
			}
		}
	}()
	go func() {
		buf := make([]byte, 64<<10)
		stop := context.AfterFunc(ctx, func() { _ = conn.SetWriteDeadline(time.Unix(1, 0)) })
		defer stop()
		for ctx.Err() == nil {
			n, err := conn.Write(buf)
			tr.sent.Add(int64(n))
			if err != nil {
				break
			}
		}
		// Flush what is queued, then signal EOF.
		_ = conn.SetWriteDeadline(time.Time{})
		tc := conn.(*net.TCPConn)
		if err := tc.CloseWrite(); err != nil {
			tr.done <- fmt.Errorf("close write: %w", err)
		}
		<-drained
		if raw, err := tc.SyscallConn(); err == nil {
			_ = raw.Control(func(fd uintptr) {
				if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
					tr.retrans.Store(int64(info.Total_retrans))
				}
			})
		}
		_ = conn.Close()
	}()
	return tr
}

// rate measures the receive rate (goodput) in bit/s over window, after
// warmup, and the rate of wire(), a byte counter, over the same window.
func (tr *transfer) rate(warmup, window time.Duration, wire func() uint64) (goodput, wireRate float64) {
	time.Sleep(warmup) // measurement window, not synchronisation
	b0, w0, t0 := tr.received.Load(), wire(), time.Now()
	time.Sleep(window)
	b1, w1, t1 := tr.received.Load(), wire(), time.Now()
	secs := t1.Sub(t0).Seconds()
	return float64(b1-b0) * 8 / secs, float64(w1-w0) * 8 / secs
}

// wait returns when the receiver has read the whole stream.
func (tr *transfer) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case err := <-tr.done:
		if err != nil {
			t.Fatalf("transfer: %v", err)
		}
	case <-time.After(timeout):
		t.Fatalf("transfer did not finish within %v", timeout)
	}
}

// sendBytes sends n bytes over one TCP connection from a to dst (in b) and
// returns when the receiver has read them all.
func sendBytes(t *testing.T, tn *testNet, dst netip.AddrPort, n int) {
	t.Helper()
	var ln net.Listener
	if err := inNS(tn.b, func() (err error) {
		ln, err = net.Listen("tcp", dst.String())
		return err
	}); err != nil {
		t.Fatalf("listen in b: %v", err)
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		k, _ := io.Copy(io.Discard, c)
		got <- k
	}()
	var conn net.Conn
	if err := inNS(tn.a, func() (err error) {
		conn, err = net.DialTimeout("tcp", dst.String(), 5*time.Second)
		return err
	}); err != nil {
		t.Fatalf("dial from a: %v", err)
	}
	if _, err := conn.Write(make([]byte, n)); err != nil {
		t.Fatalf("send: %v", err)
	}
	_ = conn.Close()
	select {
	case k := <-got:
		if k != int64(n) {
			t.Fatalf("receiver got %d bytes, want %d", k, n)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("receiver did not get %d bytes within 30s", n)
	}
}
