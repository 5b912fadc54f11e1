// Command pisa-demo-backend is an in-memory, MySQL-compatible server for
// trying pisa-proxy without installing a database. It serves the socks-shop
// `socksdb` schema (catalogue, tag, sock_tag) through go-mysql-server; all
// data lives in memory and is reseeded on every start.
//
// It is a demo aid, not part of the proxy: scripts/run-demo.sh starts it
// behind pisa-proxy for `make run`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	sqle "github.com/dolthub/go-mysql-server"
	"github.com/dolthub/go-mysql-server/memory"
	"github.com/dolthub/go-mysql-server/server"
	"github.com/dolthub/go-mysql-server/sql"
	"github.com/sirupsen/logrus"
)

const usage = `pisa-demo-backend: an in-memory MySQL-compatible demo database

Usage:
  pisa-demo-backend [--addr host:port] [--user name] [--password secret] [--log-level level]

Serves database %[1]q with the socks-shop tables catalogue, tag and
sock_tag, seeded with %[2]d socks. Nothing is written to disk: every start
begins from the same seed data. Stop it with Ctrl-C (SIGINT) or SIGTERM.

Exactly one account exists: --user with --password (any host), with all
privileges. pisa-proxy logs in with it ([[mysql.node]] user/password).

Flags:
  --addr       listen address (default %[3]s)
  --user       account name (default %[4]s)
  --password   account password (default empty)
  --log-level  DEBUG|INFO|WARN|ERROR (default INFO)
  -h, --help   show this help
`

// Defaults.
const (
	defaultAddr = "127.0.0.1:3307"
	defaultUser = "root"
	// serverVersion is announced in the handshake.
	serverVersion = "8.0.33-pisa-demo"
	// noFileDir is secure_file_priv: a directory that does not exist.
	noFileDir = "/nonexistent/pisa-demo-backend"
)

// config is what the flags set.
type config struct {
	Addr     string
	User     string
	Password string
	LogLevel string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "pisa-demo-backend:", err)
		os.Exit(1)
	}
}

// run parses args, serves until ctx is done, then shuts down.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.LogLevel, stderr)
	if err != nil {
		return err
	}
	routeLogrus(log)

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	srv, err := newServer(ctx, cfg, ln)
	if err != nil {
		_ = ln.Close()
		return err
	}
	log.Info("demo backend ready", "addr", ln.Addr().String(), "db", demoDB,
		"user", cfg.User, "password_set", cfg.Password != "", "rows", len(socks()))
	return srv.Serve(ctx, log)
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	cfg := config{}
	fs := flag.NewFlagSet("pisa-demo-backend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintf(stderr, usage, demoDB, len(socks()), defaultAddr, defaultUser) }
	fs.StringVar(&cfg.Addr, "addr", defaultAddr, "listen address")
	fs.StringVar(&cfg.User, "user", defaultUser, "account name")
	fs.StringVar(&cfg.Password, "password", "", "account password")
	fs.StringVar(&cfg.LogLevel, "log-level", "INFO", "log level")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return config{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if cfg.User == "" {
		return config{}, errors.New("--user must not be empty")
	}
	return cfg, nil
}

func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// demoServer is a seeded go-mysql-server bound to a listener.
type demoServer struct {
	srv  *server.Server
	addr net.Addr
}

// newServer builds the engine, seeds socksdb, creates the account and binds
// the MySQL protocol to ln. ln is owned by the server from here on.
func newServer(ctx context.Context, cfg config, ln net.Listener) (*demoServer, error) {
	db := memory.NewDatabase(demoDB)
	// Foreign keys need indexes on the referenced primary keys.
	db.EnablePrimaryKeyIndexes()
	pro := memory.NewDBProvider(db)
	engine := sqle.NewDefault(pro)
	sqlCtx := sql.NewContext(ctx, sql.WithSession(memory.NewSession(sql.NewBaseSession(), pro)))

	// Seed while the mysql database (accounts and grants) is still disabled:
	// every statement is then allowed.
	if err := seed(sqlCtx, engine); err != nil {
		return nil, fmt.Errorf("seed %s: %w", demoDB, err)
	}

	// Enabling the mysql database turns on authentication: from now on only
	// listed accounts log in, with their password checked
	// (mysql_native_password, or caching_sha2_password / clear text).
	mysqlDB := engine.Analyzer.Catalog.MySQLDb
	ed := mysqlDB.Editor()
	mysqlDB.AddSuperUser(ed, cfg.User, "%", cfg.Password)
	ed.Close()
	if !mysqlDB.Enabled() {
		return nil, errors.New("enable user accounts: mysql database still disabled")
	}

	// No server-side file access (LOAD_FILE, SELECT ... INTO OUTFILE, LOAD
	// DATA without LOCAL): secure_file_priv names a directory that does not
	// exist. go-mysql-server keeps system variables process-wide.
	if err := sql.SystemVariables.AssignValues(map[string]any{"secure_file_priv": noFileDir}); err != nil {
		return nil, fmt.Errorf("set secure_file_priv: %w", err)
	}

	srvCfg := server.Config{
		Protocol: "tcp",
		Address:  ln.Addr().String(),
		Listener: ln,
		Version:  serverVersion,
	}
	srv, err := server.NewServer(srvCfg, engine, sql.NewContext, memory.NewSessionBuilder(pro), nil)
	if err != nil {
		return nil, fmt.Errorf("create MySQL server on %s: %w", ln.Addr(), err)
	}
	return &demoServer{srv: srv, addr: ln.Addr()}, nil
}

// Addr is the bound listen address.
func (d *demoServer) Addr() net.Addr { return d.addr }

// Serve accepts connections until ctx is done, then closes the listener.
// Connections already open are dropped when the process exits.
func (d *demoServer) Serve(ctx context.Context, log *slog.Logger) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = d.srv.Start() // blocks in Accept until Close; always returns nil
	}()
	select {
	case <-ctx.Done():
		log.Info("shutting down", "cause", context.Cause(ctx))
	case <-done:
		return errors.New("MySQL listener stopped unexpectedly")
	}
	if err := d.srv.Close(); err != nil {
		return fmt.Errorf("close MySQL server: %w", err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		return errors.New("MySQL listener did not stop within 5s")
	}
	log.Info("stopped")
	return nil
}

// routeLogrus sends go-mysql-server's logrus output through log. logrus is
// global state of that library; this binary is its only user.
func routeLogrus(log *slog.Logger) {
	std := logrus.StandardLogger()
	std.SetOutput(io.Discard)
	std.SetLevel(logrusLevel(log))
	hooks := logrus.LevelHooks{}
	hooks.Add(slogHook{log: log})
	std.ReplaceHooks(hooks)
}

func logrusLevel(log *slog.Logger) logrus.Level {
	ctx := context.Background()
	switch {
	case log.Enabled(ctx, slog.LevelDebug):
		// go-mysql-server logs every connection and query at Info and
		// Debug; both become our Debug.
		return logrus.DebugLevel
	case log.Enabled(ctx, slog.LevelWarn):
		return logrus.WarnLevel
	default:
		return logrus.ErrorLevel
	}
}

// slogHook forwards logrus entries to slog.
type slogHook struct{ log *slog.Logger }

func (h slogHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h slogHook) Fire(e *logrus.Entry) error {
	var level slog.Level
	switch {
	case e.Level <= logrus.ErrorLevel:
		level = slog.LevelError
	case e.Level == logrus.WarnLevel:
		level = slog.LevelWarn
	default:
		// Per-connection chatter from the library.
		level = slog.LevelDebug
	}
	attrs := make([]any, 0, 2*len(e.Data)+2)
	attrs = append(attrs, "component", "go-mysql-server")
	for k, v := range e.Data {
		if err, ok := v.(error); ok {
			v = err.Error() // slog would print a pkg/errors stack with %+v
		}
		attrs = append(attrs, k, v)
	}
	h.log.Log(context.Background(), level, e.Message, attrs...)
	return nil
}
