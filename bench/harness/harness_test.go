package main

import (
	"errors"
	"image/png"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
	"gonum.org/v1/plot/plotter"

	proxyconfig "pisanix.io/pisanix/config"
)

const sampleReport = `sysbench 1.0.20 (using system LuaJIT 2.1.0-beta3)

Running the test with following options:
Number of threads: 1

Latency histogram (values are in milliseconds)
       value  ------------- distribution ------------- count
       0.100 |****************************************  90
       0.200 |***                                       6
       0.300 |*                                         3
       5.000 |*                                         1
 
SQL statistics:
    queries performed:
        read:                            100
        write:                           0
        other:                           0
        total:                           100
    transactions:                        100    (20.00 per sec.)
    queries:                             100    (20.00 per sec.)
    ignored errors:                      2      (0.00 per sec.)
    reconnects:                          1      (0.00 per sec.)

Latency (ms):
         min:                                    0.09
         avg:                                    0.15
         max:                                    5.00
         95th percentile:                        0.20
         sum:                                   15.00
`

func TestParseReport(t *testing.T) {
	var r result
	if err := parseReport([]byte(sampleReport), &r); err != nil {
		t.Fatal(err)
	}
	// 100 events: the 95th lands in the 0.2 bucket (cumulative 96), the 99th
	// in the 0.3 bucket (cumulative 99).
	if r.qps != 20 || r.tps != 20 || r.p95 != 0.2 || r.p99 != 0.3 || r.p95Sysbench != 0.2 ||
		r.errors != 2 || r.reconnects != 1 {
		t.Errorf("parsed %+v", r)
	}
	if err := parseReport([]byte("garbage"), &r); err == nil {
		t.Error("garbage parsed without error")
	}
}

func TestWriteSectionKeepsOutsideText(t *testing.T) {
	path := filepath.Join(t.TempDir(), "RESULTS.md")
	orig := "# Title\nintro\n" + benchBegin + "\nold\n" + benchEnd + "\ntrailer\n"
	if err := os.WriteFile(path, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeSection(path, benchBegin, benchEnd, "new\n"); err != nil {
		t.Fatal(err)
	}
	if err := writeSection(path, memBegin, memEnd, "mem\n"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	want := "# Title\nintro\n" + benchBegin + "\nnew\n" + benchEnd + "\ntrailer\n\n" + memBegin + "\nmem\n" + memEnd + "\n"
	if string(got) != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"--targets", "direct,haproxy", "--threads", "1,8", "--time", "5"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.targets, ",") != "direct,haproxy" || len(cfg.threads) != 2 || cfg.seconds != 5 {
		t.Errorf("cfg %+v", cfg)
	}
	if cfg, _ := parseFlags([]string{"--mem"}); strings.Join(cfg.targets, ",") != targetProxy {
		t.Errorf("--mem targets %v, want proxy", cfg.targets)
	}
	if cfg, _ := parseFlags([]string{"--scale"}); strings.Join(cfg.targets, ",") != targetProxyMux || cfg.idleClients != defaultIdleClients {
		t.Errorf("--scale: targets %v, idle clients %d", cfg.targets, cfg.idleClients)
	}
	for _, bad := range [][]string{{"--targets", "nginx"}, {"--threads", "0"}, {"--time", "0"}, {"--mem", "--scale"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) succeeded", bad)
		}
	}
}

func TestProxyConfigsAreValid(t *testing.T) {
	for _, name := range []string{targetProxy, targetProxyRules, targetProxyMux} {
		c, err := proxyconfig.ParseTOML([]byte(proxyConfig(5591, 3306, 3307, name)), "bench.toml")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		l := c.Proxy.Config[0]
		if name == targetProxyRules && (l.Plugin == nil || len(l.Plugin.CircuitBreak) != 120 || l.ReadWriteSplitting == nil || len(c.MySQL.Node) != 2) {
			t.Fatalf("rules config incomplete: %+v", l)
		}
		if l.Multiplex != (name == targetProxyMux) || l.MaxConnections < defaultIdleClients {
			t.Fatalf("%s: multiplex %v, max_connections %d", name, l.Multiplex, l.MaxConnections)
		}
	}
}

func TestParseReportQueries(t *testing.T) {
	var r result
	if err := parseReport([]byte(sampleReport), &r); err != nil {
		t.Fatal(err)
	}
	if r.queries != 100 {
		t.Errorf("queries %d, want 100", r.queries)
	}
}

func TestParseFlagsTiProxy(t *testing.T) {
	t.Setenv("PISANIX_TIPROXY_SRC", "")
	if cfg, _ := parseFlags(nil); slices.Contains(cfg.targets, targetTiProxy) {
		t.Errorf("tiproxy in the default targets without a checkout: %v", cfg.targets)
	}
	cfg, err := parseFlags([]string{"--tiproxy-src", "/src/tiproxy"})
	if err != nil {
		t.Fatal(err)
	}
	if want := defaultTargets + "," + targetTiProxy; strings.Join(cfg.targets, ",") != want || cfg.tiproxySrc != "/src/tiproxy" {
		t.Errorf("targets %v, src %q; want %s", cfg.targets, cfg.tiproxySrc, want)
	}
	t.Setenv("PISANIX_TIPROXY_SRC", "/env/tiproxy")
	cfg, _ = parseFlags([]string{"--targets", "direct"})
	if strings.Join(cfg.targets, ",") != targetDirect || cfg.tiproxySrc != "/env/tiproxy" {
		t.Errorf("explicit targets %v, src %q", cfg.targets, cfg.tiproxySrc)
	}
	if cfg, err := parseFlags([]string{"--targets", "tiproxy"}); err != nil || cfg.targets[0] != targetTiProxy {
		t.Errorf("--targets tiproxy: %v, %v", cfg.targets, err)
	}
}

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and parentheses; utime 250, stime 50.
	stat := "4242 (pisa (x) proxy) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 100 1000000 500\n"
	d, err := parseStatCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	if d != 3*time.Second {
		t.Errorf("got %v, want 3s", d)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 10 u s"} {
		if _, err := parseStatCPU(bad); err == nil {
			t.Errorf("parseStatCPU(%q) succeeded", bad)
		}
	}
	own, err := cpuTime(os.Getpid())
	if err != nil || own < 0 {
		t.Errorf("own CPU time %v, %v", own, err)
	}
}

func TestCPUPerStmt(t *testing.T) {
	c := cpuSpan{d: 2 * time.Second, ok: true}
	if got := c.perStmt(40000); got != "50.0" {
		t.Errorf("2 s over 40000 statements: %s µs, want 50.0", got)
	}
	if got := (cpuSpan{}).perStmt(40000); got != "–" {
		t.Errorf("unmeasured: %q", got)
	}
	if got := c.perStmt(0); got != "–" {
		t.Errorf("no statements: %q", got)
	}
	if span := measureCPU(0)(); span.ok {
		t.Error("pid 0 measured")
	}
	if span := measureCPU(os.Getpid())(); !span.ok || span.d < 0 {
		t.Errorf("own process: %+v", span)
	}
}

func TestTiProxyConfig(t *testing.T) {
	var cfg struct {
		Workdir string `toml:"workdir"`
		Proxy   struct {
			Addr                       string `toml:"addr"`
			PDAddrs                    string `toml:"pd-addrs"`
			GracefulWaitBeforeShutdown int    `toml:"graceful-wait-before-shutdown"`
			GracefulCloseConnTimeout   int    `toml:"graceful-close-conn-timeout"`
		} `toml:"proxy"`
		API struct {
			Addr string `toml:"addr"`
		} `toml:"api"`
		Log map[string]any `toml:"log"`
	}
	dec := toml.NewDecoder(strings.NewReader(tiproxyConfig(6000, 3080, "/tmp/w")))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Proxy.Addr != "127.0.0.1:6000" || cfg.API.Addr != "127.0.0.1:3080" || cfg.Proxy.PDAddrs != "" || cfg.Workdir != "/tmp/w" {
		t.Errorf("config %+v", cfg)
	}
	if _, ok := cfg.Log["log-file"]; ok {
		t.Error("tiproxy logs to a file of its own; the harness captures stdout")
	}
	data, err := tiproxyNamespaceJSON("127.0.0.1:3306")
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"namespace":"default","backend":{"instances":["127.0.0.1:3306"]}}`; string(data) != want {
		t.Errorf("namespace %s, want %s", data, want)
	}
}

func TestStartTiProxyWithoutCheckout(t *testing.T) {
	tp := startTiProxy(t.Context(), t.TempDir(), "", "127.0.0.1:3306", slog.New(slog.DiscardHandler))
	if !errors.Is(tp.err, errNoTiProxySrc) || tp.proc != nil {
		t.Fatalf("err %v, proc %v", tp.err, tp.proc)
	}
	tp = startTiProxy(t.Context(), t.TempDir(), t.TempDir(), "127.0.0.1:3306", slog.New(slog.DiscardHandler))
	if tp.err == nil || !strings.Contains(tp.err.Error(), "no cmd/tiproxy") {
		t.Fatalf("empty dir: err %v", tp.err)
	}
}

// fakeResults are two targets at three thread counts, one case failed.
func fakeResults() ([]*target, []result) {
	targets := []*target{{name: targetHAProxy}, {name: targetProxy}, {name: targetTiProxy, err: errNoTiProxySrc}}
	var results []result
	for _, n := range []int{1, 8, 32} {
		cpu := cpuSpan{d: time.Duration(n) * 100 * time.Millisecond, ok: true}
		results = append(results,
			result{target: targetHAProxy, test: "oltp_point_select", threads: n, qps: 9000 + 500*float64(n), queries: 100000, proxyCPU: cpu, serverCPU: cpu},
			result{target: targetProxy, test: "oltp_point_select", threads: n, qps: 7000 + 400*float64(n), queries: 100000, proxyCPU: cpu, serverCPU: cpu})
	}
	results = append(results, result{target: targetProxy, test: "oltp_read_only", threads: 8, err: errors.New("boom")})
	return targets, results
}

func TestRenderQPSPlot(t *testing.T) {
	targets, results := fakeResults()
	dir := t.TempDir()
	cfg := config{tests: []string{"oltp_point_select", "oltp_read_only"}}
	links := writePlots(dir, cfg, targets, results, slog.New(slog.DiscardHandler))
	// oltp_read_only has no successful case: no plot.
	if len(links) != 1 || links[0].file != "qps-oltp_point_select.png" {
		t.Fatalf("links %+v", links)
	}
	f, err := os.Open(filepath.Join(dir, links[0].file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 400 || b.Dx() > 2000 || b.Dy() < 250 || b.Dy() > 2000 {
		t.Errorf("PNG is %dx%d", b.Dx(), b.Dy())
	}
	// A single thread count still gives the log axis a range.
	one := []qpsSeries{{target: targetDirect, points: plotter.XYs{{X: 1, Y: 100}}}}
	if err := renderQPSPlot(filepath.Join(dir, "one.png"), "one", one); err != nil {
		t.Fatal(err)
	}
}

func TestPlotFileName(t *testing.T) {
	for in, want := range map[string]string{
		"oltp_read_only":           "qps-oltp_read_only.png",
		"/usr/share/x/my test.lua": "qps-my_test.png",
	} {
		if got := plotFileName(in); got != want {
			t.Errorf("plotFileName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRenderBench(t *testing.T) {
	targets, results := fakeResults()
	cfg := config{command: "bench/run.sh", tests: []string{"oltp_point_select"}}
	out := renderBench(cfg, environment{}, time.Now(), targets, results,
		[]plotLink{{test: "oltp_point_select", file: "qps-oltp_point_select.png"}})
	for _, want := range []string{
		"| QPS vs HAProxy | proxy CPU µs/stmt | server CPU µs/stmt | errors |",
		// 3.2 s over 100000 statements at 32 threads.
		"| proxy | oltp_point_select | 32 | 19800 | 0.000 | 0.000 | 0.79 | 32.0 | 32.0 | 0 | 0.00 |",
		"| proxy | oltp_read_only | 8 | failed | | | | | | | 0.00 |",
		"**tiproxy not benchmarked:** `no checkout given: pass --tiproxy-src DIR with pingcap/tiproxy at v26.3.1`",
		"](qps-oltp_point_select.png)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestQPSTicks(t *testing.T) {
	for _, c := range []struct {
		hi   float64
		want string
	}{{27500, "0 5000 10000 15000 20000 25000"}, {8800, "0 1000 2000 3000 4000 5000 6000 7000 8000"}, {110, "0 20 40 60 80 100"}} {
		var labels []string
		for _, tick := range (qpsTicks{}).Ticks(0, c.hi) {
			labels = append(labels, tick.Label)
		}
		if got := strings.Join(labels, " "); got != c.want {
			t.Errorf("ticks up to %v: %s, want %s", c.hi, got, c.want)
		}
	}
}

func TestLatencyHistQuantile(t *testing.T) {
	var h latencyHist
	if h.quantile(0.99) != 0 {
		t.Error("empty histogram has a p99")
	}
	for range 990 {
		h.add(time.Millisecond)
	}
	for range 10 {
		h.add(2 * time.Second)
	}
	// 1000 values: the 990th is 1 ms, the 991st 2 s.
	if p := h.quantile(0.99); p < time.Millisecond || p > 1020*time.Microsecond {
		t.Errorf("p99 %v, want 1 ms within 2%%", p)
	}
	if p := h.quantile(0.995); p < 2*time.Second || p > 2040*time.Millisecond {
		t.Errorf("p99.5 %v, want 2 s within 2%%", p)
	}
	var m latencyHist
	m.merge(&h)
	m.merge(&latencyHist{})
	if m.n != 1000 || m.quantile(0.99) != h.quantile(0.99) {
		t.Errorf("merged: n %d, p99 %v", m.n, m.quantile(0.99))
	}
	if histBucket(0) != 0 || histBucket(time.Hour) != histBuckets-1 {
		t.Error("bucket bounds not clamped")
	}
}

func TestMinuteStatsMergeKeepsEarliestError(t *testing.T) {
	now := time.Now()
	a := minuteStats{statements: 5, errors: 1, firstErr: "later", firstErrAt: now.Add(time.Second)}
	b := minuteStats{statements: 3, errors: 2, loginErrs: 1, firstErr: "earlier", firstErrAt: now}
	a.merge(&b)
	a.merge(&minuteStats{statements: 1})
	if a.statements != 9 || a.errors != 3 || a.loginErrs != 1 || a.firstErr != "earlier" {
		t.Errorf("merged %+v", a)
	}
}

func TestShortErr(t *testing.T) {
	got := shortErr(errors.New("Error 1158 (08S01): Lost connection | i/o timeout\nsecond line"), 24)
	if got != "Error 1158 … i/o timeout" {
		t.Errorf("got %q", got)
	}
	if got := shortErr(errors.New("short"), 24); got != "short" {
		t.Errorf("got %q", got)
	}
}

func TestFaultForCyclesAndAlternatesNodes(t *testing.T) {
	var kinds []faultKind
	hit := map[faultKind][]int{}
	for i := range 8 {
		k, n := faultFor(i)
		kinds = append(kinds, k)
		hit[k] = append(hit[k], n)
	}
	want := []faultKind{faultKill, faultFreeze, faultReload, faultSlowClient, faultKill, faultFreeze, faultReload, faultSlowClient}
	if !slices.Equal(kinds, want) {
		t.Errorf("kinds %v", kinds)
	}
	// Both nodes within the first four minutes, and each fault's node
	// alternates from one cycle to the next.
	if !slices.Equal(hit[faultKill], []int{0, 1}) || !slices.Equal(hit[faultFreeze], []int{1, 0}) ||
		!slices.Equal(hit[faultReload], []int{-1, -1}) {
		t.Errorf("nodes %v", hit)
	}
}

func TestSoakProxyConfigIsValidAndReloadsChange(t *testing.T) {
	var prev string
	for gen := range 3 {
		text := soakProxyConfig(5591, 3306, [2]int{3307, 3308}, gen)
		c, err := proxyconfig.ParseTOML([]byte(text), "soak.toml")
		if err != nil {
			t.Fatalf("generation %d: %v\n%s", gen, err, text)
		}
		l := c.Proxy.Config[0]
		rules := 0
		if l.Plugin != nil {
			rules = len(l.Plugin.CircuitBreak)
		}
		wantPool, wantRules := 64, 0
		if gen%2 == 1 {
			wantPool, wantRules = 48, 1
		}
		if l.PoolSize != wantPool || rules != wantRules || l.SimpleLoadBalance.BalanceType != "roundrobin" ||
			len(c.MySQL.Node) != 2 || l.BackendReadTimeout.D() != 2*time.Second || l.DialTimeout.D() != time.Second {
			t.Errorf("generation %d: %+v", gen, l)
		}
		if text == prev {
			t.Errorf("generation %d changes nothing", gen)
		}
		prev = text
	}
}

func TestMetricValue(t *testing.T) {
	text := `# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 42
go_goroutines_extra 7
pisa_proxy_config_reloads_total{result="error"} 1
pisa_proxy_config_reloads_total{result="ok"} 3
pisa_proxy_fingerprint_statements_total{digest="ab",fingerprint="SELECT v FROM kv"} 5
pisa_proxy_backend_statements_killed_total{domain="soak",reason="client_gone"} 2
`
	for _, c := range []struct {
		name, labels string
		want         float64
		ok           bool
	}{
		{"go_goroutines", "", 42, true},
		{"pisa_proxy_config_reloads_total", `result="ok"`, 3, true},
		{"pisa_proxy_config_reloads_total", "", 4, true},
		{"pisa_proxy_fingerprint_statements_total", `digest="ab"`, 5, true},
		{"pisa_proxy_backend_statements_killed_total", `reason="client_gone"`, 2, true},
		{"pisa_proxy_backend_statements_killed_total", `reason="other"`, 0, false},
		{"go_threads", "", 0, false},
	} {
		got, ok := metricValue(text, c.name, c.labels)
		if got != c.want || ok != c.ok {
			t.Errorf("%s{%s} = %v, %v; want %v, %v", c.name, c.labels, got, ok, c.want, c.ok)
		}
	}
}

func TestBackVerdict(t *testing.T) {
	for _, c := range []struct {
		start, end int64
		want       string
	}{
		{100, 104, "yes"}, {100, 90, "yes"}, {100, 120, "**no** (+20%)"}, {10, 12, "yes"}, {-1, 5, "unknown"},
	} {
		if got := backVerdict(c.start, c.end, 0.05, 2); got != c.want {
			t.Errorf("backVerdict(%d, %d) = %q, want %q", c.start, c.end, got, c.want)
		}
	}
}

func TestMinuteSamples(t *testing.T) {
	samples := []soakSample{
		{at: 10 * time.Second, rss: 30 << 20, goroutines: 50, fds: 40, backends: [2]int{8, 8}},
		{at: 50 * time.Second, rss: 20 << 20, goroutines: 60, fds: 30, backends: [2]int{-1, 16}},
		{at: 70 * time.Second, rss: 99 << 20, goroutines: 99, fds: 99},
	}
	last, peak, ok := minuteSamples(samples, 0)
	if !ok || last.rss != 20<<20 || peak.rss != 30<<20 || peak.goroutines != 60 || peak.fds != 40 || last.backends != [2]int{-1, 16} {
		t.Errorf("last %v, peak %v", last, peak)
	}
	if _, _, ok := minuteSamples(samples, 2); ok {
		t.Error("minute 3 has samples")
	}
}

func TestParseFlagsSoak(t *testing.T) {
	cfg, err := parseFlags([]string{"--soak", "--soak-minutes", "4"})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.soak || cfg.soakMinutes != 4 || cfg.soakClients != defaultSoakClients {
		t.Errorf("cfg %+v", cfg)
	}
	for _, bad := range [][]string{{"--soak", "--mem"}, {"--soak", "--scale"}, {"--soak", "--soak-minutes", "0"}, {"--soak-clients", "-1"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) succeeded", bad)
		}
	}
}

func TestRenderSoak(t *testing.T) {
	var h latencyHist
	h.add(3 * time.Millisecond)
	res := &soakResult{
		idle:  soakSample{rss: 20 << 20, heap: 5 << 20, goroutines: 30, fds: 20, backends: [2]int{2, 2}},
		start: soakSample{rss: 30 << 20, heap: 10 << 20, goroutines: 40, fds: 30, backends: [2]int{10, 10}},
		end:   soakSample{rss: 31 << 20, heap: 21 << 19, goroutines: 80, fds: 30, backends: [2]int{9, -1}},
		minutes: []soakMinute{
			{fault: "kill node1: SIGKILL", stats: minuteStats{statements: 1000, errors: 8, loginErrs: 2, firstErr: "SELECT: Error 1158", hist: h}, zeroSecs: 1},
			{fault: "freeze node2"},
		},
		samples:  []soakSample{{at: 55 * time.Second, rss: 32 << 20, heap: 12 << 20, goroutines: 45, fds: 33, backends: [2]int{8, 9}}},
		proxyLog: "WARN something",
	}
	out := renderSoak(config{command: "go run ./bench/harness --soak", soakClients: 16}, environment{}, time.Now(), res)
	for _, want := range []string{
		"| 1 | kill node1: SIGKILL | 1000 | 8 (2) | SELECT: Error 1158 | 3.0 | 3 | 1 | 32.0 (32.0) | 12.0 (12.0) | 45 (45) | 33 (33) | 8 + 9 |",
		"| 2 | freeze node2 | 0 | 0 (0) |  | 0.0 | 0 | 0 | – | – | – | – | – |",
		"| heap in use MiB | 5.0 | 10.0 | 10.5 | +0.5 | yes |",
		"| goroutines | 30 | 40 | 80 | +40 | **no** (+100%) |",
		"| RSS MiB | 20.0 | 30.0 | 31.0 | +1.0 | yes |",
		"| backend conns node2 | 2 | 10 | – | – |",
		"| open fds less backend conns | 16 | 10 | – | – | unknown |",
		"Total: 1000 statements, 8 errors (kill minutes 8, freeze minutes 0",
		"WARN something",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestZeroSeconds(t *testing.T) {
	l := &soakLoad{okPerSecond: make([]atomic.Int64, 120)}
	for s := range 120 {
		if s < 60 && s%10 != 0 || s >= 60 {
			l.okPerSecond[s].Add(1)
		}
	}
	if n := l.zeroSeconds(0, time.Minute); n != 6 {
		t.Errorf("first minute: %d seconds without success, want 6", n)
	}
	if n := l.zeroSeconds(time.Minute, 3*time.Minute); n != 0 {
		t.Errorf("past the counts: %d, want 0", n)
	}
}
