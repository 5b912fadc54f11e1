package supervisor_test

import (
	"context"
	"fmt"
	"testing"

	"pisanix.io/pisanix/internal/testenv"
)

// Pisa-Proxy's standalone guide (v0.1.1 to v0.3.2) gives a listener both
// simple_loadbalance, naming only its read node, and read/write splitting:
// as in Pisa-Proxy, the readwrite node takes the writes (not the balancer's
// read node), the read rule (^select, lower case as the guide writes it)
// sends reads to the read node, and a generic rule, tried after the regex
// rules, sends the other SELECTs there too, while SHOW goes to the default
// target.
func TestPisanixSimpleLoadBalanceWithSplitting(t *testing.T) {
	ctx := context.Background()
	primary, replica := testenv.MariaDB(t), testenv.MariaDB(t)
	for srv, v := range map[*testenv.Server]string{primary: "primary", replica: "replica"} {
		if err := srv.Exec(ctx, "CREATE TABLE gotest.where_am_i (v VARCHAR(10))", "INSERT INTO gotest.where_am_i VALUES ('"+v+"')"); err != nil {
			t.Fatal(err)
		}
	}
	p := startProxy(t, `
[[proxy.config]]
name = "guide"
listen_addr = "127.0.0.1:0"
user = "app"
password = "app-secret"
db = "gotest"
[proxy.config.simple_loadbalance]
balance_type = "random"
nodes = ["ds001"]
[proxy.config.read_write_splitting.static]
default_target = "readwrite"
read_after_write_window = "0s"
[[proxy.config.read_write_splitting.static.rule]]
name = "all selects"
type = "generic"
algorithm_name = "random"
[[proxy.config.read_write_splitting.static.rule]]
name = "read-rule"
type = "regex"
regex = ["^select"]
target = "read"
algorithm_name = "random"
[[proxy.config.read_write_splitting.static.rule]]
name = "write-rule"
type = "regex"
regex = ["^create","^update","^insert","^delete"]
target = "readwrite"
algorithm_name = "roundrobin"
`+nodeTOML("ds001", replica, `role = "read"`)+nodeTOML("ds002", primary, `role = "readwrite"`))
	c := pinnedConn(t, p.db(t, "guide", ""))
	mustExec(t, c, "insert into where_am_i values ('written')")
	if got := queryString(t, primary.RootDB(), "SELECT COUNT(*) FROM gotest.where_am_i"); got != "2" {
		t.Fatalf("the write did not reach the readwrite node: %s rows there", got)
	}
	for sql, want := range map[string]string{
		"select v from where_am_i LIMIT 1":                                 "replica", // read-rule
		"SELECT v FROM where_am_i LIMIT 1":                                 "replica", // the generic rule
		"SELECT v FROM where_am_i WHERE v <> 'written' LIMIT 1 FOR UPDATE": "primary", // a locking read stays
		"SHOW TABLES": "", // see below
	} {
		if want == "" {
			continue
		}
		if got := queryString(t, c, sql); got != want {
			t.Errorf("%s ran on %s, want %s", sql, got, want)
		}
	}
	for rule, hits := range map[string]int{"read-rule": 1, "all selects": 1} {
		if len(p.metric(t, fmt.Sprintf(`pisa_proxy_rw_rule_hits_total{domain="guide",rule=%q} %d`, rule, hits))) != 1 {
			t.Errorf("rule %q not hit %d times", rule, hits)
		}
	}
	mustExec(t, c, "SHOW TABLES")
	if len(p.metric(t, `pisa_proxy_rw_routed_total{domain="guide",target="readwrite"}`)) != 1 {
		t.Error("SHOW (not a SELECT: the default target) not routed to readwrite")
	}
}

// A listener with backend_type = "shardingsphere-proxy" is served by its
// [[shardingsphere_proxy.node]]s (any MySQL-protocol server; a MariaDB
// stands in for ShardingSphere-Proxy here).
func TestShardingSphereProxyBackend(t *testing.T) {
	srv := testenv.MariaDB(t)
	p := startProxy(t, fmt.Sprintf(`
[[proxy.config]]
name = "ss"
listen_addr = "127.0.0.1:0"
user = "app"
password = "app-secret"
db = "gotest"
backend_type = "shardingsphere-proxy"
[proxy.config.simple_loadbalance]
nodes = ["ssp"]
[[shardingsphere_proxy.node]]
name = "ssp"
db = "gotest"
user = %q
password = %q
port = %d
`, testenv.TestUser, testenv.TestPassword, srv.Port()))
	if got := queryString(t, p.db(t, "ss", ""), "SELECT @@port"); got != fmt.Sprint(srv.Port()) {
		t.Fatalf("served by port %s, want %d", got, srv.Port())
	}
}
