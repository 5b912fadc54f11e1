package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/controlplane/configclient"
)

// runSidecar fetches the config from pisa-controller and follows every
// change live. Until the first config arrives the proxy is not ready;
// unreachable controllers are retried with backoff, never replaced by an
// empty config.
func runSidecar(args []string, o overrides, stderr io.Writer) error {
	fs := flag.NewFlagSet("sidecar", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	var host, service, cns, ns, app, caPEM, caFile, tokenFile string
	// Each flag also under Pisa-Proxy's own name, kept for its users.
	for _, f := range []struct {
		v          *string
		names      [2]string
		env, usage string
	}{
		{&host, [2]string{"controller", "pisa-controller-host"}, "PISA_CONTROLLER_HOST", "controller host:port or URL"},
		{&service, [2]string{"controller-service", "pisa-controller-service"}, "PISA_CONTROLLER_SERVICE", "controller Service"},
		{&cns, [2]string{"controller-namespace", "pisa-controller-namespace"}, "PISA_CONTROLLER_NAMESPACE", "controller namespace"},
		{&ns, [2]string{"namespace", "pisa-deployed-namespace"}, "PISA_DEPLOYED_NAMESPACE", "this pod's namespace"},
		{&app, [2]string{"name", "pisa-deployed-name"}, "PISA_DEPLOYED_NAME", "this app's name = its VirtualDatabase"},
		{&caPEM, [2]string{"controller-ca"}, "PISA_CONTROLLER_CA", "PEM of the CA that signs the controller's certificate (then https is the default)"},
		{&caFile, [2]string{"controller-ca-file"}, "PISA_CONTROLLER_CA_FILE", "file with that CA, instead of --controller-ca"},
		{&tokenFile, [2]string{"controller-token-file"}, "PISA_CONTROLLER_TOKEN_FILE", "projected ServiceAccount token sent to the controller (default " + configclient.DefaultTokenFile + " when it exists)"},
	} {
		for _, name := range f.names {
			if name != "" {
				fs.StringVar(f.v, name, os.Getenv(f.env), f.usage+" (env "+f.env+")")
			}
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	ns, app, defaulted := deployedTarget(ns, app)
	creds, err := credentials(caPEM, caFile, tokenFile, service, cns)
	if err != nil {
		return fmt.Errorf("sidecar: %w", err)
	}
	base, err := configclient.BaseURL(host, service, cns, len(creds.CA) > 0)
	if err != nil {
		return fmt.Errorf("sidecar: %w", err)
	}
	httpc, err := creds.HTTPClient()
	if err != nil {
		return fmt.Errorf("sidecar: %w", err)
	}
	adminCfg := config.Admin{Host: config.DefaultAdminHost, Port: config.DefaultAdminPort, LogLevel: config.DefaultLogLevel}
	r, err := newRuntime(adminCfg, o, stderr)
	if err != nil {
		return err
	}
	for _, d := range defaulted {
		r.log.Warn(d + " is not set; using Pisa-Proxy's default, \"" + defaultDeployed + "\"")
	}
	msg := fmt.Sprintf("waiting for the configuration of %s/%s from %s", ns, app, base)
	r.waiting.Store(&msg)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		err := configclient.Watch(ctx, base, ns, app, func(cfg *config.Config) {
			if err := r.apply(cfg); err != nil {
				r.log.Error("controller config not applied; keeping the running config", "err", err)
			}
		}, configclient.WithLogger(r.log), configclient.WithHTTPClient(httpc), configclient.WithErrorHandler(func(err error) {
			if r.proxy.Load() == nil {
				m := fmt.Sprintf("%s: %v", msg, err)
				r.waiting.Store(&m)
			}
		}))
		if err != nil && ctx.Err() == nil {
			r.log.Error("config watch ended", "err", err)
		}
	}()
	return r.wait(ctx)
}

// defaultDeployed is Pisa-Proxy's default for the sidecar's namespace and
// app name (its injector always set both).
const defaultDeployed = "default"

// deployedTarget is the namespace and VirtualDatabase the sidecar serves,
// with Pisa-Proxy's defaults for those not given, which it names.
func deployedTarget(ns, app string) (string, string, []string) {
	var defaulted []string
	if ns == "" {
		ns, defaulted = defaultDeployed, append(defaulted, "PISA_DEPLOYED_NAMESPACE (--pisa-deployed-namespace)")
	}
	if app == "" {
		app, defaulted = defaultDeployed, append(defaulted, "PISA_DEPLOYED_NAME (--pisa-deployed-name)")
	}
	return ns, app, defaulted
}

// credentials gathers how the sidecar proves itself to the controller and
// checks it, expecting the controller Service's name in its certificate
// whatever address is dialled.
func credentials(caPEM, caFile, tokenFile, service, ns string) (configclient.Credentials, error) {
	c, err := configclient.LoadCredentials(caPEM, caFile, tokenFile)
	if err == nil && len(c.CA) > 0 && service != "" && ns != "" {
		c.ServerName = service + "." + ns + ".svc"
	}
	return c, err
}
