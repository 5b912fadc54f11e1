package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestVCSCommit(t *testing.T) {
	for _, c := range []struct {
		settings []debug.BuildSetting
		want     string
	}{
		{nil, ""},
		{[]debug.BuildSetting{{Key: "vcs.revision", Value: "48282d4a1b2c"}, {Key: "vcs.modified", Value: "false"}}, " (commit 48282d4)"},
		{[]debug.BuildSetting{{Key: "vcs.revision", Value: "48282d4a1b2c"}, {Key: "vcs.modified", Value: "true"}}, " (commit 48282d4, modified)"},
	} {
		if got := vcsCommit(c.settings); got != c.want {
			t.Errorf("vcsCommit(%v) = %q, want %q", c.settings, got, c.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	if got := Describe("v1", ""); !strings.HasPrefix(got, "v1") {
		t.Errorf("Describe(v1, \"\") = %q", got)
	}
	const commit = "f72e4681a2b3c4d5e6f708192a3b4c5d6e7f8091"
	if got, want := Describe("v1", commit), "v1 (commit "+commit+")"; got != want {
		t.Errorf("Describe(v1, commit) = %q, want %q", got, want)
	}
}
