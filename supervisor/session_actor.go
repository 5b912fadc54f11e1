package supervisor

import (
	"context"
	"errors"

	"github.com/asynkron/protoactor-go/actor"
	"pisanix.io/pisanix/actors"
	"pisanix.io/pisanix/session"
)

// sessionDone tells a session actor its goroutine ended normally.
type sessionDone struct{ err error }

// sessionActor owns one client session. The session's packet loop runs on
// its own goroutine (no message per packet); a panic there comes back as an
// *actors.Failure and is re-raised here, so the listener's supervisor
// strategy stops this session alone.
type sessionActor struct {
	sys    *actors.System
	s      *session.Session
	cancel context.CancelFunc
}

func (a *sessionActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		runCtx, cancel := context.WithCancel(context.Background())
		a.cancel = cancel
		self := ctx.Self()
		a.sys.Go(self, "session", func() {
			err := a.s.Run(runCtx)
			a.sys.Root.Send(self, &sessionDone{err: err})
		})
	case *sessionDone:
		if m.err != nil && !errors.Is(m.err, context.Canceled) {
			a.sys.Log.Debug("session ended", "conn", a.s.ID(), "err", m.err)
		}
		ctx.Stop(ctx.Self())
	case *actor.Stopping:
		a.cancel()
		a.s.Close()
	case *actors.Failure:
		actors.Reraise(m)
	}
}
