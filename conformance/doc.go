// Package conformance runs real Go MySQL clients' own test suites against a
// throwaway MariaDB, first directly and then through pisa-proxy in front of
// the same server, and reports the tests that pass directly but not through
// the proxy.
//
// The suites come from the Go module cache at the versions the main module
// requires (go-sql-driver/mysql and go-mysql-org/go-mysql); each is copied
// to a temporary directory and run with `go test -json`, whose events are
// parsed into per-test results (subtests included). The command is
// conformance/cmd/conformance; see docs/conformance.md.
package conformance
