package main

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Scale check (--scale): many client connections through one target.
//
// Idle phase: open --idle-clients connections (32 at a time), read the
// target's RSS, count the backend connections the bench user holds on
// MariaDB, then run SELECT 1 on every one of them (each must still answer).
// Active phase: --active-clients connections, each running point selects
// on sbtest1 back to back for --active-seconds, while a sampler counts the
// bench user's backend connections every 100 ms.

// scaleDialers bounds concurrent logins, as a connection pool ramping up
// would; it keeps the accept queues of every target from overflowing.
const scaleDialers = 32

// loginTimeout bounds one login of the scale check.
const loginTimeout = 30 * time.Second

// backendSampleEvery is how often the active phase counts backend
// connections.
const backendSampleEvery = 100 * time.Millisecond

// scaleResult is the scale check through one target.
type scaleResult struct {
	target string

	idle            int
	idleConnErrs    int64
	idleFirstErr    error
	rssBefore       int64
	rssIdle         int64
	idleBackends    int
	verifyErrs      int64
	verifyFirst     error
	active          int
	activeConnErr   int64
	activeConnFirst error
	seconds         int
	statements      int64
	stmtErrs        int64
	stmtFirstErr    error
	p99             time.Duration
	maxBackends     int
	err             error
}

func (s scaleResult) kibPerIdle() float64 {
	if s.idle == 0 {
		return 0
	}
	return float64(s.rssIdle-s.rssBefore) / 1024 / float64(s.idle)
}

// scaleCheck runs both phases through t; root is a direct connection to
// MariaDB as root, to count backend connections.
func scaleCheck(ctx context.Context, cfg config, t *target, root *sql.DB, log *slog.Logger) scaleResult {
	s := scaleResult{target: t.name, idle: cfg.idleClients, active: cfg.activeClients, seconds: cfg.activeSeconds}
	if t.err != nil {
		s.err = t.err
		return s
	}
	if t.proc == nil {
		s.err = errors.New("no process of ours behind this target; the check measures a proxy's memory")
		return s
	}
	connector, err := targetConnector(t, 30*time.Second)
	if err != nil {
		s.err = err
		return s
	}
	before, err := readMem(t.pid())
	if err != nil {
		s.err = err
		return s
	}
	s.rssBefore = before.rss

	log.Info("scale: opening idle clients", "target", t.name, "clients", cfg.idleClients)
	conns, failed, firstErr := openConns(ctx, connector, cfg.idleClients)
	s.idleConnErrs, s.idleFirstErr = failed, firstErr
	if after, err := readMem(t.pid()); err == nil {
		s.rssIdle = after.rss
	}
	s.idleBackends, _ = backendConns(ctx, root)
	s.verifyErrs, s.verifyFirst = forEach(ctx, conns, func(c driver.Conn) error {
		return queryDiscard(ctx, c, "SELECT 1")
	})
	closeConns(conns)
	log.Info("scale: idle phase done", "target", t.name, "kib_per_client", fmt.Sprintf("%.1f", s.kibPerIdle()),
		"connect_errors", s.idleConnErrs, "verify_errors", s.verifyErrs, "backend_conns", s.idleBackends)

	log.Info("scale: active phase", "target", t.name, "clients", cfg.activeClients, "seconds", cfg.activeSeconds)
	activeScale(ctx, cfg, connector, root, &s)
	log.Info("scale: active phase done", "target", t.name, "statements", s.statements, "errors", s.stmtErrs,
		"max_backend_conns", s.maxBackends)
	if t.proc.Exited() {
		s.err = fmt.Errorf("%s exited during the check (%v); output tail:\n%s", t.name, t.proc.Err(), t.proc.logTail(20))
	}
	return s
}

// activeScale opens the active clients, runs point selects on all of them
// for cfg.activeSeconds and samples the backend connections meanwhile.
func activeScale(ctx context.Context, cfg config, connector driver.Connector, root *sql.DB, s *scaleResult) {
	conns, failed, firstErr := openConns(ctx, connector, cfg.activeClients)
	defer closeConns(conns)
	s.activeConnErr, s.activeConnFirst = failed, firstErr

	runCtx, cancel := context.WithTimeout(ctx, time.Duration(cfg.activeSeconds)*time.Second)
	defer cancel()
	sampled := make(chan int, 1)
	go func() { sampled <- sampleBackends(runCtx, root) }()

	var (
		stmts, errs atomic.Int64
		mu          sync.Mutex
		lat         []time.Duration
		wg          sync.WaitGroup
	)
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for runCtx.Err() == nil {
				q := fmt.Sprintf("SELECT c FROM sbtest1 WHERE id = %d", 1+rand.IntN(cfg.tableSize))
				start := time.Now()
				err := queryDiscard(runCtx, c, q)
				if runCtx.Err() != nil {
					break // the deadline cut this statement short
				}
				mine = append(mine, time.Since(start))
				stmts.Add(1)
				if err != nil {
					if errs.Add(1) == 1 {
						mu.Lock()
						s.stmtFirstErr = err
						mu.Unlock()
					}
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	cancel()
	s.maxBackends = <-sampled
	s.statements, s.stmtErrs = stmts.Load(), errs.Load()
	if len(lat) > 0 {
		slices.Sort(lat)
		s.p99 = lat[(len(lat)*99)/100]
	}
}

// openConns logs n clients in, scaleDialers at a time, and returns those
// that succeeded with the count and first error of those that did not.
func openConns(ctx context.Context, connector driver.Connector, n int) ([]driver.Conn, int64, error) {
	var (
		mu    sync.Mutex
		conns = make([]driver.Conn, 0, n)
	)
	failed, firstErr := parallel(ctx, n, func(int) error {
		c, err := login(ctx, connector)
		if err != nil {
			return err
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		return nil
	})
	return conns, failed, firstErr
}

// login connects one client; a login not done in loginTimeout fails (a
// full accept queue would hold it forever).
func login(ctx context.Context, connector driver.Connector) (driver.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, loginTimeout)
	defer cancel()
	return connector.Connect(ctx)
}

// forEach runs f on every connection, scaleDialers at a time.
func forEach(ctx context.Context, conns []driver.Conn, f func(driver.Conn) error) (int64, error) {
	return parallel(ctx, len(conns), func(i int) error { return f(conns[i]) })
}

// parallel runs f(0) ... f(n-1) on scaleDialers goroutines until ctx ends,
// and returns how many failed and the first error.
func parallel(ctx context.Context, n int, f func(i int) error) (int64, error) {
	var (
		failed   atomic.Int64
		mu       sync.Mutex
		firstErr error
		next     atomic.Int64
		wg       sync.WaitGroup
	)
	for range min(scaleDialers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(n) && ctx.Err() == nil; i = next.Add(1) - 1 {
				if err := f(int(i)); err != nil && failed.Add(1) == 1 {
					mu.Lock()
					firstErr = err
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return failed.Load(), firstErr
}

func closeConns(conns []driver.Conn) {
	for _, c := range conns {
		_ = c.Close()
	}
}

// queryDiscard runs a text-protocol query on a raw driver connection and
// reads its rows.
func queryDiscard(ctx context.Context, c driver.Conn, query string) error {
	rows, err := c.(driver.QueryerContext).QueryContext(ctx, query, nil)
	if err != nil {
		return err
	}
	dest := make([]driver.Value, len(rows.Columns()))
	for {
		if err := rows.Next(dest); err != nil {
			_ = rows.Close()
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// backendConns counts the bench user's connections on MariaDB.
func backendConns(ctx context.Context, root *sql.DB) (int, error) {
	var n int
	err := root.QueryRowContext(ctx,
		"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?", benchUser).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting backend connections: %w", err)
	}
	return n, nil
}

// sampleBackends counts backend connections every backendSampleEvery until
// ctx ends and returns the maximum seen.
func sampleBackends(ctx context.Context, root *sql.DB) int {
	peak := 0
	tick := time.NewTicker(backendSampleEvery)
	defer tick.Stop()
	for {
		// The sampler's own query must not be cut by ctx's deadline.
		if n, err := backendConns(context.WithoutCancel(ctx), root); err == nil {
			peak = max(peak, n)
		}
		select {
		case <-ctx.Done():
			return peak
		case <-tick.C:
		}
	}
}

// waitNoBackends waits until the bench user holds no backend connection
// (a stopped target's last ones are closing).
func waitNoBackends(ctx context.Context, root *sql.DB) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		n, err := backendConns(ctx, root)
		if err == nil && n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the bench user still holds %d backend connections (%v) after its target stopped: %s", n, err, describeBackends(root))
		case <-time.After(backendSampleEvery):
		}
	}
}

// describeBackends lists the bench user's backend connections, for an error.
func describeBackends(root *sql.DB) string {
	rows, err := root.Query("SELECT CONCAT_WS(' ', ID, HOST, COMMAND, TIME, IFNULL(STATE, ''), IFNULL(INFO, '')) " +
		"FROM information_schema.PROCESSLIST WHERE USER = '" + benchUser + "'")
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var line string
		if rows.Scan(&line) == nil {
			out = append(out, line)
		}
	}
	return fmt.Sprintf("%q", out)
}
