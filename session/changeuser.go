package session

import (
	"context"
	"crypto/tls"
	"errors"

	"github.com/go-mysql-org/go-mysql/mysql"
	"pisanix.io/pisanix/backend"
	"pisanix.io/pisanix/wire"
)

// changeUser re-authenticates on the same connection (always with an auth
// switch and a fresh salt) and gives the session a clean backend state.
// A failed COM_CHANGE_USER closes the connection, as in MySQL.
func (s *Session) changeUser(payload []byte) error {
	cu, err := wire.ParseChangeUser(payload, s.hello.Capabilities)
	if err != nil {
		_ = s.clientError(wire.NewError(mysql.ER_MALFORMED_PACKET, err.Error()))
		return errQuit
	}
	if s.primary.own {
		return s.changeUserOwn(payload, cu)
	}
	err = s.env.Auth.Authenticate(s.client, wire.Exchange{
		User: cu.User, Host: s.host, Plugin: cu.Plugin, Response: cu.AuthResponse,
		TLS: s.hello.TLS, SwitchSalt: true,
	})
	var sqlErr *wire.SQLError
	if errors.As(err, &sqlErr) {
		_ = s.clientError(sqlErr)
		return errQuit
	}
	if err != nil {
		return &wire.IOError{Side: wire.ClientSide, Err: err}
	}
	s.forgetState()
	s.setUser(cu.User)
	if e := s.admit(cu.DB); e != nil {
		_ = s.clientError(e)
		return errQuit
	}
	s.db = cu.DB
	if s.db == "" {
		s.db = s.env.DefaultDB
	}
	if err := s.resetPrimary(); err != nil {
		return err
	}
	if cu.Collation != 0 {
		s.hello.Collation = cu.Collation
	}
	s.stats.reset()
	s.log = s.log.With("user", s.user)
	if err := s.align(&s.primary); err != nil {
		var e *wire.SQLError
		if errors.As(err, &e) {
			_ = s.clientError(e)
			return errQuit
		}
		return err
	}
	if s.db == "" {
		s.db = s.primary.conn.DB
	}
	if err := s.refreshReading(s.primary.conn); err != nil {
		return err
	}
	s.status = startStatus(s.primary.conn)
	return s.okToClient()
}

// resetPrimary gives the session a clean backend connection for its new
// user: its own, reset, or, when that one has a schema and the session
// must have none (MySQL cannot unselect one), a fresh one.
func (s *Session) resetPrimary() error {
	s.primary.dirty = true
	err := s.resetConn(s.primary.conn)
	if errors.Is(err, backend.ErrSchemaStuck) {
		s.primary.give()
		return s.connectBackend(context.Background())
	}
	if err != nil {
		return err
	}
	s.primary.dirty = false
	return nil
}

// resetConn resets be for this session. A schema the connection cannot
// drop does not matter when the session has one of its own: align selects
// it next.
func (s *Session) resetConn(be *backend.Conn) error {
	err := be.Reset()
	if errors.Is(err, backend.ErrSchemaStuck) && s.db != "" {
		return nil
	}
	return err
}

// changeUserOwn forwards a COM_CHANGE_USER to the session's own backend
// connection (auth passthrough) and relays its authentication: the backend
// checks the new credentials and resets the session. The client computed
// its answer with the scramble of its greeting, which was the backend's.
// A refusal is relayed, and the backend decides what becomes of its
// connection.
func (s *Session) changeUserOwn(payload []byte, cu *wire.ChangeUser) error {
	be := s.primary.conn
	be.IO.Seq = 0
	s.primary.dirty = true
	if err := be.IO.WritePacketFlush(payload); err != nil {
		return &wire.IOError{Side: wire.BackendSide, Err: err}
	}
	_, serverTLS := be.IO.Conn().(*tls.Conn)
	r := wire.AuthRelay{Client: s.client, Server: be.IO, ClientTLS: s.hello.TLS, ServerTLS: serverTLS, Salt: be.Scramble, Keys: s.env.Auth}
	err := r.Run()
	be.Status = r.Status
	var sqlErr *wire.SQLError
	if errors.As(err, &sqlErr) {
		s.primary.dirty = false
		return s.clientError(sqlErr)
	}
	if err != nil {
		return err
	}
	s.primary.dirty = false
	s.forgetState()
	s.setUser(cu.User)
	be.DB, s.db = cu.DB, cu.DB
	if cu.Collation != 0 {
		s.hello.Collation, be.Collation = cu.Collation, cu.Collation
	}
	be.Sets, be.LastInsertID = nil, 0
	be.ForgetStmts()
	s.stats.reset()
	s.log = s.log.With("user", s.user)
	if e := s.admit(cu.DB); e != nil {
		_ = s.clientError(e)
		return errQuit
	}
	if err := s.refreshReading(be); err != nil {
		return err
	}
	s.status = startStatus(be)
	return s.okToClient()
}
