package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"pisanix.io/pisanix/config"
)

// runDaemon serves the TOML file at path and reloads it on SIGHUP or when
// the file changes. A bad new file is logged and the running config kept.
func runDaemon(path string, cfg *config.Config, o overrides, stderr io.Writer) error {
	r, err := newRuntime(cfg.Admin, o, stderr)
	if err != nil {
		return err
	}
	if err := r.apply(cfg); err != nil {
		r.sys.Shutdown()
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go r.watchFile(ctx, path)
	return r.wait(ctx)
}

// reloadDebounce lets an editor finish writing before the file is read.
const reloadDebounce = 200 * time.Millisecond

func (r *runtime) watchFile(ctx context.Context, path string) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var events <-chan fsnotify.Event
	if w, err := fsnotify.NewWatcher(); err != nil {
		r.log.Warn("config file watch unavailable; reload with SIGHUP", "err", err)
	} else {
		defer w.Close()
		// Watch the directory: editors and ConfigMap updates replace the file.
		if err := w.Add(filepath.Dir(path)); err != nil {
			r.log.Warn("config file watch unavailable; reload with SIGHUP", "err", err)
		}
		events = w.Events
	}
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.reload(path, "SIGHUP")
		case ev := <-events:
			if filepath.Clean(ev.Name) == filepath.Clean(path) || filepath.Base(ev.Name) == "..data" {
				debounce = time.After(reloadDebounce)
			}
		case <-debounce:
			r.reload(path, "file change")
		}
	}
}

func (r *runtime) reload(path, why string) {
	cfg, err := config.Load(path)
	if err != nil {
		r.m.ConfigReloads.WithLabelValues("error").Inc()
		r.log.Error("config reload rejected; keeping the running config", "trigger", why, "err", err)
		return
	}
	if err := r.apply(cfg); err != nil {
		r.log.Error("config reload failed; keeping the running config", "trigger", why, "err", err)
		return
	}
	r.log.Info("config reloaded", "trigger", why, "path", path)
}
