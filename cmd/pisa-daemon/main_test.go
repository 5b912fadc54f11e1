package main

import (
	"strings"
	"testing"
)

// --version needs no config source; without it, one is required.
func TestParseFlagsVersion(t *testing.T) {
	t.Setenv("PISA_CONTROLLER_HOST", "")
	t.Setenv("PISA_CONTROLLER_SERVICE", "")
	f, err := parseFlags([]string{"--version"})
	if err != nil || !f.version {
		t.Errorf("--version: %+v, %v", f, err)
	}
	if _, err := parseFlags(nil); err == nil || !strings.Contains(err.Error(), "no config") {
		t.Errorf("no flags: %v, want the missing config refused", err)
	}
}
