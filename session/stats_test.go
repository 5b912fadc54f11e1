package session

import (
	"testing"
	"time"

	"pisanix.io/pisanix/metrics"
)

// BenchmarkStatementMetrics is what one statement pays for its metrics,
// with and without Pisa-Proxy's own series beside ours.
func BenchmarkStatementMetrics(b *testing.B) {
	m := metrics.New()
	lv := func(result string) []string {
		return []string{"main", "app", "db", "COM_QUERY", "select", result, "127.0.0.1:3306"}
	}
	ours := stmtHandles{
		ok: m.SQLProcessed.WithLabelValues(lv("ok")...), failed: m.SQLProcessed.WithLabelValues(lv("error")...),
		okTime: m.SQLDuration.WithLabelValues(lv("ok")...), failedTime: m.SQLDuration.WithLabelValues(lv("error")...),
		inflight: m.SQLUnderProcessing.WithLabelValues("main", "COM_QUERY", "127.0.0.1:3306"),
	}
	both := ours
	both.legacy = &legacyHandles{
		processed: m.LegacyProcessed.WithLabelValues("main", "COM_QUERY", "127.0.0.1:3306"),
		duration:  m.LegacyDuration.WithLabelValues("main", "COM_QUERY", "127.0.0.1:3306"),
		under:     m.LegacyUnder.WithLabelValues("main", "COM_QUERY", "127.0.0.1:3306"),
	}
	for _, c := range []struct {
		name string
		h    *stmtHandles
	}{{"ours", &ours}, {"ours+pisa-proxy", &both}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.h.begin()
				c.h.record(true, 150*time.Microsecond)
				c.h.end()
			}
		})
	}
}
