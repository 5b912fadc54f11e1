package metrics

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// Per-fingerprint statistics are exported for the top TopFingerprints
// statement fingerprints of each listener by total time; at most
// maxTracked are followed at once, so a workload of ever-new texts costs
// bounded memory and series.
const (
	TopFingerprints = 50
	maxTracked      = 1000
	maxLabelLen     = 200
)

// Fingerprints is a prometheus.Collector of per-fingerprint statement
// counts, errors and time, with one Table per listener.
type Fingerprints struct {
	mu     sync.Mutex
	tables map[string]*FingerprintTable

	count, errors, seconds, untracked *prometheus.Desc
}

func newFingerprints() *Fingerprints {
	labels := []string{"domain", "digest", "fingerprint"}
	return &Fingerprints{
		tables:    map[string]*FingerprintTable{},
		count:     prometheus.NewDesc(ns+"_fingerprint_statements_total", "Statements by fingerprint (literals removed), for the top fingerprints by total time.", labels, nil),
		errors:    prometheus.NewDesc(ns+"_fingerprint_errors_total", "Statements that ended in an error, by fingerprint (top fingerprints by total time).", labels, nil),
		seconds:   prometheus.NewDesc(ns+"_fingerprint_seconds_total", "Total statement time by fingerprint (top fingerprints by total time); divide by statements for the mean latency.", labels, nil),
		untracked: prometheus.NewDesc(ns+"_fingerprint_untracked_total", "Statements not followed by fingerprint because the table of followed fingerprints was full.", []string{"domain"}, nil),
	}
}

// Table returns the table of listener tenant, creating it.
func (f *Fingerprints) Table(tenant string) *FingerprintTable {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tables[tenant]
	if t == nil {
		t = &FingerprintTable{tenant: tenant, entries: map[string]*fpEntry{}}
		f.tables[tenant] = t
	}
	return t
}

// Drop forgets the table of listener tenant (the listener was removed or
// the proxy is stopping): its series go from the next scrape. Sessions
// still holding the table keep observing into it, unexported.
func (f *Fingerprints) Drop(tenant string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.tables, tenant)
}

// FingerprintTable follows one listener's fingerprints. Safe for concurrent use.
type FingerprintTable struct {
	tenant    string
	mu        sync.RWMutex
	entries   map[string]*fpEntry // by digest
	untracked atomic.Uint64
}

type fpEntry struct {
	digest, text         string
	count, errors, nanos atomic.Uint64
	seenAtPrune          uint64 // count at the last top() (under the table's write lock)
}

// Observe records one statement.
// hot path: a read-locked map lookup and three atomic adds; no allocation
// once the fingerprint is followed.
func (t *FingerprintTable) Observe(digest, text string, d time.Duration, failed bool) {
	if digest == "" {
		return
	}
	t.mu.RLock()
	e := t.entries[digest]
	t.mu.RUnlock()
	if e == nil {
		if e = t.add(digest, text); e == nil {
			t.untracked.Add(1)
			return
		}
	}
	e.count.Add(1)
	e.nanos.Add(uint64(d))
	if failed {
		e.errors.Add(1)
	}
}

func (t *FingerprintTable) add(digest, text string) *fpEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.entries[digest]; e != nil {
		return e
	}
	if len(t.entries) >= maxTracked {
		return nil
	}
	e := &fpEntry{digest: digest, text: labelText(text)}
	t.entries[digest] = e
	return e
}

// labelText is text as a label value: valid UTF-8 (a label that is not
// fails the whole scrape), cut on a rune boundary to at most maxLabelLen
// bytes plus "...", and a copy, so the table does not pin the caller's
// (possibly 64 KiB) statement text.
func labelText(text string) string {
	text = strings.ToValidUTF8(text, "\uFFFD")
	if len(text) <= maxLabelLen {
		return strings.Clone(text)
	}
	cut := maxLabelLen
	for cut > 0 && !utf8.RuneStart(text[cut]) {
		cut--
	}
	return text[:cut] + "..." // the concatenation copies
}

// top returns the n entries with most time, and drops, when the table is
// full, the entries outside them that ran nothing since the last call.
func (t *FingerprintTable) top(n int) []*fpEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	all := make([]*fpEntry, 0, len(t.entries))
	for _, e := range t.entries {
		all = append(all, e)
	}
	slices.SortFunc(all, func(a, b *fpEntry) int {
		x, y := a.nanos.Load(), b.nanos.Load()
		switch {
		case x > y:
			return -1
		case x < y:
			return 1
		}
		return 0
	})
	full := len(all) >= maxTracked
	for i, e := range all {
		c := e.count.Load()
		if full && i >= n && c == e.seenAtPrune {
			delete(t.entries, e.digest)
		}
		e.seenAtPrune = c
	}
	return all[:min(n, len(all))]
}

// Describe implements prometheus.Collector.
func (f *Fingerprints) Describe(ch chan<- *prometheus.Desc) {
	ch <- f.count
	ch <- f.errors
	ch <- f.seconds
	ch <- f.untracked
}

// Collect implements prometheus.Collector.
func (f *Fingerprints) Collect(ch chan<- prometheus.Metric) {
	f.mu.Lock()
	tables := make([]*FingerprintTable, 0, len(f.tables))
	for _, t := range f.tables {
		tables = append(tables, t)
	}
	f.mu.Unlock()
	for _, t := range tables {
		for _, e := range t.top(TopFingerprints) {
			d := e.digest
			if len(d) > 16 {
				d = d[:16]
			}
			ch <- prometheus.MustNewConstMetric(f.count, prometheus.CounterValue, float64(e.count.Load()), t.tenant, d, e.text)
			ch <- prometheus.MustNewConstMetric(f.errors, prometheus.CounterValue, float64(e.errors.Load()), t.tenant, d, e.text)
			ch <- prometheus.MustNewConstMetric(f.seconds, prometheus.CounterValue, time.Duration(e.nanos.Load()).Seconds(), t.tenant, d, e.text)
		}
		ch <- prometheus.MustNewConstMetric(f.untracked, prometheus.CounterValue, float64(t.untracked.Load()), t.tenant)
	}
}
