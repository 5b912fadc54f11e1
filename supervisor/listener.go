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

// listener is the part of a listener that outlives restarts of its actor
// and of its tenant: the bound socket and the accept loop. The socket is
// closed only when the tenant is removed or the proxy stops.
type listener struct {
	ln        net.Listener
	maxConns  atomic.Int32
	accepting atomic.Bool
	// pid is the current listener actor; nil while none runs (the tenant is
	// restarting), when new connections are refused with an error.
	pid atomic.Pointer[actor.PID]
	env atomic.Pointer[session.Env]
}

// accepted carries a new client connection to the listener actor.
type accepted struct{ conn net.Conn }

// listenerActor admits connections, enforces max_connections and spawns a
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
		a.l.pid.Store(ctx.Self())
		if a.l.accepting.CompareAndSwap(false, true) {
			a.sys.Go(ctx.Self(), "listener", func() {
				defer a.l.accepting.Store(false)
				a.acceptLoop()
			})
		}
	case *accepted:
		a.admit(ctx, m.conn)
	case *actor.Terminated:
		a.active--
		a.sys.Metrics.ConnCurrent.WithLabelValues(a.tenant).Dec()
	case *actor.Stopping:
		a.l.pid.CompareAndSwap(ctx.Self(), nil)
	case *actors.Failure:
		actors.Reraise(m)
	}
}

// acceptLoop hands connections to whichever listener actor is current.
func (a *listenerActor) acceptLoop() {
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
		pid := a.l.pid.Load()
		if pid == nil {
			a.sys.Metrics.ConnRejected.WithLabelValues(a.tenant, "restarting").Inc()
			go refuse(conn, mysql.ER_CON_COUNT_ERROR, "pisa-proxy: tenant "+a.tenant+" is restarting, retry")
			continue
		}
		a.sys.Root.Send(pid, &accepted{conn: conn})
	}
}

func (a *listenerActor) admit(ctx actor.Context, conn net.Conn) {
	m := a.sys.Metrics
	env := a.l.env.Load()
	if a.active >= int(a.l.maxConns.Load()) || env == nil {
		m.ConnRejected.WithLabelValues(a.tenant, "max_connections").Inc()
		go refuse(conn, mysql.ER_CON_COUNT_ERROR, "Too many connections")
		return
	}
	m.ConnAccepted.WithLabelValues(a.tenant).Inc()
	s := session.New(env, conn, env.Registry.NextID())
	props := a.sys.Props("session", func() actor.Actor { return &sessionActor{sys: a.sys, s: s} })
	ctx.Spawn(props)
	a.active++
	m.ConnCurrent.WithLabelValues(a.tenant).Inc()
}

// refuse answers a connection with an error in place of the greeting, as
// MySQL does for ER_CON_COUNT_ERROR, and closes it. Before the handshake
// the client has not agreed to protocol 4.1, so the packet carries no
// SQLSTATE.
func refuse(conn net.Conn, code uint16, msg string) {
	defer conn.Close()
	_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
	p := wire.NewPacketIO(conn, 512)
	_ = p.WritePacketFlush(wire.GreetingError(wire.NewError(code, msg)))
}
