package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestCommit(t *testing.T) {
	for _, c := range []struct {
		settings []debug.BuildSetting
		want     string
	}{
		{nil, ""},
		{[]debug.BuildSetting{{Key: "vcs.revision", Value: "48282d4a1b2c"}, {Key: "vcs.modified", Value: "false"}}, " (commit 48282d4)"},
		{[]debug.BuildSetting{{Key: "vcs.revision", Value: "48282d4a1b2c"}, {Key: "vcs.modified", Value: "true"}}, " (commit 48282d4, modified)"},
	} {
		if got := commit(c.settings); got != c.want {
			t.Errorf("commit(%v) = %q, want %q", c.settings, got, c.want)
		}
	}
	if got := Describe("v1"); len(got) < 2 || got[:2] != "v1" {
		t.Errorf("Describe(v1) = %q", got)
	}
}
