//go:build !faultinject

package supervisor

import (
	"pisanix.io/pisanix/actors"
	"pisanix.io/pisanix/session"
)

// faultHook is nil in production builds: no test hook is reachable.
func faultHook(*actors.System, *tenant) func(*session.Session, []byte) { return nil }
