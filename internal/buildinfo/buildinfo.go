// Package buildinfo describes the running binary: the version and commit
// given at link time (-ldflags "-X main.version=... -X main.commit=...",
// as make build and make images do), else the commit Go stamped into it
// (go build records the VCS revision when it builds inside a git checkout
// without -buildvcs=false).
package buildinfo

import (
	"runtime/debug"
)

// Describe returns version followed by the commit the binary was built
// from, e.g. "f72e468 (commit f72e4681a2b3...)". commit is the one stamped
// at link time; when it is empty the revision Go recorded is used, e.g.
// "dev (commit 48282d4, modified)", and without either version alone.
func Describe(version, commit string) string {
	if commit != "" {
		return version + " (commit " + commit + ")"
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	return version + vcsCommit(info.Settings)
}

func vcsCommit(settings []debug.BuildSetting) string {
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
