package conformance

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"pisanix.io/pisanix/internal/testenv"
)

// Proxy start and stop budgets.
const (
	proxyStartTimeout = 30 * time.Second
	proxyStopTimeout  = 15 * time.Second
	proxyPortAttempts = 3
)

// ProxyConfig is the pisa-proxy configuration of a conformance run: one
// listener in front of one MariaDB node. The listener's user and password
// are the backend account's, so the suites log in to the proxy with the
// same credentials as to the server.
type ProxyConfig struct {
	Backend    Target
	DB         string // the listener's and the node's default schema
	PoolSize   int
	ListenPort int
	AdminPort  int
	// TLSCert and TLSKey, when set, make the listener offer TLS.
	TLSCert, TLSKey string
	// BackendCA, when set, makes the proxy require TLS towards MariaDB and
	// verify it against this CA; BackendSkipVerify makes it use TLS
	// without verifying.
	BackendCA         string
	BackendSkipVerify bool
	// Multiplex turns the listener's multiplexing on.
	Multiplex bool
	// Passthrough: the listener has auth_mode = "passthrough" (clients log
	// in as the backend's accounts) and no user of its own.
	Passthrough bool
	// ProxyProtocol: the listener takes PROXY protocol headers from any
	// client, and the node gets one on passthrough connections.
	ProxyProtocol bool
}

// TOML renders the configuration in the pisa-proxy file format (see
// README.md, "pisa-proxy configuration").
func (c ProxyConfig) TOML() string {
	var b strings.Builder
	fmt.Fprintf(&b, "[admin]\nhost = \"127.0.0.1\"\nport = %d\nlog_level = \"INFO\"\n\n", c.AdminPort)
	fmt.Fprintf(&b, "[[proxy.config]]\nname = \"conformance\"\nlisten_addr = %q\n", net.JoinHostPort("127.0.0.1", strconv.Itoa(c.ListenPort)))
	if c.Passthrough {
		b.WriteString("auth_mode = \"passthrough\"\n")
	} else {
		fmt.Fprintf(&b, "user = %q\npassword = %q\n", c.Backend.User, c.Backend.Password)
	}
	fmt.Fprintf(&b, "db = %q\nbackend_type = \"mysql\"\npool_size = %d\n", c.DB, c.PoolSize)
	if c.Multiplex {
		b.WriteString("multiplex = true\n")
	}
	if c.ProxyProtocol {
		b.WriteString("proxy_protocol_networks = [\"*\"]\n")
	}
	if c.TLSCert != "" {
		fmt.Fprintf(&b, "\n[proxy.config.tls]\ncert = %q\nkey = %q\n", c.TLSCert, c.TLSKey)
	}
	b.WriteString("\n[proxy.config.simple_loadbalance]\nbalance_type = \"random\"\nnodes = [\"mariadb\"]\n")
	fmt.Fprintf(&b, "\n[[mysql.node]]\nname = \"mariadb\"\ndb = %q\nuser = %q\npassword = %q\nhost = %q\nport = %d\n",
		c.DB, c.Backend.User, c.Backend.Password, c.Backend.Host, c.Backend.Port)
	if c.ProxyProtocol {
		b.WriteString("proxy_protocol = true\n")
	}
	switch {
	case c.BackendCA != "":
		fmt.Fprintf(&b, "tls = \"required\"\ntls_ca = %q\n", c.BackendCA)
	case c.BackendSkipVerify:
		b.WriteString("tls = \"skip-verify\"\n")
	}
	return b.String()
}

// BuildProxy compiles cmd/pisa-proxy of the module at mainDir into dir.
func BuildProxy(ctx context.Context, goBin, mainDir, dir string) (string, error) {
	bin := filepath.Join(dir, "pisa-proxy")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "./cmd/pisa-proxy")
	cmd.Dir = mainDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building pisa-proxy: %w: %s", err, tail(strings.TrimSpace(string(out)), 4000))
	}
	return bin, nil
}

// Proxy is a running pisa-proxy process.
type Proxy struct {
	proc    *testenv.Process
	addr    string
	admin   string
	logPath string
}

// StartProxy writes cfg (with fresh free ports) to dir/name.toml and starts
// bin on it, logging to dir/name.log, and waits until the listener accepts
// connections and /readyz answers 200. It retries on other ports when a
// port was taken meanwhile.
func StartProxy(ctx context.Context, bin, dir, name string, cfg ProxyConfig, log *slog.Logger) (*Proxy, error) {
	var lastErr error
	for attempt := 1; attempt <= proxyPortAttempts; attempt++ {
		var err error
		if cfg.ListenPort, err = testenv.FreePort(); err != nil {
			return nil, err
		}
		if cfg.AdminPort, err = testenv.FreePort(); err != nil {
			return nil, err
		}
		p, err := startProxyOnce(ctx, bin, dir, name, cfg)
		if err == nil {
			log.Info("pisa-proxy started", "addr", p.addr, "admin", p.admin, "log", p.logPath)
			return p, nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
		log.Warn("pisa-proxy port taken, retrying", "err", err)
	}
	return nil, lastErr
}

func startProxyOnce(ctx context.Context, bin, dir, name string, cfg ProxyConfig) (*Proxy, error) {
	cfgPath := filepath.Join(dir, name+".toml")
	if err := os.WriteFile(cfgPath, []byte(cfg.TOML()), 0o600); err != nil {
		return nil, fmt.Errorf("writing proxy config: %w", err)
	}
	logPath := filepath.Join(dir, name+".log")
	// Killed with the harness (testenv.StartProcess sets Pdeathsig).
	proc, err := testenv.StartProcess(bin, []string{"daemon", "-c", cfgPath}, logPath)
	if err != nil {
		return nil, fmt.Errorf("starting pisa-proxy: %w", err)
	}
	p := &Proxy{
		proc:    proc,
		addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.ListenPort)),
		admin:   net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.AdminPort)),
		logPath: logPath,
	}
	if err := p.waitReady(ctx); err != nil {
		p.proc.Kill()
		return nil, fmt.Errorf("%w; proxy log:\n%s", err, p.LogTail(20))
	}
	return p, nil
}

func (p *Proxy) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, proxyStartTimeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if c, err := net.DialTimeout("tcp", p.addr, time.Second); err == nil {
			c.Close()
			if ready(ctx, client, "http://"+p.admin+"/readyz") {
				return nil
			}
		}
		select {
		case <-p.proc.Done():
			return fmt.Errorf("pisa-proxy exited during start: %v", p.proc.Err())
		case <-ctx.Done():
			return fmt.Errorf("pisa-proxy not ready on %s within %s: %w", p.addr, proxyStartTimeout, ctx.Err())
		case <-tick.C:
		}
	}
}

func ready(ctx context.Context, client *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Addr is the listener's address.
func (p *Proxy) Addr() string { return p.addr }

// Port is the listener's port.
func (p *Proxy) Port() int {
	_, port, _ := net.SplitHostPort(p.addr)
	n, _ := strconv.Atoi(port)
	return n
}

// LogPath is the proxy's log file.
func (p *Proxy) LogPath() string { return p.logPath }

// Exited reports whether the process has ended, and how.
func (p *Proxy) Exited() (bool, error) {
	if !p.proc.Exited() {
		return false, nil
	}
	return true, p.proc.Err()
}

// Stop ends the proxy with SIGTERM, then SIGKILL after proxyStopTimeout. It
// returns an error when the proxy had already exited or did not stop in
// time.
func (p *Proxy) Stop() error {
	if exited, err := p.Exited(); exited {
		return fmt.Errorf("pisa-proxy had exited before its stop: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), proxyStopTimeout)
	defer cancel()
	return p.proc.Terminate(ctx)
}

// LogTail returns the last n lines of the proxy's log.
func (p *Proxy) LogTail(n int) string {
	lines, _ := readLines(p.logPath)
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// LogSummary counts the proxy log's WARN and ERROR lines and returns up to
// n distinct messages among them (level and msg), in the order first seen.
func (p *Proxy) LogSummary(n int) (warns, errs int, samples []string) {
	lines, _ := readLines(p.logPath)
	seen := map[string]bool{}
	for _, l := range lines {
		level := ""
		switch {
		case strings.Contains(l, "level=ERROR"):
			errs++
			level = "ERROR"
		case strings.Contains(l, "level=WARN"):
			warns++
			level = "WARN"
		default:
			continue
		}
		key := level + " " + logMsg(l)
		if !seen[key] && len(samples) < n {
			seen[key] = true
			samples = append(samples, key)
		}
	}
	return warns, errs, samples
}

// logMsg extracts msg=... from a slog text line.
func logMsg(line string) string {
	i := strings.Index(line, "msg=")
	if i < 0 {
		return line
	}
	rest := line[i+len("msg="):]
	if strings.HasPrefix(rest, `"`) {
		if q, err := strconv.QuotedPrefix(rest); err == nil {
			if s, err := strconv.Unquote(q); err == nil {
				return s
			}
		}
	}
	if j := strings.IndexByte(rest, ' '); j >= 0 {
		return rest[:j]
	}
	return rest
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines, sc.Err()
}
