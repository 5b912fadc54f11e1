package conformance

import (
	"slices"
	"strings"
	"testing"

	"pisanix.io/pisanix/config"
)

const pkg = "example.com/m"

// events builds `go test -json` lines for pkg.
func events(lines ...string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(`{"Package":"` + pkg + `",` + l + "}\n")
	}
	return b.String()
}

func parse(t *testing.T, s string) *TestRun {
	t.Helper()
	run, err := ParseTestJSON(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func TestParseTestJSON(t *testing.T) {
	in := `{"ImportPath":"example.com/m [example.com/m.test]","Action":"build-output","Output":"# warning\n"}` + "\n" +
		"go: downloading something\n" +
		events(
			`"Action":"start"`,
			`"Action":"run","Test":"TestA"`,
			`"Action":"output","Test":"TestA","Output":"=== RUN   TestA\n"`,
			`"Action":"run","Test":"TestA/sub"`,
			`"Action":"output","Test":"TestA/sub","Output":"    a_test.go:10: boom\n"`,
			`"Action":"fail","Test":"TestA/sub","Elapsed":0.5`,
			`"Action":"fail","Test":"TestA","Elapsed":0.6`,
			`"Action":"run","Test":"TestB"`,
			`"Action":"skip","Test":"TestB"`,
			`"Action":"run","Test":"TestC"`,
			`"Action":"pass","Test":"TestC"`,
			`"Action":"run","Test":"TestHang"`,
			`"Action":"output","Output":"panic: test timed out after 1s\n"`,
			`"Action":"fail","Elapsed":1`,
		)
	run := parse(t, in)
	top, all := run.Count()
	if want := (Counts{Pass: 1, Fail: 2, Skip: 1}); top != want {
		t.Errorf("top = %+v, want %+v", top, want)
	}
	if want := (Counts{Pass: 1, Fail: 3, Skip: 1}); all != want {
		t.Errorf("all = %+v, want %+v", all, want)
	}
	hang := run.Tests[TestID{pkg, "TestHang"}]
	if hang.Status != StatusFail || hang.Finished {
		t.Errorf("TestHang = %+v, want an unfinished failure", hang)
	}
	if got := run.Tests[TestID{pkg, "TestA/sub"}].Summary(5); !slices.Equal(got, []string{"a_test.go:10: boom"}) {
		t.Errorf("summary = %q", got)
	}
	p := run.Packages[pkg]
	if p.Status != StatusFail || !slices.Contains(p.Output, "# warning") || !slices.Contains(p.Output, "panic: test timed out after 1s") {
		t.Errorf("package = %+v", p)
	}
	if !slices.Equal(run.Stray, []string{"go: downloading something"}) {
		t.Errorf("stray = %q", run.Stray)
	}
}

func TestSummaryDropsStackFrames(t *testing.T) {
	r := &TestResult{Output: []string{
		"=== RUN   TestX",
		"    x_test.go:101: ",
		"        \tError Trace:\t/tmp/x_test.go:101",
		"        \tError:      \tReceived unexpected error:",
		"        \t            \tzlib: invalid header",
		"        \t            \tgithub.com/pingcap/errors.Trace",
		"        \t            \t\t/root/go/pkg/mod/github.com/pingcap/errors/juju_adaptor.go:15",
		"        \t            \truntime.goexit",
		"        \t            \t\t/usr/local/go/src/runtime/asm_amd64.s:1771",
		"        \tTest:       \tTestX",
		"--- FAIL: TestX (0.00s)",
	}}
	want := []string{"x_test.go:101:", "Error:      \tReceived unexpected error:", "zlib: invalid header"}
	if got := r.Summary(10); !slices.Equal(got, want) {
		t.Errorf("Summary = %q, want %q", got, want)
	}
}

func TestCompare(t *testing.T) {
	direct := parse(t, events(
		`"Action":"run","Test":"TestA"`, `"Action":"run","Test":"TestA/x"`, `"Action":"pass","Test":"TestA/x"`,
		`"Action":"run","Test":"TestA/y"`, `"Action":"pass","Test":"TestA/y"`, `"Action":"pass","Test":"TestA"`,
		`"Action":"run","Test":"TestB"`, `"Action":"pass","Test":"TestB"`,
		`"Action":"run","Test":"TestC"`, `"Action":"run","Test":"TestC/z"`, `"Action":"pass","Test":"TestC/z"`, `"Action":"pass","Test":"TestC"`,
		`"Action":"run","Test":"TestD"`, `"Action":"fail","Test":"TestD"`,
		`"Action":"run","Test":"TestE"`, `"Action":"pass","Test":"TestE"`,
	))
	proxy := parse(t, events(
		`"Action":"run","Test":"TestA"`, `"Action":"run","Test":"TestA/x"`, `"Action":"fail","Test":"TestA/x"`,
		`"Action":"run","Test":"TestA/y"`, `"Action":"pass","Test":"TestA/y"`, `"Action":"fail","Test":"TestA"`,
		`"Action":"run","Test":"TestB"`, `"Action":"fail","Test":"TestB"`,
		`"Action":"run","Test":"TestD"`, `"Action":"pass","Test":"TestD"`,
		`"Action":"run","Test":"TestE"`, `"Action":"skip","Test":"TestE"`,
	))
	c := Compare(direct, proxy)
	names := func(ds []Difference) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.ID.Name)
		}
		return out
	}
	for _, tc := range []struct {
		what string
		got  []Difference
		want []string
	}{
		{"regressions", c.Regressions, []string{"TestA/x", "TestB"}},
		{"missing", c.Missing, []string{"TestC"}},
		{"skipped", c.Skipped, []string{"TestE"}},
		{"fixed", c.Fixed, []string{"TestD"}},
		{"direct failures", c.DirectFailures, []string{"TestD"}},
	} {
		if got := names(tc.got); !slices.Equal(got, tc.want) {
			t.Errorf("%s = %q, want %q", tc.what, got, tc.want)
		}
	}
}

func TestProxyConfigParses(t *testing.T) {
	c := ProxyConfig{
		Backend:  Target{Host: "127.0.0.1", Port: 3306, User: "gotest", Password: "secret"},
		DB:       "gotest",
		PoolSize: 32, ListenPort: 13306, AdminPort: 15591,
		TLSCert: "/tmp/cert.pem", TLSKey: "/tmp/key.pem", BackendCA: "/tmp/ca.pem",
	}
	cfg, err := config.ParseTOML([]byte(c.TOML()), "conformance.toml")
	if err != nil {
		t.Fatalf("%v\n%s", err, c.TOML())
	}
	l := cfg.Proxy.Config[0]
	if l.User != "gotest" || l.PoolSize != 32 || l.ListenAddr != "127.0.0.1:13306" || l.TLS == nil || l.TLS.Cert != "/tmp/cert.pem" {
		t.Errorf("listener = %+v", l)
	}
	if n := cfg.MySQL.Node[0]; n.Port != 3306 || n.User != "gotest" || n.TLS != "required" || n.TLSCA != "/tmp/ca.pem" {
		t.Errorf("node = %+v", n)
	}
}

func TestSelectSuites(t *testing.T) {
	s, err := SelectSuites([]string{"go-mysql", " go-sql-driver"})
	if err != nil || len(s) != 2 || s[0].Name != "go-mysql" {
		t.Fatalf("SelectSuites = %v, %v", s, err)
	}
	if _, err := SelectSuites([]string{"nope"}); err == nil {
		t.Error("unknown suite accepted")
	}
}
