package supervisor_test

import (
	"context"
	"database/sql"
	"testing"
)

// pinnedConn is one client connection that stays open across a failure elsewhere.
func pinnedConn(t *testing.T, db *sql.DB) *sql.Conn {
	t.Helper()
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.ExecContext(context.Background(), "SET @mark = 'still here'"); err != nil {
		t.Fatal(err)
	}
	return c
}

func assertAlive(t *testing.T, c *sql.Conn) {
	t.Helper()
	if got := queryString(t, c, "SELECT @mark"); got != "still here" {
		t.Fatalf("session lost its state: %q", got)
	}
}

func TestSeveralListeners(t *testing.T) {
	toml := listenerTOML("one", []string{"n1"}, "") + listenerTOML("two", []string{"n1"}, "") +
		listenerTOML("three", []string{"n1"}, "") + nodeTOML("n1", backendDB, "")
	p := startProxy(t, toml)
	for _, name := range []string{"one", "two", "three"} {
		if got := queryString(t, p.db(t, name, ""), "SELECT ?", name); got != name {
			t.Fatalf("listener %s: %q", name, got)
		}
		if len(p.metric(t, `pisa_proxy_connections_accepted_total{domain="`+name+`"}`)) != 1 {
			t.Fatalf("listener %s: accepted connections not counted", name)
		}
	}
}
