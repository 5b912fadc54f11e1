package supervisor

import (
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-mysql-org/go-mysql/mysql"
	"pisanix.io/pisanix/actors"
	"pisanix.io/pisanix/session"
	"pisanix.io/pisanix/wire"
)

// listener is the part of a listener that outlives restarts of its actor:
// the bound socket and the accept loop.
type listener struct {
	ln        net.Listener
	maxConns  int
	accepting atomic.Bool
	env       atomic.Pointer[session.Env]
}

// accepted carries a new client connection to the listener actor.
type accepted struct{ conn net.Conn }

// listenerActor accepts connections, enforces max_connections and spawns a
// session actor per connection; its supervisor strategy stops a failed
// session and leaves the others alone.
type listenerActor struct {
	sys    *actors.System
	l      *listener
	tenant string
	active int
}

func (a *listenerActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		if a.l.accepting.CompareAndSwap(false, true) {
			self := ctx.Self()
			a.sys.Go(self, "listener", func() {
				defer a.l.accepting.Store(false)
				a.acceptLoop(self)
			})
		}
	case *accepted:
		a.admit(ctx, m.conn)
	case *actor.Terminated:
		a.active--
		a.sys.Metrics.ConnCurrent.WithLabelValues(a.tenant).Dec()
	case *actor.Stopping:
		_ = a.l.ln.Close()
	case *actors.Failure:
		actors.Reraise(m)
	}
}

func (a *listenerActor) acceptLoop(self *actor.PID) {
	backoff := 5 * time.Millisecond
	for {
		conn, err := a.l.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// Out of file descriptors and the like: back off, keep serving.
			a.sys.Log.Warn("accept failed", "tenant", a.tenant, "err", err)
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		a.sys.Root.Send(self, &accepted{conn: conn})
	}
}

func (a *listenerActor) admit(ctx actor.Context, conn net.Conn) {
	m := a.sys.Metrics
	env := a.l.env.Load()
	if a.active >= a.l.maxConns || env == nil {
		m.ConnRejected.WithLabelValues(a.tenant, "max_connections").Inc()
		go rejectTooMany(conn)
		return
	}
	m.ConnAccepted.WithLabelValues(a.tenant).Inc()
	s := session.New(env, conn, env.Registry.NextID())
	props := a.sys.Props("session", func() actor.Actor { return &sessionActor{sys: a.sys, s: s} })
	ctx.Spawn(props)
	a.active++
	m.ConnCurrent.WithLabelValues(a.tenant).Inc()
}

// rejectTooMany answers a connection over the limit with ER_CON_COUNT_ERROR
// in place of the greeting, as MySQL does.
func rejectTooMany(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
	p := wire.NewPacketIO(conn, 512)
	_ = p.WriteError(wire.NewError(mysql.ER_CON_COUNT_ERROR, "Too many connections"))
}
