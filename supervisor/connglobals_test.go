package supervisor_test

import (
	"fmt"
	"strings"
	"testing"
)

// SET GLOBAL max_allowed_packet through the proxy reaches pooled backend
// connections: a reset (COM_RESET_CONNECTION) keeps the value a connection
// was opened with, so one opened while the global was small is closed, not
// reused, once the global changes.
func TestPooledConnectionsFollowMaxAllowedPacket(t *testing.T) {
	root := backendDB.RootDB()
	var orig int64
	if err := root.QueryRow("SELECT @@global.max_allowed_packet").Scan(&orig); err != nil {
		t.Fatal(err)
	}
	restore := fmt.Sprintf("SET GLOBAL max_allowed_packet = %d", orig)
	t.Cleanup(func() { _, _ = root.Exec(restore) })
	if _, err := root.Exec("SET GLOBAL max_allowed_packet = 2048"); err != nil {
		t.Fatal(err)
	}
	// Backend connections dialled from now on, while the global is small.
	p := startProxy(t, oneNode("pool_min_idle = 0"))
	a := p.db(t, "main", "")
	mustExec(t, a, restore) // through the proxy: it learns of the change
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b := p.db(t, "main", "")
	long := "SELECT LENGTH('" + strings.Repeat("x", 100000) + "')"
	if got := queryString(t, b, long); got != "100000" {
		t.Fatalf("LENGTH = %s", got)
	}
}
