package config

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

const pisanixTOML = `
[admin]
host = "127.0.0.1"
port = 5591
log_level = "INFO"

[[proxy.config]]
name = "catalogue"
listen_addr = "127.0.0.1:3306"
user = "catalogue_user"
password = "default_password"
db = "socksdb"
backend_type = "mysql"
pool_size = 16
server_version = "5.7.37"

[proxy.config.simple_loadbalance]
balance_type = "random"
nodes = ["node1", "node2"]

[[proxy.config.plugin.circuit_break]]
regex = ["^DELETE"]

[[proxy.config.plugin.concurrency_control]]
regex = ["^SELECT"]
max_concurrency = 5
duration = 10

[[mysql.node]]
name = "node1"
db = "socksdb"
user = "root"
password = "secret"
host = "127.0.0.1"
port = 3307
weight = 2
role = "readwrite"

[[mysql.node]]
name = "node2"
user = "root"
port = 3308
`

func TestParsePisanixFile(t *testing.T) {
	c, err := ParseTOML([]byte(pisanixTOML), "pisa.toml")
	if err != nil {
		t.Fatal(err)
	}
	l := c.Proxy.Config[0]
	if l.Name != "catalogue" || l.PoolSize != 16 || l.SimpleLoadBalance.Nodes[1] != "node2" {
		t.Fatalf("listener decoded wrong: %+v", l)
	}
	if l.MaxConnections != DefaultMaxConnections || l.PoolAcquireTimeout.D() != 5*time.Second || l.AuthPlugin != AuthNative {
		t.Fatalf("defaults not applied: %+v", l)
	}
	n2, _ := c.NodeByName("node2")
	if n2.Host != DefaultNodeHost || n2.Weight != 1 || n2.Role != RoleReadWrite || n2.Addr() != "127.0.0.1:3308" {
		t.Fatalf("node defaults wrong: %+v", n2)
	}
	if c.Proxy.Config[0].Plugin.ConcurrencyControl[0].Duration != 10 {
		t.Fatal("concurrency control not decoded")
	}
	c.Admin.Token = "admin-secret"
	r := c.Redacted()
	if r.MySQL.Node[0].Password != "******" || c.MySQL.Node[0].Password != "secret" {
		t.Fatal("redaction must copy, not mutate")
	}
	if r.Admin.Token != "******" || c.Admin.Token != "admin-secret" {
		t.Fatalf("admin token redacted %q, original %q", r.Admin.Token, c.Admin.Token)
	}
}

func TestBadConfigNamesKey(t *testing.T) {
	cases := []struct {
		name, edit, want string
	}{
		{"unknown key", `pool_size = 16`, `unknown key "proxy.config.pool_sise"`},
		{"undefined node", `nodes = ["node1", "node2"]`, `proxy.config[0] (catalogue).simple_loadbalance.nodes[1]: node "nodeX" is not defined`},
		{"bad address", `listen_addr = "127.0.0.1:3306"`, `proxy.config[0] (catalogue).listen_addr: "localhost" is not host:port`},
		{"bad balance", `balance_type = "random"`, `balance_type: "weighted" is not one of random, roundrobin, leastconn`},
		{"bad regex", `regex = ["^DELETE"]`, `circuit_break[0].regex[0]: bad pattern`},
		{"pool size", `pool_size = 16`, `pool_size: 300 is outside 1..255`},
		{"bad type", `port = 3307`, `key "mysql.node.port"`},
		{"missing user", `user = "catalogue_user"`, `proxy.config[0] (catalogue).user: required`},
	}
	repl := map[string]string{
		"unknown key":    `pool_sise = 16`,
		"undefined node": `nodes = ["node1", "nodeX"]`,
		"bad address":    `listen_addr = "localhost"`,
		"bad balance":    `balance_type = "weighted"`,
		"bad regex":      `regex = ["^DELETE("]`,
		"pool size":      `pool_size = 300`,
		"bad type":       `port = "3307"`,
		"missing user":   ``,
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(pisanixTOML, tc.edit, repl[tc.name], 1)
			_, err := ParseTOML([]byte(src), "pisa.toml")
			if err == nil {
				t.Fatal("want an error")
			}
			if !strings.HasPrefix(err.Error(), "pisa.toml: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name the file and %q", err, tc.want)
			}
		})
	}
}

func TestDuplicateListener(t *testing.T) {
	src := pisanixTOML + `
[[proxy.config]]
name = "catalogue"
listen_addr = "127.0.0.1:3306"
user = "u"
[proxy.config.simple_loadbalance]
balance_type = "roundrobin"
nodes = ["node1"]
`
	_, err := ParseTOML([]byte(src), "f.toml")
	if err == nil || !strings.Contains(err.Error(), `duplicate listener name "catalogue"`) ||
		!strings.Contains(err.Error(), `"127.0.0.1:3306" is already used by listener "catalogue"`) {
		t.Fatalf("got %v", err)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	c, err := ParseTOML([]byte(pisanixTOML), "pisa.toml")
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseJSON(data, "served")
	if err != nil {
		t.Fatal(err)
	}
	if back.Proxy.Config[0].PoolAcquireTimeout != c.Proxy.Config[0].PoolAcquireTimeout || back.MySQL.Node[1].Port != 3308 {
		t.Fatalf("round trip lost data: %s", data)
	}
}

// parseListener parses one listener "l" whose routing section is routing,
// over one node "n".
func parseListener(t *testing.T, routing string) *Listener {
	t.Helper()
	src := `
[[proxy.config]]
name = "l"
listen_addr = "127.0.0.1:3306"
user = "u"
` + routing + `
[[mysql.node]]
name = "n"
host = "127.0.0.1"
user = "u"
`
	c, err := ParseTOML([]byte(src), "f.toml")
	if err != nil {
		t.Fatal(err)
	}
	return &c.Proxy.Config[0]
}

// Pisa-Proxy's generic read/write rule names neither regex nor target.
func TestGenericRuleLoads(t *testing.T) {
	l := parseListener(t, `[proxy.config.read_write_splitting.static]
default_target = "readwrite"
[[proxy.config.read_write_splitting.static.rule]]
name = "generic-rule"
type = "generic"`)
	if r := l.ReadWriteSplitting.Static.Rules[0]; r.Target != RoleRead || len(r.Regex) != 0 {
		t.Fatalf("generic rule = %+v, want target read and no regex", r)
	}
}

// Pisa-Proxy balanced at random when balance_type was not given.
func TestBalanceTypeDefaultsToRandom(t *testing.T) {
	l := parseListener(t, `[proxy.config.simple_loadbalance]
nodes = ["n"]`)
	if got := l.SimpleLoadBalance.BalanceType; got != BalanceRandom {
		t.Fatalf("balance_type = %q, want random", got)
	}
}

// TestPassthroughConfig: with auth passthrough a listener needs no user,
// and what cannot work with it (a password the proxy would check, pooled
// or replica connections shared by clients) is refused by key.
func TestPassthroughConfig(t *testing.T) {
	noUser := strings.Replace(strings.Replace(pisanixTOML, `user = "catalogue_user"`, `auth_mode = "passthrough"`, 1), `password = "default_password"`, "", 1)
	if _, err := ParseTOML([]byte(noUser), "pt.toml"); err != nil {
		t.Fatalf("a passthrough listener without user: %v", err)
	}
	for edit, want := range map[string]string{
		`password = "pw"`:                        `proxy.config[0] (catalogue).password: not used: with auth_mode = "passthrough" the backend checks`,
		`multiplex = true`:                       `proxy.config[0] (catalogue).multiplex: not available with auth_mode = "passthrough"`,
		`auth_plugin = "caching_sha2_password"`:  `proxy.config[0] (catalogue).auth_plugin: not used`,
		`users = [{user = "u", password = "p"}]`: `proxy.config[0] (catalogue).users[0].password: not used`,
	} {
		src := strings.Replace(noUser, `auth_mode = "passthrough"`, "auth_mode = \"passthrough\"\n"+edit, 1)
		if _, err := ParseTOML([]byte(src), "pt.toml"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", edit, err, want)
		}
	}
	bad := strings.Replace(pisanixTOML, `user = "catalogue_user"`, "user = \"catalogue_user\"\nauth_mode = \"backend\"", 1)
	if _, err := ParseTOML([]byte(bad), "pt.toml"); err == nil || !strings.Contains(err.Error(), `auth_mode: "backend" is not one of proxy, passthrough`) {
		t.Errorf("unknown auth_mode: %v", err)
	}
}

func TestNodeTLSModes(t *testing.T) {
	for _, mode := range []string{"off", "preferred", "required", "verify-ca", "verify-full", "skip-verify"} {
		src := strings.Replace(pisanixTOML, `port = 3308`, "port = 3308\ntls = \""+mode+"\"", 1)
		if _, err := ParseTOML([]byte(src), "pisa.toml"); err != nil {
			t.Errorf("%s: %v", mode, err)
		}
	}
	src := strings.Replace(pisanixTOML, `port = 3308`, "port = 3308\ntls = \"verify-identity\"", 1)
	if _, err := ParseTOML([]byte(src), "pisa.toml"); err == nil || !strings.Contains(err.Error(),
		`mysql.node[1].tls: "verify-identity" is not one of off, preferred, required, verify-ca, verify-full, skip-verify`) {
		t.Fatalf("got %v", err)
	}
}
