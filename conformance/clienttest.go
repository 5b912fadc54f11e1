package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// clientTestBin is MariaDB's C API test program (Debian's mariadb-test):
// some 300 test functions, mostly of prepared statements, that MTR runs
// all at once as main.mysql_client_test.
const clientTestBin = "mariadb-client-test"

// clientTestTimeout bounds one test function's process, so that a test
// hanging through the proxy costs this much and no more. The slowest one
// directly, test_change_user, takes about 25 s.
const clientTestTimeout = 90 * time.Second

// clientTestSetup names, for the tests that read what a test before them
// in the program's own order leaves in its schema (MTR runs them all in
// one process, one after the other), that test. It runs first, in its own
// process, with the schema kept.
var clientTestSetup = map[string]string{
	"client_store_result":         "test_prepare_insert_update", // its t1
	"client_use_result":           "test_prepare_insert_update",
	"test_cursors_with_union":     "test_basic_cursors", // its t1 and t2
	"test_cursors_with_procedure": "test_basic_cursors",
}

// clientTestGlobals is what main.mysql_client_test-master.opt gives MTR's
// server for this program, as globals (all are dynamic), and an empty
// sql_mode. They are set on the shared server for this suite's runs only;
// a reset of the server restores its own values.
func clientTestGlobals(vardir string) string {
	return "SET GLOBAL " + strings.Join([]string{
		// test_big_packet sends a 31 MB query (the server's limit is 16M).
		"max_allowed_packet = 32000000",
		// test_bug17667 looks for its statements in the general log file,
		// at the path master.opt gives it, and test_bug28386 in the
		// mysql.general_log table; without them they pass untested.
		"general_log_file = " + quoteString(filepath.Join(vardir, "log", "master.log")),
		"log_output = 'FILE,TABLE'",
		"general_log = ON",
		// In MTR the tests share one connection, on which the 13th,
		// test_fetch_date, sets sql_mode ''. Later ones rely on it (GRANT
		// to new users without NO_AUTO_CREATE_USER, values strict mode
		// refuses, ENGINE=BDB, query cache hits); alone, a test has the
		// server's sql_mode.
		"sql_mode = ''",
	}, ", ")
}

// clientTestNames lists the program's test functions (-T).
func clientTestNames(ctx context.Context) ([]string, error) {
	bin, err := exec.LookPath(clientTestBin)
	if err != nil {
		return nil, fmt.Errorf("the %s suite needs Debian's mariadb-test package (scripts/deps.sh installs it): %w", clientTestBin, err)
	}
	out, err := exec.CommandContext(ctx, bin, "--no-defaults", "-T").Output()
	if err != nil {
		return nil, fmt.Errorf("%s -T: %w", clientTestBin, err)
	}
	return parseClientTestNames(string(out))
}

// parseClientTestNames reads the output of -T: a header line, then one
// name a line.
func parseClientTestNames(out string) ([]string, error) {
	_, list, ok := strings.Cut(out, "All possible test names:")
	if !ok {
		return nil, fmt.Errorf("%s -T: no test list in its output: %.200q", clientTestBin, out)
	}
	names := strings.Fields(list)
	if len(names) == 0 {
		return nil, fmt.Errorf("%s -T: no tests listed", clientTestBin)
	}
	return names, nil
}

// runClientTestSuite runs the program's tests directly, then through a
// fresh proxy, each time from a reset server, and resets the server
// afterwards so that suites after it find its own settings. The server is
// the mysqltest suites': set up as MTR's own (name resolution on, so that
// 127.0.0.1 is root@localhost; the runner's character set and buffer
// sizes), as the program expects, with clientTestGlobals on top.
func runClientTestSuite(ctx context.Context, cfg Config, sr *SuiteReport, m *mtrServer, bin string) error {
	s := sr.Suite
	sr.Version = m.version
	tests, err := clientTestNames(ctx)
	if err != nil {
		sr.Err = err
		cfg.Log.Error("preparing suite", "suite", s.Name, "err", err)
		return nil
	}
	opts := RunOptions{Timeout: cfg.SuiteTimeout, Log: cfg.Log}
	run := func(ctx context.Context, target Target, o RunOptions) (*TestRun, error) {
		return runClientTests(ctx, s, tests, m, target, o)
	}
	direct := Target{Host: m.srv.Host(), Port: m.srv.Port(), User: s.User, Password: s.Password}
	if err := m.reset(ctx, direct); err != nil {
		return err
	}
	sr.Direct = runMode(ctx, s, direct, ModeDirect, cfg.WorkDir, opts, run)
	if err := m.reset(ctx, direct); err != nil {
		return err
	}
	// No default schema, as for mysqltest: the program asks for "test".
	// The server trusts PROXY headers during this suite (its globals): the
	// listener takes the test's and passes them on (with passthrough).
	pcfg := mtrProxyConfig(cfg, direct)
	pcfg.ProxyProtocol = true
	sr.Proxy = runProxied(ctx, s, bin, pcfg, cfg.WorkDir, opts, run)
	return m.reset(ctx, direct)
}

// runClientTests runs each test in its own process against target, so
// that a failure (the program exits at its first) is the test's own, and
// resets the server after each failure, so that its leftovers (the
// schema, accounts, globals) never fail the next test.
func runClientTests(ctx context.Context, s Suite, tests []string, m *mtrServer, target Target, o RunOptions) (*TestRun, error) {
	run := &TestRun{Tests: map[TestID]*TestResult{}, Packages: map[string]*PackageResult{}}
	raw, err := os.Create(o.RawPath)
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", o.RawPath, err)
	}
	defer raw.Close()
	if err := execThrough(ctx, target, clientTestGlobals(m.vardir)); err != nil {
		return nil, fmt.Errorf("setting the server up for %s: %w", clientTestBin, err)
	}
	pkg := run.pkg(s.Name)
	pkg.Status = StatusPass
	for _, name := range tests {
		if err := ctx.Err(); err != nil {
			return run, err
		}
		r := run.test(TestID{Package: s.Name, Name: name})
		clientTest(ctx, name, m.vardir, target, raw, r)
		if r.Status == StatusPass {
			continue
		}
		pkg.Status = StatusFail
		if err := m.reset(ctx, target); err != nil {
			return run, err
		}
		if err := execThrough(ctx, target, clientTestGlobals(m.vardir)); err != nil {
			return run, fmt.Errorf("setting the server up for %s again: %w", clientTestBin, err)
		}
	}
	return run, nil
}

// clientTest runs one test function, after its setup test if it has one,
// into r.
func clientTest(ctx context.Context, name, vardir string, target Target, raw io.Writer, r *TestResult) {
	begin := time.Now()
	defer func() { r.Elapsed, r.Finished = time.Since(begin).Round(time.Millisecond), true }()
	if setup := clientTestSetup[name]; setup != "" {
		// The schema, with the tables the test reads, outlives the setup.
		out, err := clientTestOnce(ctx, vardir, target, raw, "--do-not-drop-database", setup)
		if err != nil {
			r.Status = StatusFail
			r.Output = append([]string{"its setup test " + setup + " failed:"}, clientTestFailure(out, err)...)
			return
		}
	}
	out, err := clientTestOnce(ctx, vardir, target, raw, name)
	if err != nil {
		r.Status = StatusFail
		r.Output = clientTestFailure(out, err)
		return
	}
	r.Status = StatusPass
}

// clientTestOnce runs the program once on args and returns its output,
// which it also appends to raw.
func clientTestOnce(ctx context.Context, vardir string, target Target, raw io.Writer, args ...string) ([]byte, error) {
	tctx, cancel := context.WithTimeout(ctx, clientTestTimeout)
	defer cancel()
	cmd := exec.CommandContext(tctx, clientTestBin, append(clientTestArgs(target, vardir), args...)...)
	// Files a test writes by relative paths land in the vardir.
	cmd.Dir = filepath.Join(vardir, "tmp")
	// As the runner sets them: tests log to MYSQL_TMP_DIR (test_wl4435's
	// .out.log, which main.mysql_client_test prints).
	cmd.Env = append(os.Environ(), "MYSQL_TMP_DIR="+cmd.Dir, "MYSQLTEST_VARDIR="+vardir)
	cmd.WaitDelay = killGrace
	out, err := cmd.CombinedOutput()
	if errors.Is(tctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		err = fmt.Errorf("killed after %s", clientTestTimeout)
	}
	status := "ok"
	if err != nil {
		status = err.Error()
	}
	nl := ""
	if len(out) > 0 && out[len(out)-1] != '\n' {
		nl = "\n"
	}
	_, _ = fmt.Fprintf(raw, "=== %s\n%s%s--- %s: %s\n\n", strings.Join(args, " "), out, nl, args[len(args)-1], status)
	return out, err
}

// clientTestArgs are the program's options against target, as
// mariadb-test-run gives them (MYSQL_CLIENT_TEST) but with the target's
// address instead of an option file. Not --silent: it keeps the server's
// error messages out of the output, and they say why a test failed.
func clientTestArgs(t Target, vardir string) []string {
	args := []string{
		"--no-defaults", // first: no option file of the machine's
		"--testcase",
		"--host=" + t.Host,
		"--port=" + strconv.Itoa(t.Port),
		"--user=" + t.User,
		"--vardir=" + vardir,
		// mysql_client_test.test passes it; test_bug12925 checks it.
		"--getopt-ll-test=25600M",
	}
	if t.Password != "" {
		args = append(args, "--password="+t.Password)
	}
	return args
}

// Lines of the program's output that say why a test failed.
var (
	// The failed check (die() in mysql_client_fw.c), which can follow the
	// test's own output on the same line.
	clientTestCheck = regexp.MustCompile(`(?:\./)?[\w-]+/[\w-]+\.c:\d+: check failed: .*$`)
	// An error as print_error shows it: "[MySQL-version][errno] message"
	// of the server or the library, "[MySQL] what failed" else. The
	// version is left out.
	clientTestServerError = regexp.MustCompile(`^\[MySQL(?:-[^\]]*)?\]`)
	// A library call's error as some tests print it:
	// "mysql_stmt_execute failed: message".
	clientTestCallFailed = regexp.MustCompile(`^mysql\w+ failed: `)
)

// clientTestFailure picks the lines of a failed test's output that say
// why: the server's errors, the failed check, the program's own error
// lines, and how the process ended. Without any such line, the last lines
// of the output.
func clientTestFailure(out []byte, runErr error) []string {
	var keep, last []string
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "####"):
			continue
		case clientTestServerError.MatchString(line):
			keep = appendBounded(keep, strings.TrimSpace(clientTestServerError.ReplaceAllString(line, "")))
		case clientTestCheck.MatchString(line):
			keep = appendBounded(keep, clientTestCheck.FindString(line))
		case isClientTestError(line):
			keep = appendBounded(keep, line)
		}
		if last = append(last, line); len(last) > 3 {
			last = last[1:]
		}
	}
	if len(keep) == 0 {
		keep = last
	}
	return append(keep, fmt.Sprintf("%s: %v", clientTestBin, runErr))
}

// isClientTestError reports whether a line is one of the program's error
// messages other than the server's errors and the checks.
func isClientTestError(line string) bool {
	if strings.HasPrefix(line, "MySQL error ") {
		// die() prints the library's last error without a connection,
		// almost always "MySQL error 0: ".
		return !strings.HasPrefix(line, "MySQL error 0:")
	}
	for _, p := range []string{"ERROR ", "Query failed", "Got error reading", "error message:", "Fetch FAILED", "Given test not found", "connection failed"} {
		if strings.HasPrefix(line, p) {
			return true
		}
	}
	return clientTestCallFailed.MatchString(line)
}

// quoteString is s as an SQL string literal.
func quoteString(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", "''") + "'"
}
