package session

import (
	"context"
	"fmt"

	"github.com/go-mysql-org/go-mysql/mysql"
	"pisanix.io/pisanix/wire"
)

// kill runs KILL [QUERY] for a proxy connection id: the id is translated to
// the target session's backend thread id and the KILL runs on that node,
// on this session's own backend connection when it is the same node.
// Killing a connection also closes the target's client socket, as MySQL does.
func (s *Session) kill(id uint32, queryOnly bool) error {
	target := s.env.Registry.get(id)
	if target == nil || target.env.Tenant != s.env.Tenant {
		return s.clientError(wire.NewError(mysql.ER_NO_SUCH_THREAD, fmt.Sprintf("Unknown thread id: %d", id)))
	}
	if !s.mayKill(target) {
		return s.clientError(wire.NewError(mysql.ER_KILL_DENIED_ERROR, fmt.Sprintf("You are not owner of thread %d", id)))
	}
	be := target.active.Load()
	if be == nil {
		return s.clientError(wire.NewError(mysql.ER_NO_SUCH_THREAD, fmt.Sprintf("Unknown thread id: %d", id)))
	}
	if target == s && !queryOnly {
		s.primary.dirty = true // the backend connection dies with the session
		s.Close()
		return errQuit
	}
	verb := "KILL CONNECTION"
	if queryOnly {
		verb = "KILL QUERY"
	}
	stmt := fmt.Sprintf("%s %d", verb, be.ThreadID)
	var err error
	if be.Endpoint == s.primary.conn.Endpoint && target != s {
		err = s.primary.conn.Query(stmt)
	} else {
		err = s.killVia(be.Endpoint.Name, target, stmt)
	}
	if e, ok := err.(*wire.SQLError); ok {
		return s.clientError(e)
	}
	if err != nil {
		return err
	}
	if !queryOnly {
		target.Close()
	}
	return s.okToClient()
}

// killVia runs stmt on a connection from the pool of node, where the
// target's statement runs.
func (s *Session) killVia(node string, target *Session, stmt string) error {
	pool := target.pools()[node]
	if pool == nil {
		return wire.NewError(mysql.ER_NO_SUCH_THREAD, "Unknown thread id: its node was removed by a configuration change")
	}
	c, err := pool.Acquire(context.Background())
	if err != nil {
		return &backendError{node: pool.Endpoint(), err: err}
	}
	if err := c.Query(stmt); err != nil {
		if _, isSQL := err.(*wire.SQLError); isSQL {
			pool.Release(c)
		} else {
			pool.Discard(c)
		}
		return err
	}
	pool.Release(c)
	return nil
}

func (s *Session) okToClient() error {
	if err := s.client.WriteOK(mysql.SERVER_STATUS_AUTOCOMMIT); err != nil {
		return &wire.IOError{Side: wire.ClientSide, Err: err}
	}
	return nil
}
