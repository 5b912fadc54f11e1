package audit

import (
	"bytes"
	"io"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"pisanix.io/pisanix/actors"
)

const (
	// batchBytes is how much encoded output is gathered before a write
	// when records keep coming; a batch is also written whenever the
	// queue is momentarily empty.
	batchBytes = 64 << 10
	// maxKeptBuf bounds the batch buffer kept between batches (a huge
	// statement may grow it once).
	maxKeptBuf = 1 << 20
	// stopWait bounds how long a stopping writer waits for its drain
	// goroutine (blocked in a sink write) before leaving the sink to it.
	stopWait = 5 * time.Second
	// errLogEvery rate-limits the log line for sink write errors.
	errLogEvery = 5 * time.Second
)

// writerActor owns the sink and the drain goroutine. Its Receive handles
// only lifecycle messages and failures reported by the goroutine: records
// never pass through the mailbox.
type writerActor struct {
	l *Logger
	d *drainer // the current incarnation's goroutine
}

func (a *writerActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.d = &drainer{l: a.l, stop: make(chan struct{}), done: make(chan struct{})}
		a.l.sys.Go(ctx.Self(), "audit", a.d.run)
	case *actor.Restarting:
		a.halt(false)
	case *actor.Stopping:
		a.halt(true)
	case *actor.Stopped:
		a.l.stoppedOnce.Do(func() { close(a.l.actorStopped) })
	case *actors.Failure:
		actors.Reraise(m)
	}
}

// halt stops the drain goroutine. On a restart it waits for it (two
// goroutines must never share the sink); it exits between records, so
// only a sink write can hold it. On the final stop the wait is bounded:
// a goroutine still blocked in a write closes the sink itself when it
// returns.
func (a *writerActor) halt(final bool) {
	d := a.d
	if d == nil {
		return
	}
	d.final.Store(final)
	close(d.stop)
	if !final {
		<-d.done
	} else {
		select {
		case <-d.done:
		case <-time.After(stopWait):
			a.l.log.Warn("audit: writer blocked in a sink write; leaving it to close the sink")
			return
		}
	}
	// The goroutine has exited, normally or by a panic: what it left is ours.
	d.leftover()
	if final {
		a.l.closeSink()
	}
}

// drainer is one incarnation of the drain goroutine and its batch. Its
// fields belong to the goroutine while it runs, then (after done) to the
// actor.
type drainer struct {
	l     *Logger
	stop  chan struct{} // closed by the actor (Restarting, Stopping)
	done  chan struct{} // closed when run returns, panic included
	final atomic.Bool   // set before stop is closed: the actor is stopping for good

	buf      []byte // encoded lines not yet written
	pending  int    // records in buf
	inflight bool   // a record taken off the queue is being encoded

	lastErrLog time.Time
	suppressed int // write errors not logged since lastErrLog
}

func (d *drainer) run() {
	defer close(d.done)
	l := d.l
	for {
		select {
		case r := <-l.ch:
			l.took(&r)
			d.add(&r)
			d.fill()
			d.flush()
			l.queued.Set(float64(len(l.ch)))
		case <-l.closing:
			d.finish()
			return
		case <-d.stop:
			d.flush()
			if d.final.Load() {
				if l.closed.Load() {
					l.dropQueued()
				}
				l.closeSink()
			}
			return
		}
	}
}

// fill takes records as long as some are queued and the batch has room.
func (d *drainer) fill() {
	for len(d.buf) < batchBytes {
		select {
		case r := <-d.l.ch:
			d.l.took(&r)
			d.add(&r)
		default:
			return
		}
	}
}

// finish is the final drain after Close: everything queued is written.
// Log takes back records that race past it (see Log).
func (d *drainer) finish() {
	l := d.l
	d.drainAll()
	l.drained.Store(true)
	d.drainAll()
	d.flush()
	l.queued.Set(0)
	l.finishOnce.Do(func() { close(l.finished) })
}

func (d *drainer) drainAll() {
	for {
		d.fill()
		if len(d.buf) < batchBytes {
			return // the queue is empty
		}
		d.flush()
	}
}

// add encodes r (the drainer's own copy) into the batch.
func (d *drainer) add(r *Record) {
	d.inflight = true
	if d.l.fault != nil {
		d.l.fault(*r)
	}
	if r.Tenant == "" {
		r.Tenant = d.l.tenant
	}
	d.buf = appendRecord(d.buf, r)
	d.pending++
	d.inflight = false
}

// flush writes the batch in one sink write. Records whose line did not
// make it are lost to the error and counted in AuditErrors.
func (d *drainer) flush() {
	if len(d.buf) == 0 {
		return
	}
	l := d.l
	n, err := l.sink.Write(d.buf)
	ok := d.pending
	if err == nil && n < len(d.buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		ok = bytes.Count(d.buf[:max(n, 0)], []byte{'\n'})
		d.logError(err, d.pending-ok)
	}
	l.written.Add(float64(ok))
	if cap(d.buf) > maxKeptBuf {
		d.buf = nil
	}
	d.buf, d.pending = d.buf[:0], 0
}

func (d *drainer) logError(err error, lost int) {
	d.l.errors.Add(float64(lost))
	if now := time.Now(); now.Sub(d.lastErrLog) >= errLogEvery {
		d.l.log.Error("audit: sink write failed; records lost", "err", err, "lost", lost, "errors_not_logged", d.suppressed)
		d.lastErrLog, d.suppressed = now, 0
		return
	}
	d.suppressed++
}

// leftover is run by the actor once the goroutine has exited: a record
// that was being encoded when it panicked is lost (AuditErrors); the
// lines already encoded are written.
func (d *drainer) leftover() {
	if d.inflight {
		d.l.errors.Inc()
		d.inflight = false
	}
	d.flush()
}
