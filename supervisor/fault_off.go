//go:build !faultinject

package supervisor

import (
	"pisanix.io/pisanix/actors"
	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/session"
)

// applyFault never fails in production builds.
func applyFault(config.Listener) error { return nil }

// faultHook is nil in production builds: no test hook is reachable.
func faultHook(*actors.System, *tenant) func(*session.Session, []byte) { return nil }
