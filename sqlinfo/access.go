package sqlinfo

import (
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/pingcap/tidb/pkg/parser/ast"
)

// This file works out what a statement does to which tables, for access
// control: every table named anywhere in it (joins, subqueries, CTE bodies,
// INSERT ... SELECT sources, view definitions), with the operation applied
// to it. A wrong answer here is a hole in access control, so where the
// statement is not fully understood the answer errs towards more: an
// unqualified name is a CTE only where that CTE is in scope, a multi-table
// UPDATE with an unqualified SET column writes every table it joins, and
// statements of kinds not modelled here count as a server-wide "other".

// Op is what a statement does to a table.
type Op uint8

// Operations.
const (
	OpSelect Op = iota
	OpInsert
	OpUpdate
	OpDelete
	OpDDL
	OpOther
	// OpUse enters a database (USE, COM_INIT_DB, the login database): it
	// needs some right in it.
	OpUse
	numOps
)

var opNames = [numOps]string{"select", "insert", "update", "delete", "ddl", "other", "use"}

func (o Op) String() string {
	if o < numOps {
		return opNames[o]
	}
	return "other"
}

// Access is one operation on a table. Name is "" for an operation on a
// whole database (CREATE DATABASE, USE, SHOW TABLES FROM db); DB is "" too
// for a server-wide one (SET GLOBAL, SHOW PROCESSLIST, LOAD_FILE(), INTO
// OUTFILE, and statement kinds not modelled here).
type Access struct {
	Table
	Op Op
}

// ops is a set of Op.
type ops uint8

func opSet(o ...Op) ops {
	var s ops
	for _, x := range o {
		s |= 1 << x
	}
	return s
}

// target is a table a statement writes, and how.
type target struct {
	n   *ast.TableName
	ops ops
}

// Prepared is what PREPARE name FROM 'text' prepares.
type Prepared struct {
	Name         string // lowercase
	Access       []Access
	Unverifiable bool
	// Kinds has bit 1<<k for the kinds of the prepared text's statements;
	// Tables are its tables (for the audit log's filters).
	Kinds  uint32
	Tables []Table
	// KillText is the text when it is a KILL (which the proxy runs itself
	// at EXECUTE: the backend would take the proxy's id for its own).
	KillText string
}

// walker collects accesses and flags from the statements of one text.
type walker struct {
	mode Mode // how the text is read (for PREPARE texts)

	// Per text.
	access       []Access
	unverifiable bool
	session      bool
	setsMode     bool
	setsGlobal   bool
	// setsConnGlobal: see Info.SetsConnGlobal.
	setsConnGlobal bool
	flushesHosts   bool
	setsCharset    bool
	prepares       []Prepared
	// literalDecides: a literal (which the cache key replaces) changed the
	// answer, so the Info must not be cached.
	literalDecides bool
	// Multiplexing (multiplex.go).
	pin                                                 string
	volatile, readsLastID, readsVariable, unlocksTables bool

	// Per statement.
	locking, into bool
	targets       []target
	builtins      []string // built-in names called, lowercase
	defOp         Op       // operation on tables that are not targets and not read by a query
	selects       int      // depth of queries (SELECT, UNION, ...) around the current node
	ctes          []string // CTE names in scope, lowercase
	scopes        []int    // len(ctes) when each enclosing WITH was entered
	start         int      // first access of the current statement
	db            string   // the statement's current database
}

// statement walks one statement, qualifying its unqualified tables by db.
func (w *walker) statement(stmt ast.StmtNode, db string) {
	w.locking, w.into = false, false
	w.targets, w.defOp, w.selects = w.targets[:0], OpSelect, 0
	w.ctes, w.scopes = w.ctes[:0], w.scopes[:0]
	w.start, w.db = len(w.access), db
	w.builtins = w.builtins[:0]
	w.plan(stmt)
	stmt.Accept(w)
	w.storedLookalikes(stmt.Text())
	system := false
	for i := w.start; i < len(w.access); i++ {
		a := &w.access[i]
		if a.DB == "" && a.Name != "" {
			a.DB = db
		}
		system = system || a.Name != "" && isSystemTable(a.Table)
	}
	if system {
		w.server(OpOther)
	}
	w.dedup()
}

// plan notes what stmt writes before its tables are visited.
func (w *walker) plan(stmt ast.StmtNode) {
	switch s := stmt.(type) {
	case *ast.SelectStmt, *ast.SetOprStmt, *ast.BeginStmt, *ast.CommitStmt, *ast.RollbackStmt,
		*ast.SavepointStmt, *ast.ReleaseSavepointStmt, *ast.ExecuteStmt, *ast.DeallocateStmt,
		*ast.DoStmt, *ast.UnlockTablesStmt, *ast.KillStmt:
	case *ast.InsertStmt:
		o := opSet(OpInsert)
		if s.IsReplace {
			o |= opSet(OpDelete)
		}
		if len(s.OnDuplicate) > 0 {
			o |= opSet(OpUpdate)
		}
		w.targetAll(s.Table, o)
		if len(s.OnDuplicate) > 0 {
			w.readTargets(nil) // it updates the row already there
		}
	case *ast.UpdateStmt:
		w.planUpdate(s)
		w.readTargets(nil)
	case *ast.DeleteStmt:
		w.planDelete(s)
		w.readTargets(s)
	case *ast.LoadDataStmt:
		o := opSet(OpInsert)
		if s.OnDuplicate == ast.OnDuplicateKeyHandlingReplace {
			o |= opSet(OpDelete)
		}
		w.targets = append(w.targets, target{s.Table, o})
		if s.FileLocRef != ast.FileLocClient {
			w.server(OpOther) // reads a file on the database server
		}
	case *ast.LockTablesStmt:
		for _, l := range s.TableLocks {
			o := opSet(OpSelect)
			if l.Type != ast.TableLockRead && l.Type != ast.TableLockReadLocal {
				o = opSet(OpUpdate)
			}
			w.targets = append(w.targets, target{l.Table, o})
		}
	case *ast.ExplainStmt:
		w.planExplain(s)
	case *ast.UseStmt:
		w.add(Table{DB: s.DBName}, OpUse)
	case *ast.ShowStmt:
		w.planShow(s)
	case *ast.SetStmt:
		w.planSet(s)
	case *ast.PrepareStmt:
		w.planPrepare(s)
	case *ast.CallStmt:
		w.routine(s.Procedure.Schema.O, s.Procedure.FnName.O)
	case *ast.CreateDatabaseStmt:
		w.add(Table{DB: s.Name.O}, OpDDL)
	case *ast.DropDatabaseStmt:
		w.add(Table{DB: s.Name.O}, OpDDL)
	case *ast.AlterDatabaseStmt:
		w.add(Table{DB: s.Name.O}, OpDDL)
	case *ast.CreateTableStmt:
		w.defOp = OpDDL
		w.tableOptions(s.Options)
		w.partitions(s.Partition, nil)
		for _, c := range s.Constraints {
			parentDB(s.Table, c.Refer)
		}
		w.columnRefs(s.Table, s.Cols)
	case *ast.AlterTableStmt:
		w.defOp = OpDDL
		for _, spec := range s.Specs { // ALTER TABLE m UNION = (...), ENGINE = ...
			w.tableOptions(spec.Options)
			w.partitions(spec.Partition, spec.PartDefinitions)
			if spec.Constraint != nil {
				parentDB(s.Table, spec.Constraint.Refer)
			}
			w.columnRefs(s.Table, spec.NewColumns)
		}
	case *ast.OptimizeTableStmt:
		for _, t := range s.Tables { // not visited by Accept
			w.add(Table{DB: t.Schema.O, Name: t.Name.O}, OpDDL)
		}
	case *ast.ProcedureInfo, *ast.DropProcedureStmt:
		// A routine's body runs later, with its definer's rights.
		w.unverifiable = true
	case ast.DDLNode:
		w.defOp = OpDDL
		w.server(OpDDL) // kept only if no table is found (see dedup)
	default:
		// GRANT, FLUSH, SET PASSWORD, admin statements...: not modelled.
		w.server(OpOther)
	}
}

// readTargets adds select to the statement's targets when n refers to a
// column, or always when n is nil. A WHERE, ORDER BY or right-hand side
// reads the written rows (an error or the affected-row count shows their
// values), so MySQL asks for SELECT there too; an unqualified column may be
// any target's. An UPDATE reads whatever it writes: a duplicate-key error
// shows the other columns of the row it collides with.
func (w *walker) readTargets(n ast.Node) {
	if n != nil {
		var c columnFinder
		n.Accept(&c)
		if !c.found {
			return
		}
	}
	for i := range w.targets {
		w.targets[i].ops |= opSet(OpSelect)
	}
}

// columnFinder finds a column reference.
type columnFinder struct{ found bool }

func (c *columnFinder) Enter(n ast.Node) (ast.Node, bool) {
	if _, ok := n.(*ast.ColumnNameExpr); ok {
		c.found = true
	}
	return n, c.found
}

func (c *columnFinder) Leave(n ast.Node) (ast.Node, bool) { return n, true }

// tableOptions: a MERGE table's UNION reads and writes the tables it lists
// (Accept does not visit them); DATA and INDEX DIRECTORY put files where
// the server's account may write; engines that reach other servers or
// tables by options the parser keeps as strings cannot be checked.
func (w *walker) tableOptions(opts []*ast.TableOption) {
	for _, o := range opts {
		switch o.Tp {
		case ast.TableOptionUnion:
			for _, t := range o.TableNames {
				for _, op := range []Op{OpSelect, OpInsert, OpUpdate, OpDelete} {
					w.add(Table{DB: t.Schema.O, Name: t.Name.O}, op)
				}
			}
		case ast.TableOptionDataDirectory, ast.TableOptionIndexDirectory:
			w.server(OpOther)
		case ast.TableOptionEngine:
			w.literalDecides = true // ENGINE = 'name' is a literal to the cache key
			if _, ok := localEngines[strings.ToLower(o.StrValue)]; !ok {
				w.unverifiable = true
			}
		}
	}
}

// partitions checks the options of each partition and subpartition
// (DATA DIRECTORY, ENGINE) like the table's own.
func (w *walker) partitions(p *ast.PartitionOptions, defs []*ast.PartitionDefinition) {
	if p != nil {
		defs = append(defs, p.Definitions...)
	}
	for _, d := range defs {
		w.tableOptions(d.Options)
		for _, sub := range d.Sub {
			w.tableOptions(sub.Options)
		}
	}
}

// parentDB: the server looks for an unqualified REFERENCES table in the
// database of the table being created or altered, not the current one.
func parentDB(child *ast.TableName, ref *ast.ReferenceDef) {
	if ref != nil && ref.Table != nil && ref.Table.Schema.O == "" && child != nil {
		ref.Table.Schema = child.Schema // the AST is this walk's own
	}
}

// columnRefs: a column's own REFERENCES (which Accept does not visit)
// counts like a FOREIGN KEY constraint's.
func (w *walker) columnRefs(child *ast.TableName, cols []*ast.ColumnDef) {
	for _, col := range cols {
		for _, o := range col.Options {
			if o.Refer != nil && o.Refer.Table != nil {
				parentDB(child, o.Refer)
				w.add(Table{DB: o.Refer.Table.Schema.O, Name: o.Refer.Table.Name.O}, OpDDL)
			}
		}
	}
}

// localEngines keep a table's rows in its own files (MERGE: in the tables
// of its UNION). FEDERATED, CONNECT, SPIDER, OQGRAPH and the like read
// other tables or servers named in strings.
var localEngines = map[string]struct{}{
	"": {}, "innodb": {}, "myisam": {}, "aria": {}, "memory": {}, "heap": {}, "csv": {},
	"archive": {}, "blackhole": {}, "sequence": {}, "merge": {}, "mrg_myisam": {},
}

// targetAll makes every table in refs a target.
func (w *walker) targetAll(refs ast.Node, o ops) {
	if refs == nil {
		return
	}
	for _, src := range sources(refs) {
		w.targets = append(w.targets, target{src.n, o})
	}
}

// source is a table in a FROM or join clause and its alias.
type source struct {
	n     *ast.TableName
	alias string // lowercase; "" when none
}

// sources lists the tables of a join tree (not those in derived tables).
func sources(n ast.Node) []source {
	var out []source
	var walk func(ast.ResultSetNode)
	walk = func(r ast.ResultSetNode) {
		switch r := r.(type) {
		case *ast.Join:
			walk(r.Left)
			if r.Right != nil {
				walk(r.Right)
			}
		case *ast.TableSource:
			if t, ok := r.Source.(*ast.TableName); ok {
				out = append(out, source{t, r.AsName.L})
			}
		case *ast.TableName:
			out = append(out, source{r, ""})
		}
	}
	switch n := n.(type) {
	case *ast.TableRefsClause:
		if n != nil && n.TableRefs != nil {
			walk(n.TableRefs)
		}
	case ast.ResultSetNode:
		walk(n)
	}
	return out
}

// planUpdate: the tables whose columns are assigned are updated; an
// unqualified column in a multi-table UPDATE could be any table's.
func (w *walker) planUpdate(s *ast.UpdateStmt) {
	srcs := sources(s.TableRefs)
	if len(srcs) == 1 {
		w.targets = append(w.targets, target{srcs[0].n, opSet(OpUpdate)})
		return
	}
	for _, a := range s.List {
		// An unqualified column could be any table's; a qualifier that names
		// no source (db.alias.col) is resolved by the server somehow.
		if a.Column == nil || a.Column.Table.L == "" ||
			!w.targetNamed(srcs, a.Column.Schema.L, a.Column.Table.L, opSet(OpUpdate)) {
			w.targetAll(s.TableRefs, opSet(OpUpdate))
			return
		}
	}
}

// planDelete: a single-table DELETE deletes from its table; a multi-table
// one from the tables (or aliases) it lists.
func (w *walker) planDelete(s *ast.DeleteStmt) {
	srcs := sources(s.TableRefs)
	if !s.IsMultiTable || s.Tables == nil {
		w.targetAll(s.TableRefs, opSet(OpDelete))
		return
	}
	for _, t := range s.Tables.Tables {
		if !w.targetNamed(srcs, t.Schema.L, t.Name.L, opSet(OpDelete)) {
			// Not found among the sources: the server will refuse it, but
			// check the name as written all the same.
			w.add(Table{DB: t.Schema.O, Name: t.Name.O}, OpDelete)
		}
	}
}

// targetNamed makes the sources called name (an alias, or a table name
// when it has no alias) targets, and reports whether there was one.
func (w *walker) targetNamed(srcs []source, schema, name string, o ops) bool {
	found := false
	for _, src := range srcs {
		match := src.alias == name && schema == ""
		if src.alias == "" {
			match = src.n.Name.L == name && (schema == "" || schema == src.n.Schema.L)
		}
		if match {
			w.targets = append(w.targets, target{src.n, o})
			found = true
		}
	}
	return found
}

// planExplain: EXPLAIN only reads (a plan, a table's columns), EXPLAIN
// ANALYZE runs its statement.
func (w *walker) planExplain(s *ast.ExplainStmt) {
	if s.Stmt == nil {
		w.server(OpOther) // EXPLAIN FOR CONNECTION: another session's statement
		return
	}
	if s.Analyze {
		w.plan(s.Stmt)
	}
}

// planShow: SHOW on a table reads it, on a database reads its catalogue;
// the rest is harmless except what reveals other sessions or data
// (PROCESSLIST, binary logs, account definitions and grants, which show the
// backend account's password hash), which is "other".
func (w *walker) planShow(s *ast.ShowStmt) {
	switch s.Tp {
	case ast.ShowDatabases, ast.ShowWarnings, ast.ShowErrors, ast.ShowCharset, ast.ShowCollation,
		ast.ShowVariables, ast.ShowStatus, ast.ShowEngines, ast.ShowPrivileges, ast.ShowPlugins,
		ast.ShowColumns, ast.ShowIndex, ast.ShowCreateTable, ast.ShowCreateView,
		ast.ShowTables, ast.ShowTableStatus, ast.ShowCreateDatabase, ast.ShowTriggers, ast.ShowEvents,
		ast.ShowOpenTables, ast.ShowProcedureStatus, ast.ShowFunctionStatus:
	default:
		w.server(OpOther)
	}
	db := s.DBName
	if s.Table != nil && s.Table.Schema.O == "" && db != "" {
		s.Table.Schema = ast.NewCIStr(db) // SHOW COLUMNS FROM t FROM db
	}
	switch s.Tp {
	case ast.ShowTables, ast.ShowTableStatus, ast.ShowTriggers, ast.ShowEvents:
		if db == "" {
			db = w.db // lists the current database's catalogue
		}
	}
	if s.Table == nil && db != "" {
		w.add(Table{DB: db}, OpSelect)
	}
}

// planSet: session variables are the session's own; global ones, passwords
// and roles act for the proxy's backend account.
func (w *walker) planSet(s *ast.SetStmt) {
	for _, v := range s.Variables {
		if v.IsGlobal || v.IsInstance || v.IsSystem && privilegedVar(v.Name) {
			w.server(OpOther)
			return
		}
	}
}

// privilegedVar: session variables MariaDB reserves for SUPER or BINLOG
// ADMIN, which the proxy's backend account may hold: they keep writes out
// of the binary log (replicas and point-in-time recovery diverge), forge
// server ids and GTIDs, or silence the server's logs.
func privilegedVar(name string) bool {
	name = strings.ToLower(name)
	for _, prefix := range []string{"binlog_", "gtid_", "pseudo_", "wsrep_", "slave_", "debug"} {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	switch name {
	case "sql_log_bin", "sql_log_off", "server_id", "skip_replication", "sql_slave_skip_counter",
		"log_disabled_statements", "log_slow_disabled_statements":
		return true
	}
	return false
}

// planPrepare: PREPARE s FROM 'text' does what text does; from a variable
// it cannot be known here.
func (w *walker) planPrepare(s *ast.PrepareStmt) {
	if s.SQLVar != nil {
		w.unverifiable = true
		return
	}
	// The server reads the text in the session's mode, as the outer text.
	p, put := parserFor(w.mode)
	defer put()
	text := executableComments(s.SQLText)
	prep := Prepared{Name: strings.ToLower(s.Name)}
	if FirstKeyword([]byte(text)) == KindKill {
		// Also when the parser cannot read it (KILL ?, KILL (expr)).
		prep.Kinds, prep.KillText = 1<<KindKill, text
	}
	if stmts, err := parse(p, text); err != nil {
		prep.Unverifiable = true
	} else {
		inner := walker{mode: w.mode}
		for _, st := range stmts {
			inner.statement(st, w.db)
			k, _ := kindOf(st)
			prep.Kinds |= 1 << k
		}
		prep.Access, prep.Unverifiable = inner.access, inner.unverifiable
		prep.Tables = tablesOf(inner.access)
	}
	w.access = append(w.access, prep.Access...)
	w.unverifiable = w.unverifiable || prep.Unverifiable
	w.prepares = append(w.prepares, prep)
}

// server adds a server-wide access.
func (w *walker) server(o Op) { w.add(Table{}, o) }

func (w *walker) add(t Table, o Op) {
	w.access = append(w.access, Access{Table: t, Op: o})
}

func (w *walker) Enter(n ast.Node) (ast.Node, bool) {
	w.multiplexNode(n)
	switch n := n.(type) {
	case *ast.TableName:
		w.table(n)
	case *ast.DeleteTableList:
		return n, true // planned in planDelete
	case *ast.SelectStmt:
		w.selects++
		w.enterWith(n.With)
		w.locking = w.locking || (n.LockInfo != nil && n.LockInfo.LockType != ast.SelectLockNone)
		// Accept does not visit SelectIntoOpt.
		if n.SelectIntoOpt != nil {
			w.into = true
			if n.SelectIntoOpt.Tp != ast.SelectIntoVars {
				w.server(OpOther) // writes a file on the database server
			}
		}
	case *ast.SetOprStmt:
		w.selects++
		w.enterWith(n.With)
	case *ast.UpdateStmt:
		w.enterWith(n.With)
	case *ast.DeleteStmt:
		w.enterWith(n.With)
	case *ast.CommonTableExpression:
		if n.IsRecursive {
			w.ctes = append(w.ctes, n.Name.L)
		}
	case *ast.VariableExpr:
		w.session = w.session || !n.IsSystem
	case *ast.VariableAssignment:
		w.session = w.session || !n.IsSystem
		w.setsMode = w.setsMode || n.IsSystem && strings.EqualFold(n.Name, "sql_mode")
		w.setsGlobal = w.setsGlobal || n.IsGlobal
		w.setsConnGlobal = w.setsConnGlobal || n.IsGlobal && ConnVariable(n.Name)
		w.setsCharset = w.setsCharset || n.Name == ast.SetNames || n.Name == ast.SetCharset ||
			strings.EqualFold(n.Name, "character_set_client")
	case *ast.FuncCallExpr:
		w.function(n)
	case *ast.AggregateFuncExpr:
		w.builtin(strings.ToLower(n.F))
	case *ast.WindowFuncExpr:
		w.builtin(strings.ToLower(n.Name))
	}
	return n, false
}

// function: a stored function is checked by name like CALL; a sequence
// function reads its sequence, and NEXTVAL and SETVAL also write it.
func (w *walker) function(n *ast.FuncCallExpr) {
	name := n.FnName.L
	w.session = w.session || sessionFuncs[name]
	switch {
	case n.Schema.L != "":
		w.routine(n.Schema.O, n.FnName.O) // db.f()
	case name == ast.NextVal || name == ast.SetVal:
		if len(n.Args) > 0 {
			if seq, ok := n.Args[0].(*ast.TableNameExpr); ok && seq.Name != nil {
				w.targets = append(w.targets, target{seq.Name, opSet(OpSelect, OpUpdate)})
			}
		}
		w.builtin(name)
	case name == "load_file":
		w.server(OpOther) // reads a file on the database server
		w.builtin(name)
	case !isBuiltinFunc(name):
		w.routine("", n.FnName.O) // a stored function of the current database
	default:
		w.builtin(name)
	}
}

// routine records a call of a stored routine, checked by name. MariaDB
// compares routine names without case, accents or trailing blanks
// (utf8_general_ci); rules match names without ASCII case only, so a name
// with other letters is unverifiable.
func (w *walker) routine(db, name string) {
	name = strings.TrimRight(name, " ")
	for i := 0; i < len(name); i++ {
		if name[i] >= utf8.RuneSelf {
			w.unverifiable = true
			return
		}
	}
	w.add(Table{DB: db, Name: name}, OpOther)
}

// builtin notes a call by a built-in's name, to be looked for in the text:
// written `name`(...), or name (...) for some, it calls a stored function.
func (w *walker) builtin(name string) {
	if !slices.Contains(w.builtins, name) {
		w.builtins = append(w.builtins, name)
	}
}

// storedLookalikes adds a stored-function access for each built-in name the
// statement calls in a form MariaDB resolves to a stored function: quoted,
// or (natives of the function-keyword kind) with a blank or comment before
// the parenthesis. The parse tree keeps neither, so the text is searched;
// a match inside a string or comment only costs a needless check.
func (w *walker) storedLookalikes(text string) {
	ansi := w.mode&ANSIQuotes != 0
	for _, name := range w.builtins {
		if storedCallForm(text, name, builtinFuncs[name], ansi) {
			w.routine("", name)
		}
	}
}

// storedCallForm reports name (lowercase) written in one of forms: quoted
// (backticks, or double quotes under ANSI_QUOTES) or followed by blanks or
// comments, then "(".
func storedCallForm(text, name string, forms callForms, ansi bool) bool {
	for i := 0; i+len(name) <= len(text); i++ {
		if !strings.EqualFold(text[i:i+len(name)], name) {
			continue
		}
		end := i + len(name)
		quoted := i > 0 && end < len(text) && text[i-1] == text[end] && (text[end] == '`' || ansi && text[end] == '"')
		if !quoted && (i > 0 && isIdentByte(text[i-1]) || end < len(text) && isIdentByte(text[end])) {
			continue // part of a longer word
		}
		if quoted {
			end++
		}
		j := skipBlanksAndComments(text, end)
		if j < len(text) && text[j] == '(' && (quoted && forms&quotedStored != 0 || !quoted && j > end && forms&spacedStored != 0) {
			return true
		}
	}
	return false
}

// skipBlanksAndComments returns the index of the first byte from i that is
// neither blank nor inside a /* */, # or -- comment. The markers of an
// executable comment (/*!, /*!NNNNN, its */) count as blanks: what is
// between them is code (count/*!(*/1) calls count with a comment between).
func skipBlanksAndComments(text string, i int) int {
	for i < len(text) {
		switch {
		case isBlank(text[i]):
			i++
		case strings.HasPrefix(text[i:], "/*!"):
			i += 3 // an executable comment's content is code: scan it
			for i < len(text) && isDigit(text[i]) {
				i++
			}
		case strings.HasPrefix(text[i:], "*/"):
			i += 2 // the end of an executable comment
		case strings.HasPrefix(text[i:], "/*"):
			end := strings.Index(text[i+2:], "*/")
			if end < 0 {
				return len(text)
			}
			i += end + 4
		case text[i] == '#' || isDashComment(text, i):
			for i < len(text) && text[i] != '\n' {
				i++
			}
		default:
			return i
		}
	}
	return i
}

// tidbFuncs are names the parser gives to grammar forms (CHAR(x USING cs),
// INSERT(...), MEMBER OF, DATE '...' literals): not calls by those names.
var tidbFuncs = map[string]struct{}{
	ast.CharFunc: {}, ast.InsertFunc: {}, ast.JSONMemberOf: {},
	ast.DateLiteral: {}, ast.TimeLiteral: {}, ast.TimestampLiteral: {},
}

func isBuiltinFunc(name string) bool {
	_, builtin := builtinFuncs[name]
	_, grammar := tidbFuncs[name]
	return builtin || grammar
}

func (w *walker) Leave(n ast.Node) (ast.Node, bool) {
	switch n := n.(type) {
	case *ast.SelectStmt:
		w.selects--
		w.leaveWith(n.With)
	case *ast.SetOprStmt:
		w.selects--
		w.leaveWith(n.With)
	case *ast.UpdateStmt:
		w.leaveWith(n.With)
	case *ast.DeleteStmt:
		w.leaveWith(n.With)
	case *ast.CommonTableExpression:
		// A CTE is visible to the CTEs after it and to the statement body;
		// to its own body only when recursive.
		if !n.IsRecursive {
			w.ctes = append(w.ctes, n.Name.L)
		}
	}
	return n, true
}

func (w *walker) enterWith(with *ast.WithClause) {
	if with != nil {
		w.scopes = append(w.scopes, len(w.ctes))
	}
}

func (w *walker) leaveWith(with *ast.WithClause) {
	if with != nil && len(w.scopes) > 0 {
		w.ctes = w.ctes[:w.scopes[len(w.scopes)-1]]
		w.scopes = w.scopes[:len(w.scopes)-1]
	}
}

// table records a table reference with its operations.
func (w *walker) table(n *ast.TableName) {
	if n.Name.O == "" {
		return
	}
	if n.Schema.O == "" && w.isCTE(n.Name.L) {
		return
	}
	t := Table{DB: n.Schema.O, Name: n.Name.O}
	for _, tg := range w.targets {
		if tg.n == n {
			for o := Op(0); o < numOps; o++ {
				if tg.ops&(1<<o) != 0 {
					w.add(t, o)
				}
			}
			return
		}
	}
	if w.selects > 0 {
		w.add(t, OpSelect)
		return
	}
	w.add(t, w.defOp)
}

func (w *walker) isCTE(name string) bool {
	for _, c := range w.ctes {
		if c == name {
			return true
		}
	}
	return false
}

// dedup removes repeats from the current statement's accesses, and the
// server-wide DDL placeholder when the statement named a table or database.
func (w *walker) dedup() {
	cur := w.access[w.start:]
	named := false
	for _, a := range cur {
		named = named || a.DB != "" || a.Name != ""
	}
	out := cur[:0]
	for _, a := range cur {
		if named && a.Op == OpDDL && a.Table == (Table{}) {
			continue
		}
		if !containsAccess(out, a) {
			out = append(out, a)
		}
	}
	w.access = w.access[:w.start+len(out)]
}

func containsAccess(as []Access, a Access) bool {
	for _, have := range as {
		if have == a {
			return true
		}
	}
	return false
}

// tablesOf lists the tables of accesses once each.
func tablesOf(as []Access) []Table {
	var out []Table
	for _, a := range as {
		if a.Name != "" && !containsTable(out, a.Table) {
			out = append(out, a.Table)
		}
	}
	return out
}

func containsTable(ts []Table, t Table) bool {
	for _, have := range ts {
		if have == t {
			return true
		}
	}
	return false
}

// executableComments makes MariaDB's executable comments (/*M! ... */ and
// /*M!100100 ... */), which the TiDB parser takes for plain comments, look
// like MySQL's /*! ... */ that it reads as code: MariaDB runs what they
// hold, so a table or a write hidden there must be seen. (Whether a server
// skips a versioned one is not modelled: restricted users' texts with
// versioned comments are refused, see Versioned.)
func executableComments(text string) string {
	if !strings.Contains(text, "/*M!") {
		return text
	}
	b := []byte(text)
	for i := 0; i+4 <= len(b); i++ {
		if string(b[i:i+4]) == "/*M!" {
			// Same length: "/*!" then blanks over "M!" and the version digits.
			b[i+2], b[i+3] = '!', ' '
			for j := i + 4; j < len(b) && isDigit(b[j]); j++ {
				b[j] = ' '
			}
		}
	}
	return string(b)
}

// Versioned reports a versioned executable comment (/*!50700 ...*/, or
// MariaDB's /*M! ...*/): servers skip or run them by version, and nested
// comments or six-digit versions inside them read differently on MySQL and
// MariaDB, so the parser's one reading may not be the server's.
func Versioned(sql []byte) bool {
	for i := 0; i+3 < len(sql); i++ {
		if sql[i] != '/' || sql[i+1] != '*' {
			continue
		}
		switch {
		case sql[i+2] == 'M' && sql[i+3] == '!':
			return true
		case sql[i+2] == '!' && isDigit(sql[i+3]):
			return true // /*! without a version is run by every server
		}
	}
	return false
}

// isSystemTable: the server's own tables show other sessions' statements
// and data (PROCESSLIST, INNODB_TRX, performance_schema, the slow log in
// mysql) or accounts, so reading them is server-wide. The catalogue tables
// of information_schema stay checked by name.
func isSystemTable(t Table) bool {
	switch strings.ToLower(t.DB) {
	case "mysql", "performance_schema", "sys":
		return true
	case "information_schema":
		_, catalogue := infoSchemaCatalogue[strings.ToLower(t.Name)]
		return !catalogue
	}
	return false
}

// infoSchemaCatalogue: information_schema tables that describe schemas,
// settings and the session itself, not other sessions, accounts or row data.
var infoSchemaCatalogue = map[string]struct{}{
	"all_plugins": {}, "character_sets": {}, "check_constraints": {},
	"collation_character_set_applicability": {}, "collations": {},
	"columns": {}, "engines": {}, "events": {}, "files": {},
	"geometry_columns": {}, "global_status": {}, "global_variables": {}, "key_caches": {},
	"key_column_usage": {}, "keywords": {}, "optimizer_trace": {}, "parameters": {},
	"partitions": {}, "plugins": {}, "profiling": {}, "referential_constraints": {},
	"routines": {}, "schemata": {}, "session_status": {},
	"session_variables": {}, "spatial_ref_sys": {}, "sql_functions": {}, "statistics": {},
	"system_variables": {}, "table_constraints": {}, "tables": {},
	"tablespaces": {}, "triggers": {}, "user_variables": {}, "views": {},
}
