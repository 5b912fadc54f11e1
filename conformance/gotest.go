package conformance

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
)

// Status is the outcome of one test.
type Status string

// Outcomes as `go test -json` reports them. A test that started but never
// reported an outcome (the binary timed out or crashed) counts as failed.
const (
	StatusPass Status = "pass"
	StatusFail Status = "fail"
	StatusSkip Status = "skip"
)

// maxOutputLines bounds the output kept per test and per package: enough to
// show why something failed, without holding a chatty test's whole log.
const maxOutputLines = 400

// noResultNote is appended to the output of a test that never finished.
const noResultNote = "(no result: the test binary ended while this test was running, e.g. a timeout or a panic)"

// TestID names one test or subtest.
type TestID struct {
	Package string // import path
	Name    string // "TestX" or "TestX/sub"
}

// TestResult is the outcome of one test or subtest.
type TestResult struct {
	ID       TestID
	Status   Status
	Elapsed  time.Duration
	Output   []string // output lines, framing lines (=== RUN, --- FAIL) included
	Finished bool     // false when the binary ended before the test reported
}

// PackageResult is a package's own outcome and the output not belonging to
// any test (build errors, panics, the final FAIL line).
type PackageResult struct {
	Package string
	Status  Status // "" when the package never reported one
	Elapsed time.Duration
	Output  []string
}

// TestRun is everything one `go test -json` invocation reported.
type TestRun struct {
	Tests    map[TestID]*TestResult
	Order    []TestID // in the order the tests started
	Packages map[string]*PackageResult
	// Stray holds lines that were not test2json events.
	Stray []string
}

// event is one line of `go test -json` (cmd/test2json), including the
// build events of Go 1.24 and later.
type event struct {
	Action     string  `json:"Action"`
	Package    string  `json:"Package"`
	Test       string  `json:"Test"`
	Elapsed    float64 `json:"Elapsed"`
	Output     string  `json:"Output"`
	ImportPath string  `json:"ImportPath"`
}

// ParseTestJSON reads the output of `go test -json` until EOF. Tests that
// started but never finished are marked failed.
func ParseTestJSON(r io.Reader) (*TestRun, error) {
	run := &TestRun{Tests: map[TestID]*TestResult{}, Packages: map[string]*PackageResult{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		var ev event
		if line[0] != '{' || json.Unmarshal(line, &ev) != nil {
			run.Stray = appendBounded(run.Stray, string(line))
			continue
		}
		run.apply(ev)
	}
	if err := sc.Err(); err != nil {
		return run, fmt.Errorf("reading go test -json output: %w", err)
	}
	run.finish()
	return run, nil
}

func (run *TestRun) pkg(path string) *PackageResult {
	p := run.Packages[path]
	if p == nil {
		p = &PackageResult{Package: path}
		run.Packages[path] = p
	}
	return p
}

func (run *TestRun) test(id TestID) *TestResult {
	t := run.Tests[id]
	if t == nil {
		t = &TestResult{ID: id}
		run.Tests[id] = t
		run.Order = append(run.Order, id)
	}
	return t
}

func (run *TestRun) apply(ev event) {
	switch ev.Action {
	case "build-output":
		p := run.pkg(buildPackage(ev.ImportPath))
		p.Output = appendBounded(p.Output, strings.TrimRight(ev.Output, "\n"))
		return
	case "build-fail":
		run.pkg(buildPackage(ev.ImportPath)).Status = StatusFail
		return
	}
	if ev.Test == "" {
		p := run.pkg(ev.Package)
		switch ev.Action {
		case "output":
			p.Output = appendBounded(p.Output, strings.TrimRight(ev.Output, "\n"))
		case "pass", "fail", "skip":
			p.Status = Status(ev.Action)
			p.Elapsed = seconds(ev.Elapsed)
		}
		return
	}
	t := run.test(TestID{Package: ev.Package, Name: ev.Test})
	switch ev.Action {
	case "output":
		t.Output = appendBounded(t.Output, strings.TrimRight(ev.Output, "\n"))
	case "pass", "fail", "skip":
		t.Status = Status(ev.Action)
		t.Elapsed = seconds(ev.Elapsed)
		t.Finished = true
	}
}

// finish fails the tests that never reported an outcome.
func (run *TestRun) finish() {
	for _, id := range run.Order {
		if t := run.Tests[id]; !t.Finished {
			t.Status = StatusFail
			t.Output = append(t.Output, noResultNote)
		}
	}
}

// buildPackage turns a build event's ImportPath ("p [p.test]") into the
// package path.
func buildPackage(importPath string) string {
	if i := strings.IndexByte(importPath, ' '); i >= 0 {
		return importPath[:i]
	}
	return importPath
}

func seconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond)
}

func appendBounded(lines []string, line string) []string {
	if len(lines) >= maxOutputLines {
		return lines
	}
	return append(lines, line)
}

// Counts are the numbers of tests per outcome.
type Counts struct {
	Pass, Fail, Skip int
}

// Total is the number of tests counted.
func (c Counts) Total() int { return c.Pass + c.Fail + c.Skip }

func (c *Counts) add(s Status) {
	switch s {
	case StatusPass:
		c.Pass++
	case StatusFail:
		c.Fail++
	case StatusSkip:
		c.Skip++
	}
}

// Count returns the outcomes of the top-level tests and of all tests
// (subtests included).
func (run *TestRun) Count() (top, all Counts) {
	for _, id := range run.Order {
		s := run.Tests[id].Status
		all.add(s)
		if !strings.Contains(id.Name, "/") {
			top.add(s)
		}
	}
	return top, all
}

// FailedPackages returns the packages that failed, in no particular order.
func (run *TestRun) FailedPackages() []*PackageResult {
	var out []*PackageResult
	for _, p := range run.Packages {
		if p.Status == StatusFail {
			out = append(out, p)
		}
	}
	return out
}

// Summary returns up to n lines saying why the test failed or skipped: its
// own output without the framing lines of the test runner, without
// testify's "Error Trace:" and "Test:" lines and without stack frames (a
// function line followed by its file:line).
func (t *TestResult) Summary(n int) []string {
	var lines []string
	for _, line := range t.Output {
		if s := strings.TrimSpace(line); s != "" {
			lines = append(lines, s)
		}
	}
	var out []string
	for i, s := range lines {
		switch {
		case isFraming(s), isFrameFile(s),
			strings.HasPrefix(s, "Error Trace:"), strings.HasPrefix(s, "Test:"),
			i+1 < len(lines) && isFrameFile(lines[i+1]):
			continue
		}
		out = append(out, s)
		if len(out) == n {
			break
		}
	}
	return out
}

// frameFile matches the file line of a stack frame: "/path/x.go:12 +0x1f".
var frameFile = regexp.MustCompile(`^\S+\.(go|s):\d+( \+0x[0-9a-f]+)?$`)

func isFrameFile(s string) bool { return frameFile.MatchString(s) }

func isFraming(s string) bool {
	for _, p := range []string{"=== RUN", "=== PAUSE", "=== CONT", "=== NAME", "--- PASS", "--- FAIL", "--- SKIP"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
