// Package audit writes the per-statement audit log of one listener
// (tenant): one JSON line per statement to stdout or to a size-rotated file.
//
// The statement path calls Wants (filters and sampling, no allocation) and
// then Log, which puts the Record on a bounded channel owned by the Logger
// (so it survives restarts of the writer). A writer actor owns the sink and
// drains the channel on a goroutine it owns (actors.System.Go): it encodes
// records, batches them and writes a batch whenever the channel is
// momentarily empty. A panic there restarts the actor, which resumes
// draining the same channel.
//
// Every record handed to Log ends up in exactly one of the metrics
// AuditWritten (written to the sink), AuditDropped (queue full, Log after
// Close, a cancelled lossless wait, or still queued when the writer stopped)
// or AuditErrors (lost to a sink write error or a writer panic).
package audit

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/natefinch/lumberjack.v2"
	"pisanix.io/pisanix/actors"
	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/glob"
	"pisanix.io/pisanix/sqlinfo"
)

// Record is one audited statement. Strings and Tables may be shared with
// caches: neither the caller (after Log) nor this package modifies them.
type Record struct {
	Time                     time.Time // statement start
	Tenant, User, Client, DB string    // Client = remote "ip:port"
	ConnID                   uint32
	Kind                     string // statement kind name (config.AuditKinds)
	Fingerprint              string // normalized SQL, literals removed
	Digest                   string
	Tables                   []sqlinfo.Table // written as "db.name" ("name" when DB is empty)
	Duration                 time.Duration
	RowsAffected             uint64
	RowsSent                 uint64
	ErrorCode                uint16 // 0 = success
	Denied                   string // non-empty: refused by the proxy (reason), never reached a backend
	Backend                  string // backend node name ("" when none)
}

// Logger is the audit log of one tenant. Wants and Log are safe for
// concurrent use by any number of sessions; Close is called once by the
// tenant's owner, before it stops the tenant. If the writer actor stops
// without Close (its parent stopped, or its supervisor gave up), records
// pile up in the queue and are then dropped; Close still returns, with an
// error. A nil *Logger wants and logs nothing.
type Logger struct {
	sys    *actors.System
	tenant string
	log    *slog.Logger
	pid    *actor.PID

	// filters are read by Wants and swapped whole by Reconfigure.
	filters atomic.Pointer[filters]
	// sinkCfg is what the sink and queue were built from, immutable;
	// lossless is its copy read by Log.
	sinkCfg  sinkSettings
	lossless bool

	// ch is the queue; it outlives writer restarts and is never closed.
	ch chan Record
	// queuedBytes is the estimated memory of the records in ch, bounded by
	// maxBytes (records carry the fingerprint, kilobytes for long
	// statements: queue_size alone did not bound the queue's memory);
	// room is signalled when the writer takes one, for lossless waiters.
	queuedBytes atomic.Int64
	maxBytes    int64
	room        chan struct{}

	// sink is written only by the drain goroutine; closed once (closeSink)
	// when the actor stops.
	sink      io.Writer
	closeOnce sync.Once

	closed       atomic.Bool   // Close called: Log drops
	drained      atomic.Bool   // the final drain has emptied ch
	closing      chan struct{} // closed by Close: drain ch, then finish
	finished     chan struct{} // closed when the final drain is written
	finishOnce   sync.Once
	released     chan struct{} // closed by Close when it returns: frees lossless waiters
	actorStopped chan struct{} // closed when the writer actor has stopped
	stoppedOnce  sync.Once

	queued                   prometheus.Gauge
	written, dropped, errors prometheus.Counter

	// fault, when set (tests), is called by the writer before encoding
	// each record; a panic in it exercises supervision.
	fault func(Record)
}

// filters are a Logger's filters and sampling; immutable once published.
type filters struct {
	users, tables []glob.Pattern
	kinds         []string
	errorsOnly    bool
	sampleRate    float64 // >= 1: keep all
}

func newFilters(cfg config.Audit) *filters {
	rate := 1.0
	if cfg.SampleRate != nil {
		rate = *cfg.SampleRate
	}
	return &filters{
		users:      glob.CompileAll(cfg.Users),
		tables:     glob.CompileAll(cfg.Tables),
		kinds:      slices.Clone(cfg.Kinds),
		errorsOnly: cfg.ErrorsOnly,
		sampleRate: rate,
	}
}

// sinkSettings are the settings a running Logger cannot change: a change
// needs a new Logger.
type sinkSettings struct {
	sink, path                      string
	maxSizeMB, maxBackups, queueLen int
	lossless                        bool
}

func sinkSettingsOf(cfg config.Audit) sinkSettings {
	return sinkSettings{sink: cfg.Sink, path: cfg.Path, maxSizeMB: cfg.MaxSizeMB, maxBackups: cfg.MaxBackups,
		queueLen: cfg.QueueSize, lossless: cfg.Lossless}
}

// hooks are the test seams of newLogger.
type hooks struct {
	stdout     io.Writer    // replaces os.Stdout for the stdout sink
	fault      func(Record) // see Logger.fault
	queueBytes int64        // replaces QueueBytes
}

// QueueBytes bounds the memory of a Logger's queue (queue_size bounds its
// records): a record that would take it past this is dropped, or waits
// with lossless.
const QueueBytes = 16 << 20

// New starts the writer actor as a child of parent and returns the Logger.
// A file sink is opened (created if missing, appended to) here, so a bad
// path fails at start. cfg must have its defaults applied
// (config.(*Config).ApplyDefaults).
func New(sys *actors.System, parent actor.SpawnerContext, tenant string, cfg config.Audit) (*Logger, error) {
	return newLogger(sys, parent, tenant, cfg, hooks{})
}

func newLogger(sys *actors.System, parent actor.SpawnerContext, tenant string, cfg config.Audit, h hooks) (*Logger, error) {
	if cfg.QueueSize <= 0 {
		return nil, fmt.Errorf("audit %s: queue_size %d must be positive", tenant, cfg.QueueSize)
	}
	l := &Logger{
		sys:          sys,
		tenant:       tenant,
		log:          sys.Log.With("component", "audit", "tenant", tenant),
		sinkCfg:      sinkSettingsOf(cfg),
		lossless:     cfg.Lossless,
		ch:           make(chan Record, cfg.QueueSize),
		maxBytes:     cmp.Or(h.queueBytes, QueueBytes),
		room:         make(chan struct{}, 1),
		closing:      make(chan struct{}),
		finished:     make(chan struct{}),
		released:     make(chan struct{}),
		actorStopped: make(chan struct{}),
		queued:       sys.Metrics.AuditQueued.WithLabelValues(tenant),
		written:      sys.Metrics.AuditWritten.WithLabelValues(tenant),
		dropped:      sys.Metrics.AuditDropped.WithLabelValues(tenant),
		errors:       sys.Metrics.AuditErrors.WithLabelValues(tenant),
		fault:        h.fault,
	}
	l.filters.Store(newFilters(cfg))
	switch cfg.Sink {
	case config.AuditSinkFile:
		lj := &lumberjack.Logger{Filename: cfg.Path, MaxSize: cfg.MaxSizeMB, MaxBackups: cfg.MaxBackups}
		// A zero-length write opens the file now (creating its directory
		// and the file, appending to an existing one) instead of at the
		// first record.
		if _, err := lj.Write(nil); err != nil {
			return nil, fmt.Errorf("audit %s: open log file %q: %w", tenant, cfg.Path, err)
		}
		l.sink = lj
	case config.AuditSinkStdout, "":
		l.sink = os.Stdout
		if h.stdout != nil {
			l.sink = h.stdout
		}
	default:
		return nil, fmt.Errorf("audit %s: unknown sink %q", tenant, cfg.Sink)
	}
	props := sys.Props("audit", func() actor.Actor { return &writerActor{l: l} })
	// A unique name: during a reload the old and the new Logger of a tenant
	// may overlap.
	l.pid = parent.SpawnPrefix(props, "audit")
	return l, nil
}

// PID is the writer actor.
func (l *Logger) PID() *actor.PID { return l.pid }

// Reconfigure switches the filters and sampling to cfg's and reports true
// when the rest of cfg (sink, path, max_size_mb, max_backups, queue_size,
// lossless) is what the Logger runs with. Otherwise it changes nothing and
// reports false: the caller needs a new Logger. Safe for concurrent use
// with Wants and Log; statements already past Wants are logged.
func (l *Logger) Reconfigure(cfg config.Audit) bool {
	if l == nil || sinkSettingsOf(cfg) != l.sinkCfg {
		return false
	}
	l.filters.Store(newFilters(cfg))
	return true
}

// Wants reports whether a statement with these attributes passes the
// filters (users, kinds, tables, errors only) and sampling. Call it before
// building a Record.
// hot path: one atomic load, no allocation, no shared mutable state
// (math/rand/v2's global source is per-thread).
func (l *Logger) Wants(user, kind string, tables []sqlinfo.Table, errCode uint16) bool {
	if l == nil {
		return false
	}
	f := l.filters.Load()
	if f.errorsOnly && errCode == 0 {
		return false
	}
	if len(f.kinds) > 0 && !containsFold(f.kinds, kind) {
		return false
	}
	if len(f.users) > 0 {
		if !glob.Any(f.users, user) {
			return false
		}
	}
	if len(f.tables) > 0 && !f.wantsTables(tables) {
		return false
	}
	return sample(f.sampleRate)
}

func (f *filters) wantsTables(tables []sqlinfo.Table) bool {
	for i := range tables {
		if matchTable(f.tables, &tables[i]) {
			return true
		}
	}
	return false
}

// Log queues r for the writer. Without Lossless it never blocks: a full
// queue drops r (AuditDropped). With Lossless it waits for room, or until
// ctx is done or the Logger is closed (then r is counted as dropped).
// hot path: a channel send of r by value; no allocation.
func (l *Logger) Log(ctx context.Context, r Record) {
	if l == nil {
		return
	}
	if l.closed.Load() {
		l.dropped.Inc()
		return
	}
	size := r.size()
	if !l.reserve(ctx, size) {
		l.dropped.Inc()
		return
	}
	select {
	case l.ch <- r:
	default:
		if !l.lossless || !l.waitSend(ctx, r) {
			l.queuedBytes.Add(-size)
			l.dropped.Inc()
			return
		}
	}
	// Close raced with us: the final drain may already have run, so take
	// one record back out (ours or another late one) and count it, rather
	// than leave it queued forever.
	if l.drained.Load() {
		select {
		case r := <-l.ch:
			l.took(&r)
			l.dropped.Inc()
		default:
		}
	}
}

// reserve counts size bytes into the queue when they fit (a record larger
// than the whole bound fits an empty queue); with lossless it waits for
// the writer to make room, until ctx is done or the Logger closes.
func (l *Logger) reserve(ctx context.Context, size int64) bool {
	for {
		if n := l.queuedBytes.Add(size); n <= l.maxBytes || n == size {
			return true
		}
		l.queuedBytes.Add(-size)
		if !l.lossless {
			return false
		}
		select {
		case <-l.room:
		case <-ctx.Done():
			return false
		case <-l.released:
			return false
		}
	}
}

// took accounts for a record taken out of the queue.
func (l *Logger) took(r *Record) {
	l.queuedBytes.Add(-r.size())
	select {
	case l.room <- struct{}{}:
	default:
	}
}

// recordOverhead estimates a Record's fixed size.
const recordOverhead = 256

// size estimates the memory a queued record holds.
func (r *Record) size() int64 {
	n := recordOverhead + len(r.Tenant) + len(r.User) + len(r.Client) + len(r.DB) + len(r.Kind) +
		len(r.Fingerprint) + len(r.Digest) + len(r.Denied) + len(r.Backend)
	for _, t := range r.Tables {
		n += 32 + len(t.DB) + len(t.Name)
	}
	return int64(n)
}

// waitSend is the lossless back-pressure: block until r is queued.
func (l *Logger) waitSend(ctx context.Context, r Record) bool {
	select {
	case l.ch <- r:
		return true
	case <-ctx.Done():
		return false
	case <-l.released:
		return false
	}
}

// Close stops accepting records, writes everything queued, closes the sink
// and stops the writer actor. When ctx ends first, it returns an error and
// records still queued are not written (lossless waiters are released).
// Call it once; later calls return nil at once.
func (l *Logger) Close(ctx context.Context) error {
	if l == nil || !l.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(l.closing)
	var err error
	select {
	case <-l.finished:
	case <-l.actorStopped:
		err = fmt.Errorf("audit %s: writer stopped before the queue was written (%d records dropped)", l.tenant, l.dropQueued())
	case <-ctx.Done():
		err = fmt.Errorf("audit %s: close: %d records not written: %w", l.tenant, len(l.ch), ctx.Err())
	}
	close(l.released)
	l.sys.Root.Stop(l.pid)
	select {
	case <-l.actorStopped:
	case <-ctx.Done():
		if err == nil {
			err = fmt.Errorf("audit %s: close: writer not stopped: %w", l.tenant, ctx.Err())
		}
	}
	return err
}

// dropQueued empties the queue for good, counting what it held as dropped.
func (l *Logger) dropQueued() (n int) {
	l.drained.Store(true)
	for {
		select {
		case r := <-l.ch:
			l.took(&r)
			l.dropped.Inc()
			n++
		default:
			return n
		}
	}
}

// closeSink closes a file sink once (never stdout).
func (l *Logger) closeSink() {
	l.closeOnce.Do(func() {
		if c, ok := l.sink.(*lumberjack.Logger); ok {
			if err := c.Close(); err != nil {
				l.log.Error("audit: close log file", "err", err)
			}
		}
	})
}

// CheckSink reports whether cfg's sink can be opened, without starting a
// logger: the proxy checks a new configuration before applying it. The
// file (and its directory) may be created.
func CheckSink(cfg config.Audit) error {
	if cfg.Sink != config.AuditSinkFile {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o755); err != nil {
		return fmt.Errorf("audit log %q: %w", cfg.Path, err)
	}
	f, err := os.OpenFile(cfg.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	return f.Close()
}
