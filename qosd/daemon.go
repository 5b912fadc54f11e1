package qosd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/vishvananda/netlink"
)

// Defaults of Options.
const (
	DefaultAdminAddr = "0.0.0.0:5592"
	DefaultResync    = 30 * time.Second
	DefaultInterval  = 10 * time.Second
)

// Options configure Run.
type Options struct {
	Log    *slog.Logger
	Source Source
	// AdminAddr is where /healthz, /readyz, /status and /metrics listen,
	// unless AdminListener is set.
	AdminAddr     string
	AdminListener net.Listener
	// AdminToken lets requests from other addresses than loopback read
	// /status (Authorization: Bearer); /metrics and the probes need none.
	AdminToken string
	// Netlink selects the network namespace to shape in; nil is the
	// daemon's own.
	Netlink *netlink.Handle
	// Resync is how often the config is re-applied to repair drift.
	Resync time.Duration
	// KeepOnExit leaves the node's QoS state in place at shutdown (for an
	// upgrade: the next daemon adopts it). By default shutdown removes it.
	KeepOnExit bool
}

// Run runs the daemon until ctx ends, then removes what it added (unless
// KeepOnExit) and returns. It returns early only when it cannot start.
func Run(ctx context.Context, o Options) (err error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Source == nil {
		return errors.New("qosd: no config source")
	}
	if o.Resync <= 0 {
		o.Resync = DefaultResync
	}
	if o.Netlink == nil {
		h, err := netlink.NewHandle()
		if err != nil {
			return fmt.Errorf("open netlink: %w", err)
		}
		defer h.Close()
		o.Netlink = h
	}
	ln := o.AdminListener
	if ln == nil {
		if o.AdminAddr == "" {
			o.AdminAddr = DefaultAdminAddr
		}
		if ln, err = net.Listen("tcp", o.AdminAddr); err != nil {
			return fmt.Errorf("admin listener: %w", err)
		}
	}

	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return o.Log.With("component", "protoactor")
	}))
	defer system.Shutdown()
	reg := newRegistry()
	m := newDaemonMetrics(reg)
	restarts := new(int)
	log := o.Log.With("component", "qos-reconciler")
	props := actor.PropsFromProducer(func() actor.Actor {
		return &reconcileActor{
			log: log, source: o.Source, resyncEvery: o.Resync, metrics: m, restarts: restarts,
			newReconciler: func() (*Reconciler, error) { return NewReconciler(log, o.Netlink) },
		}
	}, actor.WithGuardian(actor.NewOneForOneStrategy(10, time.Minute, actor.DefaultDecider)))
	pid, err := system.Root.SpawnNamed(props, "qos-reconciler")
	if err != nil {
		return fmt.Errorf("spawn reconcile actor: %w", err)
	}
	reg.MustRegister(newClassCollector(o.Log, system.Root, pid))

	srv := &http.Server{Handler: adminHandler(system.Root, pid, reg, o.AdminToken), ReadHeaderTimeout: 5 * time.Second}
	serveErr := make(chan error, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				serveErr <- fmt.Errorf("admin server panicked: %v\n%s", v, debug.Stack())
			}
		}()
		serveErr <- srv.Serve(ln)
	}()
	o.Log.Info("pisa-daemon started", "admin", ln.Addr().String(), "source", o.Source.String())

	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("admin server: %w", err)
	}

	if !o.KeepOnExit {
		res, ferr := system.Root.RequestFuture(pid, cleanupRequest{}, 60*time.Second).Result()
		if r, ok := res.(cleanupReply); ferr == nil && ok && r.err == nil {
			o.Log.Info("QoS state removed")
		} else {
			cerr := ferr
			if ok {
				cerr = r.err
			}
			o.Log.Error("cleanup at shutdown failed", "err", cerr)
			err = errors.Join(err, fmt.Errorf("cleanup at shutdown: %w", cerr))
		}
	}
	if stopErr := system.Root.StopFuture(pid).Wait(); stopErr != nil {
		o.Log.Warn("stop reconcile actor", "err", stopErr)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	return err
}
