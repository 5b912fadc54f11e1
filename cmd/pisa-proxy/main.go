// Command pisa-proxy is the Pisanix-Go data plane: a MySQL-protocol proxy.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/internal/buildinfo"
)

// version and commit are set at build time with
// -ldflags "-X main.version=... -X main.commit=..." (make build, make images).
var version, commit = "dev", ""

const usage = `pisa-proxy: a MySQL-protocol proxy (Pisanix-Go data plane)

Usage:
  pisa-proxy [-h host] [-p port] [-l level] daemon -c <config.toml>
            (Pisa-Proxy's --host, --port, --log-level and --config are accepted too)
  pisa-proxy [-h host] [-p port] [-l level] sidecar
  pisa-proxy version              (or -V, --version)

Modes:
  daemon    standalone: read the Pisa-Proxy TOML file given by -c
            (default etc/config.toml) and serve its [[proxy.config]] listeners.
  sidecar   fetch and watch the config from pisa-controller
            (env PISA_CONTROLLER_SERVICE, PISA_CONTROLLER_NAMESPACE,
            PISA_CONTROLLER_HOST, PISA_DEPLOYED_NAMESPACE, PISA_DEPLOYED_NAME;
            the last two default to "default", as in Pisa-Proxy).

Admin overrides (flag > environment > [admin] in the file):
  -h host    admin listen host   (env PISA_PROXY_ADMIN_LISTEN_HOST, default 127.0.0.1)
  -p port    admin listen port   (env PISA_PROXY_ADMIN_LISTEN_PORT, default 5591)
  -l level   log level TRACE|DEBUG|INFO|WARN|ERROR (env PISA_PROXY_ADMIN_LOG_LEVEL, default INFO;
             TRACE, Pisa-Proxy's, is DEBUG)
  --log-format text|json         log output format (default text)
  --drain-timeout d              on SIGTERM or POST /drain: stop accepting, let each
                                 session finish its transaction, cut the rest after d
                                 (env PISA_PROXY_DRAIN_TIMEOUT, default 30s)

The admin port serves /metrics, /healthz, /readyz and /version to anyone;
/config, /sessions, POST /drain and /debug/pprof (only with [admin] pprof =
true or PISA_PROXY_ADMIN_PPROF=true) answer only on the loopback interface
unless a request bears the admin token ([admin] token or
PISA_PROXY_ADMIN_TOKEN; "Authorization: Bearer <token>"). See README.md for
every config key.
`

type overrides struct {
	host, port, level, format string
	drainTimeout              time.Duration
}

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "pisa-proxy:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("pisa-proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	var o overrides
	// The long names are Pisa-Proxy's own flags, kept for its users.
	for _, name := range []string{"h", "host"} {
		fs.StringVar(&o.host, name, "", "admin listen host")
	}
	for _, name := range []string{"p", "port"} {
		fs.StringVar(&o.port, name, "", "admin listen port")
	}
	for _, name := range []string{"l", "log-level"} {
		fs.StringVar(&o.level, name, "", "log level")
	}
	fs.StringVar(&o.format, "log-format", "text", "log format: text or json")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 0, "graceful shutdown deadline")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.BoolVar(showVersion, "V", false, "print the version and exit (Pisa-Proxy's flag)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *showVersion {
		fmt.Fprintln(stderr, buildinfo.Describe(version, commit))
		return nil
	}
	var err error
	if o.drainTimeout, err = drainTimeout(o.drainTimeout); err != nil {
		return err
	}
	switch mode := fs.Arg(0); mode {
	case "daemon":
		dfs := flag.NewFlagSet("daemon", flag.ContinueOnError)
		dfs.SetOutput(stderr)
		dfs.Usage = func() { fmt.Fprint(stderr, usage) }
		path := dfs.String("c", "etc/config.toml", "Pisa-Proxy TOML config file")
		dfs.StringVar(path, "config", "etc/config.toml", "Pisa-Proxy TOML config file (Pisa-Proxy's --config)")
		if err := dfs.Parse(fs.Args()[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		}
		cfg, err := config.Load(*path)
		if err != nil {
			return err
		}
		return runDaemon(*path, cfg, o, stderr)
	case "sidecar":
		return runSidecar(fs.Args()[1:], o, stderr)
	case "version":
		fmt.Fprintln(stderr, buildinfo.Describe(version, commit))
		return nil
	case "":
		fs.Usage()
		return errors.New("a mode is required: daemon or sidecar")
	default:
		fs.Usage()
		return fmt.Errorf("unknown mode %q", mode)
	}
}

// defaultDrainTimeout matches Kubernetes' default termination grace period.
const defaultDrainTimeout = 30 * time.Second

// drainTimeout is the flag, else PISA_PROXY_DRAIN_TIMEOUT, else the default.
func drainTimeout(flagV time.Duration) (time.Duration, error) {
	if flagV < 0 {
		return 0, fmt.Errorf("--drain-timeout %s: must not be negative", flagV)
	}
	if flagV > 0 {
		return flagV, nil
	}
	v := os.Getenv("PISA_PROXY_DRAIN_TIMEOUT")
	if v == "" {
		return defaultDrainTimeout, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("PISA_PROXY_DRAIN_TIMEOUT %q: not a positive duration such as 30s", v)
	}
	return d, nil
}

// applyAdmin layers environment and flags over the file's [admin].
func applyAdmin(a *config.Admin, o overrides) error {
	pick := func(flagV, env string) string {
		if flagV != "" {
			return flagV
		}
		return os.Getenv(env)
	}
	if v := pick(o.host, "PISA_PROXY_ADMIN_LISTEN_HOST"); v != "" {
		a.Host = v
	}
	if v := pick(o.port, "PISA_PROXY_ADMIN_LISTEN_PORT"); v != "" {
		port, err := strconv.Atoi(v)
		if err != nil || port < 0 || port > 65535 {
			return fmt.Errorf("admin port %q is not a TCP port", v)
		}
		a.Port = config.Port(port)
	}
	if v := pick(o.level, "PISA_PROXY_ADMIN_LOG_LEVEL"); v != "" {
		a.LogLevel = v
	}
	if v := os.Getenv("PISA_PROXY_ADMIN_TOKEN"); v != "" {
		a.Token = v
	}
	if v := os.Getenv("PISA_PROXY_ADMIN_PPROF"); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("PISA_PROXY_ADMIN_PPROF %q: want true or false", v)
		}
		a.Pprof = on
	}
	return nil
}

func newLogger(level, format string, w io.Writer) (*slog.Logger, error) {
	l, err := config.ParseLogLevel(level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

func joinHostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}
