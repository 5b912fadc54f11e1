package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"pisanix.io/pisanix/internal/testenv"
)

// backendBufferPool is large enough to keep every sysbench table in memory.
const backendBufferPool = "--innodb-buffer-pool-size=256M"

// run starts the backend and the targets, then runs the cases or the memory
// check, and writes the report.
func run(ctx context.Context, cfg config, log *slog.Logger) error {
	env := collectEnv(ctx)
	started := time.Now()

	db, err := testenv.StartMariaDB(ctx, testenv.Options{
		MaxConnections: 500,
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

	var targets []*target
	for _, name := range cfg.targets {
		var t *target
		switch name {
		case targetDirect:
			t = direct
		case targetHAProxy:
			t = startHAProxy(ctx, work, db.Port(), log)
		case targetProxy, targetProxyRules:
			t = startProxy(ctx, work, name, cfg.proxyBin, db.Port(), log)
		}
		if t.proc != nil {
			defer t.proc.stop()
		}
		if t.err != nil {
			log.Error("target unavailable, benchmarking the others", "target", name, "err", t.err)
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

	var results []result
	for _, test := range cfg.tests {
		for _, threads := range cfg.threads {
			for _, t := range targets {
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("interrupted: %w", err)
				}
				if t.err != nil {
					continue
				}
				load := loadAvg1()
				r := runSysbench(ctx, cfg, t, test, threads, cfg.seconds)
				r.load1 = load
				if r.err != nil {
					log.Error("case failed", "target", t.name, "test", test, "threads", threads, "err", r.err)
				} else {
					log.Info("case done", "target", t.name, "test", test, "threads", threads,
						"qps", fmt.Sprintf("%.0f", r.qps), "p95_ms", r.p95, "p99_ms", r.p99, "load1", load)
					// sysbench prints two decimals, the histogram three.
					if math.Abs(r.p95Sysbench-r.p95) > 0.0051 {
						log.Warn("computed p95 differs from sysbench's", "computed", r.p95, "sysbench", r.p95Sysbench)
					}
				}
				results = append(results, r)
				if t.proc != nil && t.proc.Exited() && t.err == nil {
					t.err = fmt.Errorf("%s exited during the run (%v); output tail:\n%s", t.name, t.proc.Err(), t.proc.logTail(20))
					log.Error("target died", "target", t.name, "err", t.err)
				}
			}
		}
	}
	return writeSection(cfg.out, benchBegin, benchEnd, renderBench(cfg, env, started, targets, results))
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
