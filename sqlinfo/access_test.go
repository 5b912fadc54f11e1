package sqlinfo

import (
	"slices"
	"strings"
	"testing"
)

// accessStrings renders accesses as "op db.table", "op db." (database) or
// "op *" (server-wide), sorted.
func accessStrings(as []Access) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		switch {
		case a.Table == Table{}:
			out = append(out, a.Op.String()+" *")
		case a.Name == "":
			out = append(out, a.Op.String()+" "+a.DB+".")
		default:
			out = append(out, a.Op.String()+" "+a.DB+"."+a.Name)
		}
	}
	slices.Sort(out)
	return out
}

func TestAccess(t *testing.T) {
	cases := []struct {
		sql  string
		want string // accessStrings joined by ", "
	}{
		{"SELECT * FROM t", "select shop.t"},
		{"select * from T join other.u using (id)", "select other.u, select shop.T"},
		{"SELECT * FROM t WHERE id IN (SELECT id FROM secret)", "select shop.secret, select shop.t"},
		{"SELECT (SELECT x FROM secret LIMIT 1)", "select shop.secret"},
		{"SELECT * FROM (SELECT * FROM secret) AS t", "select shop.secret"},
		{"SELECT * FROM secret AS allowed", "select shop.secret"},
		{"SELECT 1 FROM DUAL WHERE EXISTS (SELECT 1 FROM a.b)", "select a.b"},
		{"SELECT 1", ""},
		{"SELECT 1 UNION SELECT x FROM secret", "select shop.secret"},
		// CTEs: a CTE name is not a table where the CTE is in scope...
		{"WITH c AS (SELECT * FROM secret) SELECT * FROM c", "select shop.secret"},
		// ...but is outside it,
		{"SELECT * FROM (WITH secret AS (SELECT 1) SELECT * FROM secret) a JOIN secret b", "select shop.secret"},
		{"WITH secret AS (SELECT 1) SELECT 1; SELECT * FROM secret", "select shop.secret"},
		// and a non-recursive CTE does not see itself or later CTEs.
		{"WITH a AS (SELECT * FROM secret), secret AS (SELECT 1) SELECT * FROM a", "select shop.secret"},
		{"WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n+1 FROM r WHERE n < 3) SELECT * FROM r", ""},
		{"WITH c AS (SELECT 1) SELECT * FROM shop.c", "select shop.c"},
		{"INSERT INTO t VALUES (1)", "insert shop.t"},
		{"INSERT INTO t SELECT * FROM secret", "insert shop.t, select shop.secret"},
		{"INSERT INTO t VALUES ((SELECT x FROM secret))", "insert shop.t, select shop.secret"},
		{"INSERT INTO t VALUES (1) ON DUPLICATE KEY UPDATE a = 2", "insert shop.t, select shop.t, update shop.t"},
		{"REPLACE INTO t VALUES (1)", "delete shop.t, insert shop.t"},
		{"UPDATE t SET a = 1", "select shop.t, update shop.t"},
		{"UPDATE t SET a = (SELECT x FROM secret)", "select shop.secret, select shop.t, update shop.t"},
		{"UPDATE t JOIN secret s ON t.id = s.id SET t.a = s.b", "select shop.secret, select shop.t, update shop.t"},
		{"UPDATE t AS x JOIN secret s ON x.id = s.id SET x.a = 1", "select shop.secret, select shop.t, update shop.t"},
		{"UPDATE t JOIN secret s ON t.id = s.id SET a = 1", "select shop.secret, select shop.t, update shop.secret, update shop.t"},
		{"UPDATE t, u SET t.a = 1, u.b = 2", "select shop.t, select shop.u, update shop.t, update shop.u"},
		{"DELETE FROM t WHERE id = 1", "delete shop.t, select shop.t"},
		{"DELETE FROM t WHERE id IN (SELECT id FROM secret)", "delete shop.t, select shop.secret, select shop.t"},
		{"DELETE t FROM t JOIN secret ON t.id = secret.id", "delete shop.t, select shop.secret, select shop.t"},
		{"DELETE x FROM t AS x JOIN secret s ON x.id = s.id", "delete shop.t, select shop.secret, select shop.t"},
		{"DELETE t, s FROM t JOIN other.secret s ON t.id = s.id", "delete other.secret, delete shop.t, select other.secret, select shop.t"},
		{"DELETE FROM t USING t JOIN secret ON t.id = secret.id", "delete shop.t, select shop.secret, select shop.t"},
		{"CREATE TABLE n (id INT)", "ddl shop.n"},
		{"CREATE TABLE n AS SELECT * FROM secret", "ddl shop.n, select shop.secret"},
		{"CREATE VIEW v AS SELECT * FROM secret", "ddl shop.v, select shop.secret"},
		{"DROP TABLE a, other.b", "ddl other.b, ddl shop.a"},
		{"RENAME TABLE secret TO open", "ddl shop.open, ddl shop.secret"},
		{"TRUNCATE secret", "ddl shop.secret"},
		{"ALTER TABLE t ADD COLUMN c INT", "ddl shop.t"},
		{"CREATE DATABASE x", "ddl x."},
		{"DROP DATABASE x", "ddl x."},
		{"CREATE USER u", "other *"},
		{"GRANT ALL ON *.* TO u", "other *"},
		{"FLUSH TABLES", "other *"},
		{"USE other; SELECT * FROM t", "select other.t, use other."},
		{"SHOW TABLES FROM other", "select other."},
		{"SHOW COLUMNS FROM secret", "select shop.secret"},
		{"DESC secret", "select shop.secret"},
		{"SHOW CREATE TABLE other.secret", "select other.secret"},
		{"SHOW PROCESSLIST", "other *"},
		{"SHOW DATABASES", ""},
		{"SHOW TABLES", "select shop."},
		{"SHOW TABLE STATUS FROM other", "select other."},
		{"UPDATE t AS a JOIN secret AS s ON a.id = s.id SET shop.s.v = 1", "select shop.secret, select shop.t, update shop.secret, update shop.t"},
		{"SELECT other.f(1), shop.g()", "other other.f, other shop.g"},
		{"SELECT ABS(-1), f(2)", "other shop.f"},
		{"EXPLAIN SELECT * FROM secret", "select shop.secret"},
		{"EXPLAIN DELETE FROM secret", "select shop.secret"},
		{"SET @a = (SELECT x FROM secret)", "select shop.secret"},
		{"SET GLOBAL max_connections = 10", "other *"},
		{"SET NAMES utf8mb4", ""},
		{"PREPARE s FROM 'SELECT * FROM secret'", "select shop.secret"},
		{"CALL p(1)", "other shop.p"},
		{"CALL other.p((SELECT x FROM secret))", "other other.p, select shop.secret"},
		{"LOAD DATA LOCAL INFILE 'f' INTO TABLE t", "insert shop.t"},
		{"LOAD DATA INFILE '/etc/passwd' INTO TABLE t", "insert shop.t, other *"},
		{"SELECT LOAD_FILE('/etc/passwd')", "other *"},
		{"SELECT * FROM t INTO OUTFILE '/tmp/x'", "other *, select shop.t"},
		{"LOCK TABLES t READ, u WRITE", "select shop.t, update shop.u"},
		{"BEGIN; COMMIT", ""},
		// Comments and executable comments.
		{"SELECT 1 /*! , (SELECT x FROM secret) */", "select shop.secret"},
		{"SELECT 1 /*M! , (SELECT x FROM secret) */", "select shop.secret"},
		{"SELECT 1 /*M!100100 , (SELECT x FROM secret) */", "select shop.secret"},
		{"SELECT 1 -- , (SELECT x FROM secret)\n", ""},
		{"SELECT 1 # x\n, (SELECT x FROM secret)", "select shop.secret"},
		{"SELECT * FROM `sec``ret`", "select shop.sec`ret"},
		// Writes that read the rows they write.
		{"UPDATE t SET a = 1", "select shop.t, update shop.t"},
		{"UPDATE t SET a = b", "select shop.t, update shop.t"},
		{"DELETE FROM t", "delete shop.t"},
		{"DELETE FROM t ORDER BY id LIMIT 1", "delete shop.t, select shop.t"},
		{"INSERT INTO t (a) VALUES (1) ON DUPLICATE KEY UPDATE a = VALUES(a)", "insert shop.t, select shop.t, update shop.t"},
		{"INSERT INTO t (a) VALUES (1) ON DUPLICATE KEY UPDATE a = a + 1", "insert shop.t, select shop.t, update shop.t"},
		// Sequences: NEXTVAL and SETVAL write them.
		{"SELECT NEXTVAL(s)", "select shop.s, update shop.s"},
		{"SELECT NEXT VALUE FOR other.s", "select other.s, update other.s"},
		{"SELECT SETVAL(s, 10)", "select shop.s, update shop.s"},
		{"SELECT LASTVAL(s)", "select shop.s"},
		{"INSERT INTO t VALUES (NEXTVAL(s))", "insert shop.t, select shop.s, update shop.s"},
		// Stored functions without a database; built-ins and grammar forms are not.
		{"SELECT zz_g(1), CHAR(65 USING utf8), INSERT('ab', 1, 1, 'c'), DATE '2020-01-01', NOW()", "other shop.zz_g"},
		{"SELECT 1 FROM t WHERE secret_of(id) > 0", "other shop.secret_of, select shop.t"},
		// The server's own tables are server-wide; the catalogue is checked by name.
		{"SELECT * FROM information_schema.PROCESSLIST", "other *, select information_schema.PROCESSLIST"},
		{"SELECT * FROM processlist", "select shop.processlist"},
		{"USE information_schema; SELECT * FROM processlist", "other *, select information_schema.processlist, use information_schema."},
		{"SELECT trx_query FROM INFORMATION_SCHEMA.innodb_trx", "other *, select INFORMATION_SCHEMA.innodb_trx"},
		{"SELECT * FROM performance_schema.events_statements_history", "other *, select performance_schema.events_statements_history"},
		{"SELECT * FROM sys.processlist", "other *, select sys.processlist"},
		{"SELECT * FROM mysql.slow_log", "other *, select mysql.slow_log"},
		{"SELECT table_name FROM information_schema.TABLES", "select information_schema.TABLES"},
		// Third review: MERGE tables, file placement, engines reaching elsewhere,
		// SHOW ... FROM t FROM db, grants, privileged session variables, OPTIMIZE.
		{"CREATE TABLE m (id INT) ENGINE=MERGE UNION=(secret, other.s)", "ddl shop.m, delete other.s, delete shop.secret, insert other.s, insert shop.secret, select other.s, select shop.secret, update other.s, update shop.secret"},
		{"ALTER TABLE m UNION=(secret)", "ddl shop.m, delete shop.secret, insert shop.secret, select shop.secret, update shop.secret"},
		{"CREATE TABLE f (id INT) DATA DIRECTORY = '/tmp'", "ddl shop.f, other *"},
		{"CREATE TABLE i (id INT) ENGINE=InnoDB", "ddl shop.i"},
		{"SHOW FULL COLUMNS FROM t FROM other", "select other.t"},
		{"SHOW GRANTS", "other *"},
		{"SHOW GRANTS FOR 'app'@'%'", "other *"},
		{"SET SESSION sql_log_bin = 0", "other *"},
		{"SET @@gtid_seq_no = 5, autocommit = 1", "other *"},
		{"SET server_id = 7", "other *"},
		{"SET SESSION sql_mode = '', autocommit = 0, @x = 1", ""},
		{"OPTIMIZE TABLE t, other.u", "ddl other.u, ddl shop.t"},
		// Fourth review: partition options, the parent of a foreign key.
		{"CREATE TABLE p (id INT) PARTITION BY HASH(id) (PARTITION p0 DATA DIRECTORY = '/tmp')", "ddl shop.p, other *"},
		{"ALTER TABLE p PARTITION BY HASH(id) (PARTITION p0 INDEX DIRECTORY = '/tmp')", "ddl shop.p, other *"},
		{"ALTER TABLE p ADD PARTITION (PARTITION p9 DATA DIRECTORY = '/tmp')", "ddl shop.p, other *"},
		{"CREATE TABLE other.c (v INT, FOREIGN KEY (v) REFERENCES secret(v))", "ddl other.c, ddl other.secret"},
		{"CREATE TABLE other.c (v INT REFERENCES secret(v))", "ddl other.c, ddl other.secret"},
		{"ALTER TABLE other.c ADD FOREIGN KEY (v) REFERENCES secret(v)", "ddl other.c, ddl other.secret"},
		{"CREATE TABLE c (v INT, FOREIGN KEY (v) REFERENCES secret(v))", "ddl shop.c, ddl shop.secret"},
		// Built-in names that reach a stored function when quoted or spaced.
		{"SELECT COUNT(*), NOW(), ABS(1), IF(1, 2, 3) FROM t", "select shop.t"},
		{"SELECT `count`(1)", "other shop.count"},
		{"SELECT count (1) FROM t", "other shop.count, select shop.t"},

		{"SELECT count /* x */ (1) FROM t", "other shop.count, select shop.t"},
		{"SELECT abs (1), IF (1, 2, 3)", ""},   // natives and grammar forms take blanks
		{"SELECT `abs`(1), `concat`('a')", ""}, // natives stay natives quoted
		{"SELECT `if`(1, 2, 3)", "other shop.if"},
		{"SELECT `nextval`(s)", "other shop.nextval"},                      // a stored function, not the sequence function
		{"SELECT count/*!(*/1) FROM t", "other shop.count, select shop.t"}, // an executable comment's content is code
		{"SELECT count/*!50000 */(1) FROM t", "other shop.count, select shop.t"},
		{"CALL `p  `()", "other shop.p"}, // trailing blanks do not count in routine names
		{"SELECT 1; USE other; SELECT `now`()", "other other.now, use other."},
		{"SELECT `status`(), name(1)", "other shop.name, other shop.status"}, // not built-ins: plain calls are stored`
	}
	for _, c := range cases {
		info := Classify([]byte(c.sql), "shop")
		if info.ParseError {
			t.Errorf("%q: parse error", c.sql)
			continue
		}
		if got := strings.Join(accessStrings(info.Access), ", "); got != c.want {
			t.Errorf("%q:\n got  %s\n want %s", c.sql, got, c.want)
		}
	}
}

func TestAccessAnsiQuotedCall(t *testing.T) {
	info := ClassifyMode([]byte(`SELECT "count"(1) FROM t`), "shop", ANSIQuotes)
	if got := strings.Join(accessStrings(info.Access), ", "); got != "other shop.count, select shop.t" {
		t.Errorf("under ANSI_QUOTES: %s", got)
	}
}

func TestAccessUnverifiable(t *testing.T) {
	for _, sql := range []string{
		"PREPARE s FROM @q",
		"EXECUTE IMMEDIATE 'SELECT * FROM secret'",
		"HANDLER secret OPEN",
		"PREPARE s FROM 'SELEC * FROM secret'",
		"CREATE PROCEDURE p() BEGIN SELECT * FROM secret; END",
		"DROP PROCEDURE p",
		"CREATE TABLE f (id INT) ENGINE=FEDERATED CONNECTION='mysql://u@h/db/secret'",
		"ALTER TABLE t ENGINE = CONNECT",
		"CALL `acl_sécret_proc`()", // routine names compare without accents
		"SELECT other.`fé`()",
	} {
		if info := Classify([]byte(sql), "shop"); !info.Unverifiable {
			t.Errorf("%q: not unverifiable: %+v", sql, info.Access)
		}
	}
	long := "SELECT * FROM secret WHERE x IN (" + strings.Repeat("1,", MaxParsed/2) + "1)"
	if info := Classify([]byte(long), "shop"); !info.Unverifiable {
		t.Errorf("a text over MaxParsed must be unverifiable")
	}
	if info := ClassifyLong([]byte(long), "shop", 0); info.Unverifiable || len(info.Access) != 1 {
		t.Errorf("ClassifyLong: %+v", info.Access)
	}
}

// Under NO_BACKSLASH_ESCAPES 'a\' is a whole string, and what follows is
// code the server runs.
func TestAccessNoBackslashEscapes(t *testing.T) {
	sql := []byte(`SELECT 'a\' , (SELECT x FROM secret) , '-- '`)
	if info := Classify(sql, "shop"); info.ParseError || len(info.Access) != 0 {
		t.Fatalf("default mode: one string then a comment, got %+v", info)
	}
	c := NewCache(64)
	c.Classify(sql, "shop")
	got := accessStrings(c.ClassifyMode(sql, "shop", NoBackslashEscapes, nil).Access)
	if !slices.Equal(got, []string{"select shop.secret"}) {
		t.Fatalf("NO_BACKSLASH_ESCAPES: %v", got)
	}
}

// The cache key keeps MariaDB executable comments: a text hiding a table in
// one must not share an entry with the text without it.
func TestCacheKeepsExecutableComments(t *testing.T) {
	c := NewCache(64)
	c.Classify([]byte("SELECT 1 /*M! , 2 */"), "shop")
	info := c.Classify([]byte("SELECT 1 /*M! , (SELECT x FROM secret) */"), "shop")
	if got := accessStrings(info.Access); !slices.Equal(got, []string{"select shop.secret"}) {
		t.Fatalf("got %v", got)
	}
}

// Two PREPARE texts differ only in a string literal: their accesses must
// not share a cache entry.
func TestCachePrepareTexts(t *testing.T) {
	c := NewCache(64)
	a := c.Classify([]byte("PREPARE s FROM 'SELECT v FROM orders'"), "shop")
	b := c.Classify([]byte("PREPARE s FROM 'SELECT v FROM secret'"), "shop")
	if got := accessStrings(b.Access); !slices.Equal(got, []string{"select shop.secret"}) {
		t.Fatalf("second PREPARE: %v (first %v)", got, accessStrings(a.Access))
	}
	if len(b.Prepares) != 1 || b.Prepares[0].Name != "s" || accessStrings(b.Prepares[0].Access)[0] != "select shop.secret" {
		t.Fatalf("prepares: %+v", b.Prepares)
	}
}

func TestStatementFacts(t *testing.T) {
	text := "USE a; SELECT 1; USE `b`; KILL QUERY 42; EXECUTE s; SET NAMES gbk"
	info := Classify([]byte(text), "shop")
	if !info.ChangesDB || info.UseDB != "b" || len(info.Kills) != 1 || info.Kills[0].ID != 42 || !info.Kills[0].Query ||
		text[info.Kills[0].Start:info.Kills[0].End] != "42" ||
		!slices.Equal(info.Executes, []string{"s"}) || !info.ChangesState || !info.SetsCharset {
		t.Fatalf("%+v", info)
	}
	if info.Kinds != 1<<KindUse|1<<KindSelect|1<<KindKill|1<<KindExecute|1<<KindSet {
		t.Fatalf("kinds %b", info.Kinds)
	}
}

// The readings a server might make of one text.
func TestReadings(t *testing.T) {
	for sql, want := range map[string]bool{
		"/*!40101 SET x=1 */":        true,
		"SELECT 1 /*M!100100 , 2 */": true,
		"SELECT 1 /*M! , 2 */":       true,
		"SELECT 1 /*! , 2 */":        false, // every server runs it
		"SELECT 1 /* ! */":           false,
	} {
		if got := Versioned([]byte(sql)); got != want {
			t.Errorf("Versioned(%q) = %v", sql, got)
		}
	}
	// ANSI_QUOTES: "t" is a name. (The TiDB lexer still reads \" inside
	// "..." as an escape, which MariaDB does not: the session refuses such
	// texts for restricted users under ANSI_QUOTES.)
	sql := []byte(`SELECT "t".c FROM t`)
	if !Classify(sql, "shop").ParseError || ClassifyMode(sql, "shop", ANSIQuotes).ParseError {
		t.Error("ANSI_QUOTES reading not applied")
	}
}
