package qosd

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"pisanix.io/pisanix/config"
)

// Packets of a process in the claimed cgroup (v2) are classified; the same
// traffic from a process outside it is not.
func TestCgroupClassification(t *testing.T) {
	tn := newTestNet(t)
	root, err := cgroup2Mount()
	if err != nil {
		t.Skipf("cgroup rules need cgroup v2: %v", err)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("needs bash (its /dev/tcp) as the sender in the cgroup")
	}
	cg, err := os.MkdirTemp(root, "pisa-qos-test-")
	if err != nil {
		t.Fatalf("create cgroup: %v", err)
	}
	t.Cleanup(func() { _ = os.Remove(cg) })
	cgFD, err := os.Open(cg)
	if err != nil {
		t.Fatal(err)
	}
	defer cgFD.Close()

	ctx := context.Background()
	r := newTestReconciler(t, tn)
	t.Cleanup(func() { _ = r.Cleanup(ctx) })
	cfg := &config.DaemonConfig{App: []config.QoSApp{{Name: "catalogue", Service: []config.QoSService{{
		Name: "catalogue-db", QoSGroup: &config.QoSGroup{Rate: "100mbit"}, Interfaces: []string{tn.devA},
		Cgroups: []string{cg}, Ports: []int{3306},
	}}}}}
	if err := r.Apply(ctx, cfg); err != nil {
		t.Fatalf("apply: %v", err)
	}

	// Outside the cgroup: not classified.
	dst := netip.AddrPortFrom(tn.ipB, 3306)
	sendBytes(t, tn, dst, 100_000)
	if c := classCounters(t, r); c.Packets != 0 {
		t.Fatalf("traffic from outside the cgroup was classified: %+v", c)
	}

	// Inside the cgroup: bash writes to /dev/tcp from namespace a.
	var ln net.Listener
	if err := inNS(tn.b, func() (err error) { ln, err = net.Listen("tcp", dst.String()); return err }); err != nil {
		t.Fatalf("listen: %v", err)
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
		n, _ := io.Copy(io.Discard, c)
		got <- n
	}()
	const n = 150_000
	cmd := exec.Command(bash, "-c", fmt.Sprintf("head -c %d /dev/zero > /dev/tcp/%s/%d", n, dst.Addr(), dst.Port()))
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cgFD.Fd())}
	if err := inNS(tn.a, cmd.Start); err != nil { // forked from a thread in namespace a
		t.Fatalf("start sender in cgroup: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sender in cgroup: %v", err)
	}
	select {
	case k := <-got:
		if k != n {
			t.Fatalf("receiver got %d bytes, want %d", k, n)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("receiver timed out")
	}
	if c := classCounters(t, r); c.PayloadBytes != n {
		t.Errorf("cgroup class counted %d payload bytes, want %d", c.PayloadBytes, n)
	}
}

// An IPv6 endpoint (the original daemon took IPv4 literals only).
func TestIPv6Endpoint(t *testing.T) {
	tn := newTestNet(t)
	ctx := context.Background()
	r := newTestReconciler(t, tn)
	t.Cleanup(func() { _ = r.Cleanup(ctx) })
	dst := netip.AddrPortFrom(tn.ip6B, 3306)
	cfg := claimConfig(tn.devA, "100mbit", dst)
	cfg.App[0].Service[0].Endpoints[0].IP = "[" + tn.ip6B.String() + "]"
	if err := r.Apply(ctx, cfg); err != nil {
		t.Fatalf("apply: %v", err)
	}
	sendBytes(t, tn, dst, 120_000)
	if c := classCounters(t, r); c.PayloadBytes != 120_000 {
		t.Errorf("IPv6 class counted %d payload bytes, want 120000", c.PayloadBytes)
	}
}
