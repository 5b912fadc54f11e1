// Package buildinfo describes the running binary: the version given at
// link time and the commit Go stamped into it (go build records the VCS
// revision when it builds inside a git checkout).
package buildinfo

import (
	"runtime/debug"
)

// Describe returns version, followed by the commit the binary was built
// from when Go recorded one, e.g. "dev (commit 48282d4, modified)".
func Describe(version string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	return version + commit(info.Settings)
}

func commit(settings []debug.BuildSetting) string {
	var rev string
	modified := false
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return ""
	}
	if len(rev) > 7 {
		rev = rev[:7]
	}
	if modified {
		return " (commit " + rev + ", modified)"
	}
	return " (commit " + rev + ")"
}
