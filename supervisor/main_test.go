package supervisor_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"pisanix.io/pisanix/internal/testenv"
)

// backendDB is one real MariaDB shared by the tests of this package; tests
// that need their own servers (TLS, failures) start them.
var backendDB *testenv.Server

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	srv, err := testenv.StartMariaDB(context.Background(), testenv.NewOptions())
	if err != nil {
		fmt.Fprintln(os.Stderr, "start mariadb:", err)
		return 1
	}
	defer srv.Stop()
	backendDB = srv
	return m.Run()
}

// oneNode is a config with one listener "main" in front of backendDB.
func oneNode(extra string) string {
	return listenerTOML("main", []string{"n1"}, extra) + nodeTOML("n1", backendDB, "")
}
