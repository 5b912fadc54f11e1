package testenv

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// templateRevision changes whenever templateSQL or the template's server
// options change, so that old cached templates are not reused.
const templateRevision = "3"

// Time budgets for the one-off steps, independent of Options.StartTimeout.
const (
	installTimeout  = 15 * time.Minute
	templateTimeout = 3 * time.Minute
)

// templateSQL returns the statements run once, on the first start of the
// template datadir.
func templateSQL() []string {
	return []string{
		"DELETE FROM mysql.global_priv WHERE User = ''",
		"DROP DATABASE IF EXISTS test",
		"CREATE OR REPLACE USER 'root'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('')",
		"GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION",
		"CREATE OR REPLACE USER 'root'@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD('')",
		"GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION",
		"CREATE USER 'gotest'@'%' IDENTIFIED BY 'secret'",
		"GRANT ALL PRIVILEGES ON *.* TO 'gotest'@'%' WITH GRANT OPTION",
		"CREATE USER 'native'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('nativepass')",
		"GRANT ALL PRIVILEGES ON *.* TO 'native'@'%'",
		"CREATE USER 'app'@'%' IDENTIFIED BY 'apppass'",
		"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, CREATE TEMPORARY TABLES, " +
			"LOCK TABLES, EXECUTE, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, TRIGGER, " +
			"PROCESS, SHOW DATABASES ON *.* TO 'app'@'%'",
		"CREATE DATABASE gotest",
		"CREATE DATABASE socksdb",
		"FLUSH PRIVILEGES",
	}
}

// tuningArgs returns server options shared by the template build and every
// instance: small and fast, durability relaxed because the data is thrown away.
func tuningArgs() []string {
	return []string{
		"--innodb-buffer-pool-size=32M",
		"--innodb-log-file-size=8M",
		"--innodb-flush-log-at-trx-commit=0",
		"--innodb-doublewrite=0",
		"--innodb-use-native-aio=0",
		"--sync-binlog=0",
		"--performance-schema=OFF",
		"--skip-external-locking",
	}
}

// CacheDir returns the directory for cached build products: $PISANIX_CACHE,
// else $XDG_CACHE_HOME/pisanix, else $HOME/.cache/pisanix. It is created if
// missing.
func CacheDir() (string, error) {
	dir := os.Getenv("PISANIX_CACHE")
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("finding the cache dir: %w", err)
		}
		dir = filepath.Join(base, "pisanix")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating cache dir: %w", err)
	}
	return dir, nil
}

// binaries are the MariaDB programs used here.
type binaries struct {
	mariadbd  string
	installDB string
	client    string
}

func lookBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/libexec", "/usr/local/bin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH or the usual sbin dirs", name)
}

func findBinaries() (binaries, error) {
	var b binaries
	var errs []error
	var err error
	if b.mariadbd, err = lookBin("mariadbd"); err != nil {
		errs = append(errs, err)
	}
	if b.installDB, err = lookBin("mariadb-install-db"); err != nil {
		errs = append(errs, err)
	}
	if b.client, err = lookBin("mariadb"); err != nil {
		errs = append(errs, err)
	}
	return b, errors.Join(errs...)
}

// ensureInstalled finds the MariaDB binaries, installing Debian's
// mariadb-server and mariadb-client with apt-get when they are missing. The
// install runs under a cross-process lock so parallel test binaries install
// once.
func ensureInstalled(ctx context.Context, cache string, log *slog.Logger) (binaries, error) {
	if b, err := findBinaries(); err == nil {
		return b, nil
	}
	ctx, cancel := context.WithTimeout(ctx, installTimeout)
	defer cancel()
	unlock, err := lockFile(ctx, filepath.Join(cache, "apt.lock"))
	if err != nil {
		return binaries{}, err
	}
	defer unlock()
	if b, err := findBinaries(); err == nil {
		return b, nil // another process installed it while we waited
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return binaries{}, errors.New("mariadb-server is not installed and apt-get is missing: install MariaDB 10.11 (mariadbd, mariadb-install-db, mariadb) or run `make deps`")
	}
	log.Info("installing mariadb-server with apt-get")
	aptLog := filepath.Join(cache, "apt-testenv.log")
	// A new machine's package lists can be months old: installing from them
	// gives an old patch release (or fails on a removed one), so refresh first.
	if err := runLogged(ctx, aptLog, "apt-get", "update", "-qq"); err != nil {
		return binaries{}, err
	}
	install := []string{"install", "-y", "-qq", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=600", "mariadb-server", "mariadb-client"}
	if err := runLogged(ctx, aptLog, "apt-get", install...); err != nil {
		return binaries{}, err
	}
	b, err := findBinaries()
	if err != nil {
		return binaries{}, fmt.Errorf("after installing mariadb-server: %w", err)
	}
	return b, nil
}

// runLogged runs a command with its output appended to logPath and returns
// the tail of that log in the error.
func runLogged(ctx context.Context, logPath, name string, args ...string) error {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening %s: %w", logPath, err)
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w; log tail:\n%s", name, strings.Join(args, " "), err, tailFile(logPath, 20))
	}
	return nil
}

// lockFile takes an exclusive flock on path, polling with backoff until ctx
// is done. flock conflicts between separate opens even inside one process,
// so this also serializes goroutines. The returned func releases the lock.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	backoff := 10 * time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if err := sleepCtx(ctx, backoff); err != nil {
			f.Close()
			return nil, fmt.Errorf("waiting for lock %s: %w", path, err)
		}
		backoff = min(2*backoff, 250*time.Millisecond)
	}
}

// templateDatadir returns a datadir initialized by mariadb-install-db and
// templateSQL, building it on first use. It lives under the cache dir, keyed
// by the mariadbd version and templateRevision, and must not be modified:
// instances copy it.
func templateDatadir(ctx context.Context, cache string, bins binaries, log *slog.Logger) (string, error) {
	out, err := exec.CommandContext(ctx, bins.mariadbd, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("running %s --version: %w", bins.mariadbd, err)
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(string(out)) + "\x00" + templateRevision + "\x00" + strings.Join(tuningArgs(), " ")))
	dir := filepath.Join(cache, "mariadb-template", hex.EncodeToString(sum[:8]))
	data := filepath.Join(dir, "data")
	if _, err := os.Stat(data); err == nil {
		return data, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating template dir: %w", err)
	}

	ctx, cancel := context.WithTimeout(ctx, templateTimeout)
	defer cancel()
	unlock, err := lockFile(ctx, filepath.Join(dir, "build.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(data); err == nil {
		return data, nil // built by another process while we waited
	}

	start := time.Now()
	build, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", fmt.Errorf("creating template build dir: %w", err)
	}
	defer os.RemoveAll(build)
	if err := buildTemplate(ctx, bins, build); err != nil {
		return "", fmt.Errorf("building MariaDB template datadir: %w", err)
	}
	if err := os.Rename(filepath.Join(build, "data"), data); err != nil {
		return "", fmt.Errorf("publishing template datadir: %w", err)
	}
	log.Info("built MariaDB template datadir", "dir", data, "took", time.Since(start).Round(time.Millisecond))
	return data, nil
}

// buildTemplate runs mariadb-install-db into build/data, then starts the
// server once on it to create the users and databases, and shuts it down
// cleanly.
func buildTemplate(ctx context.Context, bins binaries, build string) error {
	data := filepath.Join(build, "data")
	logPath := filepath.Join(build, "install.log")
	args := []string{
		"--no-defaults",
		"--datadir=" + data,
		"--auth-root-authentication-method=normal",
		"--skip-test-db",
		"--skip-name-resolve",
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	args = append(args, tuningArgs()...)
	if err := runLogged(ctx, logPath, bins.installDB, args...); err != nil {
		return err
	}

	// The socket goes to a short temp path: unix socket paths are limited to
	// 107 bytes and the cache dir can be deep.
	sockDir, err := os.MkdirTemp("", "pisanix-tmpl-")
	if err != nil {
		return fmt.Errorf("creating socket dir: %w", err)
	}
	defer os.RemoveAll(sockDir)
	socket := filepath.Join(sockDir, "mariadbd.sock")
	errLog := filepath.Join(build, "error.log")
	srvArgs := []string{
		"--no-defaults",
		"--datadir=" + data,
		"--socket=" + socket,
		"--skip-networking",
		"--pid-file=" + filepath.Join(sockDir, "mariadbd.pid"),
		"--log-error=" + errLog,
		"--skip-name-resolve",
	}
	if os.Geteuid() == 0 {
		srvArgs = append(srvArgs, "--user=root")
	}
	srvArgs = append(srvArgs, tuningArgs()...)
	proc, err := StartProcess(bins.mariadbd, srvArgs, errLog)
	if err != nil {
		return err
	}
	defer proc.Kill()

	db, err := waitReady(ctx, proc, socket, errLog)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, stmt := range templateSQL() {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("template setup %q: %w", stmt, err)
		}
	}
	db.Close()
	if err := proc.Terminate(ctx); err != nil {
		return fmt.Errorf("shutting down template server: %w", err)
	}
	if proc.Err() != nil {
		return fmt.Errorf("template server exited with %v; error log tail:\n%s", proc.Err(), tailFile(errLog, 20))
	}
	return nil
}

// rootConfig is the driver config for root over the unix socket.
func rootConfig(socket string) *mysql.Config {
	cfg := mysql.NewConfig()
	cfg.User = "root"
	cfg.Net = "unix"
	cfg.Addr = socket
	cfg.Timeout = 5 * time.Second
	return cfg
}

// errPortInUse marks a start that failed because the TCP port was taken.
var errPortInUse = errors.New("port already in use")

// waitReady polls the unix socket with backoff until root can connect, the
// process exits, or ctx is done. It returns an open root pool.
func waitReady(ctx context.Context, proc *Process, socket, errLog string) (*sql.DB, error) {
	connector, err := mysql.NewConnector(rootConfig(socket))
	if err != nil {
		return nil, fmt.Errorf("root connector: %w", err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxIdleConns(rootIdleConns)
	backoff := 5 * time.Millisecond
	var lastErr error
	for {
		pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		lastErr = db.PingContext(pingCtx)
		cancel()
		if lastErr == nil {
			return db, nil
		}
		t := time.NewTimer(backoff)
		select {
		case <-proc.done:
			t.Stop()
			db.Close()
			tail := tailFile(errLog, 25)
			err := fmt.Errorf("mariadbd exited (%v) before accepting connections; error log tail:\n%s", proc.Err(), tail)
			if strings.Contains(tail, "Address already in use") {
				err = fmt.Errorf("%w: %w", errPortInUse, err)
			}
			return nil, err
		case <-ctx.Done():
			t.Stop()
			db.Close()
			return nil, fmt.Errorf("mariadbd not ready (%v; last connect error: %v); error log tail:\n%s",
				context.Cause(ctx), lastErr, tailFile(errLog, 25))
		case <-t.C:
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// copyDir copies the regular files and directories of src into dst, which
// must not exist. io.Copy between files uses copy_file_range.
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.Mkdir(target, 0o700)
		case d.Type().IsRegular():
			return copyFile(path, target)
		default:
			return nil // sockets, pid files: not part of a datadir copy
		}
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o660)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return out.Close()
}
