package main

import (
	"errors"
	"image/png"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
