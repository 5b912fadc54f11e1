package sqlinfo

import (
	"strings"

	"github.com/pingcap/tidb/pkg/parser/ast"
)

// What a text means for multiplexing: whether the connection it runs on
// keeps state that no other connection can be given (a pin), or only state
// the session layer can give another connection by replaying a SET.

// Pin reasons (Info.Pin), also the values of the pinned-sessions metric.
const (
	PinTemporaryTable = "temporary_table"
	PinLockTables     = "lock_tables"
	PinNamedLock      = "named_lock"
	PinUserVariable   = "user_variable" // assigned by a statement other than SET
	PinConnectionID   = "connection_id"
	PinLastInsertID   = "last_insert_id" // LAST_INSERT_ID(expr) sets it
	PinSequence       = "sequence"       // LASTVAL: the session's last NEXTVAL
	PinCall           = "call"           // a procedure may leave any state
	PinSet            = "set"            // a SET that cannot be replayed as it ran
	PinUnparsed       = "unparsed"       // the parser did not read the text
)

// volatileFuncs return another value when run again, or read the previous
// statement: a SET calling one cannot be replayed on another connection.
var volatileFuncs = map[string]bool{
	"now": true, "sysdate": true, "curdate": true, "curtime": true, "current_date": true,
	"current_time": true, "current_timestamp": true, "localtime": true, "localtimestamp": true,
	"utc_date": true, "utc_time": true, "utc_timestamp": true, "unix_timestamp": true,
	"rand": true, "uuid": true, "uuid_short": true, "sys_guid": true, "sleep": true, "benchmark": true,
	"last_insert_id": true, "found_rows": true, "row_count": true, "connection_id": true,
	"nextval": true, "lastval": true, "setval": true, "load_file": true,
	"get_lock": true, "release_lock": true, "release_all_locks": true, "is_used_lock": true, "is_free_lock": true,
}

// multiplexNode notes, during the walk, what a node means for multiplexing.
func (w *walker) multiplexNode(n ast.Node) {
	switch n := n.(type) {
	case *ast.VariableExpr:
		if !n.IsSystem && n.Value != nil {
			w.pinFor(PinUserVariable) // SELECT @a := ...
		}
		if n.IsSystem && (strings.EqualFold(n.Name, "identity") || strings.EqualFold(n.Name, "last_insert_id")) {
			w.readsLastID = true
		}
		w.readsVariable = true
	case *ast.FuncCallExpr:
		w.multiplexFunc(n)
	case *ast.LockTablesStmt:
		w.pinFor(PinLockTables)
	case *ast.UnlockTablesStmt:
		w.unlocksTables = true
	case *ast.FlushStmt:
		if n.ReadLock {
			w.pinFor(PinLockTables)
		}
		w.flushesHosts = w.flushesHosts || n.Tp == ast.FlushHosts
	case *ast.CallStmt:
		w.pinFor(PinCall)
	case *ast.CreateTableStmt:
		if n.TemporaryKeyword != ast.TemporaryNone {
			w.pinFor(PinTemporaryTable)
		}
	case *ast.SelectStmt:
		if n.SelectIntoOpt != nil && n.SelectIntoOpt.Tp == ast.SelectIntoVars {
			w.pinFor(PinUserVariable)
		}
	}
}

func (w *walker) multiplexFunc(n *ast.FuncCallExpr) {
	name := n.FnName.L
	switch {
	case n.Schema.L != "" || !isBuiltinFunc(name):
		w.volatile = true // a stored function: anything
	case volatileFuncs[name]:
		w.volatile = true
	}
	switch name {
	case "connection_id":
		w.pinFor(PinConnectionID)
	case "get_lock", "release_lock", "release_all_locks":
		w.pinFor(PinNamedLock)
	case "lastval":
		w.pinFor(PinSequence)
	case "last_insert_id":
		if len(n.Args) > 0 {
			w.pinFor(PinLastInsertID)
		} else {
			w.readsLastID = true
		}
	}
}

func (w *walker) pinFor(reason string) {
	if w.pin == "" {
		w.pin = reason
	}
}

// describeSet fills the multiplexing fields of a text that is one SET.
func describeSet(info *Info, stmt ast.StmtNode, w *walker) {
	st, ok := stmt.(*ast.SetStmt)
	switch {
	case info.Pin != "":
		return
	case info.Statements != 1:
		info.Pin = PinSet // a SET among other statements: replayed alone it could read otherwise
		return
	case !ok:
		if _, pwd := stmt.(*ast.SetPwdStmt); !pwd {
			info.Pin = PinSet // SET ROLE and the like
		}
		return
	}
	text := stmt.Text()
	global, session, oneShot := 0, 0, false
	for _, v := range st.Variables {
		switch {
		case v.IsGlobal || v.IsInstance:
			global++
		case v.Name == "tx_isolation_one_shot" || v.Name == "tx_read_only" && !containsFoldString(text, "SESSION"):
			oneShot = true
		default:
			session++
		}
	}
	switch {
	case oneShot && global == 0 && session == 0:
		info.OneShot = true
	case session == 0 && !oneShot:
		// SET GLOBAL only: no state of this session.
	case global > 0 || oneShot || w.volatile || readsConnVariable(st) || len(info.Access) > 0 || info.Unverifiable:
		info.Pin = PinSet
	default:
		info.Replay = true
		if len(st.Variables) == 1 && st.Variables[0].IsSystem && !w.readsVariable && constantValue(st.Variables[0].Value) {
			info.SetVar = strings.ToLower(st.Variables[0].Name)
		}
	}
}

// readsConnVariable: a SET's value reads a variable a connection takes
// when it is opened and keeps through a reset (max_allowed_packet,
// net_buffer_length), so that connections opened at different times hold
// different values: replayed on another one it could read another value
// (SET @save = @@max_allowed_packet read 2048 on a connection opened while
// a test had the global at 2048). Other @@variables are the session's own
// or the globals of every reset connection alike, and replay in order.
func readsConnVariable(st *ast.SetStmt) bool {
	for _, v := range st.Variables {
		if v.Value != nil {
			var f connVarFinder
			v.Value.Accept(&f)
			if f.found {
				return true
			}
		}
	}
	return false
}

// connVarFinder looks for @@max_allowed_packet or @@net_buffer_length.
type connVarFinder struct{ found bool }

func (f *connVarFinder) Enter(n ast.Node) (ast.Node, bool) {
	if v, ok := n.(*ast.VariableExpr); ok && v.IsSystem && ConnVariable(v.Name) {
		f.found = true
	}
	return n, f.found
}

func (f *connVarFinder) Leave(n ast.Node) (ast.Node, bool) { return n, true }

// ConnVariable reports whether a system variable is one a connection
// takes when it is opened only: COM_RESET_CONNECTION keeps its value.
func ConnVariable(name string) bool {
	return strings.EqualFold(name, "max_allowed_packet") || strings.EqualFold(name, "net_buffer_length")
}

// constantValue: a SET value that is a literal, a keyword (ON, DEFAULT) or
// a negated literal: the same on any connection, and reading no variable.
func constantValue(e ast.ExprNode) bool {
	switch e := e.(type) {
	case ast.ValueExpr, *ast.ColumnNameExpr, *ast.DefaultExpr:
		return true
	case *ast.UnaryOperationExpr:
		return constantValue(e.V)
	}
	return false
}

func containsFoldString(s, sub string) bool {
	return strings.Contains(strings.ToUpper(s), sub)
}

// lexicalPin is the pin of a text the parser did not read (or was not
// given: too long), from its first keyword and a search of the text: data
// statements move freely unless they may assign a variable or reach
// connection state; anything else pins.
func lexicalPin(sql []byte) string {
	switch FirstKeyword(sql) {
	case KindSelect, KindInsert, KindUpdate, KindDelete, KindReplace, KindShow, KindLoad:
	default:
		return PinUnparsed
	}
	for _, s := range [...]string{":=", "INTO @", "INTO\t@", "INTO\n@", "TEMPORARY", "GET_LOCK", "RELEASE_", "CONNECTION_ID", "LAST_INSERT_ID", "LASTVAL", "PREVIOUS VALUE"} {
		if containsFold(sql, s) {
			return PinUnparsed
		}
	}
	return ""
}

// ContainsFold reports whether sql contains upper (ASCII, upper case)
// without regard to case.
func ContainsFold(sql []byte, upper string) bool { return containsFold(sql, upper) }

func containsFold(sql []byte, upper string) bool {
	n := len(upper)
	for i := 0; i+n <= len(sql); i++ {
		j := 0
		for j < n {
			c := sql[i+j]
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			if c != upper[j] {
				break
			}
			j++
		}
		if j == n {
			return true
		}
	}
	return false
}
