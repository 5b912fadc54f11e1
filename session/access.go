package session

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"pisanix.io/pisanix/acl"
	"pisanix.io/pisanix/backend"
	"pisanix.io/pisanix/sqlinfo"
	"pisanix.io/pisanix/wire"
)

// accessUser returns the session user's rules as currently configured: a
// reload that changes them applies from the next statement.
func (s *Session) accessUser() *acl.User {
	p := s.env.Live.Load().Users
	if p != s.acl.policy {
		s.acl.policy, s.acl.user = p, p.User(s.user)
	}
	return s.acl.user
}

// aclCache is the session's user looked up in the policy it came from.
type aclCache struct {
	policy *acl.Policy
	user   *acl.User
}

// admit checks a user who just authenticated: the client address, and the
// database the client asked for (requested; a default database is not the
// client's request and is checked statement by statement instead).
func (s *Session) admit(requested string) *wire.SQLError {
	u := s.accessUser()
	addr, err := netip.ParseAddrPort(s.remote)
	if u == nil || (err == nil && !u.HostAllowed(addr.Addr())) {
		s.denied(acl.ReasonHost, sqlinfo.Access{})
		return wire.NewError(mysql.ER_ACCESS_DENIED_ERROR, fmt.Sprintf("Access denied for user '%s'@'%s' (using password: YES)", s.user, s.host))
	}
	if d := u.CheckDB(requested); d != nil {
		s.denied(d.Reason, d.Access)
		return d.SQLError(s.user, s.host)
	}
	return nil
}

// checkStatement decides a classified COM_QUERY or COM_STMT_PREPARE text
// for the session's user; nil means allowed.
func (s *Session) checkStatement(sql []byte, info *sqlinfo.Info) *acl.Denial {
	u := s.accessUser()
	if u != nil && !u.Restricted {
		return nil
	}
	if info.Unverifiable && !info.ParseError && len(sql) > sqlinfo.MaxParsed {
		full := sqlinfo.ClassifyLong(sql, s.db, s.mode)
		info = &full
	}
	if d := u.Check(info); d != nil {
		return d
	}
	if info.SetsSQLMode && info.Statements > 1 {
		// The server reads the statements after the SET in the new mode,
		// which may or may not escape backslashes: check both readings.
		alt := sqlinfo.ClassifyLong(sql, s.db, s.mode^sqlinfo.NoBackslashEscapes)
		return u.Check(&alt)
	}
	return nil
}

// deny answers a refused command with the error a MySQL server gives; the
// session goes on. info describes the refused statement (nil for
// COM_INIT_DB and COM_FIELD_LIST: then it is made from the access).
func (s *Session) deny(d *acl.Denial, more bool, info *sqlinfo.Info) error {
	if more {
		if err := s.client.DiscardRest(); err != nil {
			return &wire.IOError{Side: wire.ClientSide, Err: err}
		}
	}
	s.denied(d.Reason, d.Access)
	e := d.SQLError(s.user, s.host)
	if info == nil {
		info = &sqlinfo.Info{Kind: sqlinfo.KindShow}
		if d.Access.Op == sqlinfo.OpUse {
			info.Kind = sqlinfo.KindUse
		}
		if d.Access.Name != "" {
			info.Tables = []sqlinfo.Table{d.Access.Table}
		}
	}
	s.audit(info, s.db, time.Now(), wire.Outcome{ErrCode: e.Code}, "", d.Reason)
	return s.clientError(e)
}

// denied counts and logs a refusal.
func (s *Session) denied(reason string, a sqlinfo.Access) {
	s.env.Metrics.AccessDenied.WithLabelValues(s.env.Tenant, s.user, reason).Inc()
	s.log.Info("access denied", "user", s.user, "reason", reason, "op", a.Op.String(), "db", a.DB, "table", a.Name)
}

// checkFieldList decides COM_FIELD_LIST, which reads a table's columns.
func (s *Session) checkFieldList(payload []byte) *acl.Denial {
	u := s.accessUser()
	if u != nil && !u.Restricted {
		return nil
	}
	table := payload[1:]
	for i, c := range table {
		if c == 0 {
			table = table[:i]
			break
		}
	}
	return u.Check(&sqlinfo.Info{Access: []sqlinfo.Access{{Table: sqlinfo.Table{DB: s.db, Name: string(table)}, Op: sqlinfo.OpSelect}}})
}

// afterQuery keeps what the session knows of the backend connection's
// state true after a COM_QUERY: its database, and the SQL mode that changes
// how the next statements must be read.
func (s *Session) afterQuery(l *leg, sql []byte, info *sqlinfo.Info, out wire.Outcome) error {
	if info.Kind == sqlinfo.KindUse && info.Statements <= 1 && out.ErrCode == 0 {
		if db, ok := sqlinfo.ParseUse(sql); ok {
			s.db, l.conn.DB = db, db
			s.stats.reset()
		}
	} else if info.ChangesDB {
		// A USE among several statements may or may not have run.
		if err := s.refreshDB(l.conn); err != nil {
			return err
		}
	}
	switch {
	case out.ErrCode == 0:
		s.setMode(out.Status)
	case info.SetsSQLMode:
		// The SET may have run before the failing statement: ask.
		v, err := l.conn.QueryValue("SELECT @@SESSION.sql_mode LIKE '%NO_BACKSLASH_ESCAPES%'")
		if err != nil {
			return err
		}
		s.mode = 0
		if v == "1" {
			s.mode = sqlinfo.NoBackslashEscapes
		}
	}
	return nil
}

// refreshDB asks the backend for its current database.
func (s *Session) refreshDB(be *backend.Conn) error {
	db, err := be.QueryValue("SELECT DATABASE()")
	if err != nil {
		return err
	}
	if db != s.db {
		s.db, be.DB = db, db
		s.stats.reset()
	}
	return nil
}

// setMode follows NO_BACKSLASH_ESCAPES, which servers report in the status
// of every OK and EOF packet.
func (s *Session) setMode(status uint16) {
	s.mode = 0
	if status&mysql.SERVER_STATUS_NO_BACKSLASH_ESCAPED != 0 {
		s.mode = sqlinfo.NoBackslashEscapes
	}
}

// mayKill: a restricted user may kill only its own sessions, as a MySQL
// user without CONNECTION_ADMIN (all share the proxy's backend account).
func (s *Session) mayKill(target *Session) bool {
	if u := s.accessUser(); u != nil && !u.Restricted {
		return true
	}
	name := target.userName.Load()
	return name != nil && *name == s.user
}
