package session

import (
	"fmt"
	"sync"

	"pisanix.io/pisanix/wire"
)

// A client that disconnects while its statement runs leaves the statement
// running on the backend: the server notices only when it writes the
// result, which for a long statement (a report, a SLEEP, a lock wait) is
// work done for nobody, holding locks and a connection meanwhile. A sweep
// looks at the sockets of sessions busy with the same command since the
// previous sweep, and KILLs the query of those whose client is gone.

// goneSweep is the sweep's memory: the command each busy session ran at
// the previous sweep.
type goneSweep struct {
	mu   sync.Mutex
	busy map[*Session]uint32
}

// SweepClients runs one sweep (the root actor ticks it). Statements that
// started since the previous sweep are left alone, so short statements
// cost nothing but a counter. Idle sessions whose backend connection the
// server closed are closed too (sweepIdle).
func (r *Registry) SweepClients() {
	r.gone.mu.Lock()
	defer r.gone.mu.Unlock()
	next := make(map[*Session]uint32, len(r.gone.busy))
	for _, s := range r.sessions() {
		if s.phase.Load() == phaseIdle {
			s.sweepIdle()
			continue
		}
		if s.phase.Load() != phaseBusy || s.clientLost.Load() {
			continue
		}
		cmd := s.commands.Load()
		if prev, seen := r.gone.busy[s]; seen && prev == cmd && wire.Peek(s.conn.(*wire.TimeoutConn).Conn) == wire.PeerClosed {
			s.clientLost.Store(true)
			go s.clientGone(cmd)
			continue
		}
		next[s] = cmd
	}
	r.gone.busy = next
}

// sweepIdle closes an idle session whose backend connection the server
// closed (its wait_timeout, a KILL, a restart): a direct client's
// connection would be closed, and a driver that checks its idle
// connections before use (go-sql-driver) then takes a new one instead of
// failing its next statement. The command counter, read before the peek
// and checked after, tells a reply to a command that started meanwhile
// from a message sent unasked.
func (s *Session) sweepIdle() {
	cmd := s.commands.Load()
	be := s.active.Load()
	if be == nil || !be.PeerGone() || s.commands.Load() != cmd || !s.phase.CompareAndSwap(phaseIdle, phaseClosed) {
		return
	}
	s.log.Info("the server closed the backend connection of an idle session (wait_timeout, KILL, restart): closing the client's, as the server would", "node", be.Endpoint.Name, "thread", be.ThreadID)
	_ = s.conn.Close()
}

// clientGone KILLs the query of command cmd on its backend connection (on
// a side connection of the same node) and closes the client socket, so the
// session ends when the interrupted statement returns. The connection is
// read under legsMu and only while cmd still runs: a multiplexing session
// cannot park it meanwhile, where another session's statement would be
// killed instead. If the KILL fails the backend read is interrupted, which
// discards the connection.
func (s *Session) clientGone(cmd uint32) {
	// Its own goroutine, outside the session actor: a panic here must not
	// take the process down.
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("client gone during a statement: the kill failed", "panic", fmt.Sprint(r))
			s.Close()
		}
	}()
	err := s.killGoneQuery(cmd)
	if err != nil {
		s.log.Warn("client gone during a statement: KILL QUERY failed, dropping the backend connection", "err", err)
		s.Close()
		return
	}
	_ = s.conn.Close()
}

// killGoneQuery runs the KILL QUERY for clientGone under legsMu.
func (s *Session) killGoneQuery(cmd uint32) error {
	s.legsMu.Lock()
	defer s.legsMu.Unlock()
	be := s.active.Load()
	if be == nil || s.commands.Load() != cmd || s.phase.Load() != phaseBusy {
		return nil // the command ended meanwhile
	}
	s.log.Info("client gone during a statement: killing it on the backend", "node", be.Endpoint.Name, "thread", be.ThreadID)
	if err := s.killVia(be.Endpoint.Name, s, fmt.Sprintf("KILL QUERY %d", be.ThreadID)); err != nil {
		return err
	}
	s.env.Metrics.BackendKills.WithLabelValues(s.env.Tenant, "client_gone").Inc()
	return nil
}
