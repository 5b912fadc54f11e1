package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Target is the MySQL endpoint a suite's tests connect to: the server
// itself or the proxy in front of it. Only the address differs between the
// two runs of a suite.
type Target struct {
	Host     string
	Port     int
	User     string
	Password string
}

// Addr is host:port.
func (t Target) Addr() string { return t.Host + ":" + strconv.Itoa(t.Port) }

// Suite is one client library whose own tests are run.
type Suite struct {
	Name   string // short name for flags and the report
	Module string // module path; the version is the one the main module requires
	// Packages are the package patterns tested, relative to the module root.
	Packages []string
	// User and Password are the account the tests log in with, directly
	// and to the proxy (which uses it towards MariaDB too); empty User means
	// testenv's gotest account.
	User, Password string
	// Databases must exist before the suite runs (the template has gotest).
	Databases []string
	// Skip is go test's -skip pattern: tests that cannot run in this
	// environment, in either mode (see SkipWhy).
	Skip    string
	SkipWhy string
	// Env and Args tell the tests where the server is: extra environment
	// and flags for the test binaries (after -args).
	Env  func(Target) []string
	Args func(Target) []string
	// Notes describe the setup in the report.
	Notes string
	// MTR, when set, makes this a suite of MariaDB's mysqltest tests (the
	// run's MTRTests) instead of a Go module's tests.
	MTR *MTR
	// ClientTest makes this the suite of mariadb-client-test's test
	// functions (clienttest.go), on the mysqltest suites' server.
	ClientTest bool
}

// goSQLDriverDB and goMySQLDB are the schemas the suites use.
const (
	goSQLDriverDB = "gotest"
	goMySQLDB     = "test" // go-mysql's driver tests run "USE test" whatever -db says
)

// Suites returns the suites the harness knows.
func Suites() []Suite {
	return []Suite{
		{
			Name:      "go-sql-driver",
			Module:    "github.com/go-sql-driver/mysql",
			Packages:  []string{"."},
			Databases: []string{goSQLDriverDB},
			// driver_test.go's init reads these; MYSQL_TEST_CONCURRENT
			// enables TestConcurrent (max_connections connections at once).
			Env: func(t Target) []string {
				return []string{
					"MYSQL_TEST_USER=" + t.User,
					"MYSQL_TEST_PASS=" + t.Password,
					"MYSQL_TEST_PROT=tcp",
					"MYSQL_TEST_ADDR=" + t.Addr(),
					"MYSQL_TEST_DBNAME=" + goSQLDriverDB,
					"MYSQL_TEST_CONCURRENT=1",
				}
			},
			Skip: "^TestConnectorReturnsTimeout$",
			SkipWhy: "TestConnectorReturnsTimeout expects a dial to 1.1.1.1:1234 to time out; where that address " +
				"accepts connections the test panics (nil Logger in its hand-built Config) and kills the test binary",
			Notes: "MYSQL_TEST_USER/PASS/PROT/ADDR/DBNAME and MYSQL_TEST_CONCURRENT=1; database `gotest`",
		},
		{
			Name:      "go-mysql",
			Module:    "github.com/go-mysql-org/go-mysql",
			Packages:  []string{"./client", "./driver"},
			Databases: []string{goMySQLDB},
			// The flags' defaults: the driver package's mock-server tests
			// hardcode root without a password in their DSNs.
			User: "root",
			// test_util/flags.go defines -host and -port, each package's
			// common_test.go -user, -pass and -db.
			Args: func(t Target) []string {
				return []string{
					"-host=" + t.Host,
					"-port=" + strconv.Itoa(t.Port),
					"-user=" + t.User,
					"-pass=" + t.Password,
					"-db=" + goMySQLDB,
				}
			},
			Skip:    "^Example",
			SkipWhy: "the client package's Example needs root without a password on 127.0.0.1:3306 and panics otherwise",
			Notes:   "flags -host -port -user=root -pass= -db=test (root without a password is the suite's default, and the driver package's mock-server tests hardcode it); packages client and driver",
		},
		mtrSuite("mysqltest", false),
		mtrSuite("mysqltest-ps", true),
		{
			Name:       "mariadb-client-test",
			Module:     "mariadb-test (Debian)",
			User:       "root",
			ClientTest: true,
			Notes: "every test function of `mariadb-client-test -T`, each in its own process (`--no-defaults --testcase --host --port " +
				"--user=root --vardir`), on the mysqltest suites' server with main.mysql_client_test-master.opt's settings as globals " +
				"(max_allowed_packet 32000000, proxy_protocol_networks *, the general log at vardir/log/master.log) and sql_mode ''; " +
				"the server is reset after each failure; four tests first run the test whose tables they read",
		},
	}
}

// mtrSuite is a run of the selected mysqltest tests, with the binary
// protocol when ps.
func mtrSuite(name string, ps bool) Suite {
	notes := "mariadb-test-run --extern host,port,user=root,protocol=tcp over the run's mysqltest list; the server has the runner's " +
		"character set, default engine and buffer sizes, its mtr schema, and name resolution on (127.0.0.1 is localhost)"
	if ps {
		notes += "; --ps-protocol: every statement prepared and executed with the binary protocol"
	}
	return Suite{Name: name, Module: "mariadb-test (Debian)", User: "root", Databases: []string{mtrDB}, MTR: &MTR{PS: ps}, Notes: notes}
}

// SelectSuites returns the named suites from Suites, in the order given.
func SelectSuites(names []string) ([]Suite, error) {
	all := Suites()
	var out []Suite
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		found := false
		for _, s := range all {
			if s.Name == n {
				out = append(out, s)
				found = true
				break
			}
		}
		if !found {
			known := make([]string, len(all))
			for i, s := range all {
				known[i] = s.Name
			}
			return nil, fmt.Errorf("unknown suite %q (known: %s)", n, strings.Join(known, ", "))
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no suites selected")
	}
	return out, nil
}

// Source is a writable copy of a suite's module.
type Source struct {
	Dir     string
	Version string
}

// moduleInfo is the part of `go mod download -json` used here.
type moduleInfo struct {
	Path    string
	Version string
	Dir     string
	Error   string
}

// PrepareSource downloads the version of s.Module that the module at
// mainDir requires (a no-op when it is in the module cache) and copies its
// source to dst, writable, since the module cache is read-only.
func PrepareSource(ctx context.Context, goBin, mainDir string, s Suite, dst string) (Source, error) {
	cmd := exec.CommandContext(ctx, goBin, "mod", "download", "-json", s.Module)
	cmd.Dir = mainDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return Source{}, fmt.Errorf("go mod download %s: %w: %s", s.Module, err, strings.TrimSpace(stderr.String()))
	}
	var mi moduleInfo
	if err := json.Unmarshal(out, &mi); err != nil {
		return Source{}, fmt.Errorf("go mod download %s: decoding its output: %w", s.Module, err)
	}
	if mi.Error != "" || mi.Dir == "" {
		return Source{}, fmt.Errorf("go mod download %s: %s", s.Module, mi.Error)
	}
	// CopyFS does not overwrite: start from scratch when -workdir is reused.
	if err := os.RemoveAll(dst); err != nil {
		return Source{}, fmt.Errorf("clearing %s: %w", dst, err)
	}
	if err := os.CopyFS(dst, os.DirFS(mi.Dir)); err != nil {
		return Source{}, fmt.Errorf("copying %s@%s to %s: %w", s.Module, mi.Version, dst, err)
	}
	return Source{Dir: dst, Version: mi.Version}, nil
}

// buildAllowance is added to a run's test timeout for compiling the test
// binaries (the first run of a suite compiles, later runs hit the cache).
const buildAllowance = 4 * time.Minute

// killGrace is how long a cancelled `go test` gets between the kill of its
// process group and giving up on its output.
const killGrace = 10 * time.Second

// RunOptions say how a suite is run once.
type RunOptions struct {
	Go      string        // the go command
	Timeout time.Duration // go test -timeout
	RawPath string        // where the raw -json output is kept
	Log     *slog.Logger
}

// RunSuite runs the suite's tests in src against target with
// `go test -json` and parses the events. Test failures are results, not
// errors; the error says that the run itself went wrong (the build failed,
// the run was killed at its deadline, the output was unreadable), in which
// case the returned TestRun holds what was reported until then.
func RunSuite(ctx context.Context, s Suite, src Source, target Target, o RunOptions) (*TestRun, error) {
	args := []string{"test", "-json", "-count=1", "-p=1", "-timeout=" + o.Timeout.String()}
	if s.Skip != "" {
		args = append(args, "-skip="+s.Skip)
	}
	args = append(args, s.Packages...)
	if s.Args != nil {
		args = append(args, "-args")
		args = append(args, s.Args(target)...)
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout+buildAllowance)
	defer cancel()

	raw, err := os.Create(o.RawPath)
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", o.RawPath, err)
	}
	defer raw.Close()
	var stderr tailBuffer
	cmd := exec.CommandContext(ctx, o.Go, args...)
	cmd.Dir = src.Dir
	cmd.Env = suiteEnv(os.Environ(), s, target)
	cmd.Stdout = raw
	cmd.Stderr = &stderr
	// go test starts the test binaries as its children: run it in its own
	// process group and kill the whole group when the deadline passes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = killGrace

	o.Log.Info("running suite", "suite", s.Name, "target", target.Addr(), "cmd", "go "+strings.Join(args, " "))
	runErr := cmd.Run()
	if _, err := raw.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewinding %s: %w", o.RawPath, err)
	}
	run, err := ParseTestJSON(raw)
	if err != nil {
		return run, err
	}
	switch {
	case ctx.Err() != nil:
		return run, fmt.Errorf("go test stopped (deadline %s or interrupted): %w; stderr: %s", o.Timeout+buildAllowance, ctx.Err(), stderr.String())
	case runErr == nil:
		return run, nil
	case len(run.Order) == 0:
		// Failing tests make go test exit 1 too; without any test, the
		// run itself failed (build error, bad flags).
		return run, fmt.Errorf("go test: %w; stderr: %s; packages: %s", runErr, stderr.String(), packageOutput(run))
	default:
		return run, nil
	}
}

// suiteEnv is the environment of a suite run: the harness's own without
// anything that could point the tests elsewhere, the module settings that
// let the copied module resolve through the module proxy, and the suite's
// connection settings.
func suiteEnv(base []string, s Suite, target Target) []string {
	var env []string
	goflags := ""
	for _, kv := range base {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "MYSQL_TEST_"), k == "GOTOOLCHAIN", k == "GOWORK":
			continue
		case k == "GOFLAGS":
			goflags = v
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "GOTOOLCHAIN=local", "GOWORK=off", "GOFLAGS="+strings.TrimSpace(goflags+" -mod=mod"))
	if s.Env != nil {
		env = append(env, s.Env(target)...)
	}
	return env
}

func packageOutput(run *TestRun) string {
	var b strings.Builder
	for _, p := range run.Packages {
		for _, l := range p.Output {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return tail(b.String(), 2000)
}

// tailBuffer keeps the last tailBytes written to it.
type tailBuffer struct{ b []byte }

const tailBytes = 8 << 10

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > tailBytes {
		t.b = append(t.b[:0], t.b[len(t.b)-tailBytes:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return tail(strings.TrimSpace(string(t.b)), 2000) }

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// rawPath names a run's raw output file.
func rawPath(dir, suite, mode string) string {
	return filepath.Join(dir, suite+"-"+mode+".json")
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
