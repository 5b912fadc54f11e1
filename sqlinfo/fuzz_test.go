package sqlinfo

import (
	"strconv"
	"testing"
)

// FuzzKillUseSet reads arbitrary texts as the session does before it
// forwards one: FirstKeyword, the KILL readers (ParseKill, ParseKillExpr),
// ParseUse, IsShowSessionStatus, and the parser's KILL spans and SET
// description (Classify). Invariants: no panic; the lexical readers agree
// with FirstKeyword; each KILL span is where the session writes a backend
// thread id in its place (session.translateKills, prepareKill): inside
// the text, in order, the digits of the id found.
func FuzzKillUseSet(f *testing.F) {
	for _, s := range []string{
		"KILL 5", "kill query 7;", "KILL CONNECTION 1073741825", "KILL HARD QUERY ID 3", "KILL /* c */ 9 ;  ",
		"KILL (SELECT 5)", "KILL @id", "KILL USER app", "kill 5; select sleep(0.05)", "SELECT 1;KILL QUERY 7 ;  KILL CONNECTION 8",
		"select 'kill 5'; /* kill 6 */ KILL /*c*/ 9;", "KILL 00012; SELECT 1", "SELECT 1; /*!KILL 5*/", "PREPARE s FROM 'KILL ?'",
		"USE db", "use `my db`;", "USE /* x */ shop ; ", "USE `unterminated",
		"SET autocommit = 0", "SET @@session.sql_mode = 'ANSI_QUOTES'", "SET NAMES utf8mb4", "SET GLOBAL max_connections = 10",
		"SET TRANSACTION ISOLATION LEVEL READ COMMITTED", "SET @a := 1, sql_mode = DEFAULT", "SET PASSWORD = 'x'",
		"SHOW SESSION STATUS LIKE 'Ssl%'", "(((KILL 1", "-- x\nKILL 2", "# x\nUSE y",
	} {
		f.Add(s, uint8(0))
	}
	f.Add("SET sql_mode = 'NO_BACKSLASH_ESCAPES'; KILL 5", uint8(NoBackslashEscapes))
	f.Add(`KILL "5"`, uint8(ANSIQuotes))
	f.Fuzz(func(t *testing.T, sql string, mode uint8) {
		b := []byte(sql)
		kind := FirstKeyword(b)
		if _, _, ok := ParseKill(b); ok && kind != KindKill {
			t.Fatalf("%q: ParseKill read a KILL, FirstKeyword %v", sql, kind)
		}
		if _, _, ok := ParseKillExpr(b); ok && kind != KindKill {
			t.Fatalf("%q: ParseKillExpr read a KILL, FirstKeyword %v", sql, kind)
		}
		if _, ok := ParseUse(b); ok && kind != KindUse {
			t.Fatalf("%q: ParseUse read a USE, FirstKeyword %v", sql, kind)
		}
		if IsShowSessionStatus(b) && kind != KindShow {
			t.Fatalf("%q: SHOW STATUS, FirstKeyword %v", sql, kind)
		}
		info := ClassifyMode(b, "db", Mode(mode)&(NoBackslashEscapes|ANSIQuotes))
		last := 0
		for i, k := range info.Kills {
			if k.Start < 0 {
				continue
			}
			if k.StmtStart < last || k.Start < k.StmtStart || k.End <= k.Start || k.End > len(sql) {
				t.Fatalf("%q: kill %d spans [%d,%d) from %d after %d", sql, i, k.Start, k.End, k.StmtStart, last)
			}
			if id, err := strconv.ParseUint(sql[k.Start:k.End], 10, 64); err != nil || id != k.ID {
				t.Fatalf("%q: kill %d of id %d spans %q", sql, i, k.ID, sql[k.Start:k.End])
			}
			last = k.End
		}
		if info.Replay && (info.Kind != KindSet || info.Statements != 1 || info.Pin != "") {
			t.Fatalf("%q: replayed, but kind %v, %d statements, pin %q", sql, info.Kind, info.Statements, info.Pin)
		}
		if info.SetVar != "" && !info.Replay {
			t.Fatalf("%q: sets %q but is not replayed", sql, info.SetVar)
		}
	})
}
