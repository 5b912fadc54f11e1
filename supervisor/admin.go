package supervisor

import (
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"pisanix.io/pisanix/actors"
	"pisanix.io/pisanix/admin"
)

// adminActor owns the admin HTTP server: serving starts with the actor and
// stops with it; a panic in the server goroutine restarts it.
type adminActor struct {
	sys *actors.System
	srv *admin.Server
}

// StartAdmin runs srv under the actor system.
func StartAdmin(sys *actors.System, srv *admin.Server) (*actor.PID, error) {
	props := sys.Props("admin", func() actor.Actor { return &adminActor{sys: sys, srv: srv} })
	return sys.Root.SpawnNamed(props, "admin")
}

func (a *adminActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.sys.Go(ctx.Self(), "admin", func() { a.srv.Serve(a.sys.Log) })
	case *actor.Stopping:
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.srv.Shutdown(sctx)
	case *actors.Failure:
		actors.Reraise(m)
	}
}
