package main

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// Markers delimiting what the harness owns in the output file; text outside
// them is kept.
const (
	benchBegin = "<!-- harness:begin -->"
	benchEnd   = "<!-- harness:end -->"
	memBegin   = "<!-- harness-mem:begin -->"
	memEnd     = "<!-- harness-mem:end -->"
	scaleBegin = "<!-- harness-scale:begin -->"
	scaleEnd   = "<!-- harness-scale:end -->"
)

// writeSection replaces the text between begin and end in path with body,
// appending the markers when the file lacks them.
func writeSection(path, begin, end, body string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	section := begin + "\n" + body + end
	text := string(old)
	i := strings.Index(text, begin)
	j := strings.Index(text, end)
	switch {
	case i >= 0 && j > i:
		text = text[:i] + section + text[j+len(end):]
	default:
		if text != "" && !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		if text != "" {
			text += "\n"
		}
		text += section + "\n"
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// header is the common preamble of the sysbench, memory and scale sections.
func header(b *strings.Builder, cfg config, env environment, started time.Time) {
	runLines(b, cfg, env, started)
	fmt.Fprintf(b, "Versions: MariaDB %s; %s; %s; pisa-proxy %s", env.mariadb, env.haproxy, env.sysbench, env.proxy)
	if env.tiproxy != "" {
		fmt.Fprintf(b, "; TiProxy %s (built from source)", env.tiproxy)
	}
	b.WriteString("\n\n")
}

// runLines writes the command, date, host and CPU lines every section
// starts with.
func runLines(b *strings.Builder, cfg config, env environment, started time.Time) {
	fmt.Fprintf(b, "Command: `%s`  \n", cfg.command)
	fmt.Fprintf(b, "Date: %s (took %s)  \n", started.UTC().Format("2006-01-02 15:04 MST"), time.Since(started).Round(time.Second))
	fmt.Fprintf(b, "Host: `%s`  \n", env.uname)
	fmt.Fprintf(b, "CPU: %s  \n", env.cpu)
}

func renderBench(cfg config, env environment, started time.Time, targets []*target, results []result, plots []plotLink) string {
	var b strings.Builder
	header(&b, cfg, env, started)
	ps := "disable (text protocol)"
	if cfg.ps {
		ps = "auto (server-side prepared statements)"
	}
	fmt.Fprintf(&b, "Workload: sysbench %s, %d tables x %d rows, %d s per case, --db-ps-mode=%s; "+
		"cases interleaved across targets; p95/p99 computed from sysbench's latency histogram (--histogram=on); "+
		"CPU µs/stmt = utime+stime of the target's process (proxy) or of MariaDB (server) during the case, "+
		"from /proc/<pid>/stat (10 ms ticks), over the statements sysbench performed.\n\n",
		strings.Join(cfg.tests, ", "), cfg.tables, cfg.tableSize, cfg.seconds, ps)

	for _, t := range targets {
		if t.err != nil {
			fmt.Fprintf(&b, "**%s not benchmarked:** %s\n\n", t.name, indentBlock(t.err.Error()))
		}
	}
	benchTable(&b, results)
	var failed []string
	for _, r := range results {
		if r.err != nil {
			failed = append(failed, fmt.Sprintf("- %s %s %d threads: %s", r.target, r.test, r.threads, indentBlock(r.err.Error())))
		}
	}
	if len(failed) > 0 {
		b.WriteString("\nFailed cases:\n\n" + strings.Join(failed, "\n") + "\n")
	}
	for _, p := range plots {
		// The PNGs are written next to the report, so the bare name is
		// the relative link.
		fmt.Fprintf(&b, "\n![QPS against threads, %s](%s)\n", p.test, p.file)
	}
	b.WriteString("\n")
	return b.String()
}

// benchTable writes one row per case.
func benchTable(b *strings.Builder, results []result) {
	haproxyQPS := map[string]float64{}
	for _, r := range results {
		if r.target == targetHAProxy && r.err == nil {
			haproxyQPS[caseKey(r)] = r.qps
		}
	}
	b.WriteString("| target | test | threads | QPS | p95 ms | p99 ms | QPS vs HAProxy | proxy CPU µs/stmt | server CPU µs/stmt | errors | load1 before |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		if r.err != nil {
			fmt.Fprintf(b, "| %s | %s | %d | failed | | | | | | | %.2f |\n", r.target, r.test, r.threads, r.load1)
			continue
		}
		ratio := "–"
		if h, ok := haproxyQPS[caseKey(r)]; ok && h > 0 {
			ratio = fmt.Sprintf("%.2f", r.qps/h)
		}
		fmt.Fprintf(b, "| %s | %s | %d | %.0f | %.3f | %.3f | %s | %s | %s | %d | %.2f |\n",
			r.target, r.test, r.threads, r.qps, r.p95, r.p99, ratio,
			r.proxyCPU.perStmt(r.queries), r.serverCPU.perStmt(r.queries), r.errors+r.reconnects, r.load1)
	}
}

func caseKey(r result) string { return fmt.Sprintf("%s/%d", r.test, r.threads) }

// indentBlock turns a multi-line error into one inline code span plus an
// indented block, so markdown does not mangle log tails.
func indentBlock(s string) string {
	first, rest, ok := strings.Cut(s, "\n")
	if !ok {
		return "`" + strings.ReplaceAll(s, "`", "'") + "`"
	}
	return "`" + strings.ReplaceAll(first, "`", "'") + "`\n\n  ```\n  " +
		strings.ReplaceAll(strings.TrimRight(rest, "\n"), "\n", "\n  ") + "\n  ```"
}

func renderMem(cfg config, env environment, started time.Time, mems []memResult) string {
	var b strings.Builder
	header(&b, cfg, env, started)
	fmt.Fprintf(&b, "Memory check: `SELECT REPEAT('x', %d) FROM seq_1_to_%d` (%.2f GiB) streamed through each target "+
		"with go-sql-driver/mysql and discarded row by row; RSS of the target process from /proc/<pid>/status "+
		"(VmRSS sampled every %v, VmHWM before and after). Target: growth < %d MiB.\n\n",
		cfg.memRowLen, cfg.memRows, float64(cfg.memRowLen)*float64(cfg.memRows)/(1<<30), memSampleEvery, memTargetMiB)
	b.WriteString("| target | result bytes | time | RSS before MiB | peak RSS MiB | growth MiB | verdict |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---|\n")
	for _, m := range mems {
		if m.err != nil {
			fmt.Fprintf(&b, "| %s | | | | | | %s |\n", m.target, strings.ReplaceAll(firstLineOf(m.err.Error()), "|", "/"))
			continue
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %.1f | %.1f | %.1f | %s |\n", m.target, m.bytes, m.took.Round(time.Millisecond),
			mib(m.rssBefore), mib(m.peak), mib(m.growth()), m.verdict())
	}
	for _, m := range mems {
		if m.err != nil && strings.Contains(m.err.Error(), "\n") {
			fmt.Fprintf(&b, "\n%s: %s\n", m.target, indentBlock(m.err.Error()))
		}
	}
	b.WriteString("\n")
	return b.String()
}

func firstLineOf(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

func renderScale(cfg config, env environment, started time.Time, scales []scaleResult) string {
	var b strings.Builder
	header(&b, cfg, env, started)
	fmt.Fprintf(&b, "Scale check: %d idle client connections opened (go-sql-driver/mysql, %d logins at a time), the target's "+
		"VmRSS read, the bench user's backend connections counted on MariaDB (information_schema.PROCESSLIST), then "+
		"`SELECT 1` on every idle client; then %d clients running `SELECT c FROM sbtest1 WHERE id = <random>` back to back "+
		"for %d s, backend connections sampled every %v. Targets: %d idle clients in <= %d MiB; active clients "+
		"with no error over <= 64 backend connections.\n\n",
		cfg.idleClients, scaleDialers, cfg.activeClients, cfg.activeSeconds, backendSampleEvery, cfg.idleClients, idleTargetMiB)
	b.WriteString("| target | idle clients | login errors | RSS before MiB | RSS idle MiB | KiB per client | backend conns idle | SELECT 1 errors |" +
		" active clients | statements | QPS | errors | p99 ms | max backend conns | clients per backend conn |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var notes []string
	for _, s := range scales {
		if s.err != nil && s.rssBefore == 0 {
			fmt.Fprintf(&b, "| %s | %s |||||||||||||| \n", s.target, strings.ReplaceAll(firstLineOf(s.err.Error()), "|", "/"))
			continue
		}
		ratio := "–"
		if s.maxBackends > 0 {
			ratio = fmt.Sprintf("%.0f", float64(s.active-int(s.activeConnErr))/float64(s.maxBackends))
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %.1f | %.1f | %.1f | %d | %d | %d | %d | %.0f | %d | %.2f | %d | %s |\n",
			s.target, s.idle, s.idleConnErrs, mib(s.rssBefore), mib(s.rssIdle), s.kibPerIdle(), s.idleBackends, s.verifyErrs,
			s.active, s.statements, float64(s.statements)/float64(s.seconds), s.stmtErrs+s.activeConnErr,
			float64(s.p99.Microseconds())/1000, s.maxBackends, ratio)
		for _, e := range []struct {
			what string
			err  error
		}{{"idle login", s.idleFirstErr}, {"SELECT 1 on an idle client", s.verifyFirst},
			{"active login", s.activeConnFirst}, {"active statement", s.stmtFirstErr}, {"target", s.err}} {
			if e.err != nil {
				notes = append(notes, fmt.Sprintf("- %s, first %s error: %s", s.target, e.what, indentBlock(e.err.Error())))
			}
		}
	}
	if len(notes) > 0 {
		b.WriteString("\n" + strings.Join(notes, "\n") + "\n")
	}
	b.WriteString("\n")
	return b.String()
}
