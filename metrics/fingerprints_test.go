package metrics

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
)

func TestFingerprintTop(t *testing.T) {
	m := New()
	tab := m.Fingerprints.Table("main")
	// Fingerprint i runs i times for 1ms, so the top ones are the last.
	for i := 1; i <= 60; i++ {
		for j := 0; j < i; j++ {
			tab.Observe(fmt.Sprintf("digest%02d", i), fmt.Sprintf("select ? from t%d", i), time.Millisecond, j == 0)
		}
	}
	tab.Observe("", "ignored", time.Second, false)
	out, err := testutil.CollectAndFormat(m.Fingerprints, expfmt.TypeTextPlain, "pisa_proxy_fingerprint_statements_total", "pisa_proxy_fingerprint_errors_total")
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	if n := strings.Count(text, "pisa_proxy_fingerprint_statements_total{"); n != TopFingerprints {
		t.Fatalf("%d series, want the top %d", n, TopFingerprints)
	}
	if !strings.Contains(text, `fingerprint="select ? from t60"} 60`) || strings.Contains(text, `"select ? from t10"`) {
		t.Fatalf("wrong top:\n%s", text)
	}
	if !strings.Contains(text, `pisa_proxy_fingerprint_errors_total{digest="digest60",domain="main",fingerprint="select ? from t60"} 1`) {
		t.Fatalf("errors not counted:\n%s", text)
	}
}

func TestFingerprintTableBounded(t *testing.T) {
	tab := New().Fingerprints.Table("main")
	for i := 0; i < maxTracked+10; i++ {
		tab.Observe(fmt.Sprint(i), "q", time.Millisecond, false)
	}
	if len(tab.entries) != maxTracked || tab.untracked.Load() != 10 {
		t.Fatalf("%d followed, %d untracked", len(tab.entries), tab.untracked.Load())
	}
	tab.top(TopFingerprints) // notes the counts
	tab.Observe("7", "q", time.Hour, false)
	tab.top(TopFingerprints) // full: idle entries outside the top go
	if len(tab.entries) != TopFingerprints || tab.entries["7"] == nil {
		t.Fatalf("after prune: %d followed", len(tab.entries))
	}
	tab.Observe("new", "q", time.Millisecond, false)
	if tab.entries["new"] == nil {
		t.Fatal("a new fingerprint must be followed after a prune")
	}
}

func BenchmarkFingerprintObserve(b *testing.B) {
	tab := New().Fingerprints.Table("main")
	digests := make([]string, 20)
	for i := range digests {
		digests[i] = fmt.Sprintf("%064d", i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			tab.Observe(digests[i%len(digests)], "q", time.Microsecond, false)
			i++
		}
	})
}
