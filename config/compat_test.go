package config

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// shardingFile is one listener over ds001 and ds002 with the given
// [[proxy.config.sharding]] tables.
func shardingFile(sharding string) string {
	return `
[[proxy.config]]
name = "shop"
listen_addr = "127.0.0.1:3306"
user = "u"
[proxy.config.simple_loadbalance]
nodes = ["ds001", "ds002"]
` + sharding + `
[[mysql.node]]
name = "ds001"
user = "root"
[[mysql.node]]
name = "ds002"
user = "root"
port = 3307
`
}

const refusal = `proxy.config[0] (shop).sharding: data sharding is not supported yet`

// Each sharding key is checked and named in errors; a listener with rules
// is refused in any case, with the tables it could not route.
func TestShardingRulesChecked(t *testing.T) {
	for _, tc := range []struct {
		name, sharding string
		want           []string // besides the refusal
	}{
		{"valid table strategy", `
[[proxy.config.sharding]]
table_name = "t_order"
actual_datanodes = ["ds001"]
[proxy.config.sharding.table_strategy]
table_sharding_algorithm_name = "crc32mod"
table_sharding_column = "id"
sharding_count = 4`, nil},
		{"no table name, unknown node", `
[[proxy.config.sharding]]
actual_datanodes = ["ds001", "ds009"]
[proxy.config.sharding.database_strategy]
database_sharding_algorithm_name = "mod"
database_sharding_column = "id"`, []string{
			`proxy.config[0] (shop).sharding[0].table_name: required`,
			`proxy.config[0] (shop).sharding[0].actual_datanodes[1]: node "ds009" is not defined by any [[mysql.node]]`,
		}},
		{"no strategy", `
[[proxy.config.sharding]]
table_name = "t_order"
actual_datanodes = ["ds001"]`, []string{
			`proxy.config[0] (shop).sharding[0]: needs exactly one of table_strategy, database_strategy, database_table_strategy, got 0`,
		}},
		{"two strategies", `
[[proxy.config.sharding]]
table_name = "t_order"
actual_datanodes = ["ds001"]
[proxy.config.sharding.table_strategy]
table_sharding_algorithm_name = "mod"
table_sharding_column = "id"
sharding_count = 2
[proxy.config.sharding.database_strategy]
database_sharding_algorithm_name = "mod"
database_sharding_column = "id"`, []string{
			`proxy.config[0] (shop).sharding[0]: needs exactly one of table_strategy, database_strategy, database_table_strategy, got 2`,
		}},
		{"keys of another strategy", `
[[proxy.config.sharding]]
table_name = "t_order"
actual_datanodes = ["ds001", "ds002"]
[proxy.config.sharding.database_strategy]
database_sharding_algorithm_name = "hash"
table_sharding_column = "id"
sharding_count = 4`, []string{
			`proxy.config[0] (shop).sharding[0].database_strategy.database_sharding_algorithm_name: "hash" is not one of mod, crc32mod`,
			`proxy.config[0] (shop).sharding[0].database_strategy.database_sharding_column: required`,
			`proxy.config[0] (shop).sharding[0].database_strategy.table_sharding_column: not a key of database_strategy`,
			`proxy.config[0] (shop).sharding[0].database_strategy.sharding_count: not a key of database_strategy (the shards are the actual_datanodes)`,
		}},
		{"database-table strategy without a count, inline, twice the table", `
[[proxy.config.sharding]]
table_name = "t_order"
actual_datanodes = ["ds001", "ds002"]
[proxy.config.sharding.database_table_strategy]
database_sharding_algorithm_name = "mod"
database_sharding_column = "user_id"
table_sharding_algorithm_name = "mod"
table_sharding_column = "order_id"
[[proxy.config.sharding]]
table_name = "T_ORDER"
actual_datanodes = ["ds001"]
[proxy.config.sharding.table_strategy]
algorithm_expression = "t_order_${id % 2}"`, []string{
			`proxy.config[0] (shop).sharding[0].database_table_strategy.sharding_count: must be at least 1, got 0`,
			`proxy.config[0] (shop).sharding[1].table_name: table "T_ORDER" has another rule already`,
			`proxy.config[0] (shop).sharding[1].table_strategy.algorithm_expression: inline sharding is not supported`,
			`proxy.config[0] (shop).sharding[1].table_strategy.table_sharding_algorithm_name: required`,
			`proxy.config[0] (shop).sharding[1].table_strategy.table_sharding_column: required`,
			`proxy.config[0] (shop).sharding[1].table_strategy.sharding_count: must be at least 1, got 0`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTOML([]byte(shardingFile(tc.sharding)), "s.toml")
			if err == nil {
				t.Fatal("loads; a listener with sharding rules must be refused")
			}
			lines := strings.Split(strings.TrimPrefix(err.Error(), "s.toml: "), "\n")
			if len(lines) != len(tc.want)+1 {
				t.Errorf("%d problems, want %d:\n%s", len(lines), len(tc.want)+1, err)
			}
			for _, w := range append(tc.want, refusal) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%s", w, err)
				}
			}
		})
	}
	// The guide's spelling of crc32mod is read as crc32mod.
	c, err := decodeTOML([]byte(shardingFile(`
[[proxy.config.sharding]]
table_name = "t_order"
actual_datanodes = ["ds001", "ds002"]
[proxy.config.sharding.database_strategy]
database_sharding_algorithm_name = "crc32_mod"
database_sharding_column = "id"`)))
	if err != nil {
		t.Fatal(err)
	}
	c.ApplyDefaults()
	if got := c.Proxy.Config[0].Sharding[0].DatabaseStrategy.DatabaseShardingAlgorithmName; got != ShardingCRC32Mod {
		t.Errorf("crc32_mod read as %q", got)
	}
	if err := c.Validate(); err == nil || strings.Contains(err.Error(), "crc32") || !strings.Contains(err.Error(), `table "t_order"`) {
		t.Errorf("validate: %v", err)
	}
}

// A listener with backend_type = "shardingsphere-proxy" takes its nodes
// from [[shardingsphere_proxy.node]] (a MySQL-protocol server), has the
// defaults and password handling of a [[mysql.node]], and the names of both
// lists are one namespace.
func TestShardingSphereProxyBackend(t *testing.T) {
	t.Setenv("SSP_PASSWORD", "from-env")
	const file = `
version = "v0.3.2"
[[proxy.config]]
name = "ss"
listen_addr = "127.0.0.1:13306"
user = "u"
backend_type = "shardingsphere-proxy"
strategy = "simple_balance"
[proxy.config.simple_loadbalance]
nodes = ["ssp"]
[[proxy.config]]
name = "direct"
listen_addr = "127.0.0.1:13307"
user = "u"
[proxy.config.simple_loadbalance]
nodes = ["db"]
[[mysql.node]]
name = "db"
user = "root"
[[shardingsphere_proxy.node]]
name = "ssp"
user = "root"
password_env = "SSP_PASSWORD"
port = 3307
`
	c, err := ParseTOML([]byte(file), "ss.toml")
	if err != nil {
		t.Fatal(err)
	}
	ss := &c.Proxy.Config[0]
	p := c.Primaries(ss)
	if len(p) != 1 || p[0].Name != "ssp" || p[0].Addr() != "127.0.0.1:3307" || p[0].Role != RoleReadWrite || p[0].ResolvedPassword() != "from-env" {
		t.Fatalf("shardingsphere-proxy listener's primaries: %+v", p)
	}
	if got := c.BackendNodes(&c.Proxy.Config[1]); len(got) != 1 || got[0].Name != "db" {
		t.Fatalf("mysql listener's nodes: %+v", got)
	}
	if c.Version != "v0.3.2" || ss.Strategy != "simple_balance" {
		t.Errorf("version %q, strategy %q", c.Version, ss.Strategy)
	}
	data, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := ParseJSON(data, "ss.json"); err != nil || back.Primaries(&back.Proxy.Config[0])[0].Name != "ssp" {
		t.Fatalf("JSON round trip: %v", err)
	}
	for edit, want := range map[string]string{
		`nodes = ["ssp"]`:                          `proxy.config[0] (ss).simple_loadbalance.nodes[0]: node "db" is not defined by any [[shardingsphere_proxy.node]]`,
		`name = "ssp"`:                             `shardingsphere_proxy.node[0].name: duplicate node name "db"`,
		`backend_type = "shardingsphere-proxy"`:    `proxy.config[0] (ss).backend_type: "tidb" is not one of mysql, shardingsphere-proxy`,
		`nodes = ["db"]`:                           `proxy.config[1] (direct).simple_loadbalance.nodes[0]: node "ssp" is not defined by any [[mysql.node]]`,
		"[[shardingsphere_proxy.node]]\nname = \"": `shardingsphere_proxy.node[0].name: required`,
	} {
		repl := map[string]string{
			`nodes = ["ssp"]`:                          `nodes = ["db"]`,
			`name = "ssp"`:                             `name = "db"`,
			`backend_type = "shardingsphere-proxy"`:    `backend_type = "tidb"`,
			`nodes = ["db"]`:                           `nodes = ["ssp"]`,
			"[[shardingsphere_proxy.node]]\nname = \"": "[[shardingsphere_proxy.node]]\nnom = \"",
		}[edit]
		bad := strings.Replace(file, edit, repl, 1)
		if edit == "[[shardingsphere_proxy.node]]\nname = \"" {
			bad = strings.Replace(file, `name = "ssp"`, `name = ""`, 1)
		}
		if _, err := ParseTOML([]byte(bad), "ss.toml"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", edit, err, want)
		}
	}
	r := c.Redacted()
	if r.ShardingSphereProxy.Node[0].Password != "" || r.ShardingSphereProxy.Node[0].ResolvedPassword() != "" ||
		c.ShardingSphereProxy.Node[0].ResolvedPassword() != "from-env" {
		t.Errorf("redaction: %+v", r.ShardingSphereProxy.Node[0])
	}
}

// [[node_group.member]] and a rule's node_group_name are checked; the
// names are accepted and, with no sharding to use them, warned about.
func TestNodeGroups(t *testing.T) {
	const file = `
[[proxy.config]]
name = "l"
listen_addr = "127.0.0.1:3306"
user = "u"
[proxy.config.read_write_splitting.static]
default_target = "readwrite"
[[proxy.config.read_write_splitting.static.rule]]
name = "r"
type = "regex"
regex = ["^select"]
target = "read"
algorithm_name = "random"
node_group_name = ["g1"]
[[node_group.member]]
name = "g1"
readwrite = "p"
reads = ["r1"]
[[mysql.node]]
name = "p"
user = "root"
[[mysql.node]]
name = "r1"
user = "root"
role = "read"
`
	c, err := ParseTOML([]byte(file), "g.toml")
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0], `proxy.config[0] (l).read_write_splitting.static.rule[0].node_group_name: used only to route sharded statements`) {
		t.Errorf("warnings %q", w)
	}
	for edit, want := range map[string][2]string{
		"group name":    {`node_group_name = ["g1"]`, `proxy.config[0] (l).read_write_splitting.static.rule[0].node_group_name[0]: "g9" is not a [[node_group.member]]`},
		"member node":   {`reads = ["r1"]`, `node_group.member[0].reads[0]: node "r9" is not defined`},
		"member rw":     {`readwrite = "p"`, `node_group.member[0].readwrite: required`},
		"member name":   {`name = "g1"`, `node_group.member[0].name: required`},
		"no node_group": {"[[node_group.member]]\nname = \"g1\"\nreadwrite = \"p\"\nreads = [\"r1\"]", `node_group_name[0]: "g1" is not a [[node_group.member]]`},
	} {
		repl := map[string]string{
			"group name":    `node_group_name = ["g9"]`,
			"member node":   `reads = ["r9"]`,
			"member rw":     ``,
			"member name":   `name = ""`,
			"no node_group": ``,
		}[edit]
		if _, err := ParseTOML([]byte(strings.Replace(file, want[0], repl, 1)), "g.toml"); err == nil || !strings.Contains(err.Error(), want[1]) {
			t.Errorf("%s: got %v, want %q", edit, err, want[1])
		}
	}
}

// Pisa-Proxy's TRACE and the WARNING spelling are levels; the error names
// the levels there are.
func TestLogLevels(t *testing.T) {
	for in, want := range map[string]slog.Level{"TRACE": slog.LevelDebug, "trace": slog.LevelDebug, "Warning": slog.LevelWarn, "info": slog.LevelInfo, "ERROR": slog.LevelError} {
		if got, err := ParseLogLevel(in); err != nil || got != want {
			t.Errorf("%s: %v, %v", in, got, err)
		}
	}
	src := strings.Replace(pisanixTOML, `log_level = "INFO"`, `log_level = "TRACE"`, 1)
	if _, err := ParseTOML([]byte(src), "p.toml"); err != nil {
		t.Errorf("TRACE: %v", err)
	}
	src = strings.Replace(pisanixTOML, `log_level = "INFO"`, `log_level = "VERBOSE"`, 1)
	if _, err := ParseTOML([]byte(src), "p.toml"); err == nil || !strings.Contains(err.Error(), `admin.log_level: "VERBOSE" is not one of TRACE, DEBUG, INFO, WARN, ERROR`) {
		t.Errorf("VERBOSE: %v", err)
	}
}

// Unnamed listeners are named after their address; when another listener
// has that name, or two listen on port 0 of one address, a suffix keeps
// the names unique.
func TestDefaultListenerNames(t *testing.T) {
	const file = `
[[proxy.config]]
listen_addr = "127.0.0.1:0"
user = "u"
[proxy.config.simple_loadbalance]
nodes = ["n"]
[[proxy.config]]
listen_addr = "127.0.0.1:0"
user = "u"
[proxy.config.simple_loadbalance]
nodes = ["n"]
[[proxy.config]]
name = "127.0.0.1:3307"
listen_addr = "127.0.0.1:3308"
user = "u"
[proxy.config.simple_loadbalance]
nodes = ["n"]
[[proxy.config]]
listen_addr = "127.0.0.1:3307"
user = "u"
[proxy.config.simple_loadbalance]
nodes = ["n"]
[[mysql.node]]
name = "n"
user = "u"
`
	c, err := ParseTOML([]byte(file), "n.toml")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range c.Proxy.Config {
		names = append(names, l.Name)
	}
	if got := strings.Join(names, ","); got != "127.0.0.1:0,127.0.0.1:0#1,127.0.0.1:3307,127.0.0.1:3307#1" {
		t.Fatalf("names %s", got)
	}
}

// read_write_splitting needs one mode; both is refused with what Pisa-Proxy
// did (static won), and a mode's default_target is required.
func TestReadWriteSplittingModes(t *testing.T) {
	for routing, want := range map[string]string{
		"[proxy.config.read_write_splitting]": `proxy.config[0] (l).read_write_splitting: one of static or dynamic is required`,
		"[proxy.config.read_write_splitting.static]\ndefault_target = \"read\"\n[proxy.config.read_write_splitting.dynamic]\ndefault_target = \"read\"\n[proxy.config.read_write_splitting.dynamic.discovery]\ntype = \"mha\"\nuser = \"m\"": `proxy.config[0] (l).read_write_splitting: static and dynamic are both given; keep one (Pisa-Proxy used static and ignored dynamic`,
		"[[proxy.config.read_write_splitting.static.rule]]\nname = \"g\"\ntype = \"generic\"\nalgorithm_name = \"random\"":                                                                                                                   `proxy.config[0] (l).read_write_splitting.static.default_target: required: read or readwrite`,
	} {
		src := "[[proxy.config]]\nname = \"l\"\nlisten_addr = \"127.0.0.1:3306\"\nuser = \"u\"\n" + routing + "\n[[mysql.node]]\nname = \"n\"\nuser = \"u\"\n"
		if _, err := ParseTOML([]byte(src), "rw.toml"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %q", err, want)
		}
	}
}

// The older spellings of a port and of regex, in both forms a config
// arrives in.
func TestOlderSpellings(t *testing.T) {
	var p struct {
		Port  Port     `json:"port"`
		Regex Patterns `json:"regex"`
	}
	for doc, want := range map[string]string{
		`{"port": "8081", "regex": "^SELECT"}`:  "8081 [^SELECT]",
		`{"port": 8081, "regex": ["^A", "^B"]}`: "8081 [^A ^B]",
		`{"port": 0, "regex": null}`:            "0 []",
		`{"port": "http", "regex": []}`:         `port "http" is not a number`,
		`{"port": 1.5}`:                         `port 1.5 is not a whole number`,
		`{"regex": {"pattern": "x"}}`:           `regex: want a pattern or a list of patterns`,
	} {
		p.Port, p.Regex = 0, nil
		err := json.Unmarshal([]byte(doc), &p)
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = strings.TrimSpace(strings.Join([]string{jsonString(p.Port), "[" + strings.Join(p.Regex, " ") + "]"}, " "))
		}
		if !strings.Contains(got, want) {
			t.Errorf("%s: %s, want %s", doc, got, want)
		}
	}
	_, err := ParseTOML([]byte(strings.Replace(pisanixTOML, "port = 5591", `port = "55x"`, 1)), "p.toml")
	if err == nil || !strings.Contains(err.Error(), `key "admin.port"`) || !strings.Contains(err.Error(), `port "55x" is not a number`) {
		t.Errorf("bad string port: %v", err)
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
