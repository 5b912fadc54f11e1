package session

import (
	"bytes"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
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
	if u == nil || !u.HostAllowed(addr.Addr()) || (err != nil && u.HasHosts()) {
		reason := acl.ReasonHost
		if u == nil {
			reason = acl.ReasonRemoved
		}
		s.denied(reason, sqlinfo.Access{})
		return wire.NewError(mysql.ER_ACCESS_DENIED_ERROR, fmt.Sprintf("Access denied for user '%s'@'%s' (using password: YES)", s.user, s.host))
	}
	if d := u.CheckDB(requested); d != nil {
		s.denied(d.Reason, d.Access)
		return d.SQLError(s.user, s.host)
	}
	return nil
}

// checkStatement decides a classified COM_QUERY or COM_STMT_PREPARE text
// for the session's user; nil means allowed. more: the command continues
// in further packets (over 16 MiB), which a check cannot see.
func (s *Session) checkStatement(sql []byte, info *sqlinfo.Info, more bool) *acl.Denial {
	u := s.accessUser()
	if u != nil && !u.Restricted {
		return nil
	}
	if more {
		return &acl.Denial{Reason: acl.ReasonUnverifiable}
	}
	if info.Unverifiable && !info.ParseError && len(sql) > sqlinfo.MaxParsed {
		full := sqlinfo.ClassifyLong(sql, s.db, s.mode)
		info = &full
	}
	if d := u.Check(info); d != nil {
		return d
	}
	if d := s.checkExecutes(u, info); d != nil {
		return d
	}
	return s.checkReadings(sql, info)
}

// checkExecutes checks what SQL-level EXECUTE runs, under the current rules:
// a name prepared earlier in this session, or in this same text.
func (s *Session) checkExecutes(u *acl.User, info *sqlinfo.Info) *acl.Denial {
next:
	for _, name := range info.Executes {
		for _, p := range info.Prepares {
			if p.Name == name {
				continue next // checked with the text
			}
		}
		p, ok := s.sqlPrepared[name]
		if !ok {
			return &acl.Denial{Reason: acl.ReasonUnverifiable}
		}
		if d := u.Check(&sqlinfo.Info{Access: p.Access, Unverifiable: p.Unverifiable}); d != nil {
			return d
		}
	}
	return nil
}

// unsafeCharsets are client character sets in which a multi-byte character
// may end in 0x5C, the backslash: the parser (reading UTF-8) would take it
// for an escape that the server does not see.
var unsafeCharsets = []string{"big5", "cp932", "gbk", "sjis", "gb18030"}

// checkReadings: the server may read the text otherwise than the parser
// did. Where the parser cannot copy the server's reading, the text is
// unverifiable for a restricted user:
//   - while sql_mode is ORACLE or MSSQL (another grammar: `seq.nextval`,
//     [quoted] names), anything but leaving that mode;
//   - a text that may change sql_mode midway (SET sql_mode, EXECUTE),
//     before statements after it;
//   - versioned and TiDB comments, which servers skip in ways the parser
//     cannot copy (a nested comment inside a skipped one, six-digit
//     versions, /*T! read as code);
//   - under ANSI_QUOTES, `\` with `"` (the parser reads \" in a quoted name
//     as an escape; MariaDB does not);
//   - byte sequences whose reading depends on the client character set.
func (s *Session) checkReadings(sql []byte, info *sqlinfo.Info) *acl.Denial {
	multi := info.Statements > 1
	changing := multi && (info.SetsCharset || info.ChangesState)
	switch {
	case s.foreignGrammar && !leavesForeignGrammar.Match(sql),
		multi && (info.SetsSQLMode || len(info.Executes) > 0),
		(s.unsafeCharset || changing) && highBackslash(sql),
		dashHighBlank(sql),
		sqlinfo.Versioned(sql) || bytes.Contains(sql, []byte("/*T!")),
		s.mode&sqlinfo.ANSIQuotes != 0 && bytes.IndexByte(sql, '\\') >= 0 && bytes.IndexByte(sql, '"') >= 0:
		return &acl.Denial{Reason: acl.ReasonUnverifiable}
	}
	return nil
}

// leavesForeignGrammar is the one statement a restricted user may send
// while sql_mode is ORACLE or MSSQL: one that sets sql_mode to a literal.
var leavesForeignGrammar = regexp.MustCompile(`(?i)^\s*SET\s+(SESSION\s+|@@SESSION\.|@@)?sql_mode\s*=\s*(DEFAULT|'[A-Z_,]*')\s*;?\s*$`)

// highBackslash reports a byte >= 0x80 followed by a backslash or a
// backtick, which a multi-byte character set may take as its second byte.
func highBackslash(sql []byte) bool {
	for i := 1; i < len(sql); i++ {
		if (sql[i] == '\\' || sql[i] == '`') && sql[i-1] >= 0x80 {
			return true
		}
	}
	return false
}

// dashHighBlank reports "--" followed by byte 0x85 or 0xA0: the parser
// takes either for a blank, so the rest of the line for a comment, where
// MariaDB, under character sets in which it is a letter (cp850, macroman,
// ...), reads on.
func dashHighBlank(sql []byte) bool {
	for i := 2; i < len(sql); i++ {
		if (sql[i] == 0x85 || sql[i] == 0xa0) && sql[i-1] == '-' && sql[i-2] == '-' {
			return true
		}
	}
	return false
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
// state true after a COM_QUERY: its database, SQL-level prepared
// statements, and the SQL mode and character set that change how the next
// statements must be read.
func (s *Session) afterQuery(l *leg, sql []byte, info *sqlinfo.Info, out wire.Outcome) error {
	switch {
	case info.ChangesDB && info.Statements == 1 && out.ErrCode == 0:
		s.setDB(l.conn, info.UseDB)
	case info.ChangesDB || (info.ParseError && info.Kind == sqlinfo.KindUse):
		// A USE among several statements may or may not have run; one the
		// parser could not read says nothing reliable.
		if err := s.refreshDB(l.conn); err != nil {
			return err
		}
	}
	s.trackPrepared(info)
	if out.ErrCode == 0 {
		s.setMode(out.Status)
	}
	if info.SetsSQLMode || info.SetsCharset || info.ChangesState || info.ParseError {
		return s.refreshReading(l.conn)
	}
	return nil
}

// trackPrepared keeps the SQL-level prepared statements the backend may
// hold, for EXECUTE to be checked against. A name not kept (over
// maxPrepared, or gone by DEALLOCATE) makes its EXECUTE unverifiable. A
// PREPARE that failed is kept too: the server dropped the old statement, so
// the new text is the only one an EXECUTE could run.
func (s *Session) trackPrepared(info *sqlinfo.Info) {
	for _, p := range info.Prepares {
		if s.sqlPrepared == nil {
			s.sqlPrepared = map[string]sqlinfo.Prepared{}
		}
		if _, ok := s.sqlPrepared[p.Name]; ok || len(s.sqlPrepared) < maxPrepared {
			s.sqlPrepared[p.Name] = p
		}
	}
	for _, name := range info.Deallocates {
		delete(s.sqlPrepared, name)
	}
}

// refreshReading asks the backend, for a restricted user, how it reads
// text now: sql_mode (NO_BACKSLASH_ESCAPES, ANSI_QUOTES) and the client
// character set. Others are followed by status flags only.
func (s *Session) refreshReading(be *backend.Conn) error {
	if u := s.accessUser(); u != nil && !u.Restricted {
		return nil
	}
	v, err := be.QueryValue("SELECT CONCAT(@@SESSION.sql_mode, '|', @@SESSION.character_set_client)")
	if err != nil {
		return err
	}
	mode, charset, _ := strings.Cut(v, "|")
	s.mode = 0
	if strings.Contains(mode, "NO_BACKSLASH_ESCAPES") {
		s.mode |= sqlinfo.NoBackslashEscapes
	}
	if strings.Contains(mode, "ANSI_QUOTES") {
		s.mode |= sqlinfo.ANSIQuotes
	}
	s.foreignGrammar = strings.Contains(mode, "ORACLE") || strings.Contains(mode, "MSSQL")
	s.unsafeCharset = slices.Contains(unsafeCharsets, charset)
	return nil
}

func (s *Session) setDB(be *backend.Conn, db string) {
	if db != s.db {
		s.db, be.DB = db, db
		s.stats.reset()
	}
}

// refreshDB asks the backend for its current database.
func (s *Session) refreshDB(be *backend.Conn) error {
	db, err := be.QueryValue("SELECT DATABASE()")
	if err != nil {
		return err
	}
	s.setDB(be, db)
	return nil
}

// setMode follows NO_BACKSLASH_ESCAPES, which servers report in the status
// of every OK and EOF packet.
func (s *Session) setMode(status uint16) {
	s.mode &^= sqlinfo.NoBackslashEscapes
	if status&mysql.SERVER_STATUS_NO_BACKSLASH_ESCAPED != 0 {
		s.mode |= sqlinfo.NoBackslashEscapes
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
