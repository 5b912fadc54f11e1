// Package conformance runs real clients' own test suites (two Go drivers',
// MariaDB's mysqltest and C API tests) against a throwaway MariaDB, first
// directly and then through pisa-proxy in front of the same server, and
// reports the tests that pass directly but not through the proxy.
//
// The Go suites come from the Go module cache at the versions the main module
// requires (go-sql-driver/mysql and go-mysql-org/go-mysql); each is copied
// to a temporary directory and run with `go test -json`, whose events are
// parsed into per-test results (subtests included). The command is
// conformance/cmd/conformance; see docs/conformance.md.
//
// The mysqltest suites run a list of MariaDB's own main.* tests with the
// server's test runner (mariadb-test-run --extern, from Debian's
// mariadb-test), in text and binary protocol, against a second MariaDB set
// up as the runner expects (mtr.go). The mariadb-client-test suite runs the
// test functions of MariaDB's C API test program, one process each, against
// that server (clienttest.go).
package conformance
