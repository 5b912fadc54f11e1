package main

import (
	"context"
	"database/sql/driver"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The soak's load: --soak-clients goroutines through the proxy, each
// alternating a short transaction and a point select on soak.kv, counting
// statements, errors and latencies per minute of the run.

const (
	// soakStmtTimeout bounds one statement of the load: a statement the
	// proxy never answers counts as an error instead of stalling a client.
	soakStmtTimeout = 10 * time.Second
	// soakRetryPause spaces a client's logins while none succeeds (both
	// nodes down, or the proxy refusing), so a failing login does not spin.
	soakRetryPause = 100 * time.Millisecond
	// soakConnLifetime is about how long a client keeps its connection
	// (+-50%, so that clients do not reconnect in step), as pools with a
	// maximum lifetime do: sessions spread over both nodes again after a
	// fault moved them, and logins and session ends run all along, where a
	// leak per session would show.
	soakConnLifetime = 10 * time.Second
	// errTextMax bounds the first-error text kept per minute.
	errTextMax = 90
)

// Latency histogram: logarithmic buckets from 1 µs, each histGrowth times
// wider than the one before (2%: a p99 within 2%, as sysbench's).
const (
	histGrowth  = 1.02
	histBuckets = 1000 // 1.02^1000 µs is about 7 minutes, past any statement timeout
)

// latencyHist counts latencies in logarithmic buckets.
type latencyHist struct {
	counts []int64 // allocated on the first add
	n      int64
	max    time.Duration // exact: one frozen node's statements hide below a p99
}

// histBucket is the bucket of d: floor(log_histGrowth(µs)), clamped.
func histBucket(d time.Duration) int {
	us := max(float64(d)/float64(time.Microsecond), 1)
	return min(int(math.Log(us)/math.Log(histGrowth)), histBuckets-1)
}

// histUpper is the upper bound of bucket i.
func histUpper(i int) time.Duration {
	return time.Duration(math.Pow(histGrowth, float64(i+1)) * float64(time.Microsecond))
}

func (h *latencyHist) add(d time.Duration) {
	if h.counts == nil {
		h.counts = make([]int64, histBuckets)
	}
	h.counts[histBucket(d)]++
	h.n++
	h.max = max(h.max, d)
}

func (h *latencyHist) merge(o *latencyHist) {
	if o.n == 0 {
		return
	}
	if h.counts == nil {
		h.counts = make([]int64, histBuckets)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the upper bound of the first bucket whose cumulative
// count reaches ceil(q*n) (0 when empty): an overestimate by at most 2%.
func (h *latencyHist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := max(int64(math.Ceil(q*float64(h.n))), 1)
	var cum int64
	for i, c := range h.counts {
		if cum += c; cum >= rank {
			return histUpper(i)
		}
	}
	return histUpper(histBuckets - 1)
}

// minuteStats is what the load saw in one minute.
type minuteStats struct {
	statements int64 // completed without error
	errors     int64 // failed statements and failed logins
	loginErrs  int64 // of errors, the failed logins
	firstErr   string
	firstErrAt time.Time
	hist       latencyHist // every statement's latency, failed ones too: clients wait for those as well
}

func (m *minuteStats) merge(o *minuteStats) {
	m.statements += o.statements
	m.errors += o.errors
	m.loginErrs += o.loginErrs
	if o.firstErr != "" && (m.firstErr == "" || o.firstErrAt.Before(m.firstErrAt)) {
		m.firstErr, m.firstErrAt = o.firstErr, o.firstErrAt
	}
	m.hist.merge(&o.hist)
}

// shortErr makes an error fit a table cell: one line, no pipes, at most n
// runes, eliding the middle: the start names the statement and the error
// code, the end the cause (EOF, i/o timeout, ...).
func shortErr(err error, n int) string {
	s := strings.ReplaceAll(firstLineOf(err.Error()), "|", "/")
	if r := []rune(s); len(r) > n {
		head := (n - 1) / 2
		s = string(r[:head]) + "…" + string(r[len(r)-(n-1-head):])
	}
	return s
}

// soakLoad runs the clients from start until stop is called.
type soakLoad struct {
	connector driver.Connector
	rows      int
	start     time.Time
	// okPerSecond counts successful statements per second since start, for
	// the seconds in which the whole service stood still.
	okPerSecond []atomic.Int64

	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	perMin []minuteStats // merged from the clients as they stop
}

// startLoad starts clients goroutines; seconds sizes the per-second counts.
func startLoad(ctx context.Context, connector driver.Connector, clients, rows, seconds int) *soakLoad {
	ctx, cancel := context.WithCancel(ctx)
	l := &soakLoad{connector: connector, rows: rows, start: time.Now(), cancel: cancel,
		okPerSecond: make([]atomic.Int64, seconds+60)}
	for range clients {
		l.wg.Add(1)
		go l.client(ctx)
	}
	return l
}

// stop ends the load and returns its per-minute statistics.
func (l *soakLoad) stop() []minuteStats {
	l.cancel()
	l.wg.Wait()
	return l.perMin
}

// zeroSeconds counts the whole seconds in [from, to) (offsets from the
// load's start) in which no statement succeeded.
func (l *soakLoad) zeroSeconds(from, to time.Duration) int {
	n := 0
	for s := int(from / time.Second); s < int(to/time.Second) && s < len(l.okPerSecond); s++ {
		if l.okPerSecond[s].Load() == 0 {
			n++
		}
	}
	return n
}

// clientRun is one client's connection and statistics.
type clientRun struct {
	l       *soakLoad
	conn    driver.Conn
	retires time.Time // when conn is to be replaced
	stats   []minuteStats
	step    int
}

func (l *soakLoad) client(ctx context.Context) {
	defer l.wg.Done()
	c := &clientRun{l: l}
	for ctx.Err() == nil {
		c.iterate(ctx)
	}
	if c.conn != nil {
		_ = c.conn.Close()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range c.stats {
		if i >= len(l.perMin) {
			l.perMin = append(l.perMin, minuteStats{})
		}
		l.perMin[i].merge(&c.stats[i])
	}
}

// iterate logs in when needed, then runs a transaction or a point select,
// alternately; on an error the connection is dropped and a new one opened.
func (c *clientRun) iterate(ctx context.Context) {
	if c.conn != nil && time.Now().After(c.retires) {
		_ = c.conn.Close()
		c.conn = nil
	}
	if c.conn == nil {
		conn, err := login(ctx, c.l.connector)
		if err != nil {
			if ctx.Err() == nil {
				c.fail(fmt.Errorf("login: %w", err)).loginErrs++
				sleepCtx(ctx, soakRetryPause)
			}
			return
		}
		c.conn = conn
		c.retires = time.Now().Add(soakConnLifetime/2 + rand.N(soakConnLifetime))
	}
	c.step++
	id := 1 + rand.IntN(c.l.rows)
	stmts := []string{fmt.Sprintf("SELECT v FROM soak.kv WHERE id = %d", id)}
	if c.step%2 == 0 {
		stmts = []string{"BEGIN", fmt.Sprintf("UPDATE soak.kv SET v = v + 1 WHERE id = %d", id),
			fmt.Sprintf("SELECT v FROM soak.kv WHERE id = %d", id), "COMMIT"}
	}
	for _, q := range stmts {
		if err := c.statement(ctx, q); err != nil {
			_ = c.conn.Close()
			c.conn = nil
			return
		}
	}
}

// statement runs q and records its outcome; an error cut short by the end
// of the load is not recorded.
func (c *clientRun) statement(ctx context.Context, q string) error {
	sctx, cancel := context.WithTimeout(ctx, soakStmtTimeout)
	defer cancel()
	began := time.Now()
	var err error
	if strings.HasPrefix(q, "SELECT") {
		err = queryDiscard(sctx, c.conn, q)
	} else {
		_, err = c.conn.(driver.ExecerContext).ExecContext(sctx, q, nil)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	m := c.minute(began)
	m.hist.add(time.Since(began))
	if err != nil {
		c.fail(fmt.Errorf("%s: %w", strings.Fields(q)[0], err))
		return err
	}
	m.statements++
	if s := int(time.Since(c.l.start) / time.Second); s < len(c.l.okPerSecond) {
		c.l.okPerSecond[s].Add(1)
	}
	return nil
}

// fail counts an error in the current minute, keeping its text if first,
// and returns the minute's statistics.
func (c *clientRun) fail(err error) *minuteStats {
	now := time.Now()
	m := c.minute(now)
	m.errors++
	if m.firstErr == "" {
		m.firstErr, m.firstErrAt = shortErr(err, errTextMax), now
	}
	return m
}

// minute returns the statistics of the minute t falls in.
func (c *clientRun) minute(t time.Time) *minuteStats {
	i := max(int(t.Sub(c.l.start)/time.Minute), 0)
	for len(c.stats) <= i {
		c.stats = append(c.stats, minuteStats{})
	}
	return &c.stats[i]
}

// sleepCtx waits for d or until ctx is done, and says whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
