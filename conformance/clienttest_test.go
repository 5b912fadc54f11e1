package conformance

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseClientTestNames(t *testing.T) {
	// mariadb-client-test -T, 10.11 (cut).
	out := "All possible test names:\n\ntest_mdev_20516\ntest_logs;\nclient_query\n"
	got, err := parseClientTestNames(out)
	if want := []string{"test_mdev_20516", "test_logs;", "client_query"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("parseClientTestNames = %q, %v; want %q", got, err, want)
	}
	for _, bad := range []string{"", "usage: ...\n", "All possible test names:\n\n"} {
		if got, err := parseClientTestNames(bad); err == nil {
			t.Errorf("parseClientTestNames(%q) = %q, want an error", bad, got)
		}
	}
}

func TestClientTestFailure(t *testing.T) {
	exit := errors.New("exit status 1")
	for _, c := range []struct {
		name, out string
		want      []string
	}{{
		name: "server error and check",
		out: "\n\n#####################################\n1 of (1/1): test_bug53371  \n#####################################\n" +
			"\n [MySQL-10.11.19-MariaDB-0+deb12u1-log][1045] Access denied for user 'testbug'@'127.0.0.1' (using password: NO)\n" +
			"./tests/mysql_client_test.c:18894: check failed: 'r == 0'\nMySQL error 0: \n",
		want: []string{
			"[1045] Access denied for user 'testbug'@'127.0.0.1' (using password: NO)",
			"./tests/mysql_client_test.c:18894: check failed: 'r == 0'",
			"mariadb-client-test: exit status 1",
		},
	}, {
		name: "check after the test's output on its line, expected errors left out",
		out: "Got error (as expected): Access denied for user ''@'127.0.0.1' (using password: NO)\n" +
			" row 3: 2, ii(2)./tests/mysql_client_test.c:2498: check failed: 'hits1-hits2 == 1'\nMySQL error 0: \n",
		want: []string{
			"./tests/mysql_client_test.c:2498: check failed: 'hits1-hits2 == 1'",
			"mariadb-client-test: exit status 1",
		},
	}, {
		name: "library call and connection errors",
		out: "mysql_stmt_execute failed: Server doesn't support function 'Bulk operation'\n" +
			" Establishing a connection to '127.0.0.1' ...OK\n [MySQL] connection failed\n",
		want: []string{
			"mysql_stmt_execute failed: Server doesn't support function 'Bulk operation'",
			"connection failed",
			"mariadb-client-test: exit status 1",
		},
	}, {
		name: "nothing recognised: the last lines",
		out:  "a\nb\n\nc\nd\n",
		want: []string{"b", "c", "d", "mariadb-client-test: exit status 1"},
	}} {
		if got := clientTestFailure([]byte(c.out), exit); !slices.Equal(got, c.want) {
			t.Errorf("%s:\n%q\nwant\n%q", c.name, got, c.want)
		}
	}
}

func TestClientTestGlobals(t *testing.T) {
	got := clientTestGlobals("/tmp/it's")
	for _, want := range []string{"SET GLOBAL ", "max_allowed_packet = 32000000", "general_log_file = '/tmp/it''s/log/master.log'", "sql_mode = ''"} {
		if !strings.Contains(got, want) {
			t.Errorf("clientTestGlobals = %q, want it to contain %q", got, want)
		}
	}
}
