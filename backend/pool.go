package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
	"pisanix.io/pisanix/actors"
)

// Errors a session turns into client-visible messages.
var (
	ErrPoolTimeout   = errors.New("timed out waiting for a backend connection")
	ErrPoolQueueFull = errors.New("too many sessions waiting for a backend connection")
	ErrPoolRetired   = errors.New("backend pool was removed by a configuration change")
)

// PoolConfig sizes one node's pool.
type PoolConfig struct {
	Tenant         string
	Endpoint       *Endpoint
	Size           int           // open connections at most
	MinIdle        int           // dialled at start and kept warm
	AcquireTimeout time.Duration // how long Acquire waits
	IdleCheckAfter time.Duration // idle longer than this: reset before reuse
	MaxWaiters     int           // bounded wait queue; 0 = 4*Size
	// Globals counts global-variable changes made through the proxy; a
	// connection reset before the latest is reset again when acquired.
	// Nil: never.
	Globals *atomic.Uint64
	// ConnGlobals counts changes through the proxy to the globals a
	// connection takes when it is opened only (max_allowed_packet,
	// net_buffer_length); a connection opened before the latest is closed
	// when acquired, not reused. Nil: never.
	ConnGlobals *atomic.Uint64
}

// Pool is the session-side handle of one node's pool actor. Idle
// connections sit in a channel so that Acquire takes one without a message
// round trip; only when none is idle does it ask the actor, which owns
// dialling, the open count and the bounded wait queue.
type Pool struct {
	cfg      PoolConfig
	sys      *actors.System
	pid      *actor.PID
	idle     chan *Conn
	open     atomic.Int32 // connections that exist: idle, in use or being dialled
	inflight atomic.Int32 // dials in progress
	held     atomic.Int32 // connections held by sessions
	// retired: the pool actor stopped (node removed by a reload, tenant
	// restarting); connections coming back are closed, not parked.
	retired atomic.Bool
	// stopped is closed with retired: a request that reached the actor
	// after it stopped gets no answer, so waiters watch this too.
	stopped chan struct{}
	// server is what the node announced on the last dial.
	server atomic.Pointer[ServerInfo]

	mIdle, mInUse     prometheus.Gauge
	mWaits, mTimeouts prometheus.Counter
	mDials, mDialErrs prometheus.Counter
	mPlaintext        prometheus.Counter
	mWaitTime         prometheus.Observer
}

// NewPool spawns the pool actor, named name, as a child of parent (a tenant supervisor).
func NewPool(sys *actors.System, parent actor.SpawnerContext, name string, cfg PoolConfig) (*Pool, error) {
	if cfg.MaxWaiters == 0 {
		cfg.MaxWaiters = 4 * cfg.Size
	}
	m := sys.Metrics
	lv := []string{cfg.Tenant, cfg.Endpoint.Name}
	p := &Pool{
		cfg: cfg, sys: sys, idle: make(chan *Conn, cfg.Size), stopped: make(chan struct{}),
		mIdle: m.PoolIdle.WithLabelValues(lv...), mInUse: m.PoolInUse.WithLabelValues(lv...),
		mWaits: m.PoolWaits.WithLabelValues(lv...), mTimeouts: m.PoolTimeouts.WithLabelValues(lv...),
		mDials: m.PoolDials.WithLabelValues(lv...), mDialErrs: m.PoolDialErrors.WithLabelValues(lv...),
		mPlaintext: m.TLSFallbacks.WithLabelValues(lv...),
		mWaitTime:  m.PoolWaitTime.WithLabelValues(lv...),
	}
	props := sys.Props("pool", func() actor.Actor {
		return &poolActor{p: p, log: sys.Log.With("tenant", cfg.Tenant, "node", cfg.Endpoint.Name)}
	})
	pid, err := parent.SpawnNamed(props, name)
	if err != nil {
		return nil, fmt.Errorf("spawn pool %s: %w", cfg.Endpoint.Name, err)
	}
	p.pid = pid
	return p, nil
}

func (p *Pool) inUse(d int32) {
	p.held.Add(d)
	p.mInUse.Add(float64(d))
}

// Adopted counts a connection to this node that a session holds outside
// the pool (auth passthrough: logged in as the client), for
// least-connections balancing and the in-use gauge; Disowned uncounts it.
func (p *Pool) Adopted() { p.inUse(1) }

// Disowned: see Adopted.
func (p *Pool) Disowned() { p.inUse(-1) }

// InUse is how many connections sessions hold (least-connections balancing).
func (p *Pool) InUse() int64 { return int64(p.held.Load()) }

// Endpoint is the node this pool dials.
func (p *Pool) Endpoint() *Endpoint { return p.cfg.Endpoint }

// ServerInfo is what a node announced to a pool's connection.
type ServerInfo struct {
	Version string
	// Capabilities and ExtCapabilities are the client flags and MariaDB
	// capabilities the connection negotiated (of Capabilities and
	// ExtCapabilities, those the server has).
	Capabilities, ExtCapabilities uint32
}

// Server is what the node announced when the pool last dialled it; nil
// before the first dial.
func (p *Pool) Server() *ServerInfo { return p.server.Load() }

// PID is the pool actor.
func (p *Pool) PID() *actor.PID { return p.pid }

// Acquire returns a connection for exclusive use until Release or Discard.
func (p *Pool) Acquire(ctx context.Context) (*Conn, error) {
	if p.retired.Load() {
		return nil, ErrPoolRetired
	}
	for {
		select {
		case c := <-p.idle:
			p.mIdle.Dec()
			if p.usable(c) {
				p.inUse(1)
				return c, nil
			}
			continue
		default:
		}
		c, err := p.wait(ctx)
		if err != nil || p.usable(c) {
			if err == nil {
				p.inUse(1)
			}
			return c, err
		}
	}
}

// wait asks the actor for a connection and waits for it within the acquire
// timeout. A connection handed over after the timeout is reclaimed by the
// actor when it processes the cancel (see poolActor.cancel).
func (p *Pool) wait(ctx context.Context) (*Conn, error) {
	start := time.Now()
	p.mWaits.Inc()
	reply := make(chan acquired, 1)
	p.sys.Root.Send(p.pid, &acquireReq{reply: reply})
	timer := time.NewTimer(p.cfg.AcquireTimeout)
	defer timer.Stop()
	select {
	case r := <-reply:
		p.mWaitTime.Observe(time.Since(start).Seconds())
		return r.conn, r.err
	case c := <-p.idle:
		// Parked by a multiplexing session without the actor: take it and
		// withdraw the request (a connection the actor sent meanwhile goes
		// back through cancel).
		p.mIdle.Dec()
		p.mWaitTime.Observe(time.Since(start).Seconds())
		p.sys.Root.Send(p.pid, &cancelReq{reply: reply})
		return c, nil
	case <-p.stopped:
		select {
		case r := <-reply: // answered before it stopped
			return r.conn, r.err
		default:
			return nil, ErrPoolRetired
		}
	case <-timer.C:
	case <-ctx.Done():
	}
	p.sys.Root.Send(p.pid, &cancelReq{reply: reply})
	select {
	case r := <-reply:
		return r.conn, r.err
	default:
	}
	p.mTimeouts.Inc()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, fmt.Errorf("%w after %s", ErrPoolTimeout, p.cfg.AcquireTimeout)
}

// usable readies a pooled connection for the session taking it; a dead one
// is discarded. A connection's session variables were copied from the server's globals
// when it was last reset. After a SET GLOBAL through the proxy, or after
// sitting idle past IdleCheckAfter (a change by another client, or a dead
// connection), it is reset again: the new session then sees the globals a
// new connection would, and the reset proves the connection alive as a
// ping would.
func (p *Pool) usable(c *Conn) bool {
	if c.connGlobals != load(p.cfg.ConnGlobals) {
		p.discard(c) // a reset would keep its max_allowed_packet
		return false
	}
	gen := p.globals()
	idle := time.Since(c.lastUsed)
	if idle > staleCheckAfter && !c.alive() {
		p.discard(c) // closed by the server while idle (wait_timeout, KILL)
		return false
	}
	if c.globals == gen && idle < p.cfg.IdleCheckAfter {
		return true
	}
	if err := c.Reset(); err != nil {
		p.discard(c)
		return false
	}
	c.globals = gen
	return true
}

func (p *Pool) globals() uint64 { return load(p.cfg.Globals) }

func load(n *atomic.Uint64) uint64 {
	if n == nil {
		return 0
	}
	return n.Load()
}

// staleCheckAfter: a connection idle longer than this is checked for a
// close by the server before use. A connection parked for less is in use
// all the time; a check would cost a syscall per statement.
const staleCheckAfter = 250 * time.Millisecond

// Release resets c (on the caller's goroutine) and returns it to the pool;
// a connection that fails to reset is closed instead.
func (p *Pool) Release(c *Conn) {
	p.inUse(-1)
	if p.retired.Load() {
		_ = c.Quit()
		return
	}
	// A session closed from outside may have set a deadline to interrupt it.
	_ = c.IO.Conn().SetDeadline(time.Time{})
	gen := p.globals()
	if err := c.Reset(); err != nil {
		p.discard(c)
		return
	}
	c.globals = gen
	if p.retired.Load() { // retired during the reset
		_ = c.Quit()
		p.sys.Root.Send(p.pid, &discarded{})
		return
	}
	c.lastUsed = time.Now()
	p.sys.Root.Send(p.pid, &released{conn: c})
}

// Park returns a connection between the statements of a multiplexing
// session, with its session state (described in its fields) kept: the
// next borrower aligns it to its own. No reset, and no message to the
// actor unless the idle channel is full: this runs after every statement.
// Waiters watch the idle channel too (see wait).
func (p *Pool) Park(c *Conn) {
	p.inUse(-1)
	if p.retired.Load() {
		_ = c.Quit()
		return
	}
	c.lastUsed = time.Now()
	select {
	case p.idle <- c:
		p.mIdle.Inc()
	default:
		p.sys.Root.Send(p.pid, &released{conn: c})
	}
}

// Flush closes the idle connections (their node was found dead); later
// acquires dial afresh.
func (p *Pool) Flush() { p.sys.Root.Send(p.pid, &flushIdle{}) }

// Discard closes a broken or dirty connection held by a session.
func (p *Pool) Discard(c *Conn) {
	p.inUse(-1)
	p.discard(c)
}

func (p *Pool) discard(c *Conn) {
	_ = c.Close()
	p.sys.Root.Send(p.pid, &discarded{})
}

// Messages of the pool actor.
type (
	acquired struct {
		conn *Conn
		err  error
	}
	acquireReq struct{ reply chan acquired }
	cancelReq  struct{ reply chan acquired }
	released   struct{ conn *Conn }
	discarded  struct{}
	flushIdle  struct{}
	dialed     struct {
		conn *Conn
		err  error
	}
)

// poolActor owns dialling, the open count and the wait queue of one pool.
type poolActor struct {
	p       *Pool
	log     *slog.Logger
	waiters []chan acquired
	self    *actor.PID
}

func (a *poolActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.self = ctx.Self()
		for i := int(a.p.open.Load()); i < a.p.cfg.MinIdle; i++ {
			a.dial()
		}
	case *actor.Restarting:
		a.failWaiters(errors.New("backend pool restarted"))
	case *actor.Stopping:
		a.p.retired.Store(true)
		close(a.p.stopped)
		a.failWaiters(ErrPoolRetired) // the session takes one from the pool that replaced it
		a.closeIdle()
	case *acquireReq:
		a.acquire(m.reply)
	case *cancelReq:
		a.cancel(m.reply)
	case *released:
		a.hand(m.conn)
	case *discarded:
		a.p.open.Add(-1)
		a.dialForWaiters()
	case *dialed:
		a.dialedConn(m)
	case *flushIdle:
		a.closeIdle()
	case *actors.Failure:
		actors.Reraise(m)
	}
}

func (a *poolActor) acquire(reply chan acquired) {
	select {
	case c := <-a.p.idle:
		a.p.mIdle.Dec()
		reply <- acquired{conn: c}
		return
	default:
	}
	if len(a.waiters) >= a.p.cfg.MaxWaiters {
		reply <- acquired{err: ErrPoolQueueFull}
		return
	}
	a.waiters = append(a.waiters, reply)
	a.dialForWaiters()
}

// dialForWaiters dials while there are more waiters than dials in flight
// and the pool has room.
func (a *poolActor) dialForWaiters() {
	for len(a.waiters) > 0 && int(a.p.open.Load()) < a.p.cfg.Size && a.dialing() < len(a.waiters) {
		a.dial()
	}
}

func (a *poolActor) dialing() int { return int(a.p.inflight.Load()) }

func (a *poolActor) dial() {
	a.p.open.Add(1)
	a.p.inflight.Add(1)
	ep := a.p.cfg.Endpoint
	// A connection dialled now sees the globals as of now.
	gen, connGen := a.p.globals(), load(a.p.cfg.ConnGlobals)
	a.p.sys.Go(a.self, "pool", func() {
		c, err := Dial(context.Background(), ep)
		if err == nil {
			c.globals, c.connGlobals = gen, connGen
		}
		if err == nil && a.p.retired.Load() {
			_ = c.Quit() // the pool stopped while dialling
			return
		}
		a.p.sys.Root.Send(a.self, &dialed{conn: c, err: err})
	})
}

func (a *poolActor) dialedConn(m *dialed) {
	a.p.inflight.Add(-1)
	a.p.mDials.Inc()
	if m.err == nil && m.conn.PlaintextFallback {
		a.p.mPlaintext.Inc()
		a.log.Warn("backend offers no TLS: connection in plaintext (tls = \"preferred\")")
	}
	if m.err != nil {
		a.p.open.Add(-1)
		a.p.mDialErrs.Inc()
		a.log.Warn("backend dial failed", "err", m.err)
		if len(a.waiters) > 0 {
			// One dial was made for the oldest waiter: it gets the error
			// rather than a hang.
			w := a.waiters[0]
			a.waiters = a.waiters[1:]
			w <- acquired{err: m.err}
		}
		return
	}
	if info := (ServerInfo{m.conn.ServerVersion, m.conn.Capabilities, m.conn.ExtCapabilities}); a.p.server.Load() == nil || *a.p.server.Load() != info {
		a.p.server.Store(&info)
	}
	a.hand(m.conn)
}

// hand gives c to the oldest waiter, or parks it idle.
func (a *poolActor) hand(c *Conn) {
	if len(a.waiters) > 0 {
		w := a.waiters[0]
		a.waiters = a.waiters[1:]
		w <- acquired{conn: c}
		return
	}
	select {
	case a.p.idle <- c:
		a.p.mIdle.Inc()
	default: // cannot happen while open <= Size; never block the actor
		_ = c.Close()
		a.p.open.Add(-1)
	}
}

// cancel drops a waiter that gave up. If it was already served, the
// connection is still in its buffered channel unless the waiter took it in
// its own last look; whichever receives first owns it.
func (a *poolActor) cancel(reply chan acquired) {
	for i, w := range a.waiters {
		if w == reply {
			a.waiters = append(a.waiters[:i], a.waiters[i+1:]...)
			return
		}
	}
	select {
	case r := <-reply:
		if r.conn != nil {
			a.hand(r.conn)
		}
	default:
	}
}

func (a *poolActor) failWaiters(err error) {
	for _, w := range a.waiters {
		w <- acquired{err: err}
	}
	a.waiters = nil
}

func (a *poolActor) closeIdle() {
	for {
		select {
		case c := <-a.p.idle:
			a.p.mIdle.Dec()
			_ = c.Quit()
			a.p.open.Add(-1)
		default:
			return
		}
	}
}
