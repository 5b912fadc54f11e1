//go:build faultinject

package supervisor

import (
	"bytes"
	"errors"
	"strings"

	"pisanix.io/pisanix/config"

	"pisanix.io/pisanix/actors"
	"pisanix.io/pisanix/session"
)

// applyFault fails a tenant's apply of a listener whose server_version ends
// in "-fail-apply": an apply error that validation cannot foresee.
func applyFault(l config.Listener) error {
	if strings.HasSuffix(l.ServerVersion, "-fail-apply") {
		return errors.New("injected apply failure")
	}
	return nil
}

// faultHook lets tests inject failures through SQL comments (builds tagged
// faultinject only):
//
//	/* pisa:panic-session */   panics in this session's goroutine
//	/* pisa:panic-listener */  panics this tenant's listener actor
//	/* pisa:panic-balancer */  panics this tenant's balancer actor
//	/* pisa:panic-tenant */    panics this tenant's supervisor actor
func faultHook(sys *actors.System, t *tenant) func(*session.Session, []byte) {
	return func(s *session.Session, sql []byte) {
		switch {
		case bytes.Contains(sql, []byte("pisa:panic-session")):
			panic("injected session panic")
		case bytes.Contains(sql, []byte("pisa:panic-listener")):
			sys.Root.Send(t.l.pid.Load(), &actors.InjectedPanic{Reason: "listener"})
		case bytes.Contains(sql, []byte("pisa:panic-tenant")):
			sys.Root.Send(t.pid.Load(), &actors.InjectedPanic{Reason: "tenant"})
		case bytes.Contains(sql, []byte("pisa:panic-balancer")):
			if env := t.l.env.Load(); env != nil {
				sys.Root.Send(env.Balancer.PID(), &actors.InjectedPanic{Reason: "balancer"})
			}
		}
	}
}
