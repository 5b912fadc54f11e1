package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"pisanix.io/pisanix/internal/testenv"
)

// backendBufferPool is large enough to keep every sysbench table in memory.
const backendBufferPool = "--innodb-buffer-pool-size=256M"

// run starts the backend and the targets, then runs the cases, the memory
// check or the scale check, and writes the report; the soak sets up its own
// backends and proxy (runSoak).
func run(ctx context.Context, cfg config, log *slog.Logger) error {
	env := collectEnv(ctx, cfg.proxyBin)
	if cfg.tiproxySrc != "" && slices.Contains(cfg.targets, targetTiProxy) {
		env.tiproxy = tiproxyVersion(ctx, cfg.tiproxySrc)
	}
	started := time.Now()
	if cfg.soak {
		return runSoak(ctx, cfg, env, started, log)
	}

	maxConns, haproxyMax := 500, 4096
	if cfg.scale { // through HAProxy every client is a backend connection
		maxConns += cfg.idleClients + cfg.activeClients
		haproxyMax = min(maxConns, raiseFileLimit(2*maxConns+1000, log)/2-100)
	}
	db, err := testenv.StartMariaDB(ctx, testenv.Options{
		MaxConnections: maxConns,
		StartTimeout:   2 * time.Minute,
		Args:           []string{backendBufferPool},
		Logger:         log,
	})
	if err != nil {
		return fmt.Errorf("starting MariaDB: %w", err)
	}
	defer db.Stop()
	if err := db.RootDB().QueryRowContext(ctx, "SELECT VERSION()").Scan(&env.mariadb); err != nil {
		return fmt.Errorf("reading MariaDB version: %w", err)
	}
	log.Info("mariadb ready", "addr", db.Addr(), "version", env.mariadb)
	if err := db.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+benchDB); err != nil {
		return err
	}
	direct := &target{name: targetDirect, host: db.Host(), port: db.Port()}
	if !cfg.mem {
		log.Info("preparing sysbench tables", "tables", cfg.tables, "rows", cfg.tableSize)
		if err := prepareTables(ctx, cfg, direct); err != nil {
			return err
		}
	}

	work, err := os.MkdirTemp("", "pisanix-bench-")
	if err != nil {
		return fmt.Errorf("creating work dir: %w", err)
	}
	defer os.RemoveAll(work)

	start := func(name string) *target {
		var t *target
		switch name {
		case targetDirect:
			t = direct
		case targetHAProxy:
			t = startHAProxy(ctx, work, db.Port(), haproxyMax, log)
		case targetProxy, targetProxyRules, targetProxyMux:
			t = startProxy(ctx, work, name, cfg.proxyBin, db.Port(), log)
		case targetTiProxy:
			t = startTiProxy(ctx, work, cfg.tiproxySrc, db.Addr(), log)
		}
		if t.err != nil {
			log.Error("target unavailable, benchmarking the others", "target", name, "err", t.err)
		}
		return t
	}
	if cfg.scale {
		return runScale(ctx, cfg, env, started, db.RootDB(), start, log)
	}

	var targets []*target
	for _, name := range cfg.targets {
		t := start(name)
		if t.proc != nil {
			defer t.proc.stop()
		}
		targets = append(targets, t)
	}

	if cfg.mem {
		mems := make([]memResult, 0, len(targets))
		for _, t := range targets {
			m := memCheck(ctx, cfg, t, log)
			log.Info("memory check", "target", t.name, "summary", m.summary())
			mems = append(mems, m)
		}
		return writeSection(cfg.out, memBegin, memEnd, renderMem(cfg, env, started, mems))
	}

	if cfg.warmup > 0 {
		for _, t := range targets {
			if t.err != nil {
				continue
			}
			log.Info("warming up", "target", t.name, "seconds", cfg.warmup)
			if r := runSysbench(ctx, cfg, t, "oltp_point_select", 8, cfg.warmup); r.err != nil {
				log.Warn("warm-up failed", "target", t.name, "err", r.err)
			}
		}
	}

	results, err := runCases(ctx, cfg, targets, db.PID(), log)
	if err != nil {
		return err
	}
	plots := writePlots(filepath.Dir(cfg.out), cfg, targets, results, log)
	return writeSection(cfg.out, benchBegin, benchEnd, renderBench(cfg, env, started, targets, results, plots))
}

// runCases runs every (test, threads) case against each usable target in
// turn. serverPID is MariaDB's, for the server CPU column.
func runCases(ctx context.Context, cfg config, targets []*target, serverPID int, log *slog.Logger) ([]result, error) {
	var results []result
	for _, test := range cfg.tests {
		for _, threads := range cfg.threads {
			for _, t := range targets {
				if err := ctx.Err(); err != nil {
					return nil, fmt.Errorf("interrupted: %w", err)
				}
				if t.err != nil {
					continue
				}
				results = append(results, runCase(ctx, cfg, t, test, threads, serverPID, log))
				if t.proc != nil && t.proc.Exited() && t.err == nil {
					t.err = fmt.Errorf("%s exited during the run (%v); output tail:\n%s", t.name, t.proc.Err(), t.proc.logTail(20))
					log.Error("target died", "target", t.name, "err", t.err)
				}
			}
		}
	}
	return results, nil
}

// runCase runs one sysbench case with the load average before it and the
// CPU time the target's process and MariaDB used during it.
func runCase(ctx context.Context, cfg config, t *target, test string, threads, serverPID int, log *slog.Logger) result {
	load := loadAvg1()
	proxyCPU, serverCPU := measureCPU(t.pid()), measureCPU(serverPID)
	r := runSysbench(ctx, cfg, t, test, threads, cfg.seconds)
	r.proxyCPU, r.serverCPU = proxyCPU(), serverCPU()
	r.load1 = load
	if r.err != nil {
		log.Error("case failed", "target", t.name, "test", test, "threads", threads, "err", r.err)
		return r
	}
	log.Info("case done", "target", t.name, "test", test, "threads", threads,
		"qps", fmt.Sprintf("%.0f", r.qps), "p95_ms", r.p95, "p99_ms", r.p99, "load1", load,
		"proxy_cpu_us_per_stmt", r.proxyCPU.perStmt(r.queries), "server_cpu_us_per_stmt", r.serverCPU.perStmt(r.queries))
	// sysbench prints two decimals, the histogram three.
	if math.Abs(r.p95Sysbench-r.p95) > 0.0051 {
		log.Warn("computed p95 differs from sysbench's", "computed", r.p95, "sysbench", r.p95Sysbench)
	}
	return r
}

// runScale runs the scale check through each target in turn, each started
// alone so that the backend connections counted are its own.
func runScale(ctx context.Context, cfg config, env environment, started time.Time, root *sql.DB,
	start func(string) *target, log *slog.Logger) error {
	scales := make([]scaleResult, 0, len(cfg.targets))
	for _, name := range cfg.targets {
		t := start(name)
		scales = append(scales, scaleCheck(ctx, cfg, t, root, log))
		if t.proc != nil {
			t.proc.stop()
		}
		if err := waitNoBackends(ctx, root); err != nil {
			return err
		}
	}
	return writeSection(cfg.out, scaleBegin, scaleEnd, renderScale(cfg, env, started, scales))
}

// raiseFileLimit raises this process's descriptor limit (inherited by
// MariaDB, HAProxy and pisa-proxy) to at least n where it may, so that the
// scale check's connections fit, and returns the limit in force. HAProxy
// refuses to start with a maxconn beyond it, so its maxconn is capped: the
// logins beyond fail and the report counts them.
func raiseFileLimit(n int, log *slog.Logger) int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return n
	}
	if lim.Cur >= uint64(n) {
		return int(lim.Cur)
	}
	want := syscall.Rlimit{Cur: uint64(n), Max: max(lim.Max, uint64(n))}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		log.Warn("cannot raise the descriptor limit: HAProxy's maxconn is capped to fit", "want", n, "have", lim.Cur, "err", err)
		return int(lim.Cur)
	}
	return n
}

// loadAvg1 reads the 1-minute load average, or -1 if unavailable.
func loadAvg1() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}
