package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// result is one sysbench case against one target.
type result struct {
	target, test string
	threads      int
	load1        float64 // 1-minute load average before the case
	qps, tps     float64
	queries      int64   // statements sysbench performed, the divisor of the CPU columns
	p95, p99     float64 // ms, from the histogram
	p95Sysbench  float64 // ms, sysbench's own --percentile=95
	errors       int64
	reconnects   int64
	proxyCPU     cpuSpan // the target's process; not measured for direct
	serverCPU    cpuSpan // MariaDB
	err          error
}

// sysbenchArgs are the connection and workload options common to prepare
// and run.
func sysbenchArgs(cfg config, t *target) []string {
	return []string{
		"--db-driver=mysql",
		"--mysql-host=" + t.host,
		"--mysql-port=" + strconv.Itoa(t.port),
		"--mysql-user=" + benchUser,
		"--mysql-password=" + benchPass,
		"--mysql-db=" + benchDB,
		"--tables=" + strconv.Itoa(cfg.tables),
		"--table-size=" + strconv.Itoa(cfg.tableSize),
		"--db-ps-mode=" + psMode(cfg),
	}
}

// psMode is sysbench's --db-ps-mode: text protocol unless --ps.
func psMode(cfg config) string {
	if cfg.ps {
		return "auto"
	}
	return "disable"
}

// prepareTables creates and fills the sysbench tables through the target.
func prepareTables(ctx context.Context, cfg config, t *target) error {
	args := append([]string{"oltp_common"}, sysbenchArgs(cfg, t)...)
	args = append(args, "--threads="+strconv.Itoa(cfg.tables), "prepare")
	out, err := exec.CommandContext(ctx, "sysbench", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("sysbench prepare: %w; output tail:\n%s", err, tail(out, 15))
	}
	return nil
}

// runSysbench runs one case and parses its report.
func runSysbench(ctx context.Context, cfg config, t *target, test string, threads, seconds int) result {
	r := result{target: t.name, test: test, threads: threads}
	args := append([]string{test}, sysbenchArgs(cfg, t)...)
	args = append(args,
		"--threads="+strconv.Itoa(threads),
		"--time="+strconv.Itoa(seconds),
		"--report-interval=0",
		"--histogram=on",
		"--percentile=95",
		"run",
	)
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "sysbench", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		r.err = fmt.Errorf("sysbench %s: %w; output tail:\n%s%s", test, err, tail(stdout.Bytes(), 10), tail(stderr.Bytes(), 10))
		return r
	}
	if err := parseReport(stdout.Bytes(), &r); err != nil {
		r.err = fmt.Errorf("parsing sysbench %s report: %w; output tail:\n%s", test, err, tail(stdout.Bytes(), 30))
	}
	return r
}

var (
	// "    queries:                             123 (6172.59 per sec.)"
	reQueries      = regexp.MustCompile(`^\s*queries:\s+(\d+)\s+\(([0-9.]+) per sec\.\)`)
	reTransactions = regexp.MustCompile(`^\s*transactions:\s+\d+\s+\(([0-9.]+) per sec\.\)`)
	reErrors       = regexp.MustCompile(`^\s*ignored errors:\s+(\d+)`)
	reReconnects   = regexp.MustCompile(`^\s*reconnects:\s+(\d+)`)
	reP95          = regexp.MustCompile(`^\s*95th percentile:\s+([0-9.]+)`)
	// "       0.075 |**                                       12"
	reBucket = regexp.MustCompile(`^\s*([0-9]+\.[0-9]+)\s+\|\**\s+(\d+)\s*$`)
)

// bucket is one line of sysbench's latency histogram.
type bucket struct {
	ms    float64
	count int64
}

func parseReport(out []byte, r *result) error {
	var buckets []bucket
	var haveQPS bool
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if m := reBucket.FindStringSubmatch(line); m != nil {
			ms, _ := strconv.ParseFloat(m[1], 64)
			n, _ := strconv.ParseInt(m[2], 10, 64)
			buckets = append(buckets, bucket{ms, n})
			continue
		}
		if m := reQueries.FindStringSubmatch(line); m != nil {
			r.queries, _ = strconv.ParseInt(m[1], 10, 64)
			r.qps, _ = strconv.ParseFloat(m[2], 64)
			haveQPS = true
		} else if m := reTransactions.FindStringSubmatch(line); m != nil {
			r.tps, _ = strconv.ParseFloat(m[1], 64)
		} else if m := reErrors.FindStringSubmatch(line); m != nil {
			r.errors, _ = strconv.ParseInt(m[1], 10, 64)
		} else if m := reReconnects.FindStringSubmatch(line); m != nil {
			r.reconnects, _ = strconv.ParseInt(m[1], 10, 64)
		} else if m := reP95.FindStringSubmatch(line); m != nil {
			r.p95Sysbench, _ = strconv.ParseFloat(m[1], 64)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if !haveQPS {
		return fmt.Errorf("no \"queries: ... per sec.\" line")
	}
	if len(buckets) == 0 {
		return fmt.Errorf("no latency histogram")
	}
	r.p95 = percentile(buckets, 95)
	r.p99 = percentile(buckets, 99)
	return nil
}

// percentile follows sysbench's sb_histogram_get_pct: the value of the first
// bucket at which the cumulative count reaches round(total*p/100).
func percentile(buckets []bucket, p float64) float64 {
	sort.Slice(buckets, func(i, j int) bool { return buckets[i].ms < buckets[j].ms })
	var total int64
	for _, b := range buckets {
		total += b.count
	}
	need := int64(math.Floor(float64(total)*p/100 + 0.5))
	if need < 1 {
		need = 1
	}
	var cum int64
	for _, b := range buckets {
		cum += b.count
		if cum >= need {
			return b.ms
		}
	}
	return buckets[len(buckets)-1].ms
}

func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n") + "\n"
}
