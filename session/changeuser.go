package session

import (
	"errors"

	"github.com/go-mysql-org/go-mysql/mysql"
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
	s.primary.dirty = true
	if err := s.primary.conn.Reset(); err != nil {
		return err
	}
	s.primary.dirty = false
	s.setUser(cu.User)
	if e := s.admit(cu.DB); e != nil {
		_ = s.clientError(e)
		return errQuit
	}
	s.db = cu.DB
	if s.db == "" {
		s.db = s.env.DefaultDB
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
	return s.okToClient()
}
