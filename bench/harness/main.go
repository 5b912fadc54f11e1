// Command harness benchmarks pisa-proxy against a direct MariaDB connection,
// HAProxy 2.6 (TCP mode) and, given a checkout, TiProxy with sysbench, in one
// run on one machine, and writes a markdown table into bench/RESULTS.md
// between the markers "<!-- harness:begin -->" and "<!-- harness:end -->",
// plus one PNG per sysbench test (QPS against threads, one line per target)
// next to it.
//
// One run starts one throwaway MariaDB (internal/testenv), prepares the
// sysbench tables (oltp_common, 4 tables x 10000 rows in db sbtest, as user
// gotest), starts HAProxy and pisa-proxy in front of it, then runs every
// (test, threads) case against each target in turn (direct, haproxy, proxy
// for one case, then the next), so slow drifts in machine load hit all
// targets alike. The 1-minute load average is read before each case.
//
// Percentiles: sysbench computes one percentile per run (--percentile). The
// harness runs with --histogram=on and computes p95 and p99 from the printed
// latency histogram with sysbench's own method (the first bucket whose
// cumulative count reaches round(N*p/100)), so both come from the same run
// and the same buckets (logarithmic, about 1.4% wide); --percentile=95 is kept
// and cross-checked against the computed p95.
//
// CPU: around each case the harness reads utime+stime from /proc/<pid>/stat
// of the target's process and of MariaDB, and divides by the queries sysbench
// performed: CPU µs per statement in the proxy and in the server.
//
// TiProxy is not a Go module the module proxy serves, so the harness builds
// it (GOTOOLCHAIN=local go build ./cmd/tiproxy) from the checkout given with
// --tiproxy-src, starts it without PD and posts MariaDB as the static backend
// of its default namespace to its HTTP API.
//
// With --mem the harness does not run sysbench: through each selected target
// that is a process it owns (proxy, haproxy) it streams a ~1 GiB result set
// (SELECT REPEAT('x', 1000000) FROM seq_1_to_1100, read with
// go-sql-driver/mysql and discarded row by row) and reports the growth of
// that process's resident memory, sampled from /proc/<pid>/status.
//
// With --soak the harness runs pisa-proxy over two throwaway MariaDB nodes
// under a steady load for --soak-minutes, with a fault every minute (kill,
// freeze, reload, slow client), and reports errors, p99, RSS, goroutines,
// fds and backend connections per minute, and whether the proxy's RSS,
// goroutines and fds come back to their start values (see soak.go).
//
// Usage: bench/run.sh [flags] (make bench), or go run ./bench/harness [flags].
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

// Target names.
const (
	targetDirect  = "direct"
	targetHAProxy = "haproxy"
	targetProxy   = "proxy"
	// targetProxyRules is pisa-proxy with the strategies of the strategies
	// issue switched on: 100 regex and 20 fingerprint circuit-break rules
	// (none matching) and read/write splitting over two nodes (the same
	// MariaDB named twice).
	targetProxyRules = "proxy-rules"
	// targetProxyMux is pisa-proxy with multiplexing on (multiplex = true).
	targetProxyMux = "proxy-mux"
	// targetTiProxy is PingCAP's TiProxy, built from a checkout given with
	// --tiproxy-src, with MariaDB as its one static backend.
	targetTiProxy = "tiproxy"
)

// allTargets lists the valid --targets names, for the flag's checks and help.
const allTargets = "direct, haproxy, proxy, proxy-rules, proxy-mux, tiproxy"

// Defaults of the flags.
const (
	defaultTargets   = "direct,haproxy,proxy"
	defaultTests     = "oltp_point_select,oltp_read_only"
	defaultThreads   = "1,8,32"
	defaultTime      = 20
	defaultWarmup    = 5
	defaultOut       = "bench/RESULTS.md"
	defaultProxyBin  = "bin/pisa-proxy"
	defaultTables    = 4
	defaultTableSize = 10000
	defaultMemRows   = 1100
	defaultMemRowLen = 1000000
	memTargetMiB     = 64
	// The scale check's defaults: the scale issue's targets (10,000 idle
	// clients in <= 300 MiB; 2,000 active clients over <= 64 backend
	// connections, no errors).
	defaultIdleClients   = 10000
	defaultActiveClients = 2000
	defaultActiveSeconds = 20
	idleTargetMiB        = 300
)

// Sysbench database and account.
const (
	benchDB   = "sbtest"
	benchUser = "gotest"
	benchPass = "secret"
)

type config struct {
	targets                                   []string
	tests                                     []string
	threads                                   []int
	seconds                                   int
	warmup                                    int
	ps                                        bool
	out                                       string
	proxyBin                                  string
	tables                                    int
	tableSize                                 int
	mem                                       bool
	memRows                                   int
	memRowLen                                 int
	tiproxySrc                                string // pingcap/tiproxy checkout; "" leaves tiproxy unavailable
	scale                                     bool
	idleClients, activeClients, activeSeconds int
	soak                                      bool
	soakMinutes, soakClients                  int
	command                                   string // the command line as the user typed it
}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("benchmark failed", "err", err)
		stop()
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("harness", flag.ContinueOnError)
	var (
		cfg                     config
		targets, tests, threads string
	)
	fs.StringVar(&targets, "targets", defaultTargets, "comma-separated targets: "+allTargets+
		" (with --mem the default is proxy, with --scale proxy-mux; tiproxy is added to the default when --tiproxy-src is set)")
	fs.StringVar(&tests, "tests", defaultTests, "comma-separated sysbench tests")
	fs.StringVar(&threads, "threads", defaultThreads, "comma-separated sysbench thread counts")
	fs.IntVar(&cfg.seconds, "time", defaultTime, "seconds per case")
	fs.IntVar(&cfg.warmup, "warmup", defaultWarmup, "seconds of discarded oltp_point_select load per target before the cases (0 = none)")
	fs.BoolVar(&cfg.ps, "ps", false, "use server-side prepared statements (--db-ps-mode=auto instead of disable)")
	fs.StringVar(&cfg.out, "out", defaultOut, "markdown file to update between the harness markers")
	fs.StringVar(&cfg.proxyBin, "proxy-bin", defaultProxyBin, "pisa-proxy binary (built by make build)")
	fs.StringVar(&cfg.tiproxySrc, "tiproxy-src", os.Getenv("PISANIX_TIPROXY_SRC"),
		"pingcap/tiproxy checkout (tag "+tiproxyTag+") the tiproxy target is built from (default from $PISANIX_TIPROXY_SRC)")
	fs.IntVar(&cfg.tables, "tables", defaultTables, "sysbench tables")
	fs.IntVar(&cfg.tableSize, "table-size", defaultTableSize, "rows per sysbench table")
	fs.BoolVar(&cfg.mem, "mem", false, "memory check instead of sysbench: stream a ~1 GiB result set through each target and report its RSS growth")
	fs.IntVar(&cfg.memRows, "mem-rows", defaultMemRows, "rows of the --mem result set")
	fs.IntVar(&cfg.memRowLen, "mem-row-bytes", defaultMemRowLen, "bytes per row of the --mem result set")
	fs.BoolVar(&cfg.scale, "scale", false, "scale check instead of sysbench: idle clients (memory per connection), then active clients (errors, backend connections)")
	fs.IntVar(&cfg.idleClients, "idle-clients", defaultIdleClients, "idle client connections of the --scale check")
	fs.IntVar(&cfg.activeClients, "active-clients", defaultActiveClients, "active client connections of the --scale check")
	fs.IntVar(&cfg.activeSeconds, "active-seconds", defaultActiveSeconds, "seconds of point selects on every active client")
	fs.BoolVar(&cfg.soak, "soak", false, "soak instead of sysbench: pisa-proxy over two MariaDB nodes under load, "+
		"a fault every minute (kill, freeze, reload, slow client); errors, p99, RSS, goroutines and fds per minute")
	fs.IntVar(&cfg.soakMinutes, "soak-minutes", defaultSoakMinutes, "minutes of the --soak (one fault each)")
	fs.IntVar(&cfg.soakClients, "soak-clients", defaultSoakClients, "clients of the --soak load")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	explicitTargets := false
	fs.Visit(func(f *flag.Flag) { explicitTargets = explicitTargets || f.Name == "targets" })
	if cfg.mem && cfg.scale || cfg.soak && (cfg.mem || cfg.scale) {
		return config{}, errors.New("--mem, --scale and --soak are separate runs")
	}
	if cfg.soakMinutes <= 0 || cfg.soakClients <= 0 {
		return config{}, errors.New("--soak-minutes and --soak-clients must be positive")
	}
	switch {
	case cfg.mem && !explicitTargets:
		targets = targetProxy // the memory check is about the proxy; add haproxy to compare
	case cfg.scale && !explicitTargets:
		targets = targetProxyMux // only multiplexing holds idle clients without backend connections
	case cfg.tiproxySrc != "" && !explicitTargets:
		targets += "," + targetTiProxy // a checkout given is a wish to compare with it
	}
	cfg.targets = splitList(targets)
	for _, t := range cfg.targets {
		switch t {
		case targetDirect, targetHAProxy, targetProxy, targetProxyRules, targetProxyMux, targetTiProxy:
		default:
			return config{}, fmt.Errorf("--targets: unknown target %q (want %s)", t, allTargets)
		}
	}
	if len(cfg.targets) == 0 {
		return config{}, errors.New("--targets: empty")
	}
	cfg.tests = splitList(tests)
	if len(cfg.tests) == 0 && !cfg.mem {
		return config{}, errors.New("--tests: empty")
	}
	for _, s := range splitList(threads) {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return config{}, fmt.Errorf("--threads: %q is not a positive number", s)
		}
		cfg.threads = append(cfg.threads, n)
	}
	if len(cfg.threads) == 0 && !cfg.mem {
		return config{}, errors.New("--threads: empty")
	}
	if cfg.seconds <= 0 {
		return config{}, fmt.Errorf("--time: %d is not positive", cfg.seconds)
	}
	if cfg.warmup < 0 {
		return config{}, fmt.Errorf("--warmup: %d is negative", cfg.warmup)
	}
	if cfg.memRows <= 0 || cfg.memRowLen <= 0 || cfg.memRowLen > 64<<20 {
		return config{}, errors.New("--mem-rows must be positive and --mem-row-bytes in 1..64 MiB")
	}
	if cfg.idleClients < 0 || cfg.activeClients < 0 || cfg.activeSeconds <= 0 {
		return config{}, errors.New("--idle-clients and --active-clients must not be negative, --active-seconds must be positive")
	}
	cfg.command = os.Getenv("PISANIX_BENCH_COMMAND") // set by bench/run.sh
	if cfg.command == "" {
		cfg.command = shellJoin(append([]string{"go run ./bench/harness"}, args...))
	}
	return cfg, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// shellJoin quotes words that need it, for showing a command line.
func shellJoin(words []string) string {
	out := make([]string, len(words))
	for i, w := range words {
		if i == 0 || (w != "" && !strings.ContainsAny(w, " \t\n'\"\\$`*?[]{}()<>|&;#~")) {
			out[i] = w
			continue
		}
		out[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}
