package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

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
	// drainTimeout bounds a graceful shutdown; drain is closed by POST
	// /drain to start one.
	drainTimeout time.Duration
	drain        chan struct{}
	drainOnce    sync.Once
}

func newRuntime(a config.Admin, o overrides, stderr io.Writer) (*runtime, error) {
	if err := applyAdmin(&a, o); err != nil {
		return nil, err
	}
	log, err := newLogger(a.LogLevel, o.format, stderr)
	if err != nil {
		return nil, err
	}
	r := &runtime{log: log, m: metrics.New(), drainTimeout: o.drainTimeout, drain: make(chan struct{})}
	r.sys = actors.NewSystem(log, r.m)
	srv, err := admin.Listen(joinHostPort(a.Host, int(a.Port)), admin.Handler(admin.Sources{
		Registry: r.m.Registry, Version: version, Ready: r.ready,
		Config:   func() any { return r.config() },
		Sessions: func() any { return r.sessions() },
		Drain:    func() { r.drainOnce.Do(func() { close(r.drain) }) },
		FlushHosts: func() int {
			if p := r.proxy.Load(); p != nil {
				return p.FlushHosts()
			}
			return 0
		},
		Token: a.Token, Pprof: a.Pprof,
		Healthy: func() error {
			if p := r.proxy.Load(); p != nil {
				return p.Healthy()
			}
			return nil
		},
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
	for _, w := range cfg.Warnings() {
		r.log.Warn("config: " + w)
	}
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

// wait blocks until ctx ends (SIGTERM) or /drain is called, then drains:
// no new connections, sessions end at their next transaction boundary,
// and those still open after drainTimeout are cut with error 1053.
func (r *runtime) wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-r.drain:
	}
	r.log.Info("draining", "timeout", r.drainTimeout)
	var err error
	if p := r.proxy.Load(); p != nil {
		dctx, cancel := context.WithTimeout(context.Background(), r.drainTimeout)
		var cut int
		cut, err = p.Drain(dctx)
		cancel()
		if cut > 0 {
			r.log.Warn("drain deadline passed; open sessions were cut", "sessions", cut)
		}
	}
	r.log.Info("stopped")
	r.sys.Shutdown()
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
