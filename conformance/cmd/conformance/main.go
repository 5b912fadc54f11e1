// Command conformance runs real clients' own test suites (Go drivers',
// MariaDB's mysqltest and C API tests) against a throwaway MariaDB,
// directly and then through pisa-proxy, and writes a markdown report of
// the tests that pass directly but fail through the proxy. See
// docs/conformance.md.
//
// Usage (from the module root):
//
//	go run ./conformance/cmd/conformance -out bin/conformance.md
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"pisanix.io/pisanix/conformance"
)

// exitDifferences is the exit status with -strict when differences exist.
const exitDifferences = 3

func main() {
	code, err := run(os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func run(args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("conformance", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		suites   = fs.String("suites", "go-sql-driver,go-mysql,mysqltest,mysqltest-ps,mariadb-client-test", "comma-separated suites to run")
		mtrList  = fs.String("mysqltest-list", "conformance/mysqltest.list", "the mysqltest tests of the mysqltest suites (relative to the module root)")
		out      = fs.String("out", "", "write the markdown report to this file (default: standard output)")
		goBin    = fs.String("go", "go", "the go command")
		timeout  = fs.Duration("timeout", 5*time.Minute, "go test -timeout of each suite run")
		total    = fs.Duration("total", 40*time.Minute, "bound on the whole run")
		maxConns = fs.Int("max-connections", 151, "MariaDB max_connections (go-sql-driver's TestConcurrent opens this many)")
		pool     = fs.Int("pool-size", 32, "pisa-proxy pool_size")
		mux      = fs.Bool("multiplex", false, "the proxy listener multiplexes (multiplex = true)")
		passthru = fs.Bool("passthrough", false, "the proxy listener has auth_mode = \"passthrough\"")
		useTLS   = fs.Bool("tls", false, "MariaDB and the proxy listener offer TLS (testenv's generated certificate)")
		workDir  = fs.String("workdir", "", "scratch directory (default: a new temporary directory)")
		keep     = fs.Bool("keep", false, "keep the scratch directory (raw go test -json output, proxy logs)")
		strict   = fs.Bool("strict", false, fmt.Sprintf("exit %d when some test passes directly and fails through the proxy", exitDifferences))
		knownF   = fs.String("known", "", "with -strict: files (comma-separated) of known differences (\"package test\" per line) that do not fail the run")
		verbose  = fs.Bool("v", false, "debug logging")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, nil
		}
		return 2, err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	selected, err := conformance.SelectSuites(strings.Split(*suites, ","))
	if err != nil {
		return 2, err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *total)
	defer cancel()

	moduleDir, err := findModuleRoot(ctx, *goBin)
	if err != nil {
		return 1, err
	}
	var mtrTests []string
	for _, s := range selected {
		if s.MTR != nil {
			path := *mtrList
			if !filepath.IsAbs(path) {
				path = filepath.Join(moduleDir, path)
			}
			if mtrTests, err = conformance.ReadMTRList(path); err != nil {
				return 2, err
			}
			break
		}
	}
	dir := *workDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "pisanix-conformance-"); err != nil {
			return 1, fmt.Errorf("creating scratch dir: %w", err)
		}
	}
	if *keep {
		log.Info("keeping the scratch directory", "dir", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	rep, err := conformance.Run(ctx, conformance.Config{
		Go:             *goBin,
		ModuleDir:      moduleDir,
		WorkDir:        dir,
		Suites:         selected,
		SuiteTimeout:   *timeout,
		MaxConnections: *maxConns,
		PoolSize:       *pool,
		TLS:            *useTLS,
		Multiplex:      *mux,
		Passthrough:    *passthru,
		MTRTests:       mtrTests,
		Log:            log,
	})
	if rep == nil {
		return 1, err
	}
	md := rep.Markdown()
	if *out == "" {
		if _, werr := io.WriteString(stdout, md); werr != nil {
			return 1, errors.Join(err, fmt.Errorf("writing the report: %w", werr))
		}
	} else {
		if werr := os.WriteFile(*out, []byte(md), 0o644); werr != nil {
			return 1, errors.Join(err, fmt.Errorf("writing the report: %w", werr))
		}
		log.Info("report written", "path", *out)
	}
	if err != nil {
		return 1, err
	}
	n := rep.Differences()
	log.Info("conformance done", "differences", n, "took", rep.Duration)
	if !*strict {
		return 0, nil
	}
	known := map[string]bool{}
	for _, f := range strings.Split(*knownF, ",") {
		if f == "" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return 1, fmt.Errorf("known differences: %w", err)
		}
		maps.Copy(known, conformance.ParseKnown(string(b)))
	}
	unexpected, gone := rep.Unexpected(known)
	for _, k := range gone {
		log.Warn("a known difference is gone: remove it from the list", "test", k, "list", *knownF)
	}
	if len(unexpected) > 0 {
		return exitDifferences, fmt.Errorf("tests pass directly and fail through the proxy: %s", strings.Join(unexpected, "; "))
	}
	return 0, nil
}

// findModuleRoot returns the directory of the main module's go.mod.
func findModuleRoot(ctx context.Context, goBin string) (string, error) {
	out, err := exec.CommandContext(ctx, goBin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a Go module: run from the pisanix module root")
	}
	return filepath.Dir(gomod), nil
}
