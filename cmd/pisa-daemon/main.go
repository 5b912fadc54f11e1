// Command pisa-daemon is Pisanix's node agent: it shapes and counts
// applications' database traffic with an eBPF classifier and HTB classes,
// from QoS claims served by pisa-controller or read from a local file.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/controlplane/configclient"
	"pisanix.io/pisanix/internal/buildinfo"
	"pisanix.io/pisanix/qosd"
)

// version and commit are set at build time with
// -ldflags "-X main.version=... -X main.commit=..." (make build, make images).
var version, commit = "dev", ""

const usageText = `pisa-daemon shapes applications' database traffic on this node.

It reads QoS claims (per application service: a rate and ceiling in tc
syntax, the interfaces, and which packets are the app's database traffic),
classifies egress packets with an eBPF program at the interfaces' clsact
hook into HTB classes under a root HTB qdisc (handle 5049:), and counts
them. Unclassified traffic is never shaped or dropped. On SIGINT/SIGTERM it
removes everything it added. Needs root (CAP_NET_ADMIN, CAP_BPF).

Config comes from exactly one of:
  -c FILE             a local JSON or TOML file (re-read every --interval)
  --controller URL    pisa-controller, GET URL/apis/configs.database-mesh.io/v1alpha1/daemonconfigs
                      (long-polled; default from --pisa-controller-host or PISA_CONTROLLER_HOST,
                      or http://SERVICE.NAMESPACE:8080 from --pisa-controller-service and
                      --pisa-controller-namespace or their PISA_CONTROLLER_* variables)
--global-egress-device and --global-bridge-device (PISA_DAEMON_GLOBAL_EGRESS_DEVICE,
PISA_DAEMON_GLOBAL_BRIDGE_DEVICE) replace the config's global devices.

Usage: pisa-daemon [flags]

Flags:
`

type flags struct {
	configFile string
	controller string
	// Pisa-Daemon's controller flags (defaults from the same variables).
	ctlHost, ctlService, ctlNamespace string
	// global overrides the config's [global] devices that are set
	// (--global-egress-device, --global-bridge-device).
	global     config.DaemonGlobal
	admin      string
	interval   time.Duration
	resync     time.Duration
	keepOnExit bool
	logLevel   string
	version    bool
	caFile     string
	tokenFile  string
	adminToken string
}

func parseFlags(args []string) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("pisa-daemon", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageText)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.configFile, "c", "", "local daemon config `file` (JSON, or TOML when it ends in .toml)")
	fs.StringVar(&f.configFile, "config", "", "same as -c")
	fs.StringVar(&f.controller, "controller", "", "pisa-controller base `URL`, e.g. http://pisa-controller.pisa-system:8080")
	fs.StringVar(&f.admin, "admin", qosd.DefaultAdminAddr, "admin HTTP `address` for /healthz, /readyz, /status and /metrics")
	fs.DurationVar(&f.interval, "interval", qosd.DefaultInterval, "how often to re-read the file, or to poll a controller without watch support")
	fs.DurationVar(&f.resync, "resync", qosd.DefaultResync, "how often to re-apply the config (repairs drift, re-resolves host names)")
	fs.BoolVar(&f.keepOnExit, "keep-on-exit", false, "leave qdiscs, classes and the classifier in place at shutdown (the next daemon adopts them)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	fs.StringVar(&f.adminToken, "admin-token", os.Getenv("PISA_DAEMON_ADMIN_TOKEN"), "bearer `token` that lets other addresses than loopback read /status (env PISA_DAEMON_ADMIN_TOKEN)")
	fs.BoolVar(&f.version, "version", false, "print the version and exit")
	fs.StringVar(&f.caFile, "controller-ca-file", os.Getenv("PISA_CONTROLLER_CA_FILE"), "`file` with the CA that signs the controller's certificate (env PISA_CONTROLLER_CA_FILE)")
	fs.StringVar(&f.tokenFile, "controller-token-file", os.Getenv("PISA_CONTROLLER_TOKEN_FILE"), "projected ServiceAccount token `file` shown to the controller (env PISA_CONTROLLER_TOKEN_FILE; default "+configclient.DefaultTokenFile+" when it exists)")
	// Pisa-Daemon's own flags.
	fs.StringVar(&f.ctlHost, "pisa-controller-host", os.Getenv("PISA_CONTROLLER_HOST"), "controller `host:port` or URL, when --controller is not given (env PISA_CONTROLLER_HOST)")
	fs.StringVar(&f.ctlService, "pisa-controller-service", os.Getenv("PISA_CONTROLLER_SERVICE"), "controller `Service`, when neither --controller nor a host is given (env PISA_CONTROLLER_SERVICE)")
	fs.StringVar(&f.ctlNamespace, "pisa-controller-namespace", os.Getenv("PISA_CONTROLLER_NAMESPACE"), "the controller Service's `namespace` (env PISA_CONTROLLER_NAMESPACE, default pisa-system)")
	fs.StringVar(&f.global.EgressDevice, "global-egress-device", os.Getenv("PISA_DAEMON_GLOBAL_EGRESS_DEVICE"), "`interface` that replaces the config's global egress_device (env PISA_DAEMON_GLOBAL_EGRESS_DEVICE)")
	fs.StringVar(&f.global.BridgeDevice, "global-bridge-device", os.Getenv("PISA_DAEMON_GLOBAL_BRIDGE_DEVICE"), "`interface` that replaces the config's global bridge_device (env PISA_DAEMON_GLOBAL_BRIDGE_DEVICE)")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if f.version {
		return f, nil
	}
	if f.configFile == "" && f.controller == "" {
		f.controller = controllerURL(f.ctlHost, f.ctlService, f.ctlNamespace)
	}
	switch {
	case f.configFile != "" && f.controller != "":
		return f, errors.New("use either -c or --controller, not both")
	case f.configFile == "" && f.controller == "":
		return f, errors.New("no config: pass -c FILE or --controller URL (or set PISA_CONTROLLER_HOST)")
	case f.interval <= 0 || f.resync <= 0:
		return f, errors.New("--interval and --resync must be positive")
	}
	return f, nil
}

// controllerURL is the controller's address from Pisanix's controller
// flags or environment variables: a host, else a Service and namespace.
func controllerURL(h, svc, ns string) string {
	if h != "" {
		if strings.Contains(h, "://") {
			return h
		}
		return "http://" + h
	}
	if svc == "" {
		return ""
	}
	if ns == "" {
		ns = "pisa-system"
	}
	return "http://" + svc + "." + ns + ":8080"
}

func main() {
	f, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pisa-daemon:", err)
		os.Exit(2)
	}
	if f.version {
		fmt.Println(buildinfo.Describe(version, commit))
		return
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		fmt.Fprintln(os.Stderr, "pisa-daemon: --log-level:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	var src qosd.Source = qosd.FileSource{Path: f.configFile, Interval: f.interval}
	if f.configFile == "" {
		hc, err := f.credentials()
		if err != nil {
			fmt.Fprintln(os.Stderr, "pisa-daemon:", err)
			os.Exit(2)
		}
		src = qosd.ControllerSource{BaseURL: f.controller, Interval: f.interval, Client: hc}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if f.global != (config.DaemonGlobal{}) {
		src = withGlobal{Source: src, global: f.global}
	}
	err = qosd.Run(ctx, qosd.Options{
		Log: log, Source: src, AdminAddr: f.admin, AdminToken: f.adminToken, Resync: f.resync, KeepOnExit: f.keepOnExit,
	})
	if err != nil {
		log.Error("pisa-daemon stopped", "err", err)
		os.Exit(1)
	}
}

// withGlobal replaces the global devices of every config its source emits
// with those given by flag or environment (Pisa-Daemon's --global-*): the
// node knows its interfaces better than a cluster-wide config.
type withGlobal struct {
	qosd.Source
	global config.DaemonGlobal
}

// Watch implements qosd.Source.
func (s withGlobal) Watch(ctx context.Context, emit func(*config.DaemonConfig, string), fail func(error)) error {
	return s.Source.Watch(ctx, func(c *config.DaemonConfig, version string) {
		out := *c
		out.Global.EgressDevice = cmp.Or(s.global.EgressDevice, out.Global.EgressDevice)
		out.Global.BridgeDevice = cmp.Or(s.global.BridgeDevice, out.Global.BridgeDevice)
		emit(&out, version)
	}, fail)
}

// credentials: the daemon's ServiceAccount token and the controller's CA.
func (f flags) credentials() (*http.Client, error) {
	c, err := configclient.LoadCredentials("", f.caFile, f.tokenFile)
	if err != nil {
		return nil, fmt.Errorf("--controller-ca-file: %w", err)
	}
	return c.HTTPClient()
}
