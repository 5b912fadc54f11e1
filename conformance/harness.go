package conformance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"pisanix.io/pisanix/internal/testenv"
)

// Run modes: a suite runs directly against MariaDB, then through the proxy.
const (
	ModeDirect = "direct"
	ModeProxy  = "proxy"
)

// resetTimeout bounds emptying the schemas between runs.
const resetTimeout = 30 * time.Second

// Config configures one conformance run.
type Config struct {
	Go        string // the go command
	ModuleDir string // root of the pisanix module (builds cmd/pisa-proxy)
	WorkDir   string // scratch: module copies, proxy binary, configs, logs, raw outputs
	Suites    []Suite
	// SuiteTimeout is go test's -timeout for each run of a suite.
	SuiteTimeout time.Duration
	// MaxConnections is MariaDB's max_connections (TestConcurrent of
	// go-sql-driver opens that many connections at once).
	MaxConnections int
	// PoolSize is the proxy's backend pool size.
	PoolSize int
	// TLS makes MariaDB and the proxy listener offer TLS (with testenv's
	// generated certificate; clients still choose whether to use it) and
	// the proxy use verified TLS towards MariaDB.
	TLS bool
	// Multiplex turns the listener's multiplexing on.
	Multiplex bool
	// Passthrough gives the listener auth_mode = "passthrough".
	Passthrough bool
	// MTRTests are the mysqltest tests ("main.select") of MTR suites.
	MTRTests []string
	Log      *slog.Logger
}

// Report is the outcome of a conformance run.
type Report struct {
	Started  time.Time
	Duration time.Duration
	MariaDB  string // SELECT VERSION()
	Go       string
	CPUs     int
	Config   Config
	Suites   []*SuiteReport
}

// SuiteReport is one suite's two runs.
type SuiteReport struct {
	Suite   Suite
	Version string
	Err     error // the suite could not be prepared; no runs
	Direct  *ModeRun
	Proxy   *ModeRun
}

// ModeRun is one run of a suite.
type ModeRun struct {
	Mode     string
	Target   Target
	Run      *TestRun // nil when the run could not start
	Err      error    // the run itself went wrong (see RunSuite)
	Duration time.Duration
	RawPath  string // go test -json output
	// Proxy runs only.
	ProxyLog     string
	ProxyWarns   int
	ProxyErrors  int
	ProxySamples []string
	ProxyExit    error // the proxy died during the run or did not stop cleanly
}

// Run starts a MariaDB, then runs every suite directly and through a fresh
// pisa-proxy, and returns the results. It stops everything it started
// before returning. An error means the harness could not run at all; a
// suite's own problems are in its SuiteReport.
func Run(ctx context.Context, cfg Config) (_ *Report, err error) {
	log := cfg.Log
	rep := &Report{Started: time.Now(), Go: runtime.Version(), CPUs: runtime.NumCPU(), Config: cfg}
	defer func() { rep.Duration = time.Since(rep.Started).Round(time.Second) }()

	for _, d := range []string{"src", "proxy", "out"} {
		if err := os.MkdirAll(filepath.Join(cfg.WorkDir, d), 0o755); err != nil {
			return nil, fmt.Errorf("creating work dir: %w", err)
		}
	}
	log.Info("building pisa-proxy", "module", cfg.ModuleDir)
	bin, err := BuildProxy(ctx, cfg.Go, cfg.ModuleDir, filepath.Join(cfg.WorkDir, "proxy"))
	if err != nil {
		return nil, err
	}

	log.Info("starting MariaDB", "max_connections", cfg.MaxConnections, "tls", cfg.TLS)
	srv, err := testenv.StartMariaDB(ctx, testenv.Options{MaxConnections: cfg.MaxConnections, TLS: cfg.TLS, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("starting MariaDB: %w", err)
	}
	defer func() {
		if stopErr := srv.Stop(); stopErr != nil {
			err = errors.Join(err, fmt.Errorf("stopping MariaDB: %w", stopErr))
		}
	}()
	if err := srv.RootDB().QueryRowContext(ctx, "SELECT VERSION()").Scan(&rep.MariaDB); err != nil {
		return nil, fmt.Errorf("reading the MariaDB version: %w", err)
	}
	for _, s := range cfg.Suites {
		for _, db := range s.Databases {
			if err := srv.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+quoteIdent(db)); err != nil {
				return nil, err
			}
		}
	}
	log.Info("MariaDB started", "addr", srv.Addr(), "version", rep.MariaDB)

	var tlsCert, tlsKey, tlsCA string
	if files := srv.TLSFiles(); files != nil {
		tlsCert, tlsKey, tlsCA = files.CertFile, files.KeyFile, files.CAFile
	}
	var mtrSrv *mtrServer
	for _, s := range cfg.Suites {
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("before suite %s: %w", s.Name, err)
		}
		sr := &SuiteReport{Suite: s}
		rep.Suites = append(rep.Suites, sr)
		if s.MTR != nil || s.ClientTest {
			if mtrSrv == nil {
				if mtrSrv, err = startMTRServer(ctx, cfg); err != nil {
					sr.Err = err
					log.Error("preparing suite", "suite", s.Name, "err", err)
					continue
				}
				defer func() {
					if stopErr := mtrSrv.srv.Stop(); stopErr != nil {
						err = errors.Join(err, fmt.Errorf("stopping MariaDB for mysqltest: %w", stopErr))
					}
				}()
			}
			run := runMTRSuite
			if s.ClientTest {
				run = runClientTestSuite
			}
			if err := run(ctx, cfg, sr, mtrSrv, bin); err != nil {
				return rep, err
			}
			continue
		}
		src, err := PrepareSource(ctx, cfg.Go, cfg.ModuleDir, s, filepath.Join(cfg.WorkDir, "src", s.Name))
		if err != nil {
			sr.Err = err
			log.Error("preparing suite", "suite", s.Name, "err", err)
			continue
		}
		sr.Version = src.Version
		opts := RunOptions{Go: cfg.Go, Timeout: cfg.SuiteTimeout, Log: log}
		direct := Target{Host: srv.Host(), Port: srv.Port(), User: s.User, Password: s.Password}
		if direct.User == "" {
			direct.User, direct.Password = testenv.TestUser, testenv.TestPassword
		}
		pcfg := ProxyConfig{Backend: direct, PoolSize: cfg.PoolSize, TLSCert: tlsCert, TLSKey: tlsKey, BackendCA: tlsCA, Multiplex: cfg.Multiplex, Passthrough: cfg.Passthrough}

		goTest := func(ctx context.Context, target Target, o RunOptions) (*TestRun, error) {
			return RunSuite(ctx, s, src, target, o)
		}
		if err := resetSchemas(ctx, srv, s.Databases); err != nil {
			return rep, err
		}
		sr.Direct = runMode(ctx, s, direct, ModeDirect, cfg.WorkDir, opts, goTest)

		if err := resetSchemas(ctx, srv, s.Databases); err != nil {
			return rep, err
		}
		if len(s.Databases) > 0 {
			pcfg.DB = s.Databases[0]
		}
		sr.Proxy = runProxied(ctx, s, bin, pcfg, cfg.WorkDir, opts, goTest)
	}
	return rep, nil
}

// runMTRSuite runs an MTR suite's tests directly, then through a fresh
// proxy, each time from a reset server.
func runMTRSuite(ctx context.Context, cfg Config, sr *SuiteReport, m *mtrServer, bin string) error {
	s := sr.Suite
	sr.Version = m.version
	opts := RunOptions{Timeout: cfg.SuiteTimeout, Log: cfg.Log}
	mtr := func(ctx context.Context, target Target, o RunOptions) (*TestRun, error) {
		return runMTR(ctx, s, cfg.MTRTests, m, target, o)
	}
	direct := Target{Host: m.srv.Host(), Port: m.srv.Port(), User: s.User, Password: s.Password}
	if err := m.reset(ctx, direct); err != nil {
		return err
	}
	sr.Direct = runMode(ctx, s, direct, ModeDirect, cfg.WorkDir, opts, mtr)
	if err := m.reset(ctx, direct); err != nil {
		return err
	}
	// No default schema: mysqltest connects without one where a test asks
	// so (connect ...,*NO-ONE*), and the session must then have none.
	sr.Proxy = runProxied(ctx, s, bin, mtrProxyConfig(cfg, direct), cfg.WorkDir, opts, mtr)
	return nil
}

// runFunc runs a suite once against target.
type runFunc func(ctx context.Context, target Target, o RunOptions) (*TestRun, error)

// runMode runs the suite once against target.
func runMode(ctx context.Context, s Suite, target Target, mode, workDir string, opts RunOptions, run runFunc) *ModeRun {
	mr := &ModeRun{Mode: mode, Target: target, RawPath: rawPath(filepath.Join(workDir, "out"), s.Name, mode)}
	opts.RawPath = mr.RawPath
	begin := time.Now()
	mr.Run, mr.Err = run(ctx, target, opts)
	mr.Duration = time.Since(begin).Round(time.Second)
	if mr.Run != nil {
		top, all := mr.Run.Count()
		opts.Log.Info("suite run done", "suite", s.Name, "mode", mode, "took", mr.Duration,
			"top", fmt.Sprintf("%+v", top), "all", fmt.Sprintf("%+v", all), "err", mr.Err)
	} else {
		opts.Log.Error("suite run failed", "suite", s.Name, "mode", mode, "err", mr.Err)
	}
	return mr
}

// runProxied starts a fresh proxy for the suite, runs it through the proxy,
// and stops the proxy.
func runProxied(ctx context.Context, s Suite, bin string, pcfg ProxyConfig, workDir string, opts RunOptions, run runFunc) *ModeRun {
	p, err := StartProxy(ctx, bin, filepath.Join(workDir, "proxy"), s.Name, pcfg, opts.Log)
	if err != nil {
		return &ModeRun{Mode: ModeProxy, Err: err}
	}
	target := pcfg.Backend
	target.Port = p.Port()
	mr := runMode(ctx, s, target, ModeProxy, workDir, opts, run)
	if exited, exitErr := p.Exited(); exited {
		mr.ProxyExit = fmt.Errorf("pisa-proxy exited during the run: %v; log tail:\n%s", exitErr, p.LogTail(30))
	} else if err := p.Stop(); err != nil {
		mr.ProxyExit = err
	}
	mr.ProxyLog = p.LogPath()
	mr.ProxyWarns, mr.ProxyErrors, mr.ProxySamples = p.LogSummary(12)
	return mr
}

// resetSchemas drops every table and view in dbs, so that what one run
// leaves behind does not change the next.
func resetSchemas(ctx context.Context, srv *testenv.Server, dbs []string) error {
	ctx, cancel := context.WithTimeout(ctx, resetTimeout)
	defer cancel()
	conn, err := srv.RootDB().Conn(ctx)
	if err != nil {
		return fmt.Errorf("resetting schemas: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET SESSION foreign_key_checks = 0, lock_wait_timeout = 20"); err != nil {
		return fmt.Errorf("resetting schemas: %w", err)
	}
	for _, db := range dbs {
		rows, err := conn.QueryContext(ctx,
			"SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = ?", db)
		if err != nil {
			return fmt.Errorf("listing tables of %s: %w", db, err)
		}
		var stmts []string
		for rows.Next() {
			var name, typ string
			if err := rows.Scan(&name, &typ); err != nil {
				rows.Close()
				return fmt.Errorf("listing tables of %s: %w", db, err)
			}
			kind := "TABLE"
			if typ == "VIEW" {
				kind = "VIEW"
			}
			stmts = append(stmts, fmt.Sprintf("DROP %s IF EXISTS %s.%s", kind, quoteIdent(db), quoteIdent(name)))
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("listing tables of %s: %w", db, err)
		}
		for _, stmt := range stmts {
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("resetting schemas: %s: %w", stmt, err)
			}
		}
	}
	return nil
}
