package sqlinfo

import (
	"slices"
	"strings"
	"testing"
)

func TestClassifyKinds(t *testing.T) {
	cases := []struct {
		sql      string
		kind     Kind
		readOnly bool
	}{
		{"SELECT 1", KindSelect, true},
		{"select a from t union select b from u", KindSelect, true},
		{"TABLE t", KindSelect, true},
		{"INSERT INTO t VALUES (1)", KindInsert, false},
		{"UPDATE t SET a=1", KindUpdate, false},
		{"DELETE FROM t WHERE a=1", KindDelete, false},
		{"REPLACE INTO t VALUES (1)", KindReplace, false},
		{"CREATE TABLE t (a int)", KindDDL, false},
		{"ALTER TABLE t ADD COLUMN b int", KindDDL, false},
		{"DROP TABLE t", KindDDL, false},
		{"TRUNCATE TABLE t", KindDDL, false},
		{"RENAME TABLE a TO b", KindDDL, false},
		{"CREATE DATABASE d", KindDDL, false},
		{"CREATE INDEX i ON t (a)", KindDDL, false},
		{"BEGIN", KindBegin, false},
		{"START TRANSACTION READ ONLY", KindBegin, false},
		{"COMMIT", KindCommit, false},
		{"ROLLBACK", KindRollback, false},
		{"SET autocommit=0", KindSet, false},
		{"SET NAMES utf8mb4", KindSet, false},
		{"SET PASSWORD = 'x'", KindSet, false},
		{"USE shop", KindUse, false},
		{"SHOW TABLES", KindShow, true},
		{"SHOW COLUMNS FROM t", KindShow, true},
		{"DESC t", KindShow, true},
		{"EXPLAIN SELECT * FROM t", KindShow, true},
		{"EXPLAIN ANALYZE SELECT * FROM t", KindShow, true},
		{"EXPLAIN ANALYZE DELETE FROM t", KindShow, false},
		{"PREPARE s FROM 'SELECT 1'", KindPrepare, false},
		{"EXECUTE s USING @a", KindExecute, false},
		{"DEALLOCATE PREPARE s", KindOther, false},
		{"CALL p(1)", KindCall, false},
		{"LOAD DATA INFILE '/tmp/x' INTO TABLE t", KindLoad, false},
		{"KILL QUERY 5", KindKill, false},
		{"LOCK TABLES t READ", KindOther, false},
		{"UNLOCK TABLES", KindOther, false},
		{"GRANT SELECT ON d.* TO u", KindOther, false},
		{"DO 1", KindOther, false},
		{"SELECT a FROM t INTO OUTFILE '/tmp/x'", KindSelect, false},
		// comments and case tricks
		{"/* x */ SeLeCt 1", KindSelect, true},
		{"SELECT/**/1", KindSelect, true},
		{"/*!50000 SELECT */ 1", KindSelect, true},
		{"-- note\nSELECT 1", KindSelect, true},
		{"# note\ndelete from t", KindDelete, false},
		{"(SELECT 1)", KindSelect, true},
		{"WITH c AS (SELECT 1) SELECT * FROM c", KindSelect, true},
		{"WITH c AS (SELECT 1) UPDATE t JOIN c SET t.a=1", KindUpdate, false},
	}
	for _, c := range cases {
		info := Classify([]byte(c.sql), "db")
		if info.ParseError {
			t.Errorf("%q: unexpected parse error", c.sql)
		}
		if info.Kind != c.kind || info.ReadOnly != c.readOnly {
			t.Errorf("%q: kind %v readOnly %v, want %v %v", c.sql, info.Kind, info.ReadOnly, c.kind, c.readOnly)
		}
	}
}

func TestClassifyLocking(t *testing.T) {
	cases := map[string]bool{
		"SELECT * FROM t WHERE id=1 FOR UPDATE":                       true,
		"SELECT * FROM t WHERE id=1 FOR UPDATE NOWAIT":                true,
		"SELECT * FROM t WHERE id=1 FOR SHARE":                        true,
		"SELECT * FROM t WHERE id=1 LOCK IN SHARE MODE":               true,
		"SELECT * FROM t WHERE id IN (SELECT id FROM u FOR UPDATE)":   true,
		"INSERT INTO t SELECT * FROM u FOR UPDATE":                    true,
		"SELECT * FROM t WHERE id=1":                                  false,
		"SELECT 'FOR UPDATE' FROM t":                                  false,
		"SELECT * FROM t; SELECT * FROM u WHERE id=2 FOR UPDATE":      true,
		"SELECT * FROM `for` WHERE `update`=1":                        false,
		"SELECT * FROM t /* FOR UPDATE */":                            false,
		"SELECT * FROM t WHERE id=1 /*!80000 FOR UPDATE */":           true,
		"SELECT * FROM t WHERE id=1 FOR UPDATE SKIP LOCKED":           true,
		"WITH c AS (SELECT * FROM t FOR UPDATE) SELECT * FROM c":      true,
		"(SELECT * FROM t FOR UPDATE) UNION (SELECT * FROM u)":        true,
		"SELECT * FROM t WHERE id=1 FOR UPDATE WAIT 5":                true,
		"select * from t where id = 1 for update":                     true,
		"SELECT * FROM t -- FOR UPDATE":                               false,
		"SELECT * FROM t WHERE id=1 LOCK IN SHARE MODE; SELECT 1":     true,
		"SELECT * FROM t WHERE a = \"x\" FOR SHARE":                   true,
		"SELECT * FROM t WHERE id=1 # FOR UPDATE\n":                   false,
		"SELECT * FROM t WHERE id=1 FOR UPDATE OF t":                  true,
		"SELECT * FROM t JOIN u ON t.a=u.a WHERE t.id=1 FOR UPDATE":   true,
		"SELECT (SELECT a FROM u WHERE u.id=t.id) FROM t FOR SHARE":   true,
		"SELECT * FROM t WHERE EXISTS (SELECT 1 FROM u FOR SHARE)":    true,
		"SELECT * FROM (SELECT * FROM t FOR UPDATE) AS d":             true,
		"SELECT * FROM t WHERE id=1 AND name='LOCK IN SHARE MODE'":    false,
		"SELECT * FROM t WHERE id=1 FOR UPDATE;":                      true,
		"SELECT * FROM t WHERE id=1\nFOR\tUPDATE":                     true,
		"SELECT * FROM t WHERE id=1 /* c */ FOR /* c */ UPDATE":       true,
		"SELECT * FROM t WHERE id=1 FOR SHARE NOWAIT":                 true,
		"SELECT * FROM t WHERE id=1 FOR SHARE SKIP LOCKED":            true,
		"SELECT * FROM t WHERE id=1 LIMIT 1 FOR UPDATE":               true,
		"SELECT * FROM t ORDER BY id LIMIT 1 LOCK IN SHARE MODE":      true,
		"SELECT * FROM t WHERE id=1 FOR UPDATE OF t NOWAIT":           true,
		"SELECT COUNT(*) FROM t GROUP BY a HAVING COUNT(*) > 1":       false,
		"SELECT * FROM t WHERE id = 1 FOR UPDATE WAIT 1":              true,
		"SELECT * FROM t1, t2 WHERE t1.id = t2.id FOR UPDATE":         true,
		"SELECT * FROM t WHERE id BETWEEN 1 AND 2 FOR UPDATE":         true,
		"SELECT * FROM t WHERE id = ? FOR UPDATE":                     true,
		"SELECT * FROM t WHERE a LIKE 'x%' FOR UPDATE":                true,
		"SELECT * FROM t WHERE id=1 FOR UPDATE /* trailing */":        true,
		"/* leading */ SELECT * FROM t WHERE id=1 FOR UPDATE":         true,
		"SELECT /*+ MAX_EXECUTION_TIME(10) */ * FROM t FOR UPDATE":    true,
		"SELECT /*+ MAX_EXECUTION_TIME(10) */ * FROM t":               false,
		"SELECT * FROM t WHERE id IN (1,2,3) FOR UPDATE":              true,
		"SELECT * FROM t WHERE id=1 UNION SELECT * FROM u FOR UPDATE": true,
	}
	for sql, want := range cases {
		info := Classify([]byte(sql), "db")
		if info.ParseError {
			t.Errorf("%q: unexpected parse error", sql)
			continue
		}
		if info.Locking != want || (want && info.ReadOnly) {
			t.Errorf("%q: locking %v readOnly %v, want locking %v", sql, info.Locking, info.ReadOnly, want)
		}
	}
}

func TestClassifyTables(t *testing.T) {
	cases := []struct {
		sql  string
		db   string
		want []Table
	}{
		{"SELECT c FROM sbtest1 WHERE id=1", "sbtest", []Table{{"sbtest", "sbtest1"}}},
		{"SELECT * FROM other.t", "db", []Table{{"other", "t"}}},
		{"SELECT * FROM t", "", []Table{{"", "t"}}},
		{"SELECT * FROM T JOIN t ON T.a=t.a", "db", []Table{{"db", "T"}, {"db", "t"}}},
		{"SELECT * FROM a JOIN b ON a.id=b.id LEFT JOIN c.d ON b.x=d.x", "db",
			[]Table{{"db", "a"}, {"db", "b"}, {"c", "d"}}},
		{"SELECT * FROM a, b AS bb WHERE a.x=bb.x", "db", []Table{{"db", "a"}, {"db", "b"}}},
		{"SELECT (SELECT max(a) FROM s.u) FROM t WHERE x IN (SELECT y FROM v)", "db",
			[]Table{{"s", "u"}, {"db", "t"}, {"db", "v"}}},
		{"SELECT * FROM (SELECT * FROM t) AS d JOIN t ON 1", "db", []Table{{"db", "t"}}},
		{"WITH c AS (SELECT * FROM t) SELECT * FROM c JOIN u ON c.a=u.a", "db",
			[]Table{{"db", "t"}, {"db", "u"}}},
		{"WITH RECURSIVE r AS (SELECT 1 n UNION ALL SELECT n+1 FROM r WHERE n<5) SELECT * FROM r", "db", nil},
		{"WITH c AS (SELECT 1) SELECT * FROM x.c", "db", []Table{{"x", "c"}}},
		{"UPDATE t1 JOIN t2 ON t1.a=t2.a SET t1.b=t2.b", "db", []Table{{"db", "t1"}, {"db", "t2"}}},
		{"UPDATE t1, o.t2 SET t1.b=t2.b WHERE t1.a=t2.a", "db", []Table{{"db", "t1"}, {"o", "t2"}}},
		{"DELETE a, b FROM t1 a JOIN t2 b ON a.id=b.id", "db", []Table{{"db", "t1"}, {"db", "t2"}}},
		{"DELETE FROM t1 USING t1 JOIN t2 ON t1.id=t2.id", "db", []Table{{"db", "t1"}, {"db", "t2"}}},
		{"DELETE t1 FROM t1 WHERE id IN (SELECT id FROM t3)", "db", []Table{{"db", "t1"}, {"db", "t3"}}},
		{"INSERT INTO t SELECT * FROM u WHERE a=1", "db", []Table{{"db", "u"}, {"db", "t"}}},
		{"INSERT INTO t (a) VALUES (1) ON DUPLICATE KEY UPDATE a=a+1", "db", []Table{{"db", "t"}}},
		{"REPLACE INTO x.t SELECT * FROM u", "db", []Table{{"db", "u"}, {"x", "t"}}},
		{"CREATE VIEW v AS SELECT * FROM t", "db", []Table{{"db", "v"}, {"db", "t"}}},
		{"SELECT * FROM v", "db", []Table{{"db", "v"}}},
		{"CREATE TABLE t2 LIKE t1", "db", []Table{{"db", "t2"}, {"db", "t1"}}},
		{"ALTER TABLE t ADD COLUMN c int", "db", []Table{{"db", "t"}}},
		{"DROP TABLE a, b.c", "db", []Table{{"db", "a"}, {"b", "c"}}},
		{"TRUNCATE t", "db", []Table{{"db", "t"}}},
		{"RENAME TABLE a TO b", "db", []Table{{"db", "a"}, {"db", "b"}}},
		{"LOAD DATA INFILE '/tmp/x' INTO TABLE t", "db", []Table{{"db", "t"}}},
		{"SELECT 1 FROM DUAL", "db", nil},
		{"SELECT * FROM t; SELECT * FROM t; SELECT * FROM u", "db", []Table{{"db", "t"}, {"db", "u"}}},
		{"SELECT * FROM `weird name`", "db", []Table{{"db", "weird name"}}},
		{"SELECT * FROM t WHERE a='FROM u'", "db", []Table{{"db", "t"}}},
	}
	for _, c := range cases {
		info := Classify([]byte(c.sql), c.db)
		if info.ParseError {
			t.Errorf("%q: unexpected parse error", c.sql)
			continue
		}
		if !slices.Equal(info.Tables, c.want) {
			t.Errorf("%q: tables %v, want %v", c.sql, info.Tables, c.want)
		}
	}
}

func TestClassifySessionState(t *testing.T) {
	cases := map[string]bool{
		"SELECT @x":                               true,
		"SET @x = 1":                              true,
		"SELECT a FROM t WHERE b = @v":            true,
		"SELECT @x := 1":                          true,
		"SELECT LAST_INSERT_ID()":                 true,
		"select last_insert_id()":                 true,
		"SELECT FOUND_ROWS()":                     true,
		"SELECT ROW_COUNT()":                      true,
		"SELECT CONNECTION_ID()":                  true,
		"SELECT GET_LOCK('a', 10)":                true,
		"SELECT RELEASE_LOCK('a')":                true,
		"SELECT IS_FREE_LOCK('a')":                true,
		"INSERT INTO t VALUES (LAST_INSERT_ID())": true,
		"LOCK TABLES t WRITE":                     true,
		"UNLOCK TABLES":                           true,
		"PREPARE s FROM 'SELECT 1'":               true,
		"EXECUTE s":                               true,
		"DEALLOCATE PREPARE s":                    true,
		"SELECT 1; SELECT @x":                     true,
		"SELECT @@version":                        false,
		"SET autocommit = 1":                      false,
		"SELECT * FROM t WHERE id = 1":            false,
		"SELECT 'LAST_INSERT_ID()'":               false,
		"SELECT NOW()":                            false,
	}
	for sql, want := range cases {
		info := Classify([]byte(sql), "db")
		if info.ParseError {
			t.Errorf("%q: unexpected parse error", sql)
			continue
		}
		if info.UsesSessionState != want {
			t.Errorf("%q: UsesSessionState %v, want %v", sql, info.UsesSessionState, want)
		}
	}
}

func TestClassifyTemporaryTable(t *testing.T) {
	cases := map[string]bool{
		"CREATE TEMPORARY TABLE tmp (a int)":                 true,
		"create temporary table tmp select * from t":         true,
		"CREATE TEMPORARY TABLE IF NOT EXISTS x.tmp (a int)": true,
		"CREATE TABLE t (a int)":                             false,
		"DROP TEMPORARY TABLE tmp":                           false,
		"SELECT 1; CREATE TEMPORARY TABLE tmp (a int)":       true,
	}
	for sql, want := range cases {
		info := Classify([]byte(sql), "db")
		if info.ParseError {
			t.Errorf("%q: unexpected parse error", sql)
			continue
		}
		if info.CreatesTemporaryTable != want {
			t.Errorf("%q: CreatesTemporaryTable %v, want %v", sql, info.CreatesTemporaryTable, want)
		}
	}
}

func TestClassifyMultiStatement(t *testing.T) {
	cases := []struct {
		sql      string
		n        int
		kind     Kind
		readOnly bool
	}{
		{"SELECT 1; SELECT 2", 2, KindSelect, true},
		{"SELECT 1; UPDATE t SET a=1", 2, KindSelect, false},
		{"UPDATE t SET a=1; SELECT 1", 2, KindUpdate, false},
		{"SELECT 1;", 1, KindSelect, true},
		{"SELECT ';'; SELECT 2; SHOW TABLES", 3, KindSelect, true},
		{"BEGIN; INSERT INTO t VALUES (1); COMMIT", 3, KindBegin, false},
	}
	for _, c := range cases {
		info := Classify([]byte(c.sql), "db")
		if info.ParseError || info.Statements != c.n || info.Kind != c.kind || info.ReadOnly != c.readOnly {
			t.Errorf("%q: %+v, want %d statements kind %v readOnly %v", c.sql, info, c.n, c.kind, c.readOnly)
		}
	}
}

func TestClassifyParseError(t *testing.T) {
	cases := map[string]Kind{
		"SELEC 1":                                       KindOther,
		"SELECT FROM WHERE":                             KindSelect,
		"UPDATE t SET":                                  KindUpdate,
		"SELECT * FROM t WHERE a = 'open":               KindSelect,
		"DELETE FROM t /* unterminated":                 KindDelete,
		"select * from t limit 99999999999999999999999": KindSelect,
	}
	for sql, kind := range cases {
		info := Classify([]byte(sql), "db")
		if !info.ParseError || info.Kind != kind || info.ReadOnly || info.Statements != 0 || info.Tables != nil {
			t.Errorf("%q: %+v, want a parse error of kind %v", sql, info, kind)
		}
	}
}

func TestClassifyFingerprint(t *testing.T) {
	a := Classify([]byte("SELECT c FROM sbtest1 WHERE id=1"), "db")
	b := Classify([]byte("select c  from sbtest1 where id = 42 /* x */"), "db")
	if a.Fingerprint != "select `c` from `sbtest1` where `id` = ?" {
		t.Errorf("fingerprint %q", a.Fingerprint)
	}
	if a.Fingerprint != b.Fingerprint || a.Digest != b.Digest || len(a.Digest) != 64 {
		t.Errorf("fingerprints differ: %+v %+v", a, b)
	}
	// A final ';' counts for nothing, a comment after it neither (the
	// parser's normalizer kept it then: FuzzKeySound found ";#..." and ";"
	// sharing a cache key with different fingerprints).
	for _, pair := range [][2]string{{"SELECT 1;", "SELECT 1; # c"}, {"SELECT 1", "SELECT 1 ; -- c"}, {";", "; /* c */"}} {
		x, y := Classify([]byte(pair[0]), "db"), Classify([]byte(pair[1]), "db")
		if x.Fingerprint != y.Fingerprint || x.Digest != y.Digest {
			t.Errorf("%q: %q %s, %q: %q %s", pair[0], x.Fingerprint, x.Digest, pair[1], y.Fingerprint, y.Digest)
		}
	}
}

func TestClassifyDoesNotAliasInput(t *testing.T) {
	sql := []byte("SELECT * FROM orders")
	info := Classify(sql, "db")
	copy(sql, "XXXXXXXXXXXXXXXXXXXX")
	if info.Tables[0].Name != "orders" {
		t.Fatalf("table name changed with the input buffer: %q", info.Tables[0].Name)
	}
}

func TestClassifyConcurrent(t *testing.T) {
	done := make(chan bool)
	for g := 0; g < 4; g++ {
		go func() {
			for i := 0; i < 200; i++ {
				info := Classify([]byte("SELECT * FROM a JOIN b ON a.x=b.x WHERE a.id=7"), "db")
				if len(info.Tables) != 2 || info.Kind != KindSelect {
					t.Errorf("bad info %+v", info)
				}
			}
			done <- true
		}()
	}
	for g := 0; g < 4; g++ {
		<-done
	}
}

func TestHugeStatementNotParsed(t *testing.T) {
	sql := []byte("INSERT INTO t VALUES " + strings.Repeat("(1, 'xxxxxxxx'),", 8000) + "(2, 'y')")
	for _, info := range []Info{Classify(sql, "db"), NewCache(16).Classify(sql, "db")} {
		if info.Kind != KindInsert || info.ReadOnly || info.ParseError || info.Digest != "" {
			t.Fatalf("huge statement: %+v", info)
		}
	}
}

func TestMariaDBCharsetsParse(t *testing.T) {
	for _, q := range []string{
		"SET NAMES big5", "SET NAMES koi8r COLLATE koi8r_general_ci", "SET CHARACTER SET cp1251",
		"SET NAMES 'sjis'", "SELECT CONVERT(x USING latin2) FROM t",
	} {
		if info := Classify([]byte(q), "shop"); info.ParseError {
			t.Errorf("%q: parse error", q)
		}
	}
	if info := Classify([]byte("SET NAMES big5"), ""); !info.SetsCharset {
		t.Error("SET NAMES big5 does not say it sets the character set")
	}
}

// A SELECT that writes or may write is not a read a replica may serve.
func TestSelectsThatWrite(t *testing.T) {
	for q, want := range map[string]bool{
		"SELECT ABS(1) FROM t":           true,
		"SELECT NEXT  VALUE FOR s":       false,
		"SELECT take_id(7)":              false, // a stored function may write
		"SELECT other.f()":               false,
		"SELECT LOAD_FILE('/etc/hosts')": false,
		"SHOW TABLES":                    true,
	} {
		if got := Classify([]byte(q), "shop").ReadOnly; got != want {
			t.Errorf("%q: ReadOnly = %v", q, got)
		}
	}
}
