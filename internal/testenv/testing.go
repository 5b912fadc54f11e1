package testenv

import (
	"testing"
)

// MariaDB starts a throwaway MariaDB server for the test, fails the test if
// it cannot, and stops it in t.Cleanup.
func MariaDB(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := StartMariaDB(t.Context(), NewOptions(opts...))
	if err != nil {
		t.Fatalf("testenv: starting MariaDB: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return s
}

// Replica starts a server that replicates from primary (which needs
// WithReplication) and has caught up with it; see [StartReplica].
func Replica(t testing.TB, primary *Server, opts ...Option) *Server {
	t.Helper()
	s, err := StartReplica(t.Context(), primary, NewOptions(opts...))
	if err != nil {
		t.Fatalf("testenv: starting MariaDB replica: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return s
}

// MariaDBCLI runs the real mariadb CLI against conn with args and returns
// its standard output; a non-zero exit fails the test. Use [RunCLI] when
// a failure is the expected outcome.
func MariaDBCLI(t testing.TB, conn CLIConn, args ...string) string {
	t.Helper()
	out, err := RunCLI(t.Context(), conn, args...)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return out
}
