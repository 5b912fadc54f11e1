package testenv

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Well-known accounts of every instance (see the package doc).
const (
	TestUser       = "gotest"
	TestPassword   = "secret"
	NativeUser     = "native"
	NativePassword = "nativepass"
	AppUser        = "app"
	AppPassword    = "apppass"
	TestDB         = "gotest"
	SocksDB        = "socksdb"
)

// portAttempts is how often a start is retried when the free port was taken
// between FreePort and mariadbd binding it.
const portAttempts = 4

// rootIdleConns is the idle pool size of the root connection pool.
const rootIdleConns = 2

// stopTimeout bounds a graceful Shutdown before the server is killed.
const stopTimeout = 30 * time.Second

// Server is one running throwaway MariaDB instance. Its methods are safe for
// concurrent use.
type Server struct {
	opts Options
	log  *slog.Logger
	bins binaries

	dir     string // instance root: datadir, socket, logs, TLS files; removed by Stop
	datadir string
	socket  string
	errLog  string
	port    int
	tls     *TLSFiles // nil without Options.TLS
	root    *sql.DB   // root over the unix socket; reconnects across restarts

	mu      sync.Mutex
	proc    *Process // nil after Kill/Shutdown until Restart
	stopped bool
}

// StartMariaDB starts a new instance and waits until it accepts connections.
// ctx bounds the whole start (including installing mariadb-server and
// building the template on first use); Options.StartTimeout bounds the server
// start itself. The caller must call Stop.
func StartMariaDB(ctx context.Context, opts Options) (*Server, error) {
	opts = opts.withDefaults()
	begin := time.Now()
	cache, err := CacheDir()
	if err != nil {
		return nil, err
	}
	bins, err := ensureInstalled(ctx, cache, opts.Logger)
	if err != nil {
		return nil, err
	}
	tmpl, err := templateDatadir(ctx, cache, bins, opts.Logger)
	if err != nil {
		return nil, err
	}

	dir, err := os.MkdirTemp(shortTempDir(), "pisanix-mariadb-")
	if err != nil {
		return nil, fmt.Errorf("creating instance dir: %w", err)
	}
	s := &Server{
		opts:    opts,
		bins:    bins,
		dir:     dir,
		datadir: opts.Datadir,
		socket:  filepath.Join(dir, "mariadbd.sock"),
		errLog:  filepath.Join(dir, "error.log"),
	}
	if !filepath.IsAbs(s.datadir) {
		s.datadir = filepath.Join(dir, s.datadir)
	}
	fail := func(err error) (*Server, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(s.datadir), 0o700); err != nil {
		return fail(fmt.Errorf("creating datadir parent: %w", err))
	}
	if err := copyDir(tmpl, s.datadir); err != nil {
		return fail(fmt.Errorf("copying template datadir: %w", err))
	}
	if opts.TLS {
		hosts := opts.TLSHosts
		if len(hosts) == 0 {
			hosts = []string{"127.0.0.1", "::1", "localhost"}
		}
		files, err := WriteTLSFiles(filepath.Join(dir, "tls"), hosts...)
		if err != nil {
			return fail(err)
		}
		s.tls = &files
	}

	for attempt := 1; ; attempt++ {
		if s.port, err = FreePort(); err != nil {
			return fail(err)
		}
		err = s.startProcess(ctx)
		if err == nil {
			break
		}
		if !errors.Is(err, errPortInUse) || attempt == portAttempts {
			return fail(err)
		}
		opts.Logger.Debug("mariadb port taken, retrying", "port", s.port)
	}
	s.log = opts.Logger.With("mariadb", s.Addr())
	s.log.Debug("mariadb started", "dir", dir, "took", time.Since(begin).Round(time.Millisecond))
	return s, nil
}

// shortTempDir returns os.TempDir unless it is so deep that a socket path
// under it would pass the 107-byte limit of unix socket paths.
func shortTempDir() string {
	if d := os.TempDir(); len(d) < 60 {
		return d
	}
	return "/tmp"
}

// args builds the mariadbd command line.
func (s *Server) args() []string {
	a := []string{
		"--no-defaults", // must come first
		"--datadir=" + s.datadir,
		"--socket=" + s.socket,
		"--port=" + strconv.Itoa(s.port),
		"--bind-address=127.0.0.1",
		"--pid-file=" + filepath.Join(s.dir, "mariadbd.pid"),
		"--log-error=" + s.errLog,
		"--skip-name-resolve",
		"--max-allowed-packet=256M",
		"--local-infile=1",
		"--max-connections=" + strconv.Itoa(s.opts.MaxConnections),
		"--character-set-server=utf8mb4",
		"--collation-server=utf8mb4_general_ci",
	}
	if os.Geteuid() == 0 {
		a = append(a, "--user=root")
	}
	a = append(a, tuningArgs()...)
	if s.opts.Replication {
		a = append(a,
			// The port is unique among running instances, so it makes a
			// unique server_id without shared state.
			"--server-id="+strconv.Itoa(s.port),
			"--log-bin=mariadb-bin",
			"--binlog-format=ROW",
			"--log-slave-updates=ON",
			"--gtid-strict-mode=ON",
			"--relay-log=relay-bin",
			"--report-host=127.0.0.1",
			"--report-port="+strconv.Itoa(s.port),
		)
	}
	if s.tls != nil {
		a = append(a,
			"--ssl-ca="+s.tls.CAFile,
			"--ssl-cert="+s.tls.CertFile,
			"--ssl-key="+s.tls.KeyFile,
		)
	}
	return append(a, s.opts.Args...)
}

// startProcess starts mariadbd and waits until root can connect.
func (s *Server) startProcess(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.StartTimeout)
	defer cancel()
	path, args, files := s.bins.mariadbd, s.args(), []*os.File(nil)
	if ns := s.opts.Netns; ns != nil {
		// nsenter enters the namespace (fd 3 in the child) and executes the
		// server in place: same process, so Pdeathsig still applies.
		path, args, files = "nsenter", append([]string{"--net=/proc/self/fd/3", "--", path}, args...), []*os.File{ns}
	}
	proc, err := startProcess(path, args, s.errLog, files)
	if err != nil {
		return err
	}
	db, err := waitReady(ctx, proc, s.socket, s.errLog)
	if err != nil {
		proc.Kill()
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.proc = proc
	if s.root == nil {
		s.root = db
	} else {
		db.Close() // keep the existing pool; it reconnects on its own
	}
	return nil
}

// Stop kills the server (SIGKILL: the data is thrown away, so a clean
// shutdown would only cost time) and removes its directory. It is safe to
// call more than once.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	s.stopped = true
	if s.root != nil {
		s.root.Close()
	}
	if s.proc != nil {
		s.proc.Kill()
		s.proc = nil
	}
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("removing mariadb dir: %w", err)
	}
	return nil
}

// Kill crashes the server with SIGKILL and keeps its datadir, so that
// Restart can bring it back on the same port (failover tests).
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.Kill()
		s.proc = nil
	}
	s.dropIdle()
}

// dropIdle closes the root pool's idle connections, which a dead server
// has broken, so they are not tried (and logged by the driver) later.
func (s *Server) dropIdle() {
	s.root.SetMaxIdleConns(0)
	s.root.SetMaxIdleConns(rootIdleConns)
}

// Shutdown stops the server gracefully with SIGTERM (clients see a shutdown
// error) and keeps its datadir for Restart.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, stopTimeout)
	defer cancel()
	err := s.proc.Terminate(ctx)
	s.proc = nil
	s.dropIdle()
	if err != nil {
		return fmt.Errorf("shutting down mariadb %s: %w", s.Addr(), err)
	}
	return nil
}

// Restart starts the server again on the same port and datadir after Kill
// or Shutdown. The port may have been taken meanwhile, which fails the
// restart.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	running, stopped := s.proc != nil, s.stopped
	s.mu.Unlock()
	switch {
	case stopped:
		return errors.New("restarting mariadb: server was stopped")
	case running:
		return fmt.Errorf("restarting mariadb %s: still running", s.Addr())
	}
	if err := s.startProcess(ctx); err != nil {
		return fmt.Errorf("restarting mariadb %s: %w", s.Addr(), err)
	}
	return nil
}

// Running reports whether the server process is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil && !s.proc.Exited()
}

// PID returns the mariadbd process id, or 0 when it is not running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.PID()
}

// Addr is the TCP address, "127.0.0.1:<port>".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Host is always "127.0.0.1".
func (s *Server) Host() string { return "127.0.0.1" }

// Port is the TCP port.
func (s *Server) Port() int { return s.port }

// Socket is the unix socket path.
func (s *Server) Socket() string { return s.socket }

// Dir is the instance directory (error.log; the datadir under "data"
// unless Options.Datadir says otherwise).
func (s *Server) Dir() string { return s.dir }

// ErrorLogTail returns the last n lines of the server's error log.
func (s *Server) ErrorLogTail(n int) string { return tailFile(s.errLog, n) }

// Config returns a go-sql-driver config for user over TCP. Callers may change
// it (for example set TLS) before mysql.NewConnector.
func (s *Server) Config(user, pass, db string) *mysql.Config {
	cfg := mysql.NewConfig()
	cfg.User = user
	cfg.Passwd = pass
	cfg.Net = "tcp"
	cfg.Addr = s.Addr()
	cfg.DBName = db
	cfg.InterpolateParams = false
	return cfg
}

// DSN returns a go-sql-driver DSN for user over TCP,
// "user:pass@tcp(127.0.0.1:port)/db", with the driver's defaults
// (interpolateParams off). Append "?param=value" as needed.
func (s *Server) DSN(user, pass, db string) string { return s.Config(user, pass, db).FormatDSN() }

// Binary is the path of the mariadbd the server runs.
func (s *Server) Binary() string { return s.bins.mariadbd }

// RootDB returns a pool connected as root over the unix socket. It belongs
// to the Server; do not close it.
func (s *Server) RootDB() *sql.DB { return s.root }

// Exec runs each statement in order as root over the unix socket.
func (s *Server) Exec(ctx context.Context, stmts ...string) error {
	for _, stmt := range stmts {
		if _, err := s.root.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("mariadb %s: exec %q: %w", s.Addr(), abbreviate(stmt, 200), err)
		}
	}
	return nil
}

// TLSFiles returns the CA, certificate and key files the server uses, or nil
// when it was started without TLS.
func (s *Server) TLSFiles() *TLSFiles { return s.tls }

// CAPEM returns the PEM of the CA that signed the server certificate, or nil
// without TLS.
func (s *Server) CAPEM() []byte {
	if s.tls == nil {
		return nil
	}
	return s.tls.CAPEM
}

// TLSConfig returns a client TLS config that trusts the server's CA and
// verifies the name 127.0.0.1, or nil without TLS. Use it as
// mysql.Config.TLS.
func (s *Server) TLSConfig() *tls.Config {
	if s.tls == nil {
		return nil
	}
	return s.tls.ClientConfig("127.0.0.1")
}

func abbreviate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
