// Command pisa-controller is the Pisanix control plane: it reconciles the
// core.database-mesh.io CRDs into proxy and daemon configuration, serves
// that configuration over HTTP (with a long-poll watch), and injects the
// pisa-proxy sidecar into pods labelled pisanix.io/inject=enabled.
package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/controlplane/certs"
	"pisanix.io/pisanix/controlplane/configserver"
	"pisanix.io/pisanix/controlplane/controller"
	"pisanix.io/pisanix/controlplane/webhook"
	"pisanix.io/pisanix/internal/buildinfo"
)

// version and commit are set at build time with
// -ldflags "-X main.version=... -X main.commit=..." (make build, make images).
var version, commit = "dev", ""

type flags struct {
	configAddr, healthAddr, metricsAddr string
	webhookPort                         int
	webhookCertDir                      string
	webhookConfigName                   string
	webhookCertSecret                   string
	namespace                           string
	controllerService, controllerHost   string
	proxyImage, proxyPullPolicy         string
	proxyLogLevel                       string
	proxyCPU, proxyMemory, proxyMemMax  string
	daemonEgress, daemonBridge          string
	classicSidecar                      bool
	leaderElect                         bool
	logLevel                            string
	version                             bool
	configAuth, configAudience          string
	configTLS                           bool
	daemonServiceAccount                string
	caConfigMap                         string

	// skipNameValidation lets tests run the controllers twice in one process.
	skipNameValidation bool
}

func parseFlags(args []string) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("pisa-controller", flag.ContinueOnError)
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = "pisa-system"
	}
	fs.StringVar(&f.configAddr, "config-addr", ":8080", "`address` of the config server (proxies and daemons fetch and watch their config here)")
	fs.StringVar(&f.healthAddr, "health-addr", ":8081", "`address` for /healthz and /readyz; 0 disables")
	fs.StringVar(&f.metricsAddr, "metrics-addr", ":8082", "`address` for Prometheus /metrics; 0 disables")
	fs.IntVar(&f.webhookPort, "webhook-port", 9443, "TLS `port` of the sidecar-injection webhook")
	fs.StringVar(&f.webhookCertDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "`dir` with the webhook's tls.crt and tls.key")
	fs.StringVar(&f.webhookConfigName, "webhook-config-name", "pisa-controller", "MutatingWebhookConfiguration whose caBundle the controller fills; empty: leave it alone")
	fs.StringVar(&f.webhookCertSecret, "webhook-cert-secret", "pisa-controller-webhook-cert", "Secret (in --namespace) holding the self-signed webhook CA and certificate; empty: use the files already in --webhook-cert-dir (e.g. from cert-manager)")
	fs.StringVar(&f.namespace, "namespace", ns, "`namespace` the controller runs in (default $POD_NAMESPACE or pisa-system)")
	fs.StringVar(&f.controllerService, "controller-service", "pisa-controller", "controller Service `name`, told to sidecars (PISA_CONTROLLER_SERVICE) and used in the webhook certificate")
	fs.StringVar(&f.controllerHost, "controller-host", "", "`host:port` told to sidecars as PISA_CONTROLLER_HOST (default: they use <service>.<namespace>:8080)")
	// PISA_PROXY_IMAGE is how Pisanix's controller was told the image.
	fs.StringVar(&f.proxyImage, "proxy-image", cmp.Or(os.Getenv("PISA_PROXY_IMAGE"), "pisanix/pisa-proxy:latest"), "`image` of the injected pisa-proxy sidecar (default $PISA_PROXY_IMAGE or pisanix/pisa-proxy:latest)")
	fs.StringVar(&f.proxyPullPolicy, "proxy-pull-policy", string(corev1.PullIfNotPresent), "image pull `policy` of the sidecar")
	fs.StringVar(&f.proxyLogLevel, "proxy-log-level", "INFO", "sidecar log `level` (PISA_PROXY_ADMIN_LOG_LEVEL)")
	fs.StringVar(&f.proxyCPU, "proxy-cpu-request", "100m", "sidecar CPU `request`")
	fs.StringVar(&f.proxyMemory, "proxy-memory-request", "64Mi", "sidecar memory `request`")
	fs.StringVar(&f.proxyMemMax, "proxy-memory-limit", "256Mi", "sidecar memory `limit`")
	fs.StringVar(&f.daemonEgress, "daemon-egress-device", "eth0", "global.egress_device of the served daemon config")
	fs.StringVar(&f.daemonBridge, "daemon-bridge-device", "", "global.bridge_device of the served daemon config")
	fs.BoolVar(&f.classicSidecar, "classic-sidecar", false, "inject the proxy as a plain container (Kubernetes before 1.29) instead of a native sidecar")
	fs.BoolVar(&f.leaderElect, "leader-elect", false, "elect a leader for status writes (every replica still serves configs)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log `level`: debug, info, warn, error")
	fs.BoolVar(&f.version, "version", false, "print the version and exit")
	fs.StringVar(&f.configAuth, "config-auth", "token", "who may read configurations: `token` (a proxy shows its pod's projected ServiceAccount token and gets only its own application's; pisa-daemon shows its ServiceAccount's) or none (anyone who reaches --config-addr reads every configuration, passwords included)")
	fs.StringVar(&f.configAudience, "config-token-audience", configserver.DefaultAudience, "`audience` the tokens must be minted for")
	fs.BoolVar(&f.configTLS, "config-tls", true, "serve configurations over TLS with the webhook's certificate (its CA is handed to injected sidecars and published in --ca-configmap)")
	fs.StringVar(&f.daemonServiceAccount, "daemon-service-account", "pisa-daemon", "ServiceAccount `name` (in --namespace) of pisa-daemon")
	fs.StringVar(&f.caConfigMap, "ca-configmap", "pisa-controller-ca", "ConfigMap `name` (in --namespace) the controller's CA is published in, for pisa-daemon; empty: none")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if f.proxyImage == "" {
		return f, errors.New("--proxy-image is required")
	}
	if f.configAuth != "token" && f.configAuth != "none" {
		return f, fmt.Errorf("--config-auth=%q: want token or none", f.configAuth)
	}
	return f, nil
}

func (f flags) resources() (corev1.ResourceRequirements, error) {
	var r corev1.ResourceRequirements
	for _, q := range []struct {
		list *corev1.ResourceList
		name corev1.ResourceName
		val  string
		flag string
	}{
		{&r.Requests, corev1.ResourceCPU, f.proxyCPU, "proxy-cpu-request"},
		{&r.Requests, corev1.ResourceMemory, f.proxyMemory, "proxy-memory-request"},
		{&r.Limits, corev1.ResourceMemory, f.proxyMemMax, "proxy-memory-limit"},
	} {
		if q.val == "" {
			continue
		}
		v, err := resource.ParseQuantity(q.val)
		if err != nil {
			return r, fmt.Errorf("--%s: %w", q.flag, err)
		}
		if *q.list == nil {
			*q.list = corev1.ResourceList{}
		}
		(*q.list)[q.name] = v
	}
	return r, nil
}

func main() {
	f, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pisa-controller:", err)
		os.Exit(2)
	}
	if f.version {
		fmt.Println(buildinfo.Describe(version, commit))
		return
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		fmt.Fprintln(os.Stderr, "pisa-controller: --log-level:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctrl.SetLogger(logr.FromSlogHandler(log.Handler()))
	klog.SetLogger(logr.FromSlogHandler(log.Handler())) // client-go logs through klog
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, f, log); err != nil {
		log.Error("pisa-controller failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, f flags, log *slog.Logger) error {
	res, err := f.resources()
	if err != nil {
		return err
	}
	scheme, err := controller.NewScheme()
	if err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("kubernetes client config: %w", err)
	}

	// An uncached client: it works before the manager's cache starts.
	direct, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	// Webhook TLS before the webhook server starts.
	var ca []byte
	boot := &certs.Bootstrap{
		Namespace: f.namespace, SecretName: f.webhookCertSecret, ServiceName: f.controllerService,
		WebhookConfigName: f.webhookConfigName, CertDir: f.webhookCertDir, Log: log.With("component", "certs"),
		CAConfigMap: f.caConfigMap,
	}
	if f.webhookCertSecret != "" {
		boot.Client = direct
		bundle, err := boot.Ensure(ctx)
		if err != nil {
			return fmt.Errorf("webhook certificates: %w", err)
		}
		ca = bundle.CA
	} else if f.configTLS {
		// Certificates from elsewhere (cert-manager): their CA, when there.
		if ca, err = os.ReadFile(filepath.Join(f.webhookCertDir, certs.CAKey)); err != nil {
			return fmt.Errorf("--config-tls needs the CA the sidecars verify the controller with: %w", err)
		}
	}
	channel, err := f.channel(ca)
	if err != nil {
		return err
	}

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: f.metricsAddr},
		HealthProbeBindAddress:  f.healthAddr,
		LeaderElection:          f.leaderElect,
		LeaderElectionID:        "pisa-controller.database-mesh.io",
		LeaderElectionNamespace: f.namespace,
		WebhookServer:           ctrlwebhook.NewServer(ctrlwebhook.Options{Port: f.webhookPort, CertDir: f.webhookCertDir}),
		Controller:              ctrlconfig.Controller{SkipNameValidation: &f.skipNameValidation},
	})
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	store := configserver.NewStore()
	global := config.DaemonGlobal{EgressDevice: f.daemonEgress, BridgeDevice: f.daemonBridge}
	if err := controller.Setup(mgr, controller.Options{Store: store, Log: log, DaemonGlobal: global}); err != nil {
		return err
	}
	cm, err := configserver.NewMetrics(ctrlmetrics.Registry)
	if err != nil {
		return err
	}
	srv := &configserver.Server{Addr: f.configAddr, Store: store, Metrics: cm, Log: log.With("component", "configserver"), TLS: channel.tls}
	if f.configAuth == "token" {
		srv.Auth = &configserver.Auth{
			Reviewer:        controller.TokenReviewer{Client: direct, Audience: f.configAudience},
			PodApp:          controller.PodApp(mgr.GetAPIReader()),
			DaemonNamespace: f.namespace, DaemonServiceAccount: f.daemonServiceAccount,
		}
	} else {
		log.Warn("--config-auth=none: every configuration, passwords included, is served to anyone who reaches the config address")
	}
	if channel.watcher != nil {
		if err := mgr.Add(channel.watcher); err != nil {
			return fmt.Errorf("add certificate watcher: %w", err)
		}
	}
	if err := mgr.Add(srv); err != nil {
		return fmt.Errorf("add config server: %w", err)
	}
	mgr.GetWebhookServer().Register(webhook.Path, &admission.Webhook{Handler: &webhook.Handler{
		Params: webhook.Params{
			Image:               f.proxyImage,
			ImagePullPolicy:     corev1.PullPolicy(f.proxyPullPolicy),
			ControllerService:   f.controllerService,
			ControllerNamespace: f.namespace,
			ControllerHost:      f.controllerHost,
			ControllerCA:        channel.ca,
			TokenAudience:       channel.audience,
			LogLevel:            f.proxyLogLevel,
			Resources:           res,
			ClassicSidecar:      f.classicSidecar,
		},
		Decoder: admission.NewDecoder(scheme),
		Ports:   controller.VirtualDatabasePorts(mgr.GetAPIReader()),
		Log:     log.With("component", "webhook"),
	}})
	if ca != nil && f.webhookConfigName != "" {
		if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
			return boot.Keep(ctx, ca, time.Minute)
		})); err != nil {
			return fmt.Errorf("add caBundle keeper: %w", err)
		}
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return fmt.Errorf("healthz: %w", err)
	}
	if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return fmt.Errorf("readyz: %w", err)
	}
	log.Info("pisa-controller starting", "config_addr", f.configAddr, "webhook_port", f.webhookPort, "namespace", f.namespace)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	return nil
}

// channel is how the config server is secured.
type channel struct {
	tls      *tls.Config
	watcher  *certwatcher.CertWatcher // reloads the pair when it is renewed
	ca       []byte                   // handed to sidecars; nil without TLS
	audience string                   // of the sidecars' tokens; "" without auth
}

func (f flags) channel(ca []byte) (channel, error) {
	var c channel
	if f.configAuth == "token" {
		c.audience = f.configAudience
	}
	if !f.configTLS {
		return c, nil
	}
	w, err := certwatcher.New(filepath.Join(f.webhookCertDir, certs.CertKey), filepath.Join(f.webhookCertDir, certs.PrivKeyKey))
	if err != nil {
		return c, fmt.Errorf("config server certificate: %w", err)
	}
	c.watcher, c.ca = w, ca
	c.tls = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: w.GetCertificate}
	return c, nil
}
