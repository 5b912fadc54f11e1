package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"pisanix.io/pisanix/actors"
	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/glob"
	"pisanix.io/pisanix/metrics"
	"pisanix.io/pisanix/sqlinfo"
)

const tenant = "t1"

func testSystem(t testing.TB) *actors.System {
	sys := actors.NewSystem(slog.New(slog.NewTextHandler(io.Discard, nil)), metrics.New())
	t.Cleanup(sys.Shutdown)
	return sys
}

func testConfig(sink string) config.Audit {
	rate := 1.0
	return config.Audit{Sink: sink, MaxSizeMB: 1, MaxBackups: 5, QueueSize: 1024, SampleRate: &rate}
}

// start builds a Logger spawned from the root and closes it at cleanup.
func start(t testing.TB, sys *actors.System, cfg config.Audit, h hooks) *Logger {
	t.Helper()
	l, err := newLogger(sys, sys.Root, tenant, cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = l.Close(ctx)
	})
	return l
}

func closeLogger(t testing.TB, l *Logger) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func record(i int) Record {
	r := Record{
		Time:         time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.FixedZone("x", 3600)).Add(time.Duration(i) * time.Second),
		Tenant:       tenant,
		User:         fmt.Sprintf("user%d", i%3),
		Client:       "10.0.0.1:4242",
		DB:           "shop",
		ConnID:       uint32(i),
		Kind:         "select",
		Fingerprint:  "select * from `orders` where id = ? and note = \"q\\\"\"\n",
		Digest:       "abc123",
		Tables:       []sqlinfo.Table{{DB: "shop", Name: "orders"}, {Name: "tmp"}},
		Duration:     1500*time.Microsecond + 999*time.Nanosecond,
		RowsAffected: uint64(i),
		RowsSent:     uint64(2 * i),
		Backend:      "node-1",
	}
	if i%2 == 1 {
		r.ErrorCode, r.Denied, r.Backend = 1142, "user not allowed on table ü", ""
	}
	return r
}

// want is the decoded line record(i) must produce.
func want(i int) map[string]any {
	r := record(i)
	m := map[string]any{
		"time":          r.Time.UTC().Format(time.RFC3339Nano),
		"tenant":        tenant,
		"user":          r.User,
		"client":        r.Client,
		"conn_id":       json.Number(fmt.Sprint(i)),
		"db":            "shop",
		"kind":          "select",
		"fingerprint":   r.Fingerprint,
		"digest":        "abc123",
		"tables":        []any{"shop.orders", "tmp"},
		"duration_us":   json.Number("1500"),
		"rows_affected": json.Number(fmt.Sprint(i)),
		"rows_sent":     json.Number(fmt.Sprint(2 * i)),
		"error_code":    json.Number(fmt.Sprint(r.ErrorCode)),
		"backend":       r.Backend,
	}
	if r.Denied != "" {
		m["denied"] = r.Denied
	}
	return m
}

func decode(t testing.TB, line []byte) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(line))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	return m
}

func readLines(t testing.TB, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, slices.Clone(sc.Bytes()))
	}
	return lines
}

func counter(t testing.TB, l *Logger) (written, dropped, errs float64) {
	return testutil.ToFloat64(l.written), testutil.ToFloat64(l.dropped), testutil.ToFloat64(l.errors)
}

func TestFileSink(t *testing.T) {
	sys := testSystem(t)
	path := filepath.Join(t.TempDir(), "logs", "audit.log") // the directory is created
	cfg := testConfig(config.AuditSinkFile)
	cfg.Path = path
	l := start(t, sys, cfg, hooks{})
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("New did not create the file: %v", err)
	}
	const n = 200
	for i := range n {
		l.Log(context.Background(), record(i))
	}
	closeLogger(t, l)

	lines := readLines(t, path)
	if len(lines) != n {
		t.Fatalf("%d lines, want %d", len(lines), n)
	}
	for i, line := range lines {
		if got, w := decode(t, line), want(i); !reflect.DeepEqual(got, w) {
			t.Fatalf("line %d:\n got %v\nwant %v", i, got, w)
		}
	}
	if w, d, e := counter(t, l); w != n || d != 0 || e != 0 {
		t.Errorf("written %v dropped %v errors %v, want %d 0 0", w, d, e, n)
	}
	if q := testutil.ToFloat64(sys.Metrics.AuditQueued.WithLabelValues(tenant)); q != 0 {
		t.Errorf("queue depth %v after close", q)
	}
	// Log after Close is dropped and counted.
	l.Log(context.Background(), record(0))
	if _, d, _ := counter(t, l); d != 1 {
		t.Errorf("dropped %v after a Log past Close, want 1", d)
	}

	// A second logger appends to the existing file.
	l2 := start(t, sys, cfg, hooks{})
	l2.Log(context.Background(), record(n))
	closeLogger(t, l2)
	lines = readLines(t, path)
	if len(lines) != n+1 || !reflect.DeepEqual(decode(t, lines[n]), want(n)) {
		t.Fatalf("after reopening: %d lines, last %s", len(lines), lines[len(lines)-1])
	}
}

func TestRotation(t *testing.T) {
	// ~1 KiB lines; MaxSizeMB cannot go below 1.
	big := record(0)
	big.Fingerprint = strings.Repeat("select x from t where a = ? ", 36)
	perMB := (1 << 20) / len(appendRecord(nil, &big))

	// logChunks logs chunks of ~half a file, waiting for each to be written
	// and for the clock's millisecond to change in between: lumberjack
	// names backups by the millisecond, and two rotations in the same one
	// would overwrite a backup (only a >1 GB/s log could do that for real).
	logChunks := func(t *testing.T, l *Logger, total int) {
		for sent := 0; sent < total; {
			for range min(perMB/2, total-sent) {
				r := big
				r.ConnID = uint32(sent)
				l.Log(context.Background(), r)
				sent++
			}
			waitFor(t, "chunk written", func() bool { return testutil.ToFloat64(l.written) == float64(sent) })
			ms := time.Now().UnixMilli()
			waitFor(t, "next millisecond", func() bool { return time.Now().UnixMilli() > ms })
		}
	}
	files := func(t *testing.T, dir string) []string {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, filepath.Join(dir, e.Name()))
		}
		return names
	}

	t.Run("no record lost", func(t *testing.T) {
		sys := testSystem(t)
		dir := t.TempDir()
		cfg := testConfig(config.AuditSinkFile)
		cfg.Path, cfg.MaxBackups, cfg.QueueSize = filepath.Join(dir, "audit.log"), 10, 4096
		l := start(t, sys, cfg, hooks{})
		total := perMB*5/2 + 7
		logChunks(t, l, total)
		closeLogger(t, l)

		names := files(t, dir)
		if len(names) != 3 {
			t.Fatalf("files %v, want the log and 2 backups", names)
		}
		seen := make([]bool, total)
		for _, name := range names {
			for _, line := range readLines(t, name) {
				m := decode(t, line)
				var id int
				fmt.Sscan(string(m["conn_id"].(json.Number)), &id)
				if seen[id] {
					t.Fatalf("conn_id %d twice", id)
				}
				seen[id] = true
			}
		}
		if i := slices.Index(seen, false); i >= 0 {
			t.Fatalf("record %d lost across rotation", i)
		}
	})

	t.Run("max backups", func(t *testing.T) {
		sys := testSystem(t)
		dir := t.TempDir()
		cfg := testConfig(config.AuditSinkFile)
		cfg.Path, cfg.MaxBackups, cfg.QueueSize = filepath.Join(dir, "audit.log"), 1, 4096
		l := start(t, sys, cfg, hooks{})
		logChunks(t, l, perMB*7/2)
		closeLogger(t, l)
		// lumberjack removes old backups on its own goroutine after a rotation.
		waitFor(t, "one backup left", func() bool { return len(files(t, dir)) == 2 })
		if st, err := os.Stat(cfg.Path); err != nil || st.Size() >= 1<<20 {
			t.Fatalf("current file %v %v: not rotated", st, err)
		}
	})
}

// syncBuffer is a captured stdout.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestStdoutSink(t *testing.T) {
	sys := testSystem(t)
	var out syncBuffer
	l := start(t, sys, testConfig(config.AuditSinkStdout), hooks{stdout: &out})
	for i := range 3 {
		l.Log(context.Background(), record(i))
	}
	// Written without Close: the batch goes out when the queue is empty.
	waitFor(t, "3 lines", func() bool { return strings.Count(out.String(), "\n") == 3 })
	closeLogger(t, l)
	for i, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		if got := decode(t, []byte(line)); !reflect.DeepEqual(got, want(i)) {
			t.Errorf("line %d: got %v", i, got)
		}
	}
}

// The pattern language itself is tested in package glob.
func TestMatchTable(t *testing.T) {
	for _, c := range []struct {
		pat  string
		tb   sqlinfo.Table
		want bool
	}{
		{"shop.*", sqlinfo.Table{DB: "shop", Name: "orders"}, true},
		{"shop.*", sqlinfo.Table{DB: "shopping", Name: "orders"}, false},
		{"*.orders", sqlinfo.Table{DB: "shop", Name: "ORDERS"}, true},
		{"*.orders", sqlinfo.Table{Name: "orders"}, false}, // no db: the subject is "orders"
		{"orders", sqlinfo.Table{Name: "orders"}, true},
		{"s*s", sqlinfo.Table{DB: "shop", Name: "orders"}, true}, // '*' spans the dot
	} {
		if got := matchTable(glob.CompileAll([]string{c.pat}), &c.tb); got != c.want {
			t.Errorf("%q ~ %+v = %v, want %v", c.pat, c.tb, got, c.want)
		}
	}
}

func TestWants(t *testing.T) {
	sys := testSystem(t)
	cfg := testConfig(config.AuditSinkStdout)
	cfg.Users = []string{"app*", "r?ot"}
	cfg.Kinds = []string{"insert", "delete"}
	cfg.Tables = []string{"shop.*", "*.audit_?"}
	l := start(t, sys, cfg, hooks{stdout: io.Discard})
	shop := []sqlinfo.Table{{DB: "x", Name: "y"}, {DB: "shop", Name: "orders"}}
	for _, c := range []struct {
		name, user, kind string
		tables           []sqlinfo.Table
		want             bool
	}{
		{"all match", "app_rw", "insert", shop, true},
		{"second user pattern", "ROOT", "DELETE", shop, true},
		{"user", "bob", "insert", shop, false},
		{"kind", "app", "select", shop, false},
		{"table pattern 2", "app", "insert", []sqlinfo.Table{{DB: "db1", Name: "audit_1"}}, true},
		{"no table matches", "app", "insert", []sqlinfo.Table{{DB: "db1", Name: "audit_12"}}, false},
		{"no tables", "app", "insert", nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := l.Wants(c.user, c.kind, c.tables, 0); got != c.want {
				t.Errorf("Wants = %v, want %v", got, c.want)
			}
		})
	}

	cfg = testConfig(config.AuditSinkStdout)
	cfg.ErrorsOnly = true
	l = start(t, sys, cfg, hooks{stdout: io.Discard})
	if l.Wants("u", "select", nil, 0) || !l.Wants("u", "select", nil, 1064) {
		t.Error("errors_only: wants a success or not a failure")
	}
	// No filters: everything.
	cfg = testConfig(config.AuditSinkStdout)
	l = start(t, sys, cfg, hooks{stdout: io.Discard})
	if !l.Wants("u", "other", nil, 0) {
		t.Error("no filters: a statement not wanted")
	}

	var nilLogger *Logger
	if nilLogger.Wants("u", "select", nil, 0) {
		t.Error("nil logger wants")
	}
	nilLogger.Log(context.Background(), record(0))
	if err := nilLogger.Close(context.Background()); err != nil {
		t.Error(err)
	}
}

// Reconfigure swaps the filters of a running Logger when only they
// changed, and refuses (changing nothing) a change of the sink settings.
func TestReconfigure(t *testing.T) {
	sys := testSystem(t)
	cfg := testConfig(config.AuditSinkStdout)
	cfg.Kinds = []string{"insert"}
	l := start(t, sys, cfg, hooks{stdout: io.Discard})
	if l.Wants("u", "select", nil, 0) {
		t.Fatal("select wanted before the reconfigure")
	}
	filtersOnly := cfg
	filtersOnly.Kinds = []string{"select"}
	filtersOnly.Users = []string{"app*"}
	filtersOnly.ErrorsOnly = true
	if !l.Reconfigure(filtersOnly) {
		t.Fatal("a filters-only change must be taken in place")
	}
	if !l.Wants("app", "select", nil, 1064) || l.Wants("app", "insert", nil, 1064) ||
		l.Wants("bob", "select", nil, 1064) || l.Wants("app", "select", nil, 0) {
		t.Fatal("the new filters are not in effect")
	}
	rate := 0.0
	filtersOnly.SampleRate = &rate
	if !l.Reconfigure(filtersOnly) || l.Wants("app", "select", nil, 1064) {
		t.Fatal("sample_rate 0 must be taken in place")
	}

	for name, change := range map[string]func(*config.Audit){
		"sink":        func(c *config.Audit) { c.Sink, c.Path = config.AuditSinkFile, filepath.Join(t.TempDir(), "a.log") },
		"path":        func(c *config.Audit) { c.Path = "/elsewhere.log" },
		"max_size_mb": func(c *config.Audit) { c.MaxSizeMB++ },
		"max_backups": func(c *config.Audit) { c.MaxBackups++ },
		"queue_size":  func(c *config.Audit) { c.QueueSize++ },
		"lossless":    func(c *config.Audit) { c.Lossless = !c.Lossless },
	} {
		t.Run(name, func(t *testing.T) {
			c := cfg
			c.Kinds = []string{"delete"}
			change(&c)
			before := l.filters.Load()
			if l.Reconfigure(c) {
				t.Fatal("a sink change must need a new Logger")
			}
			if l.filters.Load() != before {
				t.Fatal("a refused Reconfigure changed the filters")
			}
		})
	}
	var nilLogger *Logger
	if nilLogger.Reconfigure(cfg) {
		t.Error("nil logger reconfigured")
	}
}

// Wants reads the filters while Reconfigure swaps them (run with -race),
// and allocates nothing.
func TestWantsConcurrentReconfigure(t *testing.T) {
	sys := testSystem(t)
	cfg := testConfig(config.AuditSinkStdout)
	cfg.Users = []string{"app*"}
	cfg.Tables = []string{"shop.*"}
	l := start(t, sys, cfg, hooks{stdout: io.Discard})
	tables := []sqlinfo.Table{{DB: "shop", Name: "orders"}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			c := cfg
			c.Kinds = []string{[]string{"select", "insert"}[i%2]}
			l.Reconfigure(c)
		}
	}()
	for i := 0; i < 2000; i++ {
		l.Wants("app", "select", tables, 0)
	}
	<-done
	if n := testing.AllocsPerRun(100, func() { l.Wants("app", "insert", tables, 0) }); n != 0 {
		t.Fatalf("Wants allocates %v times", n)
	}
}

func TestSampling(t *testing.T) {
	sys := testSystem(t)
	for _, c := range []struct {
		rate   float64
		lo, hi int
	}{{1, 10000, 10000}, {0.5, 4000, 6000}, {0, 0, 0}} {
		cfg := testConfig(config.AuditSinkStdout)
		cfg.SampleRate = &c.rate
		l := start(t, sys, cfg, hooks{stdout: io.Discard})
		n := 0
		for range 10000 {
			if l.Wants("u", "select", nil, 0) {
				n++
			}
		}
		if n < c.lo || n > c.hi {
			t.Errorf("rate %v: %d of 10000 wanted, want [%d, %d]", c.rate, n, c.lo, c.hi)
		}
	}
}

// blockingWriter blocks every Write until release is closed; entered gets
// a value when a Write starts.
type blockingWriter struct {
	entered chan struct{}
	release chan struct{}
	syncBuffer
}

func newBlockingWriter() *blockingWriter {
	return &blockingWriter{entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.entered <- struct{}{}
	<-w.release
	return w.syncBuffer.Write(p)
}

func waitChan[T any](t testing.TB, what string, c <-chan T) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestDropMode(t *testing.T) {
	sys := testSystem(t)
	w := newBlockingWriter()
	cfg := testConfig(config.AuditSinkStdout)
	cfg.QueueSize = 4
	l := start(t, sys, cfg, hooks{stdout: w})
	l.Log(context.Background(), record(0))
	waitChan(t, "the writer to block", w.entered)

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= 14; i++ { // 4 fill the queue, 10 are dropped
			l.Log(context.Background(), record(i))
		}
	}()
	waitChan(t, "Log calls to return while the sink is blocked", done)
	if _, d, _ := counter(t, l); d != 10 {
		t.Fatalf("dropped %v, want 10", d)
	}
	close(w.release)
	closeLogger(t, l)
	if wr, d, e := counter(t, l); wr != 5 || d != 10 || e != 0 {
		t.Errorf("written %v dropped %v errors %v, want 5 10 0", wr, d, e)
	}
	if got := strings.Count(w.String(), "\n"); got != 5 {
		t.Errorf("%d lines, want 5", got)
	}
}

func TestLossless(t *testing.T) {
	// fill starts a lossless logger whose sink is blocked in a write and
	// whose queue is full.
	fill := func(t *testing.T) (*Logger, *blockingWriter) {
		sys := testSystem(t)
		w := newBlockingWriter()
		cfg := testConfig(config.AuditSinkStdout)
		cfg.QueueSize, cfg.Lossless = 2, true
		l := start(t, sys, cfg, hooks{stdout: w})
		l.Log(context.Background(), record(0))
		waitChan(t, "the writer to block", w.entered)
		l.Log(context.Background(), record(1))
		l.Log(context.Background(), record(2))
		return l, w
	}

	t.Run("back-pressure", func(t *testing.T) {
		l, w := fill(t)
		done := make(chan struct{})
		go func() {
			defer close(done)
			l.Log(context.Background(), record(3))
		}()
		select {
		case <-done:
			t.Fatal("Log returned with a full queue in lossless mode")
		case <-time.After(50 * time.Millisecond): // a negative check: Log stays blocked
		}
		close(w.release)
		waitChan(t, "Log to return once the sink is released", done)
		closeLogger(t, l)
		if wr, d, e := counter(t, l); wr != 4 || d != 0 || e != 0 {
			t.Errorf("written %v dropped %v errors %v, want 4 0 0", wr, d, e)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		l, w := fill(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			l.Log(ctx, record(3))
		}()
		cancel()
		waitChan(t, "Log to return on cancel", done)
		if _, d, _ := counter(t, l); d != 1 {
			t.Errorf("dropped %v, want 1", d)
		}
		close(w.release)
		closeLogger(t, l)
		if wr, _, _ := counter(t, l); wr != 3 {
			t.Errorf("written %v, want 3", wr)
		}
	})

	t.Run("close bounded", func(t *testing.T) {
		l, w := fill(t)
		done := make(chan struct{})
		go func() {
			defer close(done)
			l.Log(context.Background(), record(3))
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if err := l.Close(ctx); err == nil {
			t.Error("Close with a blocked sink returned no error")
		}
		waitChan(t, "Close to release a waiting Log", done)
		close(w.release)
	})
}

// parent spawns the logger from an actor with the tenant's supervision
// (restart, counted in ActorRestarts).
type parent struct{ started func(actor.Context) }

func (p parent) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*actor.Started); ok {
		p.started(ctx)
	}
}

// startSupervised starts a logger whose writer panics on records of user
// "boom", as the child of an actor supervising with directive.
func startSupervised(t *testing.T, sys *actors.System, directive actor.Directive, out io.Writer) *Logger {
	h := hooks{stdout: out, fault: func(r Record) {
		if r.User == "boom" {
			panic("injected writer fault")
		}
	}}
	got := make(chan *Logger, 1)
	props := sys.Props("test-tenant", func() actor.Actor {
		return parent{started: func(ctx actor.Context) {
			l, err := newLogger(sys, ctx, tenant, testConfig(config.AuditSinkStdout), h)
			if err != nil {
				t.Error(err)
			}
			got <- l
		}}
	}, actor.WithSupervisor(sys.Strategy(directive, 3, time.Minute)))
	sys.Root.Spawn(props)
	var l *Logger
	select {
	case l = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no logger")
	}
	if l == nil {
		t.FailNow()
	}
	return l
}

func TestWriterPanicRestarts(t *testing.T) {
	sys := testSystem(t)
	var out syncBuffer
	l := startSupervised(t, sys, actor.RestartDirective, &out)

	rec := func(user string, id uint32) Record { r := record(0); r.User, r.ConnID = user, id; return r }
	l.Log(context.Background(), rec("a", 1))
	l.Log(context.Background(), rec("boom", 2))
	restarts := sys.Metrics.ActorRestarts.WithLabelValues("audit", actor.RestartDirective.String())
	waitFor(t, "the writer to restart", func() bool { return testutil.ToFloat64(restarts) == 1 })
	l.Log(context.Background(), rec("b", 3))
	closeLogger(t, l)

	var users []string
	for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		users = append(users, decode(t, []byte(line))["user"].(string))
	}
	if !slices.Equal(users, []string{"a", "b"}) {
		t.Errorf("written users %v, want [a b]", users)
	}
	if wr, d, e := counter(t, l); wr != 2 || d != 0 || e != 1 {
		t.Errorf("written %v dropped %v errors %v, want 2 0 1 (the record in the panic)", wr, d, e)
	}
}

// TestWriterStopped: when the supervisor stops the writer for good,
// records pile up in the queue and Close reports them as dropped.
func TestWriterStopped(t *testing.T) {
	sys := testSystem(t)
	var out syncBuffer
	l := startSupervised(t, sys, actor.StopDirective, &out)
	l.Log(context.Background(), Record{User: "a"})
	l.Log(context.Background(), Record{User: "boom"})
	stops := sys.Metrics.ActorRestarts.WithLabelValues("audit", actor.StopDirective.String())
	waitFor(t, "the writer to stop", func() bool { return testutil.ToFloat64(stops) == 1 })
	l.Log(context.Background(), Record{User: "b"})
	l.Log(context.Background(), Record{User: "c"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Close(ctx); err == nil || !strings.Contains(err.Error(), "2 records dropped") {
		t.Errorf("Close = %v, want the writer stopped with 2 records dropped", err)
	}
	if wr, d, e := counter(t, l); wr != 1 || d != 2 || e != 1 {
		t.Errorf("written %v dropped %v errors %v, want 1 2 1", wr, d, e)
	}
	if m := decode(t, []byte(out.String())); m["user"] != "a" || m["tenant"] != tenant {
		t.Errorf("written %v, want user a of tenant %s", m, tenant)
	}
}

func TestBadPath(t *testing.T) {
	sys := testSystem(t)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(config.AuditSinkFile)
	cfg.Path = filepath.Join(file, "sub", "audit.log") // under a regular file
	l, err := New(sys, sys.Root, tenant, cfg)
	if err == nil {
		_ = l.Close(context.Background())
		t.Fatal("New succeeded with a path under a file")
	}
	if !strings.Contains(err.Error(), cfg.Path) {
		t.Errorf("error %q does not name the path", err)
	}
}

// TestEncodeStrings checks the hand-written string escaping against
// encoding/json: both must decode to the same string.
func TestEncodeStrings(t *testing.T) {
	for _, s := range []string{
		"", "plain", `q"uote`, `back\slash`, "nl\ncr\rtab\t", "\x00\x01\x1f\x7f",
		"ünïcödé 日本", "bad\xffutf8\xc3", "sep\u2028\u2029", "</script>&",
	} {
		var mine, std string
		if err := json.Unmarshal(appendString(nil, s), &mine); err != nil {
			t.Fatalf("%q: %s: %v", s, appendString(nil, s), err)
		}
		b, _ := json.Marshal(s)
		if err := json.Unmarshal(b, &std); err != nil {
			t.Fatal(err)
		}
		if mine != std {
			t.Errorf("%q: decoded %q, encoding/json gives %q", s, mine, std)
		}
	}
}

// BenchmarkLog is what a session pays per audited statement: Wants with
// users, kinds and tables filters, then Log into a queue with room.
func BenchmarkLog(b *testing.B) {
	sys := testSystem(b)
	cfg := testConfig(config.AuditSinkStdout)
	cfg.QueueSize = config.DefaultAuditQueueSize
	cfg.Users = []string{"app*"}
	cfg.Kinds = []string{"select", "insert"}
	cfg.Tables = []string{"shop.*"}
	l := start(b, sys, cfg, hooks{stdout: io.Discard})
	r := record(0)
	r.User = "app_rw"
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i++; i%(cfg.QueueSize/2) == 0 {
			// Keep the queue from filling: measure Log, not the drop path.
			b.StopTimer()
			waitFor(b, "queue drained", func() bool { return len(l.ch) == 0 })
			b.StartTimer()
		}
		if l.Wants(r.User, r.Kind, r.Tables, r.ErrorCode) {
			l.Log(ctx, r)
		}
	}
	b.StopTimer()
	if _, d, _ := counter(b, l); d != 0 {
		b.Fatalf("%v records dropped", d)
	}
}

func BenchmarkEncode(b *testing.B) {
	r := record(0)
	r.Fingerprint = "select `o`.`id`, `o`.`total` from `orders` `o` join `customers` `c` on `c`.`id` = `o`.`customer_id` where `c`.`email` = ? and `o`.`created` > ?"
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = appendRecord(buf[:0], &r)
		}
		b.SetBytes(int64(len(buf)))
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		for b.Loop() {
			buf.Reset()
			tables := make([]string, len(r.Tables))
			for i, t := range r.Tables {
				tables[i] = t.DB + "." + t.Name
			}
			_ = enc.Encode(Line{Time: r.Time.UTC().Format(time.RFC3339Nano), Tenant: r.Tenant, User: r.User,
				Client: r.Client, ConnID: r.ConnID, DB: r.DB, Kind: r.Kind, Fingerprint: r.Fingerprint, Digest: r.Digest,
				Tables: tables, DurationUS: r.Duration.Microseconds(), RowsAffected: r.RowsAffected, RowsSent: r.RowsSent,
				ErrorCode: r.ErrorCode, Denied: r.Denied, Backend: r.Backend})
		}
		b.SetBytes(int64(buf.Len()))
	})
}

// BenchmarkWants is the filter cost alone, for a statement that passes.
func BenchmarkWants(b *testing.B) {
	sys := testSystem(b)
	cfg := testConfig(config.AuditSinkStdout)
	cfg.Users = []string{"report*", "app*"}
	cfg.Kinds = []string{"insert", "select"}
	cfg.Tables = []string{"crm.*", "shop.*"}
	l := start(b, sys, cfg, hooks{stdout: io.Discard})
	tables := record(0).Tables
	b.ReportAllocs()
	for b.Loop() {
		if !l.Wants("app_rw", "select", tables, 0) {
			b.Fatal("not wanted")
		}
	}
}

// The queue is bounded in bytes as well as records: with the writer
// stalled, records with long fingerprints past the bound are dropped
// (counted), or, lossless, wait for room and are all written once it
// resumes.
func TestQueueBytesBound(t *testing.T) {
	const bound = 4 << 20
	big := strings.Repeat("x", 512<<10)
	for _, lossless := range []bool{false, true} {
		t.Run(fmt.Sprintf("lossless=%v", lossless), func(t *testing.T) {
			sys := testSystem(t)
			cfg := testConfig(config.AuditSinkStdout)
			cfg.Lossless = lossless
			stall := make(chan struct{})
			var once sync.Once
			resume := func() { once.Do(func() { close(stall) }) }
			defer resume()
			l := start(t, sys, cfg, hooks{stdout: io.Discard, queueBytes: bound, fault: func(Record) { <-stall }})
			const n = 40
			logged := make(chan struct{})
			go func() {
				defer close(logged)
				for i := range n {
					l.Log(context.Background(), Record{Tenant: tenant, Kind: "select", Fingerprint: big, ConnID: uint32(i)})
					if b := l.queuedBytes.Load(); b > bound {
						t.Errorf("queue holds %d bytes, bound %d", b, bound)
					}
				}
			}()
			if !lossless {
				<-logged
				dropped := testutil.ToFloat64(sys.Metrics.AuditDropped.WithLabelValues(tenant))
				if dropped < float64(n-bound/len(big)-2) {
					t.Fatalf("%v records dropped with the writer stalled; want all but the %d that fit", dropped, bound/len(big))
				}
				resume()
				closeLogger(t, l)
				written := testutil.ToFloat64(sys.Metrics.AuditWritten.WithLabelValues(tenant))
				if written+dropped != n {
					t.Fatalf("written %v + dropped %v != %d", written, dropped, n)
				}
				return
			}
			waitFor(t, "a lossless writer blocked on the byte bound", func() bool {
				return l.queuedBytes.Load() > bound-int64(len(big))-recordOverhead*2 && len(l.ch) < n-1
			})
			select {
			case <-logged:
				t.Fatal("lossless logging did not wait for room")
			default:
			}
			resume()
			<-logged
			closeLogger(t, l)
			if w := testutil.ToFloat64(sys.Metrics.AuditWritten.WithLabelValues(tenant)); w != n {
				t.Fatalf("lossless: %v of %d records written", w, n)
			}
		})
	}
}
