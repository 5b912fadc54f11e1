// Package sqlinfo owns what the proxy understands of SQL text. This file is
// the cheap lexical layer used on every statement: the statement kind from
// the first keyword, skipping comments, with no allocation.
//
// classify.go understands a statement with the TiDB parser (tables,
// locking, session state, fingerprint: microseconds); cache.go puts those
// answers behind a cache keyed by a literal-free one-pass key (key.go), so
// that the statement path pays about 200 ns for a statement seen before.
package sqlinfo

import "bytes"

// Kind is a statement's kind.
type Kind uint8

// Statement kinds.
const (
	KindOther Kind = iota
	KindSelect
	KindInsert
	KindUpdate
	KindDelete
	KindReplace
	KindDDL
	KindBegin
	KindCommit
	KindRollback
	KindSet
	KindUse
	KindShow
	KindPrepare
	KindExecute
	KindCall
	KindLoad
	KindKill
	numKinds
)

var kindNames = [numKinds]string{"other", "select", "insert", "update", "delete", "replace", "ddl",
	"begin", "commit", "rollback", "set", "use", "show", "prepare", "execute", "call", "load", "kill"}

func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "other"
}

// NumKinds is the number of kinds, for tables indexed by Kind.
const NumKinds = int(numKinds)

var keywords = map[string]Kind{
	"SELECT": KindSelect, "WITH": KindSelect, "VALUES": KindSelect, "TABLE": KindSelect,
	"INSERT": KindInsert, "UPDATE": KindUpdate, "DELETE": KindDelete, "REPLACE": KindReplace,
	"CREATE": KindDDL, "ALTER": KindDDL, "DROP": KindDDL, "TRUNCATE": KindDDL, "RENAME": KindDDL,
	"BEGIN": KindBegin, "START": KindBegin, "COMMIT": KindCommit, "ROLLBACK": KindRollback,
	"SET": KindSet, "USE": KindUse, "SHOW": KindShow, "DESC": KindShow, "DESCRIBE": KindShow, "EXPLAIN": KindShow,
	"PREPARE": KindPrepare, "EXECUTE": KindExecute, "CALL": KindCall, "LOAD": KindLoad, "KILL": KindKill,
}

// FirstKeyword classifies sql by its first keyword.
// hot path: no allocation (the map lookup on a converted []byte does not allocate).
func FirstKeyword(sql []byte) Kind {
	word := firstWord(sql)
	if len(word) == 0 || len(word) > 8 {
		return KindOther
	}
	var up [8]byte
	for i, c := range word {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		up[i] = c
	}
	k := keywords[string(up[:len(word)])]
	if k == KindSelect && equalFold(word, "WITH") && writesAfterCTE(sql) {
		return KindOther // WITH ... UPDATE/DELETE/INSERT: a write, kind unknown here
	}
	return k
}

// writesAfterCTE is a conservative check for a CTE in front of a write.
func writesAfterCTE(sql []byte) bool {
	for _, w := range []string{"UPDATE", "DELETE", "INSERT", "REPLACE"} {
		for i := 0; i+len(w) <= len(sql); i++ {
			if equalFold(sql[i:i+len(w)], w) && (i == 0 || !isWordByte(sql[i-1])) &&
				(i+len(w) == len(sql) || !isWordByte(sql[i+len(w)])) {
				return true
			}
		}
	}
	return false
}

// firstWord returns the first keyword after whitespace, comments and '('.
func firstWord(s []byte) []byte {
	i := skipSpaceAndComments(s, 0)
	for i < len(s) && s[i] == '(' {
		i = skipSpaceAndComments(s, i+1)
	}
	j := i
	for j < len(s) && isWordByte(s[j]) {
		j++
	}
	return s[i:j]
}

// skipSpaceAndComments skips blanks and /* */, -- and # comments. MySQL's
// executable comments (/*! ... */) are skipped too: conservative, as the
// caller then sees the statement after them.
func skipSpaceAndComments(s []byte, i int) int {
	for i < len(s) {
		switch c := s[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			end := indexFrom(s, i+2, "*/")
			if end < 0 {
				return len(s)
			}
			i = end + 2
		case c == '#' || (c == '-' && i+2 < len(s) && s[i+1] == '-' && (s[i+2] == ' ' || s[i+2] == '\t')):
			for i < len(s) && s[i] != '\n' {
				i++
			}
		default:
			return i
		}
	}
	return i
}

func indexFrom(s []byte, from int, sub string) int {
	for i := from; i+len(sub) <= len(s); i++ {
		if string(s[i:i+len(sub)]) == sub {
			return i
		}
	}
	return -1
}

func isWordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
}

// ParseKill recognises `KILL [CONNECTION | QUERY] [ID] <n>`; other forms
// (KILL USER ...) report ok = false and go to the backend unchanged.
func ParseKill(sql []byte) (id uint64, query bool, ok bool) {
	id, query, _, ok = parseKill(sql)
	return id, query, ok
}

// parseKill is ParseKill that also returns where the id starts.
func parseKill(sql []byte) (id uint64, query bool, at int, ok bool) {
	query, at, ok = killHead(sql)
	if !ok {
		return 0, false, 0, false
	}
	word, i := nextWord(sql, at)
	at = i - len(word)
	if len(word) == 0 || len(word) > 19 {
		return 0, false, 0, false
	}
	for _, c := range word {
		if c < '0' || c > '9' {
			return 0, false, 0, false
		}
		id = id*10 + uint64(c-'0')
	}
	rest := skipSpaceAndComments(sql, i)
	if rest < len(sql) && sql[rest] == ';' {
		rest = skipSpaceAndComments(sql, rest+1)
	}
	if rest != len(sql) {
		return 0, false, 0, false
	}
	return id, query, at, true
}

// killHead reads KILL [HARD | SOFT] [QUERY [ID] | CONNECTION] and returns
// where the target begins.
func killHead(sql []byte) (query bool, at int, ok bool) {
	word, i := nextWord(sql, 0)
	if !equalFold(word, "KILL") {
		return false, 0, false
	}
	peek := func() []byte { w, _ := nextWord(sql, i); return w }
	advance := func() { _, i = nextWord(sql, i) }
	for _, mod := range []string{"HARD", "SOFT"} {
		if equalFold(peek(), mod) {
			advance()
		}
	}
	switch w := peek(); {
	case equalFold(w, "QUERY"):
		query = true
		advance()
	case equalFold(w, "CONNECTION"):
		advance()
	}
	if equalFold(peek(), "ID") {
		advance()
	}
	return query, skipSpaceAndComments(sql, i), true
}

// ParseKillExpr reads a KILL whose target is an expression, as MariaDB
// allows (KILL (SELECT ...), KILL @id, KILL ?): the expression's text
// without a final semicolon. KILL USER names no thread and is not one.
func ParseKillExpr(sql []byte) (expr string, query bool, ok bool) {
	query, at, ok := killHead(sql)
	if !ok {
		return "", false, false
	}
	if w, _ := nextWord(sql, at); equalFold(w, "USER") {
		return "", false, false
	}
	rest := bytes.TrimRight(sql[at:], "; \t\r\n")
	if len(rest) == 0 {
		return "", false, false
	}
	return string(rest), query, true
}

func nextWord(s []byte, i int) ([]byte, int) {
	i = skipSpaceAndComments(s, i)
	j := i
	for j < len(s) && isWordByte(s[j]) {
		j++
	}
	return s[i:j], j
}

func equalFold(b []byte, upper string) bool {
	if len(b) != len(upper) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != upper[i] {
			return false
		}
	}
	return true
}

// ParseUse returns the schema of a plain `USE db` statement.
func ParseUse(sql []byte) (string, bool) {
	word, i := nextWord(sql, skipSpaceAndComments(sql, 0))
	if !equalFold(word, "USE") {
		return "", false
	}
	i = skipSpaceAndComments(sql, i)
	if i < len(sql) && sql[i] == '`' {
		end := i + 1
		for end < len(sql) && sql[end] != '`' {
			end++
		}
		if end == len(sql) {
			return "", false
		}
		return string(sql[i+1 : end]), true
	}
	word, i = nextWord(sql, i)
	rest := skipSpaceAndComments(sql, i)
	if len(word) == 0 || (rest < len(sql) && sql[rest] != ';') {
		return "", false
	}
	return string(word), true
}

// IsShowSessionStatus reports SHOW [SESSION | LOCAL] STATUS ...: the
// statement whose answer describes the client's connection.
func IsShowSessionStatus(sql []byte) bool {
	word, i := nextWord(sql, 0)
	if !equalFold(word, "SHOW") {
		return false
	}
	word, i = nextWord(sql, i)
	if equalFold(word, "SESSION") || equalFold(word, "LOCAL") {
		word, _ = nextWord(sql, i)
	}
	return equalFold(word, "STATUS")
}
