package main

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"pisanix.io/pisanix/internal/testenv"
)

// readyTimeout bounds how long HAProxy or pisa-proxy may take to serve a
// first MySQL ping.
const readyTimeout = 30 * time.Second

// stopGrace is how long a managed process gets after SIGTERM.
const stopGrace = 5 * time.Second

// target is one endpoint sysbench connects to.
type target struct {
	name string
	host string
	port int
	proc *managed // nil for direct
	err  error    // why the target is unavailable; nil when usable
}

func (t *target) addr() string { return net.JoinHostPort(t.host, strconv.Itoa(t.port)) }

// pid is the process behind the target, 0 for direct.
func (t *target) pid() int {
	if t.proc == nil {
		return 0
	}
	return t.proc.PID()
}

// managed is a child process the harness started and must stop; it is
// killed if the harness dies (testenv.StartProcess sets Pdeathsig).
type managed struct {
	*testenv.Process
	name    string
	logPath string
}

// startManaged starts a child with output to logPath.
func startManaged(name, logPath, bin string, args ...string) (*managed, error) {
	_ = os.Remove(logPath) // a fresh log per run
	proc, err := testenv.StartProcess(bin, args, logPath)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &managed{Process: proc, name: name, logPath: logPath}, nil
}

// stop sends SIGTERM, waits stopGrace, then kills.
func (m *managed) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), stopGrace)
	defer cancel()
	_ = m.Terminate(ctx)
}

// logTail returns the last lines of the process's output.
func (m *managed) logTail(n int) string {
	data, err := os.ReadFile(m.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", m.logPath, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// lookBin finds a program in PATH or the sbin dirs (not in a user's PATH).
func lookBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH, /usr/sbin or /usr/local/sbin", name)
}

// haproxyConfig is HAProxy 2.6 in plain TCP mode: no health checks, no
// logs, maxconn client connections at most.
func haproxyConfig(listenPort, backendPort, maxconn int) string {
	return fmt.Sprintf(`global
    maxconn %d

defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h

listen mysql
    bind 127.0.0.1:%d
    mode tcp
    server mariadb 127.0.0.1:%d
`, maxconn, listenPort, backendPort)
}

// proxyConfig is the pisa-proxy TOML (the Pisanix config schema) of the
// named target: proxy-rules has the strategies on (see targetProxyRules),
// proxy-mux multiplexing.
func proxyConfig(adminPort, listenPort, backendPort int, name string) string {
	switch name {
	case targetProxyRules:
		return rulesConfig(adminPort, listenPort, backendPort)
	case targetProxyMux:
		plain := proxyConfig(adminPort, listenPort, backendPort, targetProxy)
		return strings.Replace(plain, "pool_size = 64\n", "pool_size = 64\nmultiplex = true\n", 1)
	}
	return fmt.Sprintf(`[admin]
host = "127.0.0.1"
port = %d
log_level = "WARN"

[[proxy.config]]
name = "bench"
listen_addr = "127.0.0.1:%d"
user = "%s"
password = "%s"
db = "%s"
backend_type = "mysql"
pool_size = 64
max_connections = 20000
server_version = "5.7.37"

[proxy.config.simple_loadbalance]
balance_type = "random"
nodes = ["node1"]

[[mysql.node]]
name = "node1"
db = "%s"
user = "%s"
password = "%s"
host = "127.0.0.1"
port = %d
weight = 1
role = "readwrite"
`, adminPort, listenPort, benchUser, benchPass, benchDB, benchDB, benchUser, benchPass, backendPort)
}

// startHAProxy writes the config into dir and starts haproxy in the
// foreground in front of the backend port.
func startHAProxy(ctx context.Context, dir string, backendPort, maxconn int, log *slog.Logger) *target {
	t := &target{name: targetHAProxy, host: "127.0.0.1"}
	bin, err := lookBin("haproxy")
	if err != nil {
		t.err = err
		return t
	}
	if t.port, err = testenv.FreePort(); err != nil {
		t.err = err
		return t
	}
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(haproxyConfig(t.port, backendPort, maxconn)), 0o644); err != nil {
		t.err = fmt.Errorf("writing haproxy config: %w", err)
		return t
	}
	t.proc, t.err = startManaged(targetHAProxy, filepath.Join(dir, "haproxy.log"), bin, "-db", "-f", cfgPath)
	if t.err == nil {
		t.err = waitMySQL(ctx, t)
	}
	if t.err == nil {
		log.Info("haproxy ready", "addr", t.addr(), "pid", t.pid())
	}
	return t
}

// rulesConfig is the bench listener with read/write splitting (node1 as
// primary, node2 as replica: the same server), 100 regex and 20 fingerprint
// circuit-break rules that match no sysbench statement.
func rulesConfig(adminPort, listenPort, backendPort int) string {
	plain := proxyConfig(adminPort, listenPort, backendPort, targetProxy)
	head, nodes, _ := strings.Cut(plain, "[proxy.config.simple_loadbalance]")
	_, nodes, _ = strings.Cut(nodes, "[[mysql.node]]")
	var b strings.Builder
	b.WriteString(head)
	b.WriteString("[proxy.config.read_write_splitting.static]\ndefault_target = \"read\"\n\n")
	for i := range 100 {
		fmt.Fprintf(&b, "[[proxy.config.plugin.circuit_break]]\nregex = [\"^DELETE\\\\s+FROM\\\\s+forbidden_%d\\\\b\"]\n", i)
	}
	for i := range 20 {
		fmt.Fprintf(&b, "[[proxy.config.plugin.circuit_break]]\nfingerprint = [\"DELETE FROM forbidden_%d WHERE id = 1\"]\n", i)
	}
	replica := strings.Replace(strings.Replace(nodes, `name = "node1"`, `name = "node2"`, 1), `role = "readwrite"`, `role = "read"`, 1)
	b.WriteString("\n[[mysql.node]]" + nodes + "\n[[mysql.node]]" + replica)
	return b.String()
}

// startProxy writes the TOML into dir and starts `pisa-proxy daemon -c`
// as target name (proxy, proxy-rules or proxy-mux).
func startProxy(ctx context.Context, dir, name, bin string, backendPort int, log *slog.Logger) *target {
	t := &target{name: name, host: "127.0.0.1"}
	if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		t.err = fmt.Errorf("pisa-proxy binary %s is missing or not executable (run `make build`)", bin)
		return t
	}
	var adminPort int
	if t.port, adminPort, t.err = freePorts(); t.err != nil {
		return t
	}
	cfgPath := filepath.Join(dir, name+".toml")
	if err := os.WriteFile(cfgPath, []byte(proxyConfig(adminPort, t.port, backendPort, name)), 0o644); err != nil {
		t.err = fmt.Errorf("writing pisa-proxy config: %w", err)
		return t
	}
	t.proc, t.err = startManaged(name, filepath.Join(dir, name+".log"), bin, "daemon", "-c", cfgPath)
	if t.err == nil {
		t.err = waitMySQL(ctx, t)
	}
	if t.err == nil {
		log.Info("pisa-proxy ready", "target", name, "addr", t.addr(), "pid", t.pid())
	}
	return t
}

// freePorts returns two free ports: a target's listener and its admin (or
// API) port.
func freePorts() (listen, admin int, err error) {
	if listen, err = testenv.FreePort(); err != nil {
		return 0, 0, err
	}
	admin, err = testenv.FreePort()
	return listen, admin, err
}

// openTarget opens a go-sql-driver pool to the target as the bench user.
func openTarget(t *target) (*sql.DB, error) {
	c, err := targetConnector(t, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}

// targetConnector is a go-sql-driver connector to t as the bench user,
// dialling within timeout.
func targetConnector(t *target, timeout time.Duration) (driver.Connector, error) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = benchUser, benchPass
	cfg.Net, cfg.Addr, cfg.DBName = "tcp", t.addr(), benchDB
	cfg.Timeout = timeout
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: connector: %w", t.name, err)
	}
	return c, nil
}

// waitMySQL polls the target with a MySQL ping until it answers, its
// process exits, or readyTimeout passes.
func waitMySQL(ctx context.Context, t *target) error {
	db, err := openTarget(t)
	if err != nil {
		return err
	}
	defer db.Close()
	return pollReady(ctx, t, "a MySQL ping", func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return db.PingContext(ctx)
	})
}

// pollReady calls try with backoff until it succeeds, t's process exits,
// or readyTimeout passes (then the process is stopped); what names what
// try waits for, in the errors.
func pollReady(ctx context.Context, t *target, what string, try func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	backoff := 10 * time.Millisecond
	for {
		err := try(ctx)
		if err == nil {
			return nil
		}
		timer := time.NewTimer(backoff)
		select {
		case <-t.proc.Done():
			timer.Stop()
			return fmt.Errorf("%s exited (%v) before serving %s; output tail:\n%s", t.name, t.proc.Err(), what, t.proc.logTail(20))
		case <-ctx.Done():
			timer.Stop()
			t.proc.stop()
			return fmt.Errorf("%s not ready after %v (waiting for %s, last error: %v); output tail:\n%s", t.name, readyTimeout, what, err, t.proc.logTail(20))
		case <-timer.C:
		}
		backoff = min(2*backoff, 250*time.Millisecond)
	}
}
