package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The soak's sampler (the proxy's RSS, goroutines and fds, the backend
// connections on each node) and its report section.

const (
	soakBegin = "<!-- harness-soak:begin -->"
	soakEnd   = "<!-- harness-soak:end -->"
	// soakLogTail is how many lines of the proxy's log (WARN and above)
	// the report quotes.
	soakLogTail = 20
	// backendCountTimeout bounds counting one node's connections: a frozen
	// node does not answer, and the sample says so rather than waiting.
	backendCountTimeout = 2 * time.Second
)

// soakSample is one reading of the proxy and the nodes; -1 is unknown.
type soakSample struct {
	at         time.Duration // since the soak's load started
	rss        int64         // bytes
	heap       int64         // go_memstats_heap_inuse_bytes: what of the RSS the Go heap holds
	goroutines int
	fds        int
	backends   [2]int // the test user's connections on node1, node2
}

// ownFDs is the proxy's open fds other than its backend connections
// (pooled, so their number after the load is the pools' business), or -1.
func (s soakSample) ownFDs() int {
	if s.fds < 0 || s.backends[0] < 0 || s.backends[1] < 0 {
		return -1
	}
	return s.fds - s.backends[0] - s.backends[1]
}

func (s soakSample) String() string {
	return fmt.Sprintf("rss=%.1fMiB heap=%.1fMiB goroutines=%d fds=%d backends=%d+%d",
		mib(s.rss), mib(s.heap), s.goroutines, s.fds, s.backends[0], s.backends[1])
}

// sample reads the proxy's VmRSS, its go_goroutines gauge, its open fds and
// each node's connections of the test user.
func (r *soakRun) sample(ctx context.Context) soakSample {
	pid := r.proxy.pid()
	s := soakSample{rss: -1, heap: -1, goroutines: -1, fds: -1}
	if m, err := readMem(pid); err == nil {
		s.rss = m.rss
	}
	text := r.metrics(ctx)
	if v, ok := metricValue(text, "go_goroutines", ""); ok {
		s.goroutines = int(v)
	}
	if v, ok := metricValue(text, "go_memstats_heap_inuse_bytes", ""); ok {
		s.heap = int64(v)
	}
	if fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd"); err == nil {
		s.fds = len(fds)
	}
	for i, n := range r.nodes {
		s.backends[i] = -1
		if n.PID() == 0 {
			continue // killed, not yet restarted
		}
		cctx, cancel := context.WithTimeout(ctx, backendCountTimeout)
		if c, err := backendConns(cctx, n.RootDB()); err == nil {
			s.backends[i] = c
		}
		cancel()
	}
	return s
}

// quietSample is sample after a garbage collection in the proxy, so that
// its heap reading is live data, comparable between the start and the end,
// not garbage the load left. The heap profile that forced the collection
// (gc=1) is kept as name.pb.gz in the profile dir, for heapDiff.
func (r *soakRun) quietSample(ctx context.Context, name string) (soakSample, string) {
	path, err := r.saveHeapProfile(ctx, name)
	if err != nil {
		r.log.Warn("soak: no heap profile from the proxy; heap readings include garbage", "err", err)
	}
	return r.sample(ctx), path
}

// saveHeapProfile fetches /debug/pprof/heap?gc=1 into the profile dir.
func (r *soakRun) saveHeapProfile(ctx context.Context, name string) (string, error) {
	url := fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap?gc=1", r.adminPort)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("fetching the heap profile: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("fetching the heap profile: status %s, %v", resp.Status, err)
	}
	path := filepath.Join(r.profDir, name+".pb.gz")
	if err := os.WriteFile(path, body, 0o644); err != nil {
		return "", fmt.Errorf("saving the heap profile: %w", err)
	}
	return path, nil
}

// heapDiffLines bounds the heap growth listing in the report.
const heapDiffLines = 12

// heapDiff lists what the proxy's live heap gained from start to end
// (`go tool pprof -top -diff_base`), or says why it cannot.
func heapDiff(ctx context.Context, start, end string) string {
	if start == "" || end == "" {
		return "(no heap profiles)"
	}
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-sample_index=inuse_space",
		"-diff_base", start, end).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("(go tool pprof: %v: %s)", err, firstLineOf(string(out)))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i, l := range lines { // skip the File/Type/Time preamble
		if strings.HasPrefix(strings.TrimSpace(l), "Showing nodes") {
			lines = lines[i:]
			break
		}
	}
	return strings.Join(lines[:min(len(lines), heapDiffLines)], "\n")
}

// startSampler samples every soakSampleEvery from base on; the function it
// returns stops it and returns the samples.
func (r *soakRun) startSampler(ctx context.Context, base time.Time) func() []soakSample {
	ctx, cancel := context.WithCancel(ctx)
	var (
		mu      sync.Mutex
		samples []soakSample
		done    = make(chan struct{})
	)
	go func() {
		defer close(done)
		tick := time.NewTicker(soakSampleEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			s := r.sample(ctx)
			s.at = time.Since(base)
			mu.Lock()
			samples = append(samples, s)
			mu.Unlock()
		}
	}()
	return func() []soakSample {
		cancel()
		<-done
		return samples
	}
}

// minuteSamples returns the last sample of minute i and the per-field
// maxima over its samples; ok is false when it has none.
func minuteSamples(samples []soakSample, i int) (last, peak soakSample, ok bool) {
	from, to := time.Duration(i)*time.Minute, time.Duration(i+1)*time.Minute
	peak = soakSample{rss: -1, heap: -1, goroutines: -1, fds: -1, backends: [2]int{-1, -1}}
	for _, s := range samples {
		if s.at < from || s.at >= to {
			continue
		}
		last, ok = s, true
		peak.rss = max(peak.rss, s.rss)
		peak.heap = max(peak.heap, s.heap)
		peak.goroutines = max(peak.goroutines, s.goroutines)
		peak.fds = max(peak.fds, s.fds)
		for j := range peak.backends {
			peak.backends[j] = max(peak.backends[j], s.backends[j])
		}
	}
	return last, peak, ok
}

// renderSoak is the soak's report section.
func renderSoak(cfg config, env environment, started time.Time, res *soakResult) string {
	var b strings.Builder
	runLines(&b, cfg, env, started)
	fmt.Fprintf(&b, "Versions: MariaDB %s; pisa-proxy %s  \n", env.mariadb, env.proxy)
	fmt.Fprintf(&b, "Load average (1 min): %.2f at the start, %.2f at the end\n\n", res.load1Start, res.load1End)
	fmt.Fprintf(&b, "Soak: two MariaDB nodes (`soak.kv`, %d rows each) behind one pisa-proxy listener "+
		"(`balance_type = \"roundrobin\"`, `backend_read_timeout = %q`, `dial_timeout = %q`, `pool_size = 64`); "+
		"%d clients (go-sql-driver/mysql) alternating a transaction (`BEGIN; UPDATE soak.kv SET v = v + 1 WHERE id = ?; "+
		"SELECT v ...; COMMIT`) and a point select, each statement bounded by %v; after an error a client logs in again, and it replaces its connection after %v-%v "+
		"(a pool's maximum lifetime: sessions spread over both nodes again after a fault). "+
		"A fault %v into every minute, cycling: kill (SIGKILL a node, restart it %v later), freeze (SIGSTOP a node for %v), "+
		"reload (config rewritten: a circuit-break rule and pool_size toggled; SIGHUP), slow client "+
		"(`SELECT REPEAT('x', %d) FROM seq_1_to_%d` read one row per %v for %v, then its socket closed). "+
		"Before the soak, %v of the same load without faults (%d statements, %d errors).\n\n",
		soakRows, soakReadTimeout, soakDialTimeout, cfg.soakClients, soakStmtTimeout, soakConnLifetime/2, 3*soakConnLifetime/2, soakFaultAt, faultPause, faultPause,
		slowClientRowBytes, slowClientRows, slowClientEvery, slowClientFor, soakWarmup, res.warmup.statements, res.warmup.errors)
	b.WriteString("Columns: statements completed without error; errors = failed statements and logins (of which logins in parentheses), with the " +
		"minute's first; p99 and max over every statement of the minute, failed ones included (p99 from log buckets 2% wide); " +
		"stalled s = seconds of the minute in which no statement succeeded; RSS, heap (`go_memstats_heap_inuse_bytes`), " +
		"goroutines (`go_goroutines`) and open fds of the proxy at the minute's last sample (every " + soakSampleEvery.String() +
		"), the minute's maximum in parentheses; backend conns = the test user's connections on node1 + node2 at " +
		"that sample (`–`: the node was down or did not answer in " + backendCountTimeout.String() + ").\n\n")
	soakMinuteTable(&b, res)
	soakTotals(&b, res)
	soakSummary(&b, res)
	if res.heapDiff != "" {
		fmt.Fprintf(&b, "\nLive heap gained from start to end (`go tool pprof -top -diff_base start end`, inuse_space; "+
			"profiles in `%s`):\n\n```\n%s\n```\n", res.profDir, res.heapDiff)
	}
	if res.stopped != "" {
		fmt.Fprintf(&b, "\n**Soak ended early:** %s\n", indentBlock(res.stopped))
	}
	if strings.TrimSpace(res.proxyLog) != "" {
		fmt.Fprintf(&b, "\npisa-proxy log (WARN and above), last %d lines:\n\n```\n%s\n```\n", soakLogTail, res.proxyLog)
	}
	b.WriteString("\n")
	return b.String()
}

// soakMinuteTable writes one row per minute.
func soakMinuteTable(b *strings.Builder, res *soakResult) {
	b.WriteString("| min | fault | statements | errors (logins) | first error | p99 ms | max ms | stalled s | RSS MiB | heap MiB | goroutines | fds | backend conns |\n")
	b.WriteString("|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for i, m := range res.minutes {
		last, peak, ok := minuteSamples(res.samples, i)
		rss, heap, gor, fds, back := "–", "–", "–", "–", "–"
		if ok {
			rss = fmt.Sprintf("%s (%s)", fmtMiB(last.rss), fmtMiB(peak.rss))
			heap = fmt.Sprintf("%s (%s)", fmtMiB(last.heap), fmtMiB(peak.heap))
			gor = fmt.Sprintf("%s (%s)", fmtCount(last.goroutines), fmtCount(peak.goroutines))
			fds = fmt.Sprintf("%s (%s)", fmtCount(last.fds), fmtCount(peak.fds))
			back = fmtCount(last.backends[0]) + " + " + fmtCount(last.backends[1])
		}
		fmt.Fprintf(b, "| %d | %s | %d | %d (%d) | %s | %.1f | %.0f | %d | %s | %s | %s | %s | %s |\n",
			i+1, strings.ReplaceAll(m.fault, "|", "/"), m.stats.statements, m.stats.errors, m.stats.loginErrs, m.stats.firstErr,
			ms(m.stats.hist.quantile(0.99)), ms(m.stats.hist.max), m.zeroSecs, rss, heap, gor, fds, back)
	}
}

// soakTotals writes the statements and errors of the whole soak, errors
// split by the fault of their minute.
func soakTotals(b *strings.Builder, res *soakResult) {
	var stmts, errs int64
	byFault := make([]int64, faultKinds)
	for i, m := range res.minutes {
		stmts += m.stats.statements
		errs += m.stats.errors
		k, _ := faultFor(i)
		byFault[k] += m.stats.errors
	}
	parts := make([]string, 0, faultKinds)
	for k := range faultKinds {
		parts = append(parts, fmt.Sprintf("%s minutes %d", k, byFault[k]))
	}
	fmt.Fprintf(b, "\nTotal: %d statements, %d errors (%s).\n", stmts, errs, strings.Join(parts, ", "))
}

// soakSummary compares the quiet values before and after the soak.
func soakSummary(b *strings.Builder, res *soakResult) {
	b.WriteString("\nStart against end, each after the load stopped, " + soakQuiet.String() + " of quiet and a garbage " +
		"collection in the proxy (`/debug/pprof/heap?gc=1`; idle: before any load, without one). RSS also holds heap " +
		"the Go runtime freed but has not yet returned to the system; the heap row is live data and fragmentation:\n\n")
	b.WriteString("| | idle | start | end | end − start | back to start? |\n|---|---:|---:|---:|---:|---|\n")
	s, e := res.start, res.end
	fmt.Fprintf(b, "| RSS MiB | %s | %s | %s | %s | %s |\n", fmtMiB(res.idle.rss), fmtMiB(s.rss), fmtMiB(e.rss),
		fmtDelta(float64(e.rss-s.rss)/(1<<20), 1, s.rss >= 0 && e.rss >= 0), backVerdict(s.rss, e.rss, 0.10, 4<<20))
	fmt.Fprintf(b, "| heap in use MiB | %s | %s | %s | %s | %s |\n", fmtMiB(res.idle.heap), fmtMiB(s.heap), fmtMiB(e.heap),
		fmtDelta(float64(e.heap-s.heap)/(1<<20), 1, s.heap >= 0 && e.heap >= 0), backVerdict(s.heap, e.heap, 0.10, 2<<20))
	fmt.Fprintf(b, "| goroutines | %s | %s | %s | %s | %s |\n", fmtCount(res.idle.goroutines), fmtCount(s.goroutines),
		fmtCount(e.goroutines), fmtDelta(float64(e.goroutines-s.goroutines), 0, s.goroutines >= 0 && e.goroutines >= 0),
		backVerdict(int64(s.goroutines), int64(e.goroutines), 0.05, 2))
	fmt.Fprintf(b, "| open fds | %s | %s | %s | %s | %s |\n", fmtCount(res.idle.fds), fmtCount(s.fds), fmtCount(e.fds),
		fmtDelta(float64(e.fds-s.fds), 0, s.fds >= 0 && e.fds >= 0), "(with the pools' connections)")
	fi, fs, fe := res.idle.ownFDs(), s.ownFDs(), e.ownFDs()
	fmt.Fprintf(b, "| open fds less backend conns | %s | %s | %s | %s | %s |\n", fmtCount(fi), fmtCount(fs), fmtCount(fe),
		fmtDelta(float64(fe-fs), 0, fs >= 0 && fe >= 0), backVerdict(int64(fs), int64(fe), 0.05, 2))
	for j := range s.backends {
		fmt.Fprintf(b, "| backend conns node%d | %s | %s | %s | %s | (pooled, not expected to) |\n", j+1,
			fmtCount(res.idle.backends[j]), fmtCount(s.backends[j]), fmtCount(e.backends[j]),
			fmtDelta(float64(e.backends[j]-s.backends[j]), 0, s.backends[j] >= 0 && e.backends[j] >= 0))
	}
}

// backVerdict says whether end came back to start: no higher than start by
// more than the larger of frac of start and abs.
func backVerdict(start, end int64, frac float64, abs int64) string {
	if start < 0 || end < 0 {
		return "unknown"
	}
	slack := max(int64(frac*float64(start)), abs)
	if end-start <= slack {
		return "yes"
	}
	return fmt.Sprintf("**no** (+%.0f%%)", 100*float64(end-start)/float64(max(start, 1)))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fmtMiB(b int64) string {
	if b < 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f", mib(b))
}

func fmtCount(n int) string {
	if n < 0 {
		return "–"
	}
	return strconv.Itoa(n)
}

// fmtDelta formats a signed difference with decimals places, "–" when
// either side is unknown.
func fmtDelta(d float64, decimals int, known bool) string {
	if !known {
		return "–"
	}
	if d > 0 {
		return "+" + strconv.FormatFloat(d, 'f', decimals, 64)
	}
	return strconv.FormatFloat(d, 'f', decimals, 64)
}
