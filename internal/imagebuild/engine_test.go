package imagebuild

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"pisanix.io/pisanix/internal/testenv"
)

// podman runs podman with its own storage under a temporary directory (vfs:
// no mounts to clean up), so tests neither see nor change the machine's
// images and containers.
type podman struct {
	bin    string
	global []string
	// runArgs go with every run: rlimits at or below the current hard
	// limits. podman's defaults raise RLIMIT_NOFILE and RLIMIT_NPROC, which
	// fails without CAP_SYS_RESOURCE (as in this sandbox: "setrlimit
	// RLIMIT_NOFILE: Operation not permitted"); runc here also refused
	// RLIMIT_NPROC values near the hard limit, so both are capped.
	runArgs []string
}

func newPodman(t *testing.T, bin, runtime string) podman {
	// Not t.TempDir: podman may still be closing its state database when
	// the test ends, and a directory that cannot be removed at once would
	// fail the test.
	dir, err := os.MkdirTemp("", "imagebuild-podman-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; ; i++ {
			err := os.RemoveAll(dir)
			if err == nil {
				return
			}
			if i == 10 {
				t.Logf("podman storage %s left behind: %v", dir, err)
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	p := podman{bin: bin, global: []string{
		"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
		"--storage-driver", "vfs", "--events-backend", "file", "--cgroup-manager", "cgroupfs",
		"--tmpdir", filepath.Join(dir, "tmp"),
	}}
	if runtime != "" {
		p.global = append(p.global, "--runtime", runtime)
	}
	for _, l := range []struct {
		name     string
		resource int
		max      uint64
	}{{"nofile", unix.RLIMIT_NOFILE, 16384}, {"nproc", unix.RLIMIT_NPROC, 4096}} {
		var r unix.Rlimit
		if err := unix.Getrlimit(l.resource, &r); err == nil {
			p.runArgs = append(p.runArgs, "--ulimit", fmt.Sprintf("%s=%d:%d", l.name, min(r.Max, l.max), min(r.Max, l.max)))
		}
	}
	return p
}

func (p podman) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, p.bin, append(append([]string{}, p.global...), args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// load loads an OCI archive and returns the name podman gave the image.
func (p podman) load(ctx context.Context, archive string) (string, error) {
	out, err := p.run(ctx, "load", "-q", "-i", archive)
	if err != nil {
		return "", fmt.Errorf("podman load %s: %w\n%s", archive, err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if _, name, ok := strings.Cut(line, "Loaded image: "); ok {
			return strings.TrimSpace(name), nil
		}
		if _, name, ok := strings.Cut(line, "Loaded image(s): "); ok {
			return strings.TrimSpace(strings.Split(name, ",")[0]), nil
		}
	}
	return "", fmt.Errorf("podman load %s: no image name in %q", archive, out)
}

// runImage runs image with args to completion (--rm) on the host network.
func (p podman) runImage(ctx context.Context, image string, extra []string, args ...string) (string, error) {
	a := append([]string{"run", "--rm", "--network", "host"}, p.runArgs...)
	a = append(append(a, extra...), image)
	return p.run(ctx, append(a, args...)...)
}

// probeEngine finds a runtime with which podman runs a container here: it
// loads and runs a tiny static program in an image made like the real ones.
// It returns why none does when no runtime works.
func probeEngine(t *testing.T) (podman, string) {
	bin, err := exec.LookPath("podman")
	if err != nil {
		return podman{}, "podman is not installed (scripts/deps.sh installs it)"
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "probe.go")
	if err := os.WriteFile(src, []byte("package main\n\nimport (\"fmt\"; \"os\")\n\nfunc main() { fmt.Printf(\"probe uid=%d\\n\", os.Getuid()) }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	probeBin := filepath.Join(dir, "probe")
	cmd := exec.Command("go", "build", "-o", probeBin, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the probe: %v\n%s", err, out)
	}
	probe := Program{Name: "probe", User: NonRootUser}
	img, err := Image(probe, probeBin, Options{Stamp: Stamp{Version: "probe"}})
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "probe.tar")
	if err := WriteArchive(archive, img, Ref("localhost", "probe", "1")); err != nil {
		t.Fatal(err)
	}
	var failures []string
	for _, runtime := range []string{"", "runc", "crun"} {
		if runtime != "" {
			if _, err := exec.LookPath(runtime); err != nil {
				continue
			}
		}
		p := newPodman(t, bin, runtime)
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		name, err := p.load(ctx, archive)
		if err != nil {
			cancel()
			t.Fatalf("the engine cannot load an OCI archive: %v", err)
		}
		out, err := p.runImage(ctx, name, nil)
		cancel()
		if err == nil && strings.Contains(out, "probe uid=65532") {
			return p, ""
		}
		label := runtime
		if label == "" {
			label = "the default runtime"
		}
		failures = append(failures, fmt.Sprintf("%s: %v: %s", label, err, strings.TrimSpace(out)))
	}
	return podman{}, "podman cannot run a container here: " + strings.Join(failures, "; ")
}

// testInEngine runs the images in podman: --version and --help as non-root
// for each, and the proxy against a real MariaDB serving a query.
func testInEngine(t *testing.T, images map[string]Result, s Stamp) {
	p, why := probeEngine(t)
	if why != "" {
		t.Skip(why)
	}
	ctx := t.Context()
	names := map[string]string{}
	for name, r := range images {
		loaded, err := p.load(ctx, r.Archive)
		if err != nil {
			t.Fatal(err)
		}
		if want := r.Ref; loaded != want {
			t.Errorf("%s loaded as %q, want %q", name, loaded, want)
		}
		names[name] = loaded
	}
	wantVersion := s.Version + " (commit " + s.Commit + ")"
	for _, prog := range Programs() {
		image := names[prog.Name]
		t.Run(prog.Name, func(t *testing.T) {
			nonRoot := []string{"--user", NonRootUser}
			out, err := p.runImage(ctx, image, nonRoot, "--version")
			if err != nil || !strings.Contains(out, wantVersion) {
				t.Errorf("--version as %s: %v: %q, want %q", NonRootUser, err, out, wantVersion)
			}
			out, err = p.runImage(ctx, image, nonRoot, "--help")
			if err != nil || !strings.Contains(out, "Usage") && !strings.Contains(out, "usage") {
				t.Errorf("--help as %s: %v: %q", NonRootUser, err, out)
			}
			// The image's own user: non-root, except the daemon's.
			out, err = p.run(ctx, "image", "inspect", "--format", "{{.Config.User}}", image)
			if err != nil || strings.TrimSpace(out) != prog.User {
				t.Errorf("image user %q (%v), want %q", strings.TrimSpace(out), err, prog.User)
			}
		})
	}
	t.Run("pisa-proxy/mariadb", func(t *testing.T) { proxyServesQuery(t, p, names["pisa-proxy"]) })
	t.Run("pisa-daemon/shaping", func(t *testing.T) { daemonShapes(t, p, names["pisa-daemon"]) })
}

// proxyServesQuery starts the proxy image (its default user) on the host
// network in front of a real MariaDB and runs a query through it.
func proxyServesQuery(t *testing.T, p podman, image string) {
	db := testenv.MariaDB(t)
	listenPort, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	adminPort, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "proxy.toml")
	toml := testenv.ProxyTOML(adminPort, listenPort, "secret-app", db)
	if err := os.WriteFile(cfg, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("pisa-proxy-test-%d", os.Getpid())
	args := append([]string{"run", "-d", "--name", name, "--network", "host"}, p.runArgs...)
	args = append(args, "-v", cfg+":/etc/pisa/proxy.toml:ro", image, "daemon", "-c", "/etc/pisa/proxy.toml")
	if out, err := p.run(t.Context(), args...); err != nil {
		t.Fatalf("podman run: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if t.Failed() {
			out, _ := p.run(ctx, "logs", name)
			t.Logf("proxy container log:\n%s", out)
		}
		if out, err := p.run(ctx, "rm", "-f", "-t", "5", name); err != nil {
			t.Errorf("podman rm: %v\n%s", err, out)
		}
	})

	// It runs as 65532, seen from the host.
	out, err := p.run(t.Context(), "inspect", "--format", "{{.State.Pid}}", name)
	if err != nil {
		t.Fatalf("podman inspect: %v\n%s", err, out)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil || pid <= 0 {
		t.Fatalf("container pid %q", out)
	}
	if uid := processUID(t, pid); uid != NonRootUID {
		t.Errorf("the proxy runs as uid %d, want %d", uid, NonRootUID)
	}

	dsn := fmt.Sprintf("app:secret-app@tcp(127.0.0.1:%d)/gotest?timeout=2s", listenPort)
	conn, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var got int
	deadline := time.Now().Add(30 * time.Second)
	for {
		err = conn.QueryRowContext(t.Context(), "SELECT 40 + 2").Scan(&got)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil || got != 42 {
		t.Fatalf("query through the proxy container: %d, %v", got, err)
	}
	var version string
	if err := conn.QueryRowContext(t.Context(), "SELECT VERSION()").Scan(&version); err != nil || !strings.Contains(version, "MariaDB") {
		t.Errorf("SELECT VERSION() through the proxy: %q, %v", version, err)
	}
	// The statements are counted on the admin port.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", adminPort))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `pisa_proxy_sql_processed_total{`) {
		t.Errorf("/metrics has no pisa_proxy_sql_processed_total after queries")
	}
}

// processUID reads the real uid of a host process.
func processUID(t *testing.T, pid int) int {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(rest)
			if uid, err := strconv.Atoi(f[0]); err == nil {
				return uid
			}
		}
	}
	t.Fatalf("no Uid in /proc/%d/status", pid)
	return -1
}

// daemonShapes runs the daemon image as its DaemonSet does (its default
// user, root, with only NET_ADMIN, BPF and PERFMON, seccomp unconfined) in a
// network namespace of the test's with a veth pair: it loads its BPF
// classifier, puts the claim's HTB qdisc on the interface, exports the
// class on /metrics, and removes its state when stopped.
func daemonShapes(t *testing.T, p podman, image string) {
	if _, err := exec.LookPath("tc"); err != nil {
		t.Skip("tc (iproute2) is not installed")
	}
	ns := fmt.Sprintf("pisa-img-%d", os.Getpid())
	ip := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	ip("netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	ip("-n", ns, "link", "set", "lo", "up")
	ip("-n", ns, "link", "add", "qa0", "type", "veth", "peer", "name", "qb0")
	ip("-n", ns, "link", "set", "qa0", "up")
	ip("-n", ns, "link", "set", "qb0", "up")
	tcQdiscs := func() string {
		out, _ := exec.Command("ip", "netns", "exec", ns, "tc", "qdisc", "show", "dev", "qa0").CombinedOutput()
		return string(out)
	}

	cfg := filepath.Join(t.TempDir(), "daemon.json")
	if err := os.WriteFile(cfg, []byte(`{"app": [{"name": "shop", "service": [{"name": "db", "qos_group": {"rate": "10mbit"}, "interfaces": ["qa0"], "ports": [3306]}]}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("pisa-daemon-test-%d", os.Getpid())
	args := append([]string{"run", "-d", "--name", name, "--network", "ns:/run/netns/" + ns,
		"--cap-drop", "ALL", "--cap-add", "NET_ADMIN,BPF,PERFMON", "--security-opt", "seccomp=unconfined"}, p.runArgs...)
	args = append(args, "-v", cfg+":/etc/pisa/daemon.json:ro", image, "-c", "/etc/pisa/daemon.json", "--admin", "127.0.0.1:5592")
	if out, err := p.run(t.Context(), args...); err != nil {
		t.Fatalf("podman run: %v\n%s", err, out)
	}
	removed := false
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if t.Failed() {
			out, _ := p.run(ctx, "logs", name)
			t.Logf("daemon container log:\n%s", out)
		}
		if !removed {
			_, _ = p.run(ctx, "rm", "-f", "-t", "5", name)
		}
	})

	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(tcQdiscs(), "qdisc htb 5049: root") {
		if time.Now().After(deadline) {
			t.Fatalf("no HTB 5049: on qa0 after 30 s; qdiscs:\n%s", tcQdiscs())
		}
		time.Sleep(200 * time.Millisecond)
	}
	body, err := getInNetns(ns, "http://127.0.0.1:5592/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`pisa_daemon_qos_rate_bits{app="shop"`, `pisa_daemon_reconcile_total{result="ok"}`} {
		if !strings.Contains(body, want) {
			t.Errorf("daemon /metrics lacks %s", want)
		}
	}
	// SIGTERM: the daemon removes what it added.
	if out, err := p.run(t.Context(), "stop", "-t", "20", name); err != nil {
		t.Fatalf("podman stop: %v\n%s", err, out)
	}
	if q := tcQdiscs(); strings.Contains(q, "5049:") || strings.Contains(q, "clsact") {
		t.Errorf("after the daemon stopped, qa0 still has its qdiscs:\n%s", q)
	}
	if out, err := p.run(t.Context(), "rm", name); err != nil {
		t.Errorf("podman rm: %v\n%s", err, out)
	}
	removed = true
}

// getInNetns fetches url from inside the named network namespace: the
// connection's socket is made there, on a thread switched into it.
func getInNetns(ns, url string) (string, error) {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
			target, err := netns.GetFromName(ns)
			if err != nil {
				ch <- result{nil, err}
				return
			}
			defer target.Close()
			if err := netns.Set(target); err != nil {
				ch <- result{nil, err}
				return
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			ch <- result{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dial}}
	resp, err := client.Get(url)
	if err != nil {
		return "", fmt.Errorf("GET %s in netns %s: %w", url, ns, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("GET %s in netns %s: %w", url, ns, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s in netns %s: %s", url, ns, resp.Status)
	}
	return string(b), nil
}
