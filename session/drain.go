package session

import (
	"context"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"pisanix.io/pisanix/wire"
)

// Phases of a session's goroutine, for a drain run from another goroutine:
// only a session waiting for a command may be closed under it.
const (
	phaseBusy   int32 = iota // logging in, or running a command
	phaseIdle                // waiting for the client's next command
	phaseClosed              // closed by a drain or shutdown while idle
)

// errShutdown is what a client gets when the proxy stops before its
// transaction ended.
func errShutdown() *wire.SQLError {
	e := wire.NewError(mysql.ER_SERVER_SHUTDOWN, "Server shutdown in progress (pisa-proxy is stopping)")
	e.State = "08S01"
	return e
}

// Drain asks the session to end at its next transaction boundary: at once
// when it waits for a command outside a transaction, else after the
// command or transaction in progress.
func (s *Session) Drain() {
	s.draining.Store(true)
	if !s.inTx.Load() && s.phase.CompareAndSwap(phaseIdle, phaseClosed) {
		_ = s.conn.Close()
	}
}

// Shutdown ends the session now, for a drain whose deadline passed: a
// session waiting for a command is told why (an unsolicited ERR packet, as
// MySQL 8 sends on a timeout), one in the middle of a command has its
// backend interrupted and gets that error as the command's answer.
func (s *Session) Shutdown() {
	s.shutdown.Store(true)
	if s.phase.CompareAndSwap(phaseIdle, phaseClosed) {
		_ = s.conn.SetWriteDeadline(time.Now().Add(time.Second))
		s.client.Seq = 0
		_ = s.client.WriteError(errShutdown())
		_ = s.conn.Close()
		return
	}
	s.interruptBackend()
	// A client that stopped reading cannot hold the shutdown up.
	_ = s.conn.SetDeadline(time.Now().Add(time.Second))
}

// waitCommand marks the session idle; it reports false when a drain or
// shutdown closed it meanwhile or the session should end here (draining,
// outside a transaction).
func (s *Session) waitCommand() bool {
	if s.shutdown.Load() || s.draining.Load() && !s.inTx.Load() {
		return false
	}
	s.phase.Store(phaseIdle)
	// A drain that started just before the store saw the session busy:
	// this goroutine or the drain closes the session, whichever is first.
	if s.draining.Load() && !s.inTx.Load() {
		s.phase.CompareAndSwap(phaseIdle, phaseClosed)
		return false
	}
	return true
}

// startCommand marks the session busy; false when a drain closed it while
// the command arrived (the client sees the connection closed).
func (s *Session) startCommand() bool {
	if !s.phase.CompareAndSwap(phaseIdle, phaseBusy) {
		return false
	}
	s.commands.Add(1)
	return true
}

// Drain asks every session to end at its next transaction boundary; a
// session that finishes its login afterwards is drained as it registers.
func (r *Registry) Drain() {
	r.draining.Store(true)
	for _, s := range r.sessions() {
		s.Drain()
	}
}

// Shutdown ends every session now.
func (r *Registry) Shutdown() {
	for _, s := range r.sessions() {
		s.Shutdown()
	}
}

// WaitEmpty waits until no session is left or ctx ends.
func (r *Registry) WaitEmpty(ctx context.Context) error {
	for {
		r.mu.RLock()
		n, changed := len(r.m), r.changed
		r.mu.RUnlock()
		if n == 0 {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (r *Registry) sessions() []*Session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*Session, 0, len(r.m))
	for _, s := range r.m {
		out = append(out, s)
	}
	return out
}
