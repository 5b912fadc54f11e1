package main

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
)

// memSampleEvery is the VmRSS sampling period during the memory check.
const memSampleEvery = 5 * time.Millisecond

// memResult is the memory check through one target.
type memResult struct {
	target    string
	bytes     int64
	took      time.Duration
	rssBefore int64 // bytes
	hwmBefore int64
	hwmAfter  int64
	peak      int64 // max of sampled VmRSS, and of VmHWM after when it rose
	err       error
}

func (m memResult) growth() int64 { return max(0, m.peak-m.rssBefore) }

func (m memResult) verdict() string {
	if m.growth() < memTargetMiB<<20 {
		return fmt.Sprintf("ok (< %d MiB)", memTargetMiB)
	}
	return fmt.Sprintf("FAIL (>= %d MiB)", memTargetMiB)
}

func (m memResult) summary() string {
	if m.err != nil {
		return "error: " + firstLineOf(m.err.Error())
	}
	return fmt.Sprintf("%d bytes in %v, RSS %.1f -> peak %.1f MiB (growth %.1f MiB) %s",
		m.bytes, m.took.Round(time.Millisecond), mib(m.rssBefore), mib(m.peak), mib(m.growth()), m.verdict())
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// memCheck streams the large result set through t and measures the resident
// memory of t's process.
func memCheck(ctx context.Context, cfg config, t *target, log *slog.Logger) memResult {
	m := memResult{target: t.name}
	switch {
	case t.err != nil:
		m.err = t.err
		return m
	case t.proc == nil:
		m.err = errors.New("no process of ours behind this target; the check applies to proxy (and haproxy for comparison)")
		return m
	}
	pid := t.pid()
	before, err := readMem(pid)
	if err != nil {
		m.err = err
		return m
	}
	m.rssBefore, m.hwmBefore = before.rss, before.hwm

	db, err := openTarget(t)
	if err != nil {
		m.err = err
		return m
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		m.err = fmt.Errorf("%s: ping: %w", t.name, err)
		return m
	}

	sampleCtx, stopSampling := context.WithCancel(ctx)
	peakc := make(chan int64, 1)
	go func() { peakc <- samplePeakRSS(sampleCtx, pid) }()

	start := time.Now()
	m.bytes, m.err = streamDiscard(ctx, db, fmt.Sprintf("SELECT REPEAT('x', %d) FROM seq_1_to_%d", cfg.memRowLen, cfg.memRows))
	m.took = time.Since(start)
	stopSampling()
	m.peak = <-peakc
	if after, err := readMem(pid); err == nil {
		m.hwmAfter = after.hwm
		if m.hwmAfter > m.hwmBefore {
			m.peak = max(m.peak, m.hwmAfter) // the exact peak, when this run set it
		}
	}
	if m.err == nil && m.bytes != int64(cfg.memRows)*int64(cfg.memRowLen) {
		m.err = fmt.Errorf("%s: read %d bytes, want %d", t.name, m.bytes, int64(cfg.memRows)*int64(cfg.memRowLen))
	}
	log.Debug("memory check done", "target", t.name, "hwm_before", m.hwmBefore, "hwm_after", m.hwmAfter)
	return m
}

// streamDiscard runs query and reads every row into a reused buffer,
// returning the number of value bytes read.
func streamDiscard(ctx context.Context, db *sql.DB, query string) (int64, error) {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return 0, fmt.Errorf("query: %w", err)
	}
	defer rows.Close()
	var total int64
	var v sql.RawBytes
	for rows.Next() {
		if err := rows.Scan(&v); err != nil {
			return total, fmt.Errorf("scan: %w", err)
		}
		total += int64(len(v))
	}
	if err := rows.Err(); err != nil {
		return total, fmt.Errorf("reading rows: %w", err)
	}
	return total, nil
}

// samplePeakRSS polls VmRSS until ctx is done and returns the maximum seen.
func samplePeakRSS(ctx context.Context, pid int) int64 {
	var peak int64
	tick := time.NewTicker(memSampleEvery)
	defer tick.Stop()
	for {
		if s, err := readMem(pid); err == nil {
			peak = max(peak, s.rss)
		}
		select {
		case <-ctx.Done():
			return peak
		case <-tick.C:
		}
	}
}

type memStatus struct{ rss, hwm int64 } // bytes

// readMem reads VmRSS and VmHWM from /proc/<pid>/status.
func readMem(pid int) (memStatus, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return memStatus{}, fmt.Errorf("reading memory of pid %d: %w", pid, err)
	}
	defer f.Close()
	var s memStatus
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		fields := strings.Fields(v) // "12345 kB"
		if len(fields) != 2 || fields[1] != "kB" {
			return memStatus{}, fmt.Errorf("pid %d: unexpected %s line %q", pid, k, v)
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return memStatus{}, fmt.Errorf("pid %d: parsing %s: %w", pid, k, err)
		}
		if k == "VmRSS" {
			s.rss = n << 10
		} else {
			s.hwm = n << 10
		}
	}
	if err := sc.Err(); err != nil {
		return memStatus{}, fmt.Errorf("reading /proc/%d/status: %w", pid, err)
	}
	return s, nil
}
