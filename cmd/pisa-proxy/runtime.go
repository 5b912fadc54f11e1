package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"

	"pisanix.io/pisanix/actors"
	"pisanix.io/pisanix/admin"
	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/metrics"
	"pisanix.io/pisanix/supervisor"
)

// runtime is what both modes share: logging, metrics, the actor system,
// the admin endpoint and the proxy, which may start after the admin
// endpoint (sidecar mode: once the controller sent a config).
type runtime struct {
	log   *slog.Logger
	m     *metrics.Proxy
	sys   *actors.System
	admin *admin.Server
	proxy atomic.Pointer[supervisor.Proxy]
	// waiting explains why there is no proxy yet (readiness).
	waiting atomic.Pointer[string]
}

func newRuntime(a config.Admin, o overrides, stderr io.Writer) (*runtime, error) {
	if err := applyAdmin(&a, o); err != nil {
		return nil, err
	}
	log, err := newLogger(a.LogLevel, o.format, stderr)
	if err != nil {
		return nil, err
	}
	r := &runtime{log: log, m: metrics.New()}
	r.sys = actors.NewSystem(log, r.m)
	srv, err := admin.Listen(joinHostPort(a.Host, a.Port), admin.Handler(admin.Sources{
		Registry: r.m.Registry, Version: version, Ready: r.ready,
		Config:   func() any { return r.config() },
		Sessions: func() any { return r.sessions() },
	}))
	if err != nil {
		return nil, err
	}
	r.admin = srv
	if _, err := supervisor.StartAdmin(r.sys, srv); err != nil {
		return nil, err
	}
	log.Info("admin listening", "addr", srv.Addr().String(), "version", version)
	return r, nil
}

func (r *runtime) ready() error {
	if p := r.proxy.Load(); p != nil {
		return p.Ready()
	}
	if w := r.waiting.Load(); w != nil {
		return errors.New(*w)
	}
	return errors.New("starting")
}

func (r *runtime) config() any {
	if p := r.proxy.Load(); p != nil {
		return p.Config().Redacted()
	}
	return nil
}

func (r *runtime) sessions() any {
	if p := r.proxy.Load(); p != nil {
		return p.Registry.List()
	}
	return []any{}
}

// apply starts the proxy with cfg or, when it runs, reconfigures it live.
func (r *runtime) apply(cfg *config.Config) error {
	p := r.proxy.Load()
	if p != nil {
		if err := p.Apply(cfg); err != nil {
			r.m.ConfigReloads.WithLabelValues("error").Inc()
			return err
		}
		r.m.ConfigReloads.WithLabelValues("ok").Inc()
		return nil
	}
	p, err := supervisor.Start(cfg, r.sys, r.log)
	if err != nil {
		return err
	}
	for _, l := range cfg.Proxy.Config {
		r.log.Info("listening", "tenant", l.Name, "addr", p.Addr(l.Name).String())
	}
	r.proxy.Store(p)
	return nil
}

// wait blocks until ctx ends, then stops everything.
func (r *runtime) wait(ctx context.Context) error {
	<-ctx.Done()
	r.log.Info("shutting down")
	var err error
	if p := r.proxy.Load(); p != nil {
		err = p.Stop()
	}
	r.sys.Shutdown()
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
