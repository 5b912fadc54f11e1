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
	host := fs.String("controller", os.Getenv("PISA_CONTROLLER_HOST"), "controller host:port or URL (env PISA_CONTROLLER_HOST)")
	service := fs.String("controller-service", os.Getenv("PISA_CONTROLLER_SERVICE"), "controller Service (env PISA_CONTROLLER_SERVICE)")
	cns := fs.String("controller-namespace", os.Getenv("PISA_CONTROLLER_NAMESPACE"), "controller namespace (env PISA_CONTROLLER_NAMESPACE)")
	ns := fs.String("namespace", os.Getenv("PISA_DEPLOYED_NAMESPACE"), "this pod's namespace (env PISA_DEPLOYED_NAMESPACE)")
	app := fs.String("name", os.Getenv("PISA_DEPLOYED_NAME"), "this app's name = its VirtualDatabase (env PISA_DEPLOYED_NAME)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *ns == "" || *app == "" {
		return errors.New("sidecar: PISA_DEPLOYED_NAMESPACE and PISA_DEPLOYED_NAME (or --namespace and --name) are required")
	}
	base, err := configclient.BaseURL(*host, *service, *cns)
	if err != nil {
		return fmt.Errorf("sidecar: %w", err)
	}
	adminCfg := config.Admin{Host: config.DefaultAdminHost, Port: config.DefaultAdminPort, LogLevel: config.DefaultLogLevel}
	r, err := newRuntime(adminCfg, o, stderr)
	if err != nil {
		return err
	}
	msg := fmt.Sprintf("waiting for the configuration of %s/%s from %s", *ns, *app, base)
	r.waiting.Store(&msg)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		err := configclient.Watch(ctx, base, *ns, *app, func(cfg *config.Config) {
			if err := r.apply(cfg); err != nil {
				r.log.Error("controller config not applied; keeping the running config", "err", err)
			}
		}, configclient.WithLogger(r.log), configclient.WithErrorHandler(func(err error) {
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
