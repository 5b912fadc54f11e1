package conformance

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// mtrReport is the runner's output for a run stopped at a failure, cut
// from a real run (mariadb-test-run 10.11, --extern).
const mtrReport = `Logging: mariadb-test-run  --extern host=127.0.0.1 main.select main.sp main.null
MariaDB Version 10.11.19
==============================================================================

TEST                                      RESULT   TIME (ms) or COMMENT
--------------------------------------------------------------------------

worker[01] Using MTR_BUILD_THREAD 300, with reserved ports 19000..19029
main.null                                [ pass ]    914
main.mysqldump-max                       [ skipped ]  Need archive engine
main.sp                                  [ fail ]
        Test ended at 2026-12-03 10:21:50

/usr/bin/mariadb-test: Error on delete of '/tmp/mt/w/mtr/tmp//t1.frm' (Errcode: 2 "No such file or directory")
--- /usr/share/mysql/mysql-test/main/sp.result	2026-09-18 08:08:08.000000000 +0000
+++ /usr/share/mysql/mysql-test/main/sp.reject	2026-12-03 10:21:50.272303654 +0000
@@ -6012,7 +6012,7 @@
 connection bug29408;
-v1	CREATE VIEW ` + "`test`.`v1`" + `
+v1	CREATE VIEW ` + "`v1`" + `
 select column_name from information_schema.columns

Result length mismatch

 - saving '/tmp/mt/var/log/main.sp/' to '/tmp/mt/var/log/main.sp/'

Only  3  of 4 completed.
Failing test(s): main.sp
`

func TestParseMTR(t *testing.T) {
	run := &TestRun{Tests: map[TestID]*TestResult{}, Packages: map[string]*PackageResult{}}
	n, failed := parseMTR(strings.NewReader(mtrReport), run, "mysqltest")
	if n != 3 || !failed {
		t.Fatalf("parseMTR = %d results, failed %v; want 3, true", n, failed)
	}
	want := map[string]Status{"main.null": StatusPass, "main.mysqldump-max": StatusSkip, "main.sp": StatusFail}
	for name, st := range want {
		r := run.Tests[TestID{"mysqltest", name}]
		if r == nil || r.Status != st {
			t.Errorf("%s = %+v, want %s", name, r, st)
		}
	}
	if got := run.Tests[TestID{"mysqltest", "main.null"}].Elapsed.Milliseconds(); got != 914 {
		t.Errorf("main.null elapsed %d ms, want 914", got)
	}
	// The failure's output is its result line and the diff's changed lines:
	// no timestamps, no context, nothing after the diff.
	got := run.Tests[TestID{"mysqltest", "main.sp"}].Output
	wantOut := []string{
		"main.sp                                  [ fail ]",
		"@@ -6012,7 +6012,7 @@",
		"-v1	CREATE VIEW `test`.`v1`",
		"+v1	CREATE VIEW `v1`",
	}
	if !slices.Equal(got, wantOut) {
		t.Errorf("main.sp output:\n%q\nwant\n%q", got, wantOut)
	}
}

func TestBootstrapStatements(t *testing.T) {
	in := `-- a comment
delimiter ||;

use mtr||

--
-- Procedure
--
CREATE DEFINER=root@localhost PROCEDURE p()
BEGIN
  SELECT 1;
  INSERT INTO t VALUES ('@HOSTNAME@');
END||

delimiter ;||
INSERT INTO t VALUES (1);
`
	got := bootstrapStatements(in)
	want := []string{
		"use mtr",
		"CREATE DEFINER=root@localhost PROCEDURE p() BEGIN   SELECT 1;   INSERT INTO t VALUES (localhost); END",
		"INSERT INTO t VALUES (1)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("bootstrapStatements =\n%q\nwant\n%q", got, want)
	}
}

func TestReadMTRList(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	got, err := ReadMTRList(write("ok.list", "# header\nmain.select  # why\n\nmain.sp\n"))
	if err != nil || !slices.Equal(got, []string{"main.select", "main.sp"}) {
		t.Errorf("ReadMTRList = %q, %v", got, err)
	}
	if _, err := ReadMTRList(write("bad.list", "select\n")); err == nil || !strings.Contains(err.Error(), "not suite.test") {
		t.Errorf("a name without its suite: err = %v", err)
	}
	if _, err := ReadMTRList(write("empty.list", "# nothing\n")); err == nil {
		t.Error("an empty list was accepted")
	}
}

// The committed lists are readable, and the short one (make test) is a
// part of the full one (make conformance).
func TestCommittedMTRLists(t *testing.T) {
	full, err := ReadMTRList("mysqltest.list")
	if err != nil {
		t.Fatal(err)
	}
	short, err := ReadMTRList("mysqltest-short.list")
	if err != nil {
		t.Fatal(err)
	}
	if len(full) < 100 {
		t.Errorf("mysqltest.list has %d tests; the selection is at least 100", len(full))
	}
	for _, s := range short {
		if !slices.Contains(full, s) {
			t.Errorf("mysqltest-short.list names %s, which mysqltest.list does not", s)
		}
	}
}
