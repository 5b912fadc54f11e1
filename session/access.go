package session

import (
	"bytes"
	"encoding/hex"
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
		was := s.acl.user
		s.acl.policy, s.acl.user = p, p.User(s.user)
		if was != nil && !was.Restricted && (s.acl.user == nil || s.acl.user.Restricted) {
			// Rules now apply to a session whose reading the proxy did not
			// follow (sql_mode, character set): read it before checking,
			// and what it prepared, read without knowing, cannot be checked.
			s.acl.unread = true
			s.unverifyPrepared()
		}
	}
	return s.acl.user
}

// unverifyPrepared marks the session's prepared statements unverifiable:
// executing them is refused (1227) and the client prepares them again.
func (s *Session) unverifyPrepared() {
	for _, info := range s.prepared {
		info.Unverifiable = true
	}
	for name, p := range s.sqlPrepared {
		p.Unverifiable = true
		s.sqlPrepared[name] = p
	}
}

// restricted reports whether the session's statements are checked.
func (s *Session) restricted() bool {
	u := s.accessUser()
	return u == nil || u.Restricted
}

// aclCache is the session's user looked up in the policy it came from.
type aclCache struct {
	policy *acl.Policy
	user   *acl.User
	unread bool // the user became restricted: refreshReading before the next check
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
	if info.Throttled {
		return &acl.Denial{Reason: acl.ReasonThrottled}
	}
	if s.acl.unread {
		s.acl.unread = false
		if err := s.refreshReading(s.primary.conn); err != nil {
			s.blind = true
		}
		if s.blind {
			return &acl.Denial{Reason: acl.ReasonUnverifiable}
		}
		// The text was read in the mode known before: read it again, for
		// the check and for what the session does after it.
		*info = sqlinfo.ClassifyLong(sql, s.db, s.mode)
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
//     [quoted] names), or while the session's state cannot be read (see
//     refreshReading), anything but a plain SET;
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
	case (s.foreignGrammar || s.blind) && !plainSet.Match(sql),
		multi && (info.SetsSQLMode || len(info.Executes) > 0),
		(s.unsafeCharset || changing) && highBackslash(sql),
		dashHighBlank(sql),
		sqlinfo.Versioned(sql) || bytes.Contains(sql, []byte("/*T!")),
		s.mode&sqlinfo.ANSIQuotes != 0 && bytes.IndexByte(sql, '\\') >= 0 && bytes.IndexByte(sql, '"') >= 0:
		return &acl.Denial{Reason: acl.ReasonUnverifiable}
	}
	return nil
}

// plainSet is what a restricted user may send while the proxy cannot read
// the session (sql_mode ORACLE or MSSQL, or a blind session): SET of
// session variables to words, numbers or simple strings, or SET NAMES;
// nothing any grammar could read as a table or a function call.
var plainSet = func() *regexp.Regexp {
	assign := `(?:(?:SESSION|LOCAL)\s+)?(?:@@(?:SESSION\.|LOCAL\.)?)?[a-z_][a-z0-9_]*\s*=\s*(?:-?[0-9]+|'[a-z0-9_,]*'|[a-z_][a-z0-9_]*)`
	names := `NAMES\s+(?:[a-z0-9_]+|'[a-z0-9_]+')`
	item := `(?:` + assign + `|` + names + `)`
	return regexp.MustCompile(`(?i)^\s*SET\s+` + item + `(?:\s*,\s*` + item + `)*\s*;?\s*$`)
}()

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
func (s *Session) checkFieldList(table string) *acl.Denial {
	u := s.accessUser()
	if u != nil && !u.Restricted {
		return nil
	}
	return u.Check(&sqlinfo.Info{Access: []sqlinfo.Access{{Table: sqlinfo.Table{DB: s.db, Name: table}, Op: sqlinfo.OpSelect}}})
}

// fieldListTable is the table a COM_FIELD_LIST payload names (before the
// NUL that ends it; a column pattern may follow).
func fieldListTable(payload []byte) string {
	table, _, _ := bytes.Cut(payload[1:], []byte{0})
	return string(table)
}

// afterQuery keeps what the session knows of the backend connection's
// state true after a COM_QUERY: its database, SQL-level prepared
// statements, and the SQL mode and character set that change how the next
// statements must be read.
func (s *Session) afterQuery(l *leg, sql []byte, info *sqlinfo.Info, out wire.Outcome) error {
	switch {
	case info.ChangesDB && info.Statements == 1 && out.ErrCode == 0:
		s.setDB(l.conn, info.UseDB)
	case info.ChangesDB || ((info.ParseError || info.Statements == 0) && info.Kind == sqlinfo.KindUse),
		// DROP DATABASE of the current one leaves none selected; with
		// multiplexing the next connection must be given the right one.
		s.env.Multiplex && info.Kind == sqlinfo.KindDDL && out.ErrCode == 0 &&
			(sqlinfo.ContainsFold(sql, "DATABASE") || sqlinfo.ContainsFold(sql, "SCHEMA")):
		// A USE among several statements may or may not have run; one the
		// parser could not read (or did not: too long) says nothing reliable.
		if err := s.refreshDB(l.conn); err != nil {
			return err
		}
	}
	s.trackPrepared(info)
	if out.ErrCode == 0 {
		s.setMode(out.Status)
	}
	if info.SetsSQLMode || info.SetsCharset || info.ChangesState || info.ParseError || s.blind && info.Kind == sqlinfo.KindSet {
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
// text now (sql_mode: NO_BACKSLASH_ESCAPES, ANSI_QUOTES, ORACLE, MSSQL;
// the client character set) and which database is current. Others are
// followed by status flags only.
//
// The client's own session variables change what such a query returns
// (sql_select_limit = 0: no row; character_set_results = utf32: other
// bytes; max_statement_time: an error). An answer that does not read right
// makes the session blind: its statements are refused (1227), except plain
// SETs, until an answer reads right again.
func (s *Session) refreshReading(be *backend.Conn) error {
	if !s.restricted() {
		return nil
	}
	st, ok, err := readState(be)
	if wire.FailedSide(err) == wire.BackendSide {
		return err
	}
	if !ok {
		s.blind = true
		s.log.Info("session state unreadable: statements refused until it reads right", "user", s.user, "err", err)
		return nil
	}
	s.blind, s.state = false, st
	s.mode = 0
	if strings.Contains(st.mode, "NO_BACKSLASH_ESCAPES") {
		s.mode |= sqlinfo.NoBackslashEscapes
	}
	if strings.Contains(st.mode, "ANSI_QUOTES") {
		s.mode |= sqlinfo.ANSIQuotes
	}
	s.foreignGrammar = strings.Contains(st.mode, "ORACLE") || strings.Contains(st.mode, "MSSQL")
	s.unsafeCharset = slices.Contains(unsafeCharsets, st.charset)
	s.setDB(be, st.db)
	return nil
}

// stateQuery reads sql_mode, the client character set and the current
// database (hex, so that no character set can alter it; "-" for none).
const stateQuery = "SELECT CONCAT(@@SESSION.sql_mode, '|', @@SESSION.character_set_client, '|', IFNULL(HEX(DATABASE()), '-'))"

type backendState struct{ mode, charset, db string }

var (
	sqlModeValue = regexp.MustCompile(`^[A-Z0-9_,]*$`)
	charsetValue = regexp.MustCompile(`^[a-z0-9_]+$`)
)

// readState asks be for stateQuery; ok is false when the answer does not
// read right (err, if any, says why).
func readState(be *backend.Conn) (st backendState, ok bool, err error) {
	v, err := be.QueryValue(stateQuery)
	if err != nil {
		return st, false, err
	}
	st, ok = parseState(v)
	return st, ok, nil
}

// parseState reads stateQuery's answer; ok is false unless every part has
// the shape it must have.
func parseState(v string) (backendState, bool) {
	parts := strings.Split(v, "|")
	if len(parts) != 3 || !sqlModeValue.MatchString(parts[0]) || !charsetValue.MatchString(parts[1]) {
		return backendState{}, false
	}
	st := backendState{mode: parts[0], charset: parts[1]}
	if parts[2] != "-" {
		db, err := hex.DecodeString(parts[2])
		if err != nil || len(db) == 0 {
			return backendState{}, false
		}
		st.db = string(db)
	}
	return st, true
}

func (s *Session) setDB(be *backend.Conn, db string) {
	if db != s.db {
		s.db, be.DB = db, db
		s.stats.reset()
	}
}

// refreshDB asks the backend for its current database: with the rest of
// the state for a restricted user (refreshReading); for others as well as
// the answer allows (an unreadable one keeps the database known so far).
func (s *Session) refreshDB(be *backend.Conn) error {
	if s.restricted() {
		return s.refreshReading(be)
	}
	db, err := be.QueryValue("SELECT DATABASE()")
	if wire.FailedSide(err) == wire.BackendSide {
		return err
	}
	if err == nil {
		s.setDB(be, db)
	}
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
