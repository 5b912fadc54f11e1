package sqlinfo

import (
	"fmt"
	"hash/maphash"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pingcap/tidb/pkg/parser"
)

func key(t testing.TB, sql string) (string, bool) {
	t.Helper()
	k, ok := appendKey(nil, []byte(sql))
	return string(k), ok
}

// sameInfo is the key's soundness: texts sharing a key must classify alike.
func sameInfo(t *testing.T, a, b string) {
	t.Helper()
	ia, ib := Classify([]byte(a), "db"), Classify([]byte(b), "db")
	if !reflect.DeepEqual(ia, ib) {
		t.Errorf("same key, different info:\n %q -> %+v\n %q -> %+v", a, ia, b, ib)
	}
}

func TestKeySameShape(t *testing.T) {
	pairs := [][2]string{
		{"SELECT c FROM sbtest1 WHERE id=1", "SELECT c FROM sbtest1 WHERE id=4711"},
		{"SELECT c FROM t WHERE id=1", "select c from t where id=2"},
		{"SELECT c FROM t WHERE id=1", "SELECT  c\n\tFROM t   WHERE id=3  "},
		{"SELECT c FROM t WHERE id=1", "/* app=x */ SELECT c FROM t -- tail\n WHERE id=3 # more"},
		{"SELECT * FROM t WHERE a='x' AND b=\"y\"", "SELECT * FROM t WHERE a='it''s \\' here' AND b=\"\""},
		{"SELECT * FROM t WHERE a=1.5", "SELECT * FROM t WHERE a=.25"},
		{"SELECT * FROM t WHERE a=1e5", "SELECT * FROM t WHERE a=2.5E-3"},
		{"SELECT * FROM t WHERE a=0x1f", "SELECT * FROM t WHERE a=0xABCDEF"},
		{"SELECT * FROM t LIMIT 10", "SELECT * FROM t LIMIT 20"},
		{"SELECT * FROM t ORDER BY a LIMIT 10", "SELECT * FROM t ORDER BY a LIMIT 20"},
		{"INSERT INTO t VALUES (1,'a'),(2,'b')", "INSERT INTO t VALUES (3,'c'),(4,'d')"},
		{"SELECT * FROM t WHERE a=_utf8mb4'x'", "SELECT * FROM t WHERE a=_utf8mb4'yy'"},
		{"SELECT /*+ MAX_EXECUTION_TIME(1) */ * FROM t WHERE id=1", "SELECT /*+ MAX_EXECUTION_TIME(1) */ * FROM t WHERE id=2"},
	}
	for _, p := range pairs {
		ka, okA := key(t, p[0])
		kb, okB := key(t, p[1])
		if !okA || !okB || ka != kb {
			t.Errorf("keys differ:\n %q -> %q\n %q -> %q", p[0], ka, p[1], kb)
			continue
		}
		sameInfo(t, p[0], p[1])
	}
}

// Texts that must not share a key: the literal-looking part is a name, or
// its value changes what the parser or the digester sees.
func TestKeyDistinguishes(t *testing.T) {
	pairs := [][2]string{
		{"SELECT * FROM t", "SELECT * FROM T"},
		{"SELECT * FROM 1t", "SELECT * FROM 2t"},
		{"SELECT * FROM d.1", "SELECT * FROM d.2"},
		{"SELECT t.1 FROM t", "SELECT t.2 FROM t"},
		{"SELECT d . 1 FROM t", "SELECT d . 2 FROM t"},
		{"SELECT * FROM t WHERE a = X'1F'", "SELECT * FROM t WHERE a = X'ZZ'"},
		{"SELECT * FROM t WHERE a = b'01'", "SELECT * FROM t WHERE a = b'21'"},
		{"SELECT @'a'", "SELECT @'b'"},
		{"SELECT * FROM t ORDER BY 1", "SELECT * FROM t ORDER BY 2"},
		{"SELECT * FROM t ORDER BY a, 1", "SELECT * FROM t ORDER BY a, 2"},
		{"SELECT a FROM t GROUP BY (1)", "SELECT a FROM t GROUP BY (2)"},
		{"SELECT * FROM t LIMIT 1", "SELECT * FROM t LIMIT 1.5"},
		{"SELECT * FROM t LIMIT 1", "SELECT * FROM t LIMIT 99999999999999999999999"},
		{"SELECT * FROM t LIMIT 1", "SELECT * FROM t LIMIT '1'"},
		{"SELECT 'abc'", "SELECT 'abc"},
		{"SELECT 1 /*!50000 + 1 */", "SELECT 1 /*!50000 + 2 */"},
		{"SELECT * FROM select.x", "SELECT * FROM SELECT.x"},
		{"SELECT * FROM x.select", "SELECT * FROM x.SELECT"},
		{"SELECT 1 --\xa0 'x\n FROM t'", "SELECT 1 --\xa0 'x\n FROM u'"},
		{"SELECT a<=1", "SELECT a< =1"},
		{"SELECT * FROM t WHERE id=?", "SELECT * FROM t WHERE id=1"},
		{"SELECT 0x1g", "SELECT 0x2g"},
		{"SELECT 1e", "SELECT 2e"},
		{"SELECT 1.5.3", "SELECT 1.5.4"},
		// found by FuzzKeySound
		{"@0", "@1"},
		{"@.0", "@.1"},
		{"@GROUP BY 0", "@GROUP BY 1"},
		{"SELECT @'group' BY 1", "SELECT @'group' BY 2"},
		{"SELECT t.@x 5", "SELECT t.@x 6"},
	}
	for _, p := range pairs {
		ka, _ := key(t, p[0])
		kb, _ := key(t, p[1])
		if ka == kb {
			t.Errorf("%q and %q share the key %q", p[0], p[1], ka)
		}
	}
}

func TestKeyFoldsReservedWordsOnly(t *testing.T) {
	reserved := map[string]bool{}
	for _, k := range parser.Keywords {
		reserved[k.Word] = k.Reserved
	}
	for _, w := range []string{"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE",
		"BETWEEN", "ORDER", "BY", "GROUP", "HAVING", "LIMIT", "INSERT", "INTO",
		"VALUES", "UPDATE", "SET", "DELETE", "JOIN", "INNER", "LEFT", "RIGHT",
		"OUTER", "CROSS", "ON", "AS", "ASC", "DESC", "DISTINCT", "UNION", "ALL",
		"EXISTS", "CASE", "WHEN", "THEN", "ELSE", "FOR", "REPLACE", "WITH",
		"USING", "LOCK", "DEFAULT", "KEY"} {
		if !isFoldedKeyword([]byte(w)) {
			t.Errorf("%s: listed here but not folded", w)
		}
		if !reserved[w] {
			t.Errorf("%s is folded but not reserved in the parser", w)
		}
	}
	// Keywords that TiDB does not reserve can name tables: never folded.
	for _, w := range []string{"DUPLICATE", "SHARE", "STATUS", "USER"} {
		if !reserved[w] && isFoldedKeyword([]byte(w)) {
			t.Errorf("%s is folded but not reserved", w)
		}
	}
}

func TestKeyUncacheable(t *testing.T) {
	for _, sql := range []string{"SELECT \x01", "SELECT `a\x02`", "SELECT 1 /*!50000 '\x03' */"} {
		if _, ok := key(t, sql); ok {
			t.Errorf("%q: cacheable", sql)
		}
	}
	if _, ok := key(t, "SELECT '\x01'"); !ok {
		t.Errorf("a control byte inside a string literal is fine")
	}
}

func TestCacheHitsAcrossLiterals(t *testing.T) {
	c := NewCache(64)
	first := c.Classify([]byte("SELECT c FROM sbtest1 WHERE id=1"), "sbtest")
	for i := 2; i < 100; i++ {
		sql := fmt.Sprintf("SELECT c FROM sbtest1 WHERE id=%d", i)
		if got := c.Classify([]byte(sql), "sbtest"); !reflect.DeepEqual(got, first) {
			t.Fatalf("%q: %+v, want %+v", sql, got, first)
		}
	}
	if n := c.Len(); n != 1 {
		t.Errorf("cache holds %d entries, want 1", n)
	}
	// Another current database qualifies the table differently.
	other := c.Classify([]byte("SELECT c FROM sbtest1 WHERE id=5"), "other")
	if other.Tables[0] != (Table{"other", "sbtest1"}) || c.Len() != 2 {
		t.Errorf("current db ignored: %+v, %d entries", other.Tables, c.Len())
	}
}

func TestCacheHitAllocs(t *testing.T) {
	c := NewCache(64)
	c.Classify([]byte("SELECT c FROM sbtest1 WHERE id=1"), "sbtest")
	sql := []byte("SELECT c FROM sbtest1 WHERE id=2")
	if n := testing.AllocsPerRun(100, func() { c.Classify(sql, "sbtest") }); n != 0 {
		t.Errorf("a cache hit allocates %v times", n)
	}
}

var mixed = []string{
	"SELECT c FROM sbtest1 WHERE id=%d",
	"SELECT c FROM sbtest2 WHERE id=%d",
	"SELECT c FROM sbtest1 WHERE id=%d FOR UPDATE",
	"UPDATE sbtest1 SET k=k+1 WHERE id=%d",
	"DELETE FROM sbtest1 WHERE id=%d",
	"INSERT INTO sbtest1 (id, k, c, pad) VALUES (%d, 1, 'x', 'y')",
	"SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN %d AND 10 ORDER BY c",
	"SELECT LAST_INSERT_ID() + %d",
	"SELECT * FROM a JOIN b ON a.x=b.x WHERE a.id=%d",
	"BEGIN; SELECT %d; COMMIT",
	"SELEC %d",
}

func TestCacheCollisions(t *testing.T) {
	c := NewCache(1) // one set of 4 ways
	c.sameHash = true
	for round := 0; round < 3; round++ {
		for i, f := range mixed {
			sql := fmt.Sprintf(f, round*100+i)
			want := Classify([]byte(sql), "db")
			if got := c.Classify([]byte(sql), "db"); !reflect.DeepEqual(got, want) {
				t.Fatalf("%q: %+v, want %+v", sql, got, want)
			}
		}
	}
	if n := c.Len(); n > ways {
		t.Errorf("cache holds %d entries, bound %d", n, ways)
	}
}

func TestCacheConcurrent(t *testing.T) {
	c := NewCache(8)
	want := make([]Info, len(mixed))
	for i, f := range mixed {
		want[i] = Classify([]byte(fmt.Sprintf(f, 0)), "db")
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 300; n++ {
				i := (n + g) % len(mixed)
				got := c.Classify([]byte(fmt.Sprintf(mixed[i], n)), "db")
				if got.Kind != want[i].Kind || got.ReadOnly != want[i].ReadOnly ||
					got.Fingerprint != want[i].Fingerprint || !reflect.DeepEqual(got.Tables, want[i].Tables) {
					t.Errorf("%d: %+v, want %+v", i, got, want[i])
					return
				}
			}
		}()
	}
	wg.Wait()
}

// Two texts that share a key must classify alike, whatever the texts. The
// fuzzer mutates literals (and everything else) of a seed; the check only
// bites when the keys are equal.
func FuzzKeySound(f *testing.F) {
	seeds := []string{
		"SELECT c FROM sbtest1 WHERE id=1", "SELECT * FROM t ORDER BY 1, a, 2 LIMIT 3",
		"SELECT * FROM t WHERE a = X'1F' AND b = 'x' AND c = \"y\"", "SELECT @'a', @@x, t.5 FROM t",
		"SELECT 1 /*!50000 + 1 */", "SELECT /*+ HINT(1) */ 1.5e3, .5, 0b01", "SELECT 1 -- x\n, 2",
		"INSERT INTO t VALUES (1, 'a\\'b')", "SELECT * FROM t GROUP BY (1, 2)",
	}
	for _, s := range seeds {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ka, okA := key(t, a)
		kb, okB := key(t, b)
		if okA && okB && ka == kb && a != b {
			sameInfo(t, a, b)
		}
		// And the digit-swapped variant of a, the common case.
		c := strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return '0' + (r-'0'+1)%10
			}
			return r
		}, a)
		if kc, okC := key(t, c); okA && okC && kc == ka && c != a {
			sameInfo(t, a, c)
		}
		// And the upper-cased variant: keys meet when only keywords changed.
		if u := strings.ToUpper(a); u != a {
			if ku, okU := key(t, u); okA && okU && ku == ka {
				sameInfo(t, a, u)
			}
		}
	})
}

func TestNilCache(t *testing.T) {
	var c *Cache
	if info := c.Classify([]byte("SELECT * FROM t"), "db"); info.Kind != KindSelect || len(info.Tables) != 1 {
		t.Errorf("nil cache: %+v", info)
	}
}

// Texts that differ only in a literal share a cache key; where a literal
// decides the answer, the second must not get the first's Info.
func TestCacheLiteralsThatDecide(t *testing.T) {
	for _, pair := range [][2]string{
		{"CREATE TABLE f (id INT) ENGINE='InnoDB'", "CREATE TABLE f (id INT) ENGINE='FEDERATED'"},
		{"ALTER TABLE f ENGINE='MyISAM'", "ALTER TABLE f ENGINE='SPIDER'"},
		{"CREATE TABLE f (id INT) PARTITION BY HASH(id) (PARTITION p0 ENGINE='InnoDB')", "CREATE TABLE f (id INT) PARTITION BY HASH(id) (PARTITION p0 ENGINE='CONNECT')"},
		{"KILL 5;;", "KILL 7;;"},
		{"PREPARE s FROM 'SELECT 1'", "PREPARE s FROM 'SELECT * FROM secret'"},
	} {
		c := NewCache(16)
		c.Classify([]byte(pair[0]), "shop")
		got, want := c.Classify([]byte(pair[1]), "shop"), Classify([]byte(pair[1]), "shop")
		if got.Unverifiable != want.Unverifiable || !slices.Equal(got.Kills, want.Kills) ||
			!slices.Equal(accessStrings(got.Access), accessStrings(want.Access)) {
			t.Errorf("%q after %q: cached %+v, parsed %+v", pair[1], pair[0], got, want)
		}
	}
}

// heldBytes sums the sizes of the entries c holds.
func heldBytes(c *Cache) (n int64) {
	for i := range c.sets {
		for w := range c.sets[i] {
			if e := c.sets[i][w].Load(); e != nil {
				n += e.size
			}
		}
	}
	return n
}

// Long statements fill a cache's byte budget, not its entry count: the
// memory held stays within the budget (the count alone let 16,384 entries
// of 8 KiB texts reach hundreds of MiB), the accounting matches what is
// held, and statements met later are still cached.
func TestCacheByteBudget(t *testing.T) {
	const budget = 256 << 10
	c := NewCacheBudget(1024, budget)
	cols := make([]string, 300)
	for i := range cols {
		cols[i] = fmt.Sprintf("column_number_%d", i)
	}
	long := strings.Join(cols, ", ")
	for i := range 400 {
		c.Classify([]byte(fmt.Sprintf("SELECT %s FROM table_%d", long, i)), "db")
	}
	if b := c.Bytes(); b > budget || b != heldBytes(c) {
		t.Fatalf("cache accounts %d bytes, holds %d, budget %d", b, heldBytes(c), budget)
	}
	if n := c.Len(); n >= 400 || n == 0 {
		t.Fatalf("cache holds %d long entries; want some, bounded by the budget", n)
	}
	short := []byte("SELECT id FROM small WHERE id = 1")
	for range 20 { // a random way of its set: an entry at least as large goes
		c.Classify(short, "db")
	}
	var buf [512]byte
	key, _ := cacheKey(buf[:0], short, "db")
	h := maphash.Bytes(c.seed, key)
	if c.sets[h&c.mask].find(h, key) == nil {
		t.Fatal("a short statement is not cached once the budget is full of long ones")
	}
	if b := c.Bytes(); b > budget || b != heldBytes(c) {
		t.Fatalf("after turnover: cache accounts %d bytes, holds %d, budget %d", b, heldBytes(c), budget)
	}
}

// TestParseBudget: a user's allowance covers texts of new shapes up to its
// burst, then they get the lexical reading (Throttled, not cached); texts
// the cache knows, short texts and other users are not held back.
func TestParseBudget(t *testing.T) {
	b := NewBudget(1, 4096) // one byte a second: no refill within the test
	c := NewCache(64)
	long := func(i int) []byte {
		return []byte(fmt.Sprintf("SELECT c%d FROM t WHERE note = '%s'", i, strings.Repeat("x", 2000)))
	}
	spend := func(user string) func(int) bool { return func(n int) bool { return b.Spend(user, n) } }
	for i := range 2 {
		if info := c.ClassifyMode(long(i), "shop", 0, spend("app")); info.Throttled || info.Unverifiable {
			t.Fatalf("text %d within the burst: %+v", i, info)
		}
	}
	info := c.ClassifyMode(long(2), "shop", 0, spend("app"))
	if !info.Throttled || !info.Unverifiable || info.Kind != KindSelect {
		t.Fatalf("past the burst: want the lexical reading, throttled; got %+v", info)
	}
	if info := c.ClassifyMode(long(0), "shop", 0, spend("app")); info.Throttled {
		t.Errorf("a text the cache knows was throttled")
	}
	if info := c.ClassifyMode([]byte("SELECT c9 FROM t"), "shop", 0, spend("app")); info.Throttled {
		t.Errorf("a short text was throttled")
	}
	if info := c.ClassifyMode(long(2), "shop", 0, spend("other")); info.Throttled {
		t.Errorf("another user was throttled")
	}
	if NewBudget(0, 0).Spend("app", 1<<20) != true {
		t.Errorf("a zero rate must mean no bound")
	}
}
