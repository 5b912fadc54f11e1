package sqlinfo

import (
	"fmt"
	"strings"
	"sync"

	"github.com/pingcap/tidb/pkg/parser"
	"github.com/pingcap/tidb/pkg/parser/ast"
	"github.com/pingcap/tidb/pkg/parser/mysql"
)

// Info is what the parser tells about one COM_QUERY text. An Info returned
// by a Cache shares its Tables slice with other callers: treat it as
// read-only.
type Info struct {
	// Kind is the kind of the first statement.
	Kind Kind
	// Throttled: the user's parse budget was spent, so the text got only
	// the lexical reading (Unverifiable).
	Throttled bool
	// ReadOnly is true when every statement only reads data and may run on
	// a replica: SELECT without locking or INTO, SHOW, EXPLAIN (without
	// ANALYZE of a write). False for anything not understood.
	ReadOnly bool
	// Locking reports a locking read: FOR UPDATE, FOR SHARE, LOCK IN SHARE MODE.
	Locking bool
	// Tables lists every table or view named, once, qualified by the
	// current database when the text leaves it out. CTE names are not tables.
	Tables []Table
	// Access lists what the text does to which table, database or server,
	// for access control (see access.go).
	Access []Access
	// Unverifiable is true when the tables the text touches cannot be
	// known: the parser rejected it, it is too long to parse here, or it
	// prepares a statement from a variable.
	Unverifiable bool
	// ChangesDB: the text has a USE statement; UseDB is the database of the
	// last one.
	ChangesDB bool
	UseDB     string
	// Kinds has bit 1<<k for every statement kind k in the text.
	Kinds uint32
	// Kills are the text's KILL statements, in order: the proxy translates
	// their ids, which are its own connection ids.
	Kills []Kill
	// SetsCharset: the text changes the client character set (SET NAMES,
	// SET CHARACTER SET, character_set_client).
	SetsCharset bool
	// ChangesState: the text may change how later text is read without
	// saying so (EXECUTE, CALL).
	ChangesState bool
	// Prepares are the SQL-level PREPARE ... FROM 'text' of the text, with
	// what their text does; Executes the names EXECUTE runs (lowercase).
	Prepares    []Prepared
	Executes    []string
	Deallocates []string // DEALLOCATE PREPARE names, lowercase
	// noCache: the Info depends on a literal the cache key does not keep
	// (a PREPARE text, a KILL id, an ENGINE name written as a string).
	noCache bool
	// SetsSQLMode: the text assigns sql_mode, which changes how the server
	// reads the statements after it in the same text.
	SetsSQLMode bool
	// SetsGlobal: the text assigns a global variable (SET GLOBAL), whose
	// new value sessions opened afterwards must see.
	SetsGlobal bool
	// SetsConnGlobal: the text assigns a global a connection takes when it
	// is opened only (max_allowed_packet, net_buffer_length): a reset
	// (COM_RESET_CONNECTION) keeps the old value.
	SetsConnGlobal bool
	// FlushesHosts: FLUSH HOSTS, which on success unblocks the addresses
	// the proxy blocked too (as it does on the server).
	FlushesHosts bool
	// Statements is the number of statements in the text (0 on ParseError).
	Statements int
	// Fingerprint is the text normalized by the TiDB digester: literals
	// replaced by '?', keywords lowercased, comments dropped.
	Fingerprint string
	// Digest is the hex SHA-256 of Fingerprint.
	Digest string
	// ParseError is true when the parser rejected the text; Kind then comes
	// from FirstKeyword and ReadOnly is false, so the statement goes to the
	// primary.
	ParseError bool
	// UsesSessionState marks statements that read or change state living
	// on the session's primary connection: user variables, LAST_INSERT_ID(),
	// FOUND_ROWS(), ROW_COUNT(), CONNECTION_ID(), named locks, LOCK/UNLOCK
	// TABLES and SQL-level prepared statements. System variables (@@x) are
	// not included: they are the session layer's business (it replays SET).
	UsesSessionState bool
	// CreatesTemporaryTable is true for CREATE TEMPORARY TABLE: later
	// statements on that table must follow it to the same connection.
	CreatesTemporaryTable bool

	// Multiplexing (see multiplex.go). Pin names state the text may leave
	// on its connection that no other connection can be given ("" for
	// none). Replay: the text is one SET whose session effect another
	// connection gets by running it again; SetVar is then the one system
	// variable it assigns a constant, if so (a later SET of it replaces
	// this one). OneShot: SET TRANSACTION without a scope, which applies to
	// the next transaction only. ReadsLastInsertID: LAST_INSERT_ID() or
	// @@identity, the session's last generated id. UnlocksTables: UNLOCK
	// TABLES, which ends a PinLockTables.
	Pin               string
	UnlocksTables     bool
	Replay            bool
	SetVar            string
	OneShot           bool
	ReadsLastInsertID bool
}

// PreparesKill reports a PREPARE whose text has a KILL.
func (i *Info) PreparesKill() bool {
	for _, p := range i.Prepares {
		if p.Kinds&(1<<KindKill) != 0 {
			return true
		}
	}
	return false
}

// Table is a table or view name.
type Table struct{ DB, Name string }

// parsers holds *parser.Parser values: a parser is not safe for concurrent
// use and costs allocations to build.
var parsers = sync.Pool{New: func() any { return parser.New() }}

// Mode holds the SQL mode bits that change how the server reads text.
type Mode uint8

// Mode bits.
const (
	// NoBackslashEscapes: a backslash in a string is an ordinary character
	// (sql_mode NO_BACKSLASH_ESCAPES; servers report it in every OK/EOF status).
	NoBackslashEscapes Mode = 1 << iota
	// ANSIQuotes: "..." quotes an identifier (sql_mode ANSI_QUOTES).
	ANSIQuotes
)

// sqlMode is the parser's SQL mode for m.
func (m Mode) sqlMode() mysql.SQLMode {
	var sm mysql.SQLMode
	if m&NoBackslashEscapes != 0 {
		sm |= mysql.ModeNoBackslashEscapes
	}
	if m&ANSIQuotes != 0 {
		sm |= mysql.ModeANSIQuotes
	}
	return sm
}

// Classify parses sql and describes it. currentDB qualifies unqualified
// table names. It always parses (µs); use a Cache on the statement path.
// The parser reads the text as MySQL's default SQL mode does ("..." is a
// string, backslash escapes); under ANSI_QUOTES a "name" is misread as a
// string, which can hide a table but not a write (Kind stays right).
func Classify(sql []byte, currentDB string) Info {
	return ClassifyMode(sql, currentDB, 0)
}

// ClassifyMode is Classify for a session in SQL mode m.
func ClassifyMode(sql []byte, currentDB string, m Mode) Info {
	if len(sql) > MaxParsed {
		return lexical(sql)
	}
	return classify(sql, currentDB, m)
}

// ClassifyLong is ClassifyMode without the MaxParsed bound: access control
// must see the tables of a long statement too.
func ClassifyLong(sql []byte, currentDB string, m Mode) Info {
	return classify(sql, currentDB, m)
}

func classify(sql []byte, currentDB string, m Mode) Info {
	// Copy: the AST and the Info keep substrings of the text, and the
	// caller's buffer is reused for the next packet.
	text := executableComments(string(sql))
	var info Info
	info.Fingerprint, info.Digest = fingerprint(text)

	p, put := parserFor(m)
	// The parser reuses its AST memory: return it only after the walk.
	defer put()
	stmts, err := parse(p, text)
	if err != nil {
		info.ParseError, info.Unverifiable = true, true
		info.Kind = FirstKeyword(sql)
		info.Pin = lexicalPin(sql)
		return info
	}
	describe(&info, stmts, currentDB, m)
	if len(info.Kills) > 0 {
		locateKills(info.Kills, stmts, text)
	}
	return info
}

// Kill is one KILL statement of a text.
type Kill struct {
	ID    uint64
	Query bool // KILL QUERY
	// Start and End delimit the id in the text (-1 when the statement
	// could not be found as a plain KILL there, e.g. inside a comment),
	// for the proxy to write the backend's thread id in its place;
	// StmtStart is where the statement begins (valid when Start is).
	Start, End, StmtStart int
}

// locateKills finds each KILL statement in text. Statements' texts follow
// each other in order, so each is searched from the end of the previous;
// a span counts only when it reads back as the same plain KILL.
func locateKills(kills []Kill, stmts []ast.StmtNode, text string) {
	cursor, k := 0, 0
	for _, st := range stmts {
		src := st.OriginalText()
		i := strings.Index(text[cursor:], src)
		if i < 0 {
			return
		}
		start := cursor + i
		cursor = start + len(src)
		if _, ok := st.(*ast.KillStmt); !ok {
			continue
		}
		if id, q, at, ok := parseKill([]byte(src)); ok && id == kills[k].ID && q == kills[k].Query {
			end := at
			for end < len(src) && isDigit(src[end]) {
				end++
			}
			kills[k].Start, kills[k].End = start+at, start+end
			kills[k].StmtStart = start + skipSpaceAndComments([]byte(src), 0)
		}
		k++
	}
}

// parserFor takes a pooled parser set to read text in mode m; put returns
// it, in the default mode.
func parserFor(m Mode) (p *parser.Parser, put func()) {
	p = parsers.Get().(*parser.Parser)
	sm := m.sqlMode()
	if sm != mysql.ModeNone { // pooled parsers are in the default mode
		p.SetSQLMode(sm)
	}
	return p, func() {
		if sm != mysql.ModeNone {
			p.SetSQLMode(mysql.ModeNone)
		}
		parsers.Put(p)
	}
}

// parse is p.ParseSQL that turns a panic of the parser into an error: no
// statement text, however odd, may end a session. A parser that panicked
// is in an unknown state; the caller's put still pools it, so it is
// replaced here by a new one.
func parse(p *parser.Parser, text string) (stmts []ast.StmtNode, err error) {
	defer func() {
		if r := recover(); r != nil {
			stmts, err = nil, fmt.Errorf("the parser failed on this text: %v", r)
			*p = *parser.New()
		}
	}()
	stmts, _, err = p.ParseSQL(text)
	return stmts, err
}

// fingerprint is the statement's normalized text and its digest. The
// parser's normalizer drops a final ';' only when nothing follows it, so a
// trailing comment (dropped too) left "select ? ;" beside "select ?" for the
// same statement: the ';' goes either way, as the classifier's cache key
// (which skips comments) already treats the two texts as one.
func fingerprint(text string) (string, string) {
	normalized, digest := parser.NormalizeDigest(text)
	if trimmed := strings.TrimRight(normalized, "; "); trimmed != normalized {
		normalized, digest = trimmed, parser.DigestNormalized(trimmed)
	}
	if digest == nil {
		return normalized, ""
	}
	return normalized, digest.String()
}

// describe fills info from parsed statements.
func describe(info *Info, stmts []ast.StmtNode, currentDB string, m Mode) {
	info.Statements = len(stmts)
	info.ReadOnly = len(stmts) > 0
	w := walker{mode: m}
	for i, stmt := range stmts {
		kind, readOnly := kindOf(stmt)
		if i == 0 {
			info.Kind = kind
		}
		w.statement(stmt, currentDB)
		// A locking read or SELECT ... INTO writes (locks, files, variables).
		info.ReadOnly = info.ReadOnly && readOnly && !w.locking && !w.into
		info.Locking = info.Locking || w.locking
		info.UsesSessionState = info.UsesSessionState || usesSession(stmt)
		info.CreatesTemporaryTable = info.CreatesTemporaryTable || createsTemporary(stmt)
		info.Kinds |= 1 << kind
		switch st := stmt.(type) {
		case *ast.UseStmt:
			// Later statements of the text run in the new database.
			currentDB = st.DBName
			info.ChangesDB, info.UseDB = true, st.DBName
		case *ast.KillStmt:
			info.Kills = append(info.Kills, Kill{ID: st.ConnectionID, Query: st.Query, Start: -1, End: -1})
		case *ast.ExecuteStmt:
			info.Executes = append(info.Executes, strings.ToLower(st.Name))
			info.ChangesState = true
		case *ast.CallStmt:
			info.ChangesState = true
		case *ast.DeallocateStmt:
			info.Deallocates = append(info.Deallocates, strings.ToLower(st.Name))
		}
	}
	info.UsesSessionState = info.UsesSessionState || w.session
	info.Access = w.access
	for _, a := range w.access {
		// A SELECT that writes (NEXTVAL, a stored function that may write,
		// LOAD_FILE and the like) is not a read a replica may serve.
		if a.Op != OpSelect && a.Op != OpUse {
			info.ReadOnly = false
		}
	}
	info.Unverifiable = w.unverifiable
	info.SetsSQLMode = w.setsMode
	info.SetsGlobal = w.setsGlobal
	info.SetsConnGlobal = w.setsConnGlobal
	info.FlushesHosts = w.flushesHosts
	info.SetsCharset = w.setsCharset
	info.Prepares = w.prepares
	for _, p := range w.prepares {
		info.Kinds |= p.Kinds // audited as what it prepares, too
	}
	info.noCache = len(w.prepares) > 0 || len(info.Kills) > 0 || w.literalDecides
	info.Tables = tablesOf(w.access)
	info.Pin, info.ReadsLastInsertID, info.UnlocksTables = w.pin, w.readsLastID, w.unlocksTables
	if len(stmts) > 0 && info.Kinds&(1<<KindSet) != 0 {
		describeSet(info, stmts[0], &w)
	}
}

// kindOf maps a statement to its Kind and whether that kind reads only.
func kindOf(stmt ast.StmtNode) (Kind, bool) {
	switch s := stmt.(type) {
	case *ast.SelectStmt, *ast.SetOprStmt:
		return KindSelect, true
	case *ast.InsertStmt:
		if s.IsReplace {
			return KindReplace, false
		}
		return KindInsert, false
	case *ast.UpdateStmt:
		return KindUpdate, false
	case *ast.DeleteStmt:
		return KindDelete, false
	case *ast.ShowStmt:
		return KindShow, true
	case *ast.ExplainStmt:
		return explainKind(s)
	case *ast.BeginStmt:
		return KindBegin, false
	case *ast.CommitStmt:
		return KindCommit, false
	case *ast.RollbackStmt:
		return KindRollback, false
	case *ast.SetStmt, *ast.SetPwdStmt, *ast.SetRoleStmt, *ast.SetDefaultRoleStmt:
		return KindSet, false
	case *ast.UseStmt:
		return KindUse, false
	case *ast.PrepareStmt:
		return KindPrepare, false
	case *ast.ExecuteStmt:
		return KindExecute, false
	case *ast.CallStmt:
		return KindCall, false
	case *ast.LoadDataStmt:
		return KindLoad, false
	case *ast.KillStmt:
		return KindKill, false
	case *ast.LockTablesStmt, *ast.UnlockTablesStmt:
		// The parser files them as DDL; MySQL (and FirstKeyword) do not.
		return KindOther, false
	case ast.DDLNode:
		return KindDDL, false
	}
	return KindOther, false
}

// explainKind: EXPLAIN and DESC show a plan or a table's columns; EXPLAIN
// ANALYZE runs the statement, so it reads only if the statement does.
func explainKind(s *ast.ExplainStmt) (Kind, bool) {
	if !s.Analyze || s.Stmt == nil {
		return KindShow, true
	}
	_, readOnly := kindOf(s.Stmt)
	return KindShow, readOnly
}

// usesSession reports statements whose effect lives on the connection.
func usesSession(stmt ast.StmtNode) bool {
	switch stmt.(type) {
	case *ast.LockTablesStmt, *ast.UnlockTablesStmt,
		*ast.PrepareStmt, *ast.ExecuteStmt, *ast.DeallocateStmt:
		return true
	}
	return false
}

func createsTemporary(stmt ast.StmtNode) bool {
	s, ok := stmt.(*ast.CreateTableStmt)
	return ok && s.TemporaryKeyword != ast.TemporaryNone
}

// sessionFuncs are functions whose result depends on the connection.
var sessionFuncs = map[string]bool{
	"last_insert_id": true, "found_rows": true, "row_count": true, "connection_id": true,
	"get_lock": true, "release_lock": true, "release_all_locks": true,
	"is_free_lock": true, "is_used_lock": true,
}

// MaxParsed bounds the statements given to the parser: a multi-megabyte
// bulk INSERT would cost milliseconds and megabytes on every execution
// (and is never cached). Longer statements get lexical() instead.
const MaxParsed = 64 << 10

// lexical is the conservative Info of a statement too long to parse: the
// first keyword's kind, not read-only (so it stays on the primary), no
// fingerprint (no fingerprint rule or fuse applies).
func lexical(sql []byte) Info {
	return Info{Kind: FirstKeyword(sql), Unverifiable: true, Pin: lexicalPin(sql)}
}
