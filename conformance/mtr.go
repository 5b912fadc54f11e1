package conformance

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
	"pisanix.io/pisanix/internal/testenv"
)

// MTR says that a suite is a selection of MariaDB's own mysqltest tests,
// run by the server's test runner (mariadb-test-run from Debian's
// mariadb-test) against the target with --extern.
type MTR struct {
	// PS runs every statement with the binary protocol (--ps-protocol).
	PS bool
}

// MTRDir is where Debian's mariadb-test installs the test runner and suites.
const MTRDir = "/usr/share/mysql/mysql-test"

// mtrPackage is the TestID package of the tests of an MTR suite: the suite
// name, so that the text and binary-protocol runs of a test differ.
func mtrPackage(s Suite) string { return s.Name }

// mtrDB is the schema mysqltest tests use.
const mtrDB = "test"

// mtrTestTimeout is mariadb-test-run's --testcase-timeout, in minutes.
const mtrTestTimeout = 2

// mtrServerArgs are the server options of the runner's own
// include/default_mysqld.cnf that the selected tests' results depend on
// (character set, default engine, buffer sizes that decide plans), and name
// resolution on, so that a TCP client from 127.0.0.1 is root@localhost as
// over the runner's usual unix socket.
func mtrServerArgs(vardir string) []string {
	return []string{
		"--skip-name-resolve=0",
		"--bind-address=127.0.0.1,::1",
		"--character-set-server=latin1",
		"--collation-server=latin1_swedish_ci",
		"--default-storage-engine=myisam",
		"--secure-file-priv=" + vardir,
		"--log-bin-trust-function-creators=1",
		"--key-buffer-size=1M",
		"--sort-buffer-size=256K",
		"--max-heap-table-size=1M",
		"--use-stat-tables=preferably",
		"--histogram-type=json_hb",
		"--connect-timeout=60",
		"--max-allowed-packet=16M",
		// Its own temporary files away from the shared /tmp, where another
		// program's clean-up made statements fail ("Error on delete of
		// '/tmp/#sql-temptable-...'"), as in the runner's own layout.
		"--tmpdir=" + mtrServerTmp(vardir),
		// Trusted PROXY protocol headers from anywhere, as
		// main.mysql_client_test-master.opt gives the runner's server
		// (test_proxy_header), from the start: a proxy passing them on
		// (a passthrough node with proxy_protocol) is trusted before and
		// after each reset, which restores globals through it. A client
		// without a header is unaffected.
		"--proxy-protocol-networks=*",
		// The runner's certificates, as its servers always have them: with
		// -tls its clients (mysqltest --ssl) use TLS and verify with its CA.
		"--ssl-ca=" + mtrStdData("cacert.pem"),
		"--ssl-cert=" + mtrStdData("server-cert.pem"),
		"--ssl-key=" + mtrStdData("server-key.pem"),
	}
}

// mtrStdData is a file of the runner's std_data directory.
func mtrStdData(name string) string { return filepath.Join(MTRDir, "std_data", name) }

// mtrProxyConfig is the proxy in front of the MTR server: with TLS, its
// listener has the runner's server certificate (which the runner's clients
// trust) and it uses TLS towards the server too, unverified: the
// certificate names localhost in its CN only, which Go does not accept.
func mtrProxyConfig(cfg Config, direct Target) ProxyConfig {
	pcfg := ProxyConfig{Backend: direct, PoolSize: cfg.PoolSize, Multiplex: cfg.Multiplex, Passthrough: cfg.Passthrough}
	if cfg.TLS {
		pcfg.TLSCert, pcfg.TLSKey = mtrStdData("server-cert.pem"), mtrStdData("server-key.pem")
		pcfg.BackendSkipVerify = true
	}
	return pcfg
}

// mtrServerTmp is the server's tmpdir, as in the runner's own layout.
func mtrServerTmp(vardir string) string { return filepath.Join(vardir, "mysqld.1", "tmp") }

// mtrServer is the MariaDB that MTR suites run against, set up as the
// runner expects an --extern server: the datadir at vardir/mysqld.1/data,
// the mtr schema with its suppression and check procedures, a test schema.
type mtrServer struct {
	srv     *testenv.Server
	vardir  string
	version string // the server's, which is the tests' version too
	// dbs and users are what a reset keeps, globals the global variables'
	// values it restores.
	dbs, users []string
	globals    map[string]string
	// tls: the runner's clients use TLS (mysqltest --ssl).
	tls bool
}

// startMTRServer starts the server for MTR suites.
func startMTRServer(ctx context.Context, cfg Config) (*mtrServer, error) {
	if _, err := os.Stat(filepath.Join(MTRDir, "mariadb-test-run")); err != nil {
		return nil, fmt.Errorf("mysqltest suites need Debian's mariadb-test package (scripts/deps.sh installs it): %w", err)
	}
	vardir := filepath.Join(cfg.WorkDir, "mtr")
	if err := os.RemoveAll(vardir); err != nil {
		return nil, fmt.Errorf("clearing %s: %w", vardir, err)
	}
	if err := os.MkdirAll(mtrServerTmp(vardir), 0o755); err != nil {
		return nil, fmt.Errorf("creating the server's tmpdir: %w", err)
	}
	srv, err := testenv.StartMariaDB(ctx, testenv.Options{
		MaxConnections: cfg.MaxConnections,
		Datadir:        filepath.Join(vardir, "mysqld.1", "data"),
		Args:           mtrServerArgs(vardir),
		Logger:         cfg.Log,
	})
	if err != nil {
		return nil, fmt.Errorf("starting MariaDB for mysqltest: %w", err)
	}
	m := &mtrServer{srv: srv, vardir: vardir, tls: cfg.TLS}
	if err := m.setup(ctx); err != nil {
		return nil, errors.Join(err, srv.Stop())
	}
	return m, nil
}

// What a reset compares with the server's state after setup.
const (
	schemasQuery  = "SELECT schema_name FROM information_schema.schemata"
	accountsQuery = "SELECT CONCAT(QUOTE(user), '@', QUOTE(host)) FROM mysql.user"
)

func (m *mtrServer) setup(ctx context.Context) error {
	// The runner writes its logs there and, with --extern, creates nothing
	// in the vardir by itself.
	for _, d := range []string{"log", "tmp"} {
		if err := os.MkdirAll(filepath.Join(m.vardir, d), 0o755); err != nil {
			return fmt.Errorf("creating the runner's vardir: %w", err)
		}
	}
	// The template's accounts other than root are not in the runner's own
	// bootstrap; tests that list accounts would see them.
	stmts := []string{
		"DROP USER IF EXISTS 'root'@'%', 'gotest'@'%', 'native'@'%', 'app'@'%'",
		"DROP DATABASE IF EXISTS gotest", "DROP DATABASE IF EXISTS socksdb",
		"CREATE DATABASE IF NOT EXISTS " + mtrDB, "CREATE DATABASE IF NOT EXISTS mtr",
	}
	if err := m.srv.Exec(ctx, stmts...); err != nil {
		return fmt.Errorf("preparing MariaDB for mysqltest: %w", err)
	}
	for _, f := range []string{"mtr_warnings.sql", "mtr_check.sql"} {
		text, err := os.ReadFile(filepath.Join(MTRDir, "include", f))
		if err != nil {
			return fmt.Errorf("reading the runner's %s: %w", f, err)
		}
		stmts := append([]string{"USE mtr"}, bootstrapStatements(string(text))...)
		if err := m.execOnOneConn(ctx, stmts); err != nil {
			return fmt.Errorf("loading %s: %w", f, err)
		}
	}
	if err := m.srv.RootDB().QueryRowContext(ctx, "SELECT VERSION()").Scan(&m.version); err != nil {
		return fmt.Errorf("reading the MariaDB version: %w", err)
	}
	var err error
	if m.dbs, err = m.list(ctx, schemasQuery); err != nil {
		return err
	}
	if m.users, err = m.list(ctx, accountsQuery); err != nil {
		return err
	}
	m.globals, err = m.globalVars(ctx)
	return err
}

func (m *mtrServer) globalVars(ctx context.Context) (map[string]string, error) {
	rows, err := m.list(ctx, "SELECT CONCAT(variable_name, '=', COALESCE(variable_value, '')) FROM information_schema.global_variables")
	if err != nil {
		return nil, err
	}
	vars := make(map[string]string, len(rows))
	for _, r := range rows {
		k, v, _ := strings.Cut(r, "=")
		vars[k] = v
	}
	return vars, nil
}

// restoreGlobals sets the global variables a failed test changed (and did
// not live to restore) back to their values at setup. Variables that
// cannot be set (read-only ones that moved, like gtid positions) stay.
// The SETs go through target: a proxy learns of them as of a test's own,
// and resets its pooled connections, whose session values came from the
// globals the test left.
func (m *mtrServer) restoreGlobals(ctx context.Context, target Target) error {
	now, err := m.globalVars(ctx)
	if err != nil {
		return err
	}
	db, err := openTarget(target)
	if err != nil {
		return err
	}
	defer db.Close()
	for k, v := range m.globals {
		if now[k] == v {
			continue
		}
		val := quoteString(v)
		if _, err := strconv.ParseFloat(v, 64); err == nil {
			val = v
		}
		_, _ = db.ExecContext(ctx, "SET GLOBAL "+k+" = "+val)
	}
	return nil
}

// openTarget opens a pool of connections to target as its user.
func openTarget(target Target) (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = target.User, target.Password, "tcp", target.Addr()
	return sql.Open("mysql", cfg.FormatDSN())
}

// execThrough runs stmt through target, so that a proxy there sees it as
// a client's own (see restoreGlobals).
func execThrough(ctx context.Context, target Target, stmt string) error {
	db, err := openTarget(target)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("%.80s: %w", stmt, err)
	}
	return nil
}

// bootstrapStatements splits a runner SQL file (mysqltest's `delimiter`
// lines, `--` comments) into statements, as mariadb-test-run's
// sql_to_bootstrap does.
func bootstrapStatements(text string) []string {
	delim := ";"
	var stmts []string
	var cur strings.Builder
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\r\n")
		if rest, ok := strings.CutPrefix(line, "delimiter "); ok {
			delim = strings.TrimSuffix(rest, delim)
			continue
		}
		if strings.HasSuffix(line, delim) {
			cur.WriteString(strings.TrimSuffix(line, delim))
			if s := strings.TrimSpace(cur.String()); s != "" {
				stmts = append(stmts, s)
			}
			cur.Reset()
			continue
		}
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		cur.WriteString(strings.ReplaceAll(line, "'@HOSTNAME@'", "localhost"))
		cur.WriteByte(' ')
	}
	return stmts
}

func (m *mtrServer) execOnOneConn(ctx context.Context, stmts []string) error {
	conn, err := m.srv.RootDB().Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%.80s: %w", s, err)
		}
	}
	return nil
}

func (m *mtrServer) list(ctx context.Context, query string) ([]string, error) {
	rows, err := m.srv.RootDB().QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", query, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("%s: %w", query, err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// reset undoes what a failed test may have left: schemas and accounts it
// created, and an emptied test schema. A test that passes has been checked
// by the runner (check-testcases) to leave nothing behind.
func (m *mtrServer) reset(ctx context.Context, target Target) error {
	ctx, cancel := context.WithTimeout(ctx, resetTimeout)
	defer cancel()
	if !m.srv.Running() {
		// A test shut the server down (a restart the runner does only for
		// servers it started): start it again on its datadir.
		m.srv.Kill()
		if err := m.srv.Restart(ctx); err != nil {
			return fmt.Errorf("restarting MariaDB after a failed mysqltest test: %w", err)
		}
	}
	dbs, err := m.list(ctx, schemasQuery)
	if err != nil {
		return err
	}
	users, err := m.list(ctx, accountsQuery)
	if err != nil {
		return err
	}
	stmts := []string{"SET SESSION foreign_key_checks = 0", "DROP DATABASE IF EXISTS " + mtrDB, "CREATE DATABASE " + mtrDB}
	for _, db := range dbs {
		if !slices.Contains(m.dbs, db) {
			stmts = append(stmts, "DROP DATABASE IF EXISTS "+quoteIdent(db))
		}
	}
	for _, u := range users {
		if !slices.Contains(m.users, u) {
			stmts = append(stmts, "DROP USER IF EXISTS "+u)
		}
	}
	if err := m.execOnOneConn(ctx, stmts); err != nil {
		return fmt.Errorf("resetting MariaDB after a failed mysqltest test: %w", err)
	}
	// Relay logs a test's CHANGE MASTER created outlive it (and show in a
	// later run's SHOW RELAYLOG EVENTS); best effort, as there may be none.
	_, _ = m.srv.RootDB().ExecContext(ctx, "RESET SLAVE ALL")
	return m.restoreGlobals(ctx, target)
}

// mtrResultLine is a test's result line in the runner's report:
// "main.select   [ pass ]   123" (a "w1 " worker prefix with --parallel).
var mtrResultLine = regexp.MustCompile(`^(?:worker\[\d+\] )?(\S+\.\S+)\s+(?:w\d+ )?\[ (pass|fail|skipped|disabled) \]\s*(.*)$`)

// runMTR runs the tests of an MTR suite against target and returns one
// result per test. The runner stops at a test's failure (no --force): the
// server is reset and the runner starts again after that test, so a
// failure's leftovers never fail the next test.
func runMTR(ctx context.Context, s Suite, tests []string, m *mtrServer, target Target, o RunOptions) (*TestRun, error) {
	run := &TestRun{Tests: map[TestID]*TestResult{}, Packages: map[string]*PackageResult{}}
	raw, err := os.Create(o.RawPath)
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", o.RawPath, err)
	}
	defer raw.Close()
	pkg := mtrPackage(s)
	for rest := tests; len(rest) > 0; {
		if err := ctx.Err(); err != nil {
			return run, err
		}
		failed, err := mtrOnce(ctx, s, rest, m, target, o, raw, run, pkg)
		if err != nil {
			return run, err
		}
		// The runner orders the tests its own way: what is left is what
		// has no result yet.
		left := rest[:0:0]
		for _, t := range rest {
			if run.Tests[TestID{Package: pkg, Name: t}] == nil {
				left = append(left, t)
			}
		}
		if len(left) == len(rest) {
			// Nothing reported: count the first failed rather than loop.
			r := run.test(TestID{Package: pkg, Name: left[0]})
			r.Status, r.Finished = StatusFail, true
			r.Output = append(r.Output, "mariadb-test-run reported no result for this test")
			left, failed = left[1:], true
		}
		rest = left
		if failed && len(rest) > 0 {
			if err := m.reset(ctx, target); err != nil {
				return run, err
			}
		}
	}
	return run, nil
}

// mtrOnce runs the runner once on tests, which stops after the first
// failure, and says whether a test failed.
func mtrOnce(ctx context.Context, s Suite, tests []string, m *mtrServer, target Target, o RunOptions, raw io.Writer, run *TestRun, pkg string) (bool, error) {
	args := []string{
		"--extern", "host=" + target.Host,
		"--extern", "port=" + strconv.Itoa(target.Port),
		"--extern", "user=" + target.User,
		"--extern", "password=" + target.Password,
		// Every connection over TCP: the proxy has no unix socket, and
		// "localhost" in a test's connect would otherwise mean one.
		"--extern", "protocol=tcp",
		// A connect that cannot succeed (an address the proxy does not
		// listen on) gives up after seconds, not mysqltest's 500 retries.
		"--extern", "loose-max-connect-retries=20",
		"--vardir=" + m.vardir,
		"--testcase-timeout=" + strconv.Itoa(mtrTestTimeout),
		"--max-test-fail=1",
	}
	if s.MTR.PS {
		args = append(args, "--ps-protocol")
	}
	if m.tls {
		// The runner's own --ssl is refused with --extern (it looks for a
		// server variable "ssl" that SHOW VARIABLES has not); an --extern
		// option goes to the [client] section of the my.cnf its clients
		// read, mysqltest included.
		args = append(args, "--extern", "ssl=1")
	}
	args = append(args, tests...)
	// Each test has the runner's --testcase-timeout; the whole run is
	// bounded by the caller's context (-total).
	budget := time.Duration(len(tests))*mtrTestTimeout*time.Minute + time.Minute
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	cmd := exec.CommandContext(ctx, "perl", append([]string{"mariadb-test-run"}, args...)...)
	cmd.Dir = MTRDir
	cmd.Env = append(os.Environ(), "MTR_BUILD_THREAD=auto")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = killGrace
	out, err := cmd.StdoutPipe()
	if err != nil {
		return false, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("starting mariadb-test-run: %w", err)
	}
	done, failed := parseMTR(io.TeeReader(out, raw), run, pkg)
	waitErr := cmd.Wait()
	if ctx.Err() != nil {
		return failed, fmt.Errorf("mariadb-test-run stopped at its deadline: %w", ctx.Err())
	}
	if done == 0 && waitErr != nil {
		return false, fmt.Errorf("mariadb-test-run: %w (see %s)", waitErr, o.RawPath)
	}
	return failed, nil
}

// parseMTR reads the runner's report into run and returns how many tests
// got a result and whether one failed. The lines after a failure's result
// line, up to the next result, are that test's output.
func parseMTR(r io.Reader, run *TestRun, pkg string) (n int, failed bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	var cur *TestResult
	inDiff := false
	for sc.Scan() {
		line := sc.Text()
		if m := mtrResultLine.FindStringSubmatch(line); m != nil {
			cur = run.test(TestID{Package: pkg, Name: m[1]})
			cur.Finished, inDiff = true, false
			cur.Output = []string{line}
			switch m[2] {
			case "pass":
				cur.Status = StatusPass
			case "fail":
				cur.Status = StatusFail
				failed = true
			default:
				cur.Status = StatusSkip
			}
			if ms, err := strconv.Atoi(strings.TrimSpace(m[3])); err == nil {
				cur.Elapsed = time.Duration(ms) * time.Millisecond
			}
			n++
			continue
		}
		if cur != nil && cur.Status == StatusFail {
			keep, more := mtrFailureLine(line, &inDiff)
			if keep {
				cur.Output = appendBounded(cur.Output, line)
			}
			if !more {
				cur = nil
			}
		}
	}
	return n, failed
}

// mtrFailureLine says whether a line after a failure's result line says
// why it failed (the mysqltest error, the changed lines of the result
// diff, not its context), and whether more such lines can follow.
func mtrFailureLine(line string, inDiff *bool) (keep, more bool) {
	t := strings.TrimSpace(line)
	switch {
	case t == "", strings.HasPrefix(t, "Test ended at"), strings.Contains(t, "Error on delete of"):
		return false, true
	case strings.HasPrefix(line, "--- /"):
		*inDiff = true
		return false, true
	case strings.HasPrefix(line, "+++ /"):
		return false, true
	case t == "Result length mismatch", strings.HasPrefix(t, "Only "), strings.HasPrefix(t, "- saving"):
		*inDiff = false
		return false, false
	case *inDiff:
		return strings.HasPrefix(line, "-") || strings.HasPrefix(line, "+") || strings.HasPrefix(line, "@@"), true
	}
	return true, true
}

// ReadMTRList reads a list of mysqltest tests: one "suite.test" per line,
// text after # ignored.
func ReadMTRList(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mysqltest list: %w", err)
	}
	var tests []string
	for line := range strings.Lines(string(b)) {
		line, _, _ = strings.Cut(line, "#")
		if f := strings.Fields(line); len(f) > 0 {
			if !strings.Contains(f[0], ".") {
				return nil, fmt.Errorf("mysqltest list %s: %q is not suite.test", path, f[0])
			}
			tests = append(tests, f[0])
		}
	}
	if len(tests) == 0 {
		return nil, fmt.Errorf("mysqltest list %s: no tests", path)
	}
	return tests, nil
}
