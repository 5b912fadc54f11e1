package qosd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"pisanix.io/pisanix/config"
)

// reconcileActor owns the Reconciler (the loaded classifier and the node's
// tc state) and the goroutines that feed it: the config source and the
// resync ticker. Every change to the node happens in Receive, one message at
// a time. A panic in Receive or in a worker restarts the actor: the new
// instance loads the classifier again and adopts what the old one attached.
type reconcileActor struct {
	log           *slog.Logger
	source        Source
	resyncEvery   time.Duration
	newReconciler func() (*Reconciler, error)
	metrics       *daemonMetrics
	restarts      *int // survives restarts: owned by the props producer, touched only in Receive

	rec           *Reconciler
	cfg           *config.DaemonConfig // the last config received, nil before the first
	status        Status
	stopWorkers   context.CancelFunc
	workers       sync.WaitGroup
	workersActive bool
}

func (a *reconcileActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.start(ctx)
	case *actor.Restarting:
		*a.restarts++
		a.metrics.restarts.Inc()
		a.shutdown()
	case *actor.Stopping:
		a.shutdown()
	case applyConfig:
		a.cfg, a.status.ConfigVersion = m.cfg, m.version
		a.log.Info("daemon config received", "source", a.source.String(), "version", m.version)
		a.reconcile()
	case sourceFailed:
		a.metrics.sourceErrors.Inc()
		a.status.LastError = m.err.Error()
		a.log.Error("daemon config unusable; keeping the current state", "source", a.source.String(), "err", m.err)
	case resync:
		if a.cfg != nil {
			a.reconcile()
		}
	case cleanupRequest:
		a.stopWorkersAndWait()
		ctx.Respond(cleanupReply{err: a.cleanup()})
	case countersRequest:
		if a.rec == nil {
			ctx.Respond(countersReply{err: errors.New("classifier not loaded")})
			return
		}
		cs, err := a.rec.Counters()
		ctx.Respond(countersReply{counters: cs, err: err})
	case statusRequest:
		s := a.status
		s.Restarts = *a.restarts
		ctx.Respond(s)
	case workerPanicked:
		panic(fmt.Sprintf("qosd %s worker panicked: %v\n%s", m.worker, m.value, m.stack))
	}
}

func (a *reconcileActor) start(ctx actor.Context) {
	a.status.Source = a.source.String()
	rec, err := a.newReconciler()
	if err != nil {
		a.status.ClassifierError = err.Error()
		a.log.Error("cannot load the classifier; QoS is off", "err", err)
		return
	}
	a.rec = rec
	a.status.ClassifierReady = true

	wctx, cancel := context.WithCancel(context.Background())
	a.stopWorkers, a.workersActive = cancel, true
	self, root := ctx.Self(), ctx.ActorSystem().Root
	a.goWorker(root, self, "config source", func() {
		err := a.source.Watch(wctx,
			func(cfg *config.DaemonConfig, version string) {
				root.Send(self, applyConfig{cfg: cfg, version: version})
			},
			func(err error) { root.Send(self, sourceFailed{err: err}) })
		if err != nil && !errors.Is(err, context.Canceled) {
			root.Send(self, sourceFailed{err: fmt.Errorf("config source stopped: %w", err)})
		}
	})
	a.goWorker(root, self, "resync", func() {
		t := time.NewTicker(a.resyncEvery)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
				root.Send(self, resync{})
			}
		}
	})
}

// goWorker runs fn on a goroutine owned by the actor; a panic in it is
// handed to the actor, whose supervisor then restarts it.
func (a *reconcileActor) goWorker(root *actor.RootContext, self *actor.PID, name string, fn func()) {
	a.workers.Add(1)
	go func() {
		defer a.workers.Done()
		defer func() {
			if v := recover(); v != nil {
				root.Send(self, workerPanicked{worker: name, value: v, stack: string(debug.Stack())})
			}
		}()
		fn()
	}()
}

func (a *reconcileActor) stopWorkersAndWait() {
	if !a.workersActive {
		return
	}
	a.workersActive = false
	a.stopWorkers()
	a.workers.Wait()
}

// shutdown stops the workers and releases the classifier. The node keeps
// its tc state: a restarted actor adopts it, Run's cleanup removes it.
func (a *reconcileActor) shutdown() {
	a.stopWorkersAndWait()
	if a.rec != nil {
		if err := a.rec.Close(); err != nil {
			a.log.Warn("release classifier", "err", err)
		}
		a.rec = nil
	}
}

func (a *reconcileActor) reconcile() {
	if a.rec == nil {
		return
	}
	rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err := a.rec.Apply(rctx, a.cfg)
	a.metrics.reconcileSeconds.Observe(time.Since(start).Seconds())
	a.status.LastApply = time.Now()
	if err != nil {
		a.metrics.reconciles.WithLabelValues("error").Inc()
		a.status.Applied, a.status.LastError = false, err.Error()
		a.log.Error("daemon config not applied", "version", a.status.ConfigVersion, "err", err)
		return
	}
	a.metrics.reconciles.WithLabelValues("ok").Inc()
	if !a.status.Applied || a.status.AppliedVersion != a.status.ConfigVersion {
		a.log.Info("daemon config applied", "version", a.status.ConfigVersion, "classes", len(a.rec.classes))
	}
	a.status.Applied, a.status.AppliedVersion, a.status.LastError = true, a.status.ConfigVersion, ""
	a.status.Classes = len(a.rec.classes)
}

func (a *reconcileActor) cleanup() error {
	a.cfg = nil
	if a.rec == nil {
		return errors.New("classifier not loaded; nothing was attached by this process")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.rec.Cleanup(ctx); err != nil {
		return fmt.Errorf("remove QoS state: %w", err)
	}
	a.status.Applied, a.status.Classes = false, 0
	a.log.Info("removed all QoS state from the node")
	return nil
}
