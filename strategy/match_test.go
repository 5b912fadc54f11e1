package strategy

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// naiveFirst is the reference: each regexp in turn.
func naiveFirst(res []*regexp.Regexp, b []byte, from int) int {
	for i := max(from, 0); i < len(res); i++ {
		if res[i].Match(b) {
			return i
		}
	}
	return -1
}

func compileAll(t testing.TB, pats []string) []*regexp.Regexp {
	res := make([]*regexp.Regexp, len(pats))
	for i, p := range pats {
		res[i] = regexp.MustCompile(p)
	}
	return res
}

// checkSame asserts the matcher agrees with the naive loop for every start.
func checkSame(t *testing.T, m *Matcher, res []*regexp.Regexp, b []byte) {
	t.Helper()
	for from := -1; from <= len(res); from++ {
		if got, want := m.FirstFrom(b, from), naiveFirst(res, b, from); got != want {
			t.Fatalf("FirstFrom(%q, %d) = %d, naive %d (patterns %q)", b, from, got, want, res)
		}
	}
}

// trickyPatterns exercise what the literal analysis must not get wrong.
var trickyPatterns = []string{
	`^DELETE\s+FROM\s+t1\b`,
	`(?i)^drop\s+table`,
	`(?i)desk`,         // k folds to U+212A KELVIN SIGN
	`(?i)class`,        // s folds to U+017F LONG S
	`(?i)café`,         // non-ASCII under fold
	`café`,             // non-ASCII, case-sensitive
	`\x{FFFD}x`,        // matches invalid UTF-8 too
	`a?b`,              // optional group
	`(ab)?cd`,          // optional prefix
	`(x|y)?z+`,         // plus of a literal
	`.*`,               // always matches
	``,                 // empty regexp
	`^$`,               // empty statement only
	`\d{3,}`,           // no literal
	`[Ss][Ee][Ll]ect`,  // small classes
	`(?i:select)\s+\*`, // flag group
	`(UPDATE|INSERT)\s+INTO\s+(orders|t_order)`,
	`foo(bar|baz)+qux`,
	`(?s)BEGIN.*COMMIT`,
	`(?m)^limit$`,
	`(a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p|q|r)(s|t)`,
	`sleep\(\s*\d+\s*\)`,
	`x{2,4}y{0,2}z`,
	`(?U)wh.+re`,
	`[^a-z]FROM`,
	`\Q.*\E`,
	`(foo|)bar`,
	`(?i)[k]ill`,
	`longliteralthatexceedsthecutoffofsixteenbytes`,
	`\bunion\b.+\bselect\b`,
	`[\x{212A}]`,
	`(?i)ſ`,
	`\A(DROP|TRUNCATE)\s`, // anchored prefixes
	`(^DELETE)`,
	`^\s*DELETE`,
	`(?i)^kill`,
	`^é+`,
	`^(a|b)*x`,
	`^(?i:sel)(ect|ECT)\b`,
}

var trickyStatements = []string{
	"", "DELETE FROM t1 WHERE id=1", "delete from t1", "DELETE  FROM t10", "drop TABLE x",
	"DROP table x", "DES\u212A", "deSK", "CLA\u017FS", "class", "CAFÉ", "café", "cafe",
	"\xffx", "\xef\xbf\xbdx", "ab", "b", "cd", "zzz", "yz", "123", "12", "SELect", "select *",
	"SELECT  *", "UPDATE INTO t_order", "insert into orders", "foobarbazqux", "fooqux",
	"BEGIN; x\nCOMMIT", "BEGIN\nCOMMIT", "a\nlimit\nb", "LIMIT", "as", "rt", "sleep( 10 )",
	"xxz", "xz", "xxyyz", "where", "wh-re", "1FROM", "aFROM", ".*", "bar", "foobar",
	"\u212Aill", "KILL", "kill", "longliteralthatexceedsthecutoffofsixteenbytes",
	"LONGLITERALTHATexceeds", "longliteralthatexceedsthecutoffofsixteenbyteX",
	"x union all select 1", "unionselect", "\u212A", "\u017F", "S", "s",
	"DROP x", "truncate\tt", " DELETE", "\u212AILL", "éé", "abx", "x", "select", "SELect",
}

func TestMatcherTable(t *testing.T) {
	res := compileAll(t, trickyPatterns)
	// Every single pattern alone, then all of them and their reverse.
	for i := range res {
		one := res[i : i+1]
		m := NewMatcher(one)
		for _, s := range trickyStatements {
			checkSame(t, m, one, []byte(s))
		}
	}
	rev := slices.Clone(res)
	slices.Reverse(rev)
	for _, set := range [][]*regexp.Regexp{res, rev} {
		m := NewMatcher(set)
		for _, s := range trickyStatements {
			checkSame(t, m, set, []byte(s))
		}
	}
}

// TestMatcherPrefilters checks the analysis finds literals where it should
// (otherwise the matcher is correct but no faster).
func TestMatcherPrefilters(t *testing.T) {
	for _, tc := range []struct {
		pat    string
		always bool
	}{
		{`^DELETE\s+FROM\s+t1\b`, false},
		{`(?i)^drop\s+table`, false},
		{`(UPDATE|INSERT)\s+INTO`, false},
		{`(?i)desk`, false}, // "des" is still required
		{`a?b`, false},
		{`.*`, true},
		{``, true},
		{`\d+`, true},
		{`(foo|\d)bar`, false}, // bar
		{`(foo|\d)`, true},
		{`^(?i)(drop|truncate)\s`, false},
	} {
		m := NewMatcher(compileAll(t, []string{tc.pat}))
		if got := m.always[0]&1 != 0; got != tc.always {
			t.Errorf("%q: always candidate = %v, want %v (clauses %v)", tc.pat, got, tc.always, m.clauses)
		}
	}
}

// genPattern builds a random regexp from fragments chosen to hit the
// analysis' cases; genStatement builds text from the same vocabulary.
var (
	vocab     = []string{"select", "SELECT", "delete", "from", "t1", "t10", "k", "K", "s", "ſ", "\u212A", "é", "É", "ab", "b", "x", "_", " ", "\n", "1", "\xff", "\ufffd", "where", "sk"}
	fragments = []string{
		"select", "(?i:select)", "DELETE", "from", "t1", "k", "(?i:k)", "(?i)s", "s", "é", "(?i:é)",
		"a?b", "(ab)?", "x*", "x+", "\\s+", "\\s*", "\\d", ".", ".*", "^", "$", "\\b", "[kK]", "[sS]",
		"(from|where)", "(t1|t10|)", "(?:k|s)", "\\x{FFFD}", "[^a]", "(x|y|.)", "1{2}", "_{1,3}",
	}
)

func genPattern(r *rand.Rand) string {
	var b strings.Builder
	if r.IntN(4) == 0 {
		b.WriteString("(?i)")
	}
	if r.IntN(3) == 0 {
		b.WriteString([]string{"^", `\A`, "(?m)^"}[r.IntN(3)])
	}
	for range r.IntN(5) {
		f := fragments[r.IntN(len(fragments))]
		if r.IntN(6) == 0 {
			f = "(" + f + "|" + fragments[r.IntN(len(fragments))] + ")"
		}
		if r.IntN(8) == 0 {
			f = "(" + f + ")?"
		}
		b.WriteString(f)
	}
	return b.String()
}

func genStatement(r *rand.Rand) string {
	var b strings.Builder
	for range r.IntN(8) {
		b.WriteString(vocab[r.IntN(len(vocab))])
	}
	return b.String()
}

func TestMatcherRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		var res []*regexp.Regexp
		for range 1 + r.IntN(12) {
			if re, err := regexp.Compile(genPattern(r)); err == nil {
				res = append(res, re)
			}
		}
		m := NewMatcher(res)
		for range 100 {
			checkSame(t, m, res, []byte(genStatement(r)))
		}
	}
}

// TestMatcherLarge covers the pooled bitsets (more than 512 patterns and
// literals) and rules far apart in the list.
func TestMatcherLarge(t *testing.T) {
	var pats []string
	for i := range 700 {
		pats = append(pats, fmt.Sprintf(`(?i)^DELETE\s+FROM\s+tab_%d\b`, i))
	}
	pats = append(pats, `\d{5}`)
	res := compileAll(t, pats)
	m := NewMatcher(res)
	for _, s := range []string{"delete from tab_699", "DELETE FROM tab_0 x", "DELETE FROM tab_70", "select 12345", "select 1"} {
		checkSame(t, m, res, []byte(s))
	}
	if raceEnabled {
		return // pooled bitsets are dropped at random under -race
	}
	sql := []byte("DELETE FROM tab_650")
	if n := testing.AllocsPerRun(100, func() { m.First(sql) }); n != 0 {
		t.Errorf("%v allocs per match with pooled bitsets", n)
	}
}

func FuzzMatcher(f *testing.F) {
	f.Add(strings.Join(trickyPatterns[:8], "\n"), "DELETE FROM t1 WHERE id=1")
	f.Add(`(?i)desk`+"\n"+`a?b`, "DES\u212A")
	f.Add(`\x{FFFD}`+"\n"+`(?i)class`, "\xffCLA\u017FS")
	f.Add(`^$`+"\n"+`.*`, "")
	f.Fuzz(func(t *testing.T, patterns, stmt string) {
		var res []*regexp.Regexp
		for p := range strings.SplitSeq(patterns, "\n") {
			if re, err := regexp.Compile(p); err == nil {
				res = append(res, re)
			}
		}
		checkSame(t, NewMatcher(res), res, []byte(stmt))
	})
}

// benchRules are 100 rules like bench/harness's proxy-rules target.
func benchRules(b *testing.B) []*regexp.Regexp {
	var pats []string
	for i := range 100 {
		pats = append(pats, fmt.Sprintf(`^DELETE\s+FROM\s+forbidden_%d\b`, i))
	}
	return compileAll(b, pats)
}

// bulkInsert is a sysbench-like multi-row INSERT of about n bytes.
func bulkInsert(n int) string {
	row := "(4711,5012,'68487932199-96439406143-93774651418-41631865787-96406072701-20604855487','22195207048-70116052123'),"
	return "INSERT INTO sbtest1 (id,k,c,pad) VALUES " + strings.Repeat(row, n/len(row)) + "(1,2,'','')"
}

func BenchmarkMatcher(b *testing.B) {
	res := benchRules(b)
	m := NewMatcher(res)
	for _, bc := range []struct{ name, sql string }{
		{"PointSelect", "SELECT c FROM sbtest1 WHERE id=4711"},
		{"RangeSelect", "SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN 4711 AND 4810 ORDER BY c"},
		{"DeleteOther", "DELETE FROM sbtest1 WHERE id=4711"},
		{"LastRule", "DELETE FROM forbidden_99 WHERE id=4711"},
		{"BulkInsert1MiB", bulkInsert(1 << 20)},
	} {
		sql := []byte(bc.sql)
		b.Run(bc.name+"/naive", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				naiveFirst(res, sql, 0)
			}
		})
		b.Run(bc.name+"/matcher", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m.First(sql)
			}
		})
	}
}
