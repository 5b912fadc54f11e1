package main

// Soak (--soak): one pisa-proxy over two throwaway MariaDB nodes (round
// robin), --soak-clients clients running short transactions and point
// selects through it for --soak-minutes, and a fault every minute, cycling
// kill (SIGKILL a node, restart it 5 s later), freeze (SIGSTOP a node for
// 5 s), reload (rewrite the proxy's config, SIGHUP) and slow client (a
// client reading a 200 MB result one row every 50 ms, then closing its
// socket mid-result). Every 10 s a sampler reads the proxy's RSS,
// goroutines and open fds and the backend connections on each node. The
// proxy's RSS, goroutines and fds are also read before the soak and after
// it, each time after the load stopped and 10 s of quiet, to show whether
// they come back.

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"pisanix.io/pisanix/internal/testenv"
)

const (
	defaultSoakMinutes = 30
	defaultSoakClients = 16

	soakRows = 1000 // rows of soak.kv on each node
	// soakFaultAt is when, within its minute, the fault starts: the
	// seconds before it show the service undisturbed (or recovered).
	soakFaultAt = 15 * time.Second
	// faultPause is how long a killed node stays down and a frozen one
	// stopped.
	faultPause      = 5 * time.Second
	soakSampleEvery = 10 * time.Second
	// soakQuiet is the pause after the load stops before the start and end
	// values are read: sessions closed, pools settled.
	soakQuiet = 10 * time.Second
	// soakWarmup is the load before the start values: the proxy's pools,
	// caches and heap in the state the soak will find them.
	soakWarmup = 20 * time.Second

	slowClientRowBytes = 100000
	slowClientRows     = 2000
	slowClientFor      = 20 * time.Second
	slowClientEvery    = 50 * time.Millisecond

	// The proxy's listener settings the faults exercise.
	soakReadTimeout = "2s" // backend_read_timeout: a frozen node fails its sessions after it
	soakDialTimeout = "1s" // dial_timeout: a login skips a frozen node after it
)

// faultKind is one of the four faults, in the order they cycle.
type faultKind int

const (
	faultKill faultKind = iota
	faultFreeze
	faultReload
	faultSlowClient
	faultKinds
)

func (k faultKind) String() string {
	return [...]string{"kill", "freeze", "reload", "slow client"}[k]
}

// faultFor returns minute i's fault and, for kill and freeze, the node it
// hits (0 or 1; -1 otherwise). The nodes alternate from one cycle to the
// next, kill and freeze hitting different nodes within a cycle, so that a
// four-minute run touches both.
func faultFor(i int) (faultKind, int) {
	k, cycle := faultKind(i%int(faultKinds)), i/int(faultKinds)
	switch k {
	case faultKill:
		return k, cycle % 2
	case faultFreeze:
		return k, (cycle + 1) % 2
	}
	return k, -1
}

// soakRun is the soak's processes and their settings.
type soakRun struct {
	cfg       config
	log       *slog.Logger
	nodes     [2]*testenv.Server
	proxy     *target
	adminPort int
	cfgPath   string
	gen       int    // config generation: each reload writes the next
	profDir   string // the start and end heap profiles; kept after the run
	connector driver.Connector
	http      *http.Client
}

// runSoak starts the nodes and the proxy, runs the soak and writes its
// report. A proxy that dies during the soak ends it early: the report says
// so and the run fails.
func runSoak(ctx context.Context, cfg config, env environment, started time.Time, log *slog.Logger) error {
	r := &soakRun{cfg: cfg, log: log, http: &http.Client{Timeout: 2 * time.Second}}
	defer r.stopNodes()
	if err := r.startNodes(ctx); err != nil {
		return err
	}
	if err := r.nodes[0].RootDB().QueryRowContext(ctx, "SELECT VERSION()").Scan(&env.mariadb); err != nil {
		return fmt.Errorf("reading MariaDB version: %w", err)
	}
	work, err := os.MkdirTemp("", "pisanix-soak-")
	if err != nil {
		return fmt.Errorf("creating work dir: %w", err)
	}
	defer os.RemoveAll(work)
	if err := r.startProxy(ctx, work); err != nil {
		return err
	}
	defer r.proxy.proc.stop()
	// The heap profiles outlive the run, for a closer look at a growth.
	if r.profDir, err = os.MkdirTemp("", "pisanix-soak-heap-"); err != nil {
		return fmt.Errorf("creating profile dir: %w", err)
	}

	res, err := r.soak(ctx)
	if err != nil {
		return err
	}
	res.proxyLog = r.proxy.proc.logTail(soakLogTail)
	if err := writeSection(cfg.out, soakBegin, soakEnd, renderSoak(cfg, env, started, res)); err != nil {
		return err
	}
	if res.stopped != "" {
		return fmt.Errorf("soak ended early (report written to %s): %s", cfg.out, firstLineOf(res.stopped))
	}
	return nil
}

// startNodes starts the two MariaDB nodes with soak.kv on each.
func (r *soakRun) startNodes(ctx context.Context) error {
	for i := range r.nodes {
		srv, err := testenv.StartMariaDB(ctx, testenv.Options{StartTimeout: 2 * time.Minute, Logger: r.log})
		if err != nil {
			return fmt.Errorf("starting MariaDB node%d: %w", i+1, err)
		}
		r.nodes[i] = srv
		err = srv.Exec(ctx, "CREATE DATABASE soak",
			"CREATE TABLE soak.kv (id INT PRIMARY KEY, v INT NOT NULL)",
			fmt.Sprintf("INSERT INTO soak.kv SELECT seq, 0 FROM soak.seq_1_to_%d", soakRows))
		if err != nil {
			return fmt.Errorf("node%d: creating soak.kv: %w", i+1, err)
		}
		r.log.Info("mariadb node ready", "node", i+1, "addr", srv.Addr(), "pid", srv.PID())
	}
	return nil
}

func (r *soakRun) stopNodes() {
	for _, n := range r.nodes {
		if n != nil {
			_ = n.Stop()
		}
	}
}

// startProxy writes the first config generation into dir and starts
// `pisa-proxy daemon -c` on it.
func (r *soakRun) startProxy(ctx context.Context, dir string) error {
	t := &target{name: targetProxy, host: "127.0.0.1"}
	if st, err := os.Stat(r.cfg.proxyBin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("pisa-proxy binary %s is missing or not executable (run `make build`)", r.cfg.proxyBin)
	}
	var err error
	if t.port, r.adminPort, err = freePorts(); err != nil {
		return err
	}
	r.cfgPath = filepath.Join(dir, "soak.toml")
	r.proxy = t
	if err := r.writeConfig(); err != nil {
		return err
	}
	if r.connector, err = soakConnector(t.addr(), nil); err != nil {
		return err
	}
	if t.proc, err = startManaged(targetProxy, filepath.Join(dir, "proxy.log"), r.cfg.proxyBin, "daemon", "-c", r.cfgPath); err != nil {
		return err
	}
	err = pollReady(ctx, t, "a MySQL ping", func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		c, err := r.connector.Connect(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		return c.(driver.Pinger).Ping(ctx)
	})
	if err != nil {
		return err
	}
	r.log.Info("pisa-proxy ready", "addr", t.addr(), "pid", t.pid(), "admin", r.adminPort)
	return nil
}

// soakConnector is a go-sql-driver connector to the proxy at addr as the
// test user, database soak; dial, when set, replaces the driver's dialer.
func soakConnector(addr string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) (driver.Connector, error) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = testenv.TestUser, testenv.TestPassword
	cfg.Net, cfg.Addr, cfg.DBName = "tcp", addr, "soak"
	cfg.Timeout = 5 * time.Second
	cfg.DialFunc = dial
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("soak connector: %w", err)
	}
	return c, nil
}

// soakProxyConfig is the proxy's TOML in generation gen: even generations
// have pool_size 64 and no plugin rule, odd ones pool_size 48 and a
// circuit-break rule no statement of the load matches, so that every
// reload replaces the pools and the rules. pprof is on for its
// /debug/pprof/heap?gc=1, which collects garbage before the start and end
// readings (see quietSample).
func soakProxyConfig(adminPort, listenPort int, nodePorts [2]int, gen int) string {
	pool, rule := 64, ""
	if gen%2 == 1 {
		pool = 48
		rule = "\n[[proxy.config.plugin.circuit_break]]\nregex = [\"^DELETE\\\\s+FROM\\\\s+soak_forbidden\"]\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `[admin]
host = "127.0.0.1"
port = %d
log_level = "WARN"
pprof = true

[[proxy.config]]
name = "soak"
listen_addr = "127.0.0.1:%d"
user = "%s"
password = "%s"
db = "soak"
backend_type = "mysql"
pool_size = %d
max_connections = 1000
dial_timeout = "%s"
backend_read_timeout = "%s"
%s
[proxy.config.simple_loadbalance]
balance_type = "roundrobin"
nodes = ["node1", "node2"]
`, adminPort, listenPort, testenv.TestUser, testenv.TestPassword, pool, soakDialTimeout, soakReadTimeout, rule)
	for i, port := range nodePorts {
		fmt.Fprintf(&b, `
[[mysql.node]]
name = "node%d"
db = "soak"
user = "%s"
password = "%s"
host = "127.0.0.1"
port = %d
role = "readwrite"
`, i+1, testenv.TestUser, testenv.TestPassword, port)
	}
	return b.String()
}

// reloadChange describes what the reload to generation gen changes.
func reloadChange(gen int) string {
	if gen%2 == 1 {
		return "circuit_break rule added, pool_size 64→48"
	}
	return "circuit_break rule removed, pool_size 48→64"
}

// writeConfig writes the current generation atomically (a rename), as
// a config manager would: the proxy never reads half a file.
func (r *soakRun) writeConfig() error {
	text := soakProxyConfig(r.adminPort, r.proxy.port, [2]int{r.nodes[0].Port(), r.nodes[1].Port()}, r.gen)
	tmp := r.cfgPath + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		return fmt.Errorf("writing proxy config: %w", err)
	}
	if err := os.Rename(tmp, r.cfgPath); err != nil {
		return fmt.Errorf("replacing proxy config: %w", err)
	}
	return nil
}

// soakResult is everything the report shows.
type soakResult struct {
	load1Start, load1End float64
	idle, start, end     soakSample // before any load; quiet after the warm-up; quiet after the soak
	warmup               minuteStats
	minutes              []soakMinute
	samples              []soakSample
	stopped              string // why the soak ended early; "" when it ran its course
	proxyLog             string
	profDir, heapDiff    string // where the heap profiles are; what the live heap gained
}

// soakMinute is one minute of the soak.
type soakMinute struct {
	fault    string // what was done and how it went
	stats    minuteStats
	zeroSecs int // seconds in which no statement succeeded
}

// soak runs the warm-up, then the minutes with their faults, and reads
// the start and end values around them.
func (r *soakRun) soak(ctx context.Context) (*soakResult, error) {
	res := &soakResult{load1Start: loadAvg1(), idle: r.sample(ctx)}
	r.log.Info("soak: warm-up", "seconds", soakWarmup.Seconds(), "clients", r.cfg.soakClients)
	warm := startLoad(ctx, r.connector, r.cfg.soakClients, soakRows, int(soakWarmup.Seconds()))
	sleepCtx(ctx, soakWarmup)
	for _, m := range warm.stop() {
		res.warmup.merge(&m)
	}
	if !sleepCtx(ctx, soakQuiet) {
		return nil, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	var startProf string
	res.start, startProf = r.quietSample(ctx, "start")
	r.log.Info("soak: start values", "sample", res.start, "warmup_statements", res.warmup.statements, "warmup_errors", res.warmup.errors)

	total := time.Duration(r.cfg.soakMinutes) * time.Minute
	load := startLoad(ctx, r.connector, r.cfg.soakClients, soakRows, int(total.Seconds()))
	samples := r.startSampler(ctx, load.start)
	res.minutes, res.stopped = r.runMinutes(ctx, load.start)
	perMin := load.stop()
	res.samples = samples()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("interrupted: %w", err)
	}
	for i := range res.minutes {
		if i < len(perMin) {
			res.minutes[i].stats = perMin[i]
		}
		res.minutes[i].zeroSecs = load.zeroSeconds(time.Duration(i)*time.Minute, time.Duration(i+1)*time.Minute)
	}
	sleepCtx(ctx, soakQuiet)
	var endProf string
	res.end, endProf = r.quietSample(ctx, "end")
	res.load1End = loadAvg1()
	r.log.Info("soak: end values", "sample", res.end)
	res.profDir, res.heapDiff = r.profDir, heapDiff(ctx, startProf, endProf)
	return res, nil
}

// runMinutes injects one fault per minute from base on and waits out the
// last minute; it stops early, saying why, when the proxy exits.
func (r *soakRun) runMinutes(ctx context.Context, base time.Time) ([]soakMinute, string) {
	var minutes []soakMinute
	for i := range r.cfg.soakMinutes {
		if !sleepCtx(ctx, time.Until(base.Add(time.Duration(i)*time.Minute+soakFaultAt))) {
			return minutes, ""
		}
		kind, node := faultFor(i)
		r.log.Info("soak: fault starts", "minute", i+1, "fault", kind, "node", node+1)
		what := r.inject(ctx, kind, node)
		r.log.Info("soak: fault", "minute", i+1, "fault", what)
		minutes = append(minutes, soakMinute{fault: what})
		if stopped := r.proxyGone(i); stopped != "" {
			return minutes, stopped
		}
		if !sleepCtx(ctx, time.Until(base.Add(time.Duration(i+1)*time.Minute))) {
			return minutes, ""
		}
		if stopped := r.proxyGone(i); stopped != "" {
			return minutes, stopped
		}
	}
	return minutes, ""
}

// proxyGone describes the proxy's exit, or returns "" while it runs.
func (r *soakRun) proxyGone(minute int) string {
	p := r.proxy.proc
	if !p.Exited() {
		return ""
	}
	return fmt.Sprintf("pisa-proxy exited in minute %d (%v); output tail:\n%s", minute+1, p.Err(), p.logTail(20))
}

// inject runs one fault and describes it and its outcome.
func (r *soakRun) inject(ctx context.Context, kind faultKind, node int) string {
	switch kind {
	case faultKill:
		return r.kill(ctx, node)
	case faultFreeze:
		return r.freeze(ctx, node)
	case faultReload:
		return r.reload(ctx)
	default:
		return r.slowClient(ctx)
	}
}

// kill crashes a node with SIGKILL and restarts it faultPause later.
func (r *soakRun) kill(ctx context.Context, node int) string {
	srv := r.nodes[node]
	if srv.PID() == 0 {
		if err := srv.Restart(ctx); err != nil {
			return fmt.Sprintf("kill node%d: node down since an earlier restart failed; restart failed again: %s", node+1, shortErr(err, errTextMax))
		}
	}
	killed := time.Now()
	srv.Kill()
	sleepCtx(ctx, faultPause)
	if err := srv.Restart(ctx); err != nil {
		return fmt.Sprintf("kill node%d: SIGKILL; restart FAILED: %s", node+1, shortErr(err, errTextMax))
	}
	return fmt.Sprintf("kill node%d: SIGKILL, restarted after %v, serving %.1f s after the kill",
		node+1, faultPause, time.Since(killed).Seconds())
}

// freeze stops a node with SIGSTOP for faultPause, then continues it.
func (r *soakRun) freeze(ctx context.Context, node int) string {
	pid := r.nodes[node].PID()
	if pid == 0 {
		return fmt.Sprintf("freeze node%d: node not running", node+1)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return fmt.Sprintf("freeze node%d: SIGSTOP failed: %v", node+1, err)
	}
	sleepCtx(ctx, faultPause)
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		return fmt.Sprintf("freeze node%d: SIGCONT FAILED: %v", node+1, err)
	}
	return fmt.Sprintf("freeze node%d: SIGSTOP for %v, then SIGCONT", node+1, faultPause)
}

// reloadSettle covers the proxy's file-watch debounce (200 ms) and the
// reload itself, before the reload counters are read.
const reloadSettle = 2 * time.Second

// reload writes the next config generation and sends SIGHUP. The proxy
// also sees the file change, so one fault may count two reloads.
func (r *soakRun) reload(ctx context.Context) string {
	before := r.metrics(ctx)
	r.gen++
	if err := r.writeConfig(); err != nil {
		return "reload: " + shortErr(err, errTextMax)
	}
	if err := syscall.Kill(r.proxy.pid(), syscall.SIGHUP); err != nil {
		return fmt.Sprintf("reload: SIGHUP failed: %v", err)
	}
	sleepCtx(ctx, reloadSettle)
	after := r.metrics(ctx)
	name := "pisa_proxy_config_reloads_total"
	return fmt.Sprintf("reload (%s) + SIGHUP: reloads ok %s, error %s", reloadChange(r.gen),
		metricDelta(before, after, name, `result="ok"`), metricDelta(before, after, name, `result="error"`))
}

// metricDelta is a counter's increase between two scrapes (a series not
// yet exported counts 0), or "?" when a scrape failed.
func metricDelta(before, after, name, labels string) string {
	if before == "" || after == "" {
		return "?"
	}
	a, _ := metricValue(after, name, labels)
	b, _ := metricValue(before, name, labels)
	return fmt.Sprintf("%+.0f", a-b)
}

// slowClient reads a large result one row every slowClientEvery for
// slowClientFor, then closes its socket mid-result, as a client that goes
// away would.
func (r *soakRun) slowClient(ctx context.Context) string {
	before := r.metrics(ctx)
	var sock net.Conn
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		sock = c
		return c, err
	}
	connector, err := soakConnector(r.proxy.addr(), dial)
	if err != nil {
		return "slow client: " + shortErr(err, errTextMax)
	}
	conn, err := login(ctx, connector)
	if err != nil {
		return "slow client: login FAILED: " + shortErr(err, errTextMax)
	}
	defer conn.Close()
	n, err := readSlowly(ctx, conn)
	_ = sock.Close()
	if err != nil {
		return fmt.Sprintf("slow client: ERROR after %d rows: %s", n, shortErr(err, errTextMax))
	}
	// The proxy notices the closed socket (its next write fails, or its
	// once-a-second check) and ends the backend's statement.
	sleepCtx(ctx, reloadSettle)
	after := r.metrics(ctx)
	return fmt.Sprintf("slow client: %d of %d rows read in %v, socket closed mid-result; "+
		"%v later the query runs on %s backend connections (KILLs for client_gone %s)",
		n, slowClientRows, slowClientFor, reloadSettle, r.countRunning(ctx, "SELECT REPEAT("),
		metricDelta(before, after, "pisa_proxy_backend_statements_killed_total", `reason="client_gone"`))
}

// countRunning counts the statements running on the nodes whose text
// starts with prefix ("?" when a node does not answer).
func (r *soakRun) countRunning(ctx context.Context, prefix string) string {
	total := 0
	for _, n := range r.nodes {
		cctx, cancel := context.WithTimeout(ctx, backendCountTimeout)
		var c int
		err := n.RootDB().QueryRowContext(cctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST "+
			"WHERE USER = ? AND INFO LIKE CONCAT(?, '%')", testenv.TestUser, prefix).Scan(&c)
		cancel()
		if err != nil {
			return "?"
		}
		total += c
	}
	return strconv.Itoa(total)
}

// readSlowly runs the slow client's query and reads one row per
// slowClientEvery until slowClientFor passes; it returns the rows read.
func readSlowly(ctx context.Context, conn driver.Conn) (int, error) {
	q := fmt.Sprintf("SELECT REPEAT('x', %d) FROM seq_1_to_%d", slowClientRowBytes, slowClientRows)
	rows, err := conn.(driver.QueryerContext).QueryContext(ctx, q, nil)
	if err != nil {
		return 0, fmt.Errorf("query: %w", err)
	}
	dest := make([]driver.Value, 1)
	deadline := time.Now().Add(slowClientFor)
	n := 0
	for time.Now().Before(deadline) {
		if err := rows.Next(dest); err != nil {
			if errors.Is(err, io.EOF) {
				return n, errors.New("result ended early")
			}
			return n, err
		}
		n++
		if !sleepCtx(ctx, slowClientEvery) {
			return n, ctx.Err()
		}
	}
	return n, nil
}

// metrics fetches the proxy's /metrics text ("" when it cannot).
func (r *soakRun) metrics(ctx context.Context) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/metrics", r.adminPort), nil)
	if err != nil {
		return ""
	}
	// Uncompressed: a gzip writer the proxy pools for the scrape would
	// count in its heap, as the sampler's doing rather than the load's.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := r.http.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return ""
	}
	return string(body)
}

// metricValue sums the samples of the series name in a Prometheus text
// exposition whose labels contain every comma-separated pair of labels
// (e.g. `result="ok"`); ok is false when no sample matched.
func metricValue(text, name, labels string) (float64, bool) {
	var sum float64
	found := false
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' || !strings.HasPrefix(line, name) {
			continue
		}
		// The value is the last field (Go's client writes no timestamps);
		// label values may hold spaces.
		i := strings.LastIndexByte(line, ' ')
		if i < 0 || !seriesMatches(line[:i], name, labels) {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		sum += v
		found = true
	}
	return sum, found
}

// seriesMatches reports whether series (name{labels} or name) is name with
// every wanted label pair.
func seriesMatches(series, name, wanted string) bool {
	rest := strings.TrimPrefix(series, name)
	if rest != "" && rest[0] != '{' {
		return false // a longer name with the same prefix
	}
	for _, pair := range splitList(wanted) {
		if !strings.Contains(rest, "{"+pair) && !strings.Contains(rest, ","+pair) {
			return false
		}
	}
	return true
}
