package metrics

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
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

// Fingerprint labels are valid UTF-8 of bounded length whatever the text:
// one invalid label value fails the whole scrape.
func TestFingerprintLabelUTF8(t *testing.T) {
	long := "x" + strings.Repeat("é", 150) // 'é' is 2 bytes: byte 200 is inside one
	cases := map[string]string{
		"long multibyte": long,
		"invalid utf8":   "select \xff\xfe from t where a = '\xc3'",
		"short":          "select ?",
	}
	for name, text := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFingerprints()
			tab := f.Table("main")
			tab.Observe("d", text, time.Millisecond, false)
			reg := prometheus.NewRegistry()
			reg.MustRegister(f)
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatalf("gather: %v", err)
			}
			var label string
			for _, mf := range mfs {
				if mf.GetName() != "pisa_proxy_fingerprint_statements_total" {
					continue
				}
				for _, lp := range mf.GetMetric()[0].GetLabel() {
					if lp.GetName() == "fingerprint" {
						label = lp.GetValue()
					}
				}
			}
			if !utf8.ValidString(label) || len(label) > maxLabelLen+len("...") || label == "" {
				t.Fatalf("label %q (%d bytes)", label, len(label))
			}
			if len(text) > maxLabelLen && !strings.HasSuffix(label, "...") {
				t.Fatalf("a cut label must end with ...: %q", label)
			}
			if e := tab.entries["d"]; unsafe.StringData(e.text) == unsafe.StringData(text) {
				t.Fatal("the label must not share (pin) the caller's text")
			}
		})
	}
}

// Drop removes a listener's series from the next scrape.
func TestFingerprintDrop(t *testing.T) {
	m := New()
	m.Fingerprints.Table("gone").Observe("d1", "select 1", time.Millisecond, false)
	m.Fingerprints.Table("kept").Observe("d2", "select 2", time.Millisecond, false)
	m.Fingerprints.Drop("gone")
	m.Fingerprints.Drop("never-there")
	out, err := testutil.CollectAndFormat(m.Fingerprints, expfmt.TypeTextPlain, "pisa_proxy_fingerprint_statements_total")
	if err != nil {
		t.Fatal(err)
	}
	if text := string(out); strings.Contains(text, `domain="gone"`) || !strings.Contains(text, `domain="kept"`) {
		t.Fatalf("after Drop:\n%s", text)
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
