package config

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// pisanixCase is one of Pisanix's own TOML files (testdata/pisanix, see its
// README) and what each of its keys must become here.
type pisanixCase struct {
	file string
	// fragment: the documentation shows the block alone; it is placed in
	// a file with one listener (see fragmentFile).
	fragment bool
	// err is the load error wanted ("" to load). Every line of the error
	// must match one of errs' entries when more problems are wanted.
	err  string
	errs int // number of problems in the error (default 1)
	// changed lists the keys of the file whose value here is not the
	// file's, with the value they get; every other key of the file must
	// come out as written.
	changed map[string]any
	// defaults are keys the file leaves out, with the value they get
	// (only those whose default says something about the file's meaning).
	defaults map[string]any
	// primaries and replicas of the first listener, by node name.
	primaries, replicas []string
	// warnings: each is a substring of one warning, and there are as many
	// warnings as entries.
	warnings []string
}

// fragmentFile puts a documentation fragment into a whole file: one
// listener ("l"), its plugins or balancer from the fragment, and the nodes
// the fragment names (unless it defines them).
func fragmentFile(frag string) string {
	var b strings.Builder
	if strings.Contains(frag, "[[mysql.node]]") {
		b.WriteString("[[proxy.config]]\nname = \"l\"\nuser = \"u\"\n[proxy.config.simple_loadbalance]\nnodes = [\"ds001\", \"ds002\"]\n")
		b.WriteString(frag)
		return b.String()
	}
	b.WriteString("[[proxy.config]]\nname = \"l\"\nuser = \"u\"\n")
	b.WriteString(frag)
	if !strings.Contains(frag, "simple_loadbalance") {
		b.WriteString("\n[proxy.config.simple_loadbalance]\nnodes = [\"ds001\"]\n")
	}
	b.WriteString("\n[[mysql.node]]\nname = \"ds001\"\nuser = \"root\"\n[[mysql.node]]\nname = \"ds002\"\nuser = \"root\"\nport = 3307\n")
	return b.String()
}

const shardingRefused = `.sharding: data sharding is not supported yet: this proxy cannot route table "t_order" by shard key`

var pisanixCases = []pisanixCase{
	{
		file: "v0.1.0/example-config.toml",
		changed: map[string]any{
			"admin.port": 8081, // a string in v0.1.0
			"proxy.config[0].plugin.concurrency_control[0].regex": []string{"aaa"},
			"proxy.config[0].plugin.concurrency_control[1].regex": []string{"bbb"},
			"proxy.config[0].plugin.circuit_break[0].regex":       []string{"111"},
			"proxy.config[0].plugin.circuit_break[1].regex":       []string{"222"},
		},
		defaults: map[string]any{
			"admin.host":           DefaultAdminHost, // see docs/pisanix-compat.md
			"proxy.config[0].name": "0.0.0.0:9088",
			"mysql.node[0].role":   RoleReadWrite,
		},
		primaries: []string{"ds001"},
	},
	{
		file:     "v0.1.0/loadbalancer-1.toml",
		fragment: true,
		// the fragment names ds001 and ds002, both primaries, in turn
		primaries: []string{"ds001", "ds002"},
	},
	{
		file:      "v0.1.0/loadbalancer-2.toml",
		fragment:  true,
		defaults:  map[string]any{"mysql.node[0].weight": 1, "mysql.node[1].role": RoleReadWrite, "proxy.config[0].simple_loadbalance.balance_type": BalanceRandom},
		primaries: []string{"ds001", "ds002"},
	},
	{
		file:      "v0.1.0/sql-circuit-breaker-and-concurrency-control-1.toml",
		fragment:  true,
		changed:   map[string]any{"proxy.config[0].plugin.circuit_break[0].regex": []string{`SELECT \*`}},
		primaries: []string{"ds001"},
	},
	{
		file:      "v0.1.0/sql-circuit-breaker-and-concurrency-control-2.toml",
		fragment:  true,
		changed:   map[string]any{"proxy.config[0].plugin.concurrency_control[0].regex": []string{`SELECT \*`}},
		primaries: []string{"ds001"},
	},
	{
		file:      "v0.1.0/standalone-1.toml",
		changed:   map[string]any{"admin.port": 8081},
		defaults:  map[string]any{"proxy.config[0].name": "0.0.0.0:9088", "admin.host": DefaultAdminHost},
		primaries: []string{"ds001"},
	},
	{
		file: "v0.1.0/standalone-2.toml",
		err:  `key "proxy" (line 18, column 2): toml: table proxy already exists (TOML allows a table header once: remove the repeated one)`,
	},
	{
		// no [admin]: Pisa-Proxy v0.1.0 required it, here it defaults
		file:      "v0.1.0/standalone-3.toml",
		defaults:  map[string]any{"admin.port": DefaultAdminPort, "admin.log_level": DefaultLogLevel, "proxy.config[0].name": "0.0.0.0:9089"},
		primaries: []string{"ds001", "ds002"},
	},
	{
		file:      "v0.1.1/example-config.toml",
		defaults:  map[string]any{"proxy.config[0].name": "0.0.0.0:9088"},
		primaries: []string{"ds001"}, // the only node, a read one, takes the writes
		replicas:  []string{"ds001"},
		warnings: []string{
			`proxy.config[0] (0.0.0.0:9088).simple_loadbalance.nodes: not used with read_write_splitting`,
			`proxy.config[0] (0.0.0.0:9088).read_write_splitting: no node has role = "readwrite"; the role = "read" nodes take the writes too`,
		},
	},
	{
		file:      "v0.1.1/sql-circuit-breaker-and-concurrency-control-1.toml",
		fragment:  true,
		primaries: []string{"ds001"},
	},
	{
		file:      "v0.1.1/sql-circuit-breaker-and-concurrency-control-2.toml",
		fragment:  true,
		primaries: []string{"ds001"},
	},
	{
		file:      "v0.1.1/standalone-1.toml",
		defaults:  map[string]any{"proxy.config[0].name": "0.0.0.0:9088"},
		primaries: []string{"ds002"}, // the readwrite node, not simple_loadbalance's ds001
		replicas:  []string{"ds001"},
		warnings:  []string{`proxy.config[0] (0.0.0.0:9088).simple_loadbalance.nodes: not used with read_write_splitting`},
	},
	{
		file: "v0.1.1/standalone-2.toml",
		err:  `key "proxy" (line 17, column 2): toml: table proxy already exists (TOML allows a table header once: remove the repeated one)`,
	},
	{
		file:      "v0.1.1/standalone-3.toml",
		defaults:  map[string]any{"proxy.config[0].name": "0.0.0.0:9089", "mysql.node[0].weight": 1},
		primaries: []string{"ds002"},
		replicas:  []string{"ds001"},
	},
	{
		file:      "v0.2.0/example-config.toml",
		defaults:  map[string]any{"proxy.config[0].name": "0.0.0.0:9088"},
		primaries: []string{"ds001"},
		replicas:  []string{"ds001"},
		warnings: []string{
			`simple_loadbalance.nodes: not used with read_write_splitting`,
			`read_write_splitting: no node has role = "readwrite"`,
		},
	},
	{
		file: "v0.2.0/standalone-4.toml",
		defaults: map[string]any{
			"proxy.config[0].name": "0.0.0.0:9089",
		},
		primaries: []string{"ds002"},
		replicas:  []string{"ds001"},
		warnings: []string{`proxy.config[0] (0.0.0.0:9089).read_write_splitting.dynamic.discovery.max_replication_lag: 3 is milliseconds here ` +
			`(Pisa-Proxy compared it with Seconds_Behind_Master, in seconds), and a replica's lag is known to the second: ` +
			`a replica is dropped as soon as it lags at all; for 3 seconds write 3000`},
	},
	{
		file:      "v0.3.0/standalone-1.toml",
		defaults:  map[string]any{"proxy.config[0].name": "0.0.0.0:9088"},
		primaries: []string{"ds002"},
		replicas:  []string{"ds001"},
		warnings:  []string{`simple_loadbalance.nodes: not used with read_write_splitting`},
	},
	{
		// Pisa-Proxy's generic rule: neither regex nor target
		file: "v0.3.0/standalone-3.toml",
		defaults: map[string]any{
			"proxy.config[0].name": "0.0.0.0:9089",
			"proxy.config[0].read_write_splitting.static.rule[0].target": RoleRead,
		},
		primaries: []string{"ds002"},
		replicas:  []string{"ds001"},
	},
	{
		// A static rule beside dynamic, and no static default_target:
		// Pisa-Proxy refused the file too (missing field default_target).
		file: "v0.3.0/standalone-4.toml",
		err:  `proxy.config[0] (0.0.0.0:9089).read_write_splitting: static and dynamic are both given; keep one`,
		errs: 2, // and the static default_target
		defaults: map[string]any{
			"proxy.config[0].read_write_splitting.static.rule[0].target": RoleRead,
		},
		primaries: []string{"ds002"},
		replicas:  []string{"ds001"},
	},
	{
		// table strategy: t_order_00000 to t_order_00003 on ds001; read
		// key by key, then refused
		file:      "v0.3.0/standalone-5.toml",
		err:       shardingRefused,
		defaults:  map[string]any{"proxy.config[0].name": "0.0.0.0:9088"},
		primaries: []string{"ds001"},
	},
	{
		file:      "v0.3.1/standalone-5.toml",
		err:       shardingRefused,
		primaries: []string{"ds001"},
	},
	{
		// database strategy
		file:      "v0.3.1/standalone-6.toml",
		err:       shardingRefused,
		primaries: []string{"ds001", "ds002"},
	},
	{
		// database-table strategy
		file:      "v0.3.2/standalone-7.toml",
		err:       shardingRefused,
		primaries: []string{"ds001", "ds002"},
	},
}

func TestPisanixExamples(t *testing.T) {
	seen := map[string]bool{}
	for _, tc := range pisanixCases {
		seen[tc.file] = true
		t.Run(tc.file, func(t *testing.T) { tc.run(t) })
	}
	// Every proxy file of testdata/pisanix has its case (the daemon's are
	// qosd's).
	files, err := filepath.Glob("testdata/pisanix/*/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		rel := strings.TrimPrefix(filepath.ToSlash(f), "testdata/pisanix/")
		if !seen[rel] && !strings.Contains(rel, "daemon") && !strings.Contains(rel, "traffic-qos") {
			t.Errorf("%s has no case", rel)
		}
	}
}

func (tc pisanixCase) run(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "pisanix", tc.file))
	if err != nil {
		t.Fatal(err)
	}
	src := string(data)
	if tc.fragment {
		src = fragmentFile(src)
	}
	c, err := ParseTOML([]byte(src), tc.file)
	if tc.err == "" && err != nil {
		t.Fatalf("does not load: %v", err)
	}
	if tc.err != "" {
		if err == nil {
			t.Fatalf("loads; want the error %q", tc.err)
		}
		msg := strings.TrimPrefix(err.Error(), tc.file+": ")
		if !strings.Contains(msg, tc.err) {
			t.Fatalf("error %q does not say %q", msg, tc.err)
		}
		if n := len(strings.Split(msg, "\n")); n != max(tc.errs, 1) {
			t.Fatalf("error has %d problems, want %d:\n%s", n, max(tc.errs, 1), msg)
		}
		// What was read, for the files that decode.
		if c, err = decodeTOML([]byte(src)); err != nil {
			return
		}
		c.ApplyDefaults()
	}
	var doc map[string]any
	if err := toml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	keys := map[string]any{}
	flatten("", doc, keys)
	checkKeys(t, c, keys, "toml", tc.changed, tc.defaults)
	if len(c.Proxy.Config) > 0 {
		l := &c.Proxy.Config[0]
		if got := nodeNames(c.Primaries(l)); !slices.Equal(got, tc.primaries) {
			t.Errorf("primaries %v, want %v", got, tc.primaries)
		}
		if got := nodeNames(c.Replicas(l)); !slices.Equal(got, tc.replicas) {
			t.Errorf("replicas %v, want %v", got, tc.replicas)
		}
	}
	warnings := c.Warnings()
	if len(warnings) != len(tc.warnings) {
		t.Errorf("warnings %q, want %d", warnings, len(tc.warnings))
	}
	for _, w := range tc.warnings {
		if !slices.ContainsFunc(warnings, func(s string) bool { return strings.Contains(s, w) }) {
			t.Errorf("no warning says %q: %q", w, warnings)
		}
	}
}

// checkKeys compares every leaf key of a file (flattened: see flatten; its
// keys as the fields' tag names them) with what it became in c: the
// file's value, or the one changed gives; and the keys defaults gives,
// which the file does not have.
func checkKeys(t *testing.T, c *Config, file map[string]any, tag string, changed, defaults map[string]any) {
	t.Helper()
	keys := maps.Clone(file)
	for k, v := range changed {
		if _, ok := keys[k]; !ok {
			t.Errorf("changed names %s, which the file does not have", k)
			continue
		}
		keys[k] = v
	}
	for k, v := range defaults {
		if _, ok := keys[k]; ok {
			t.Errorf("defaults names %s, which the file has", k)
			continue
		}
		keys[k] = v
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		got, err := lookup(c, tag, k)
		if err != nil {
			t.Errorf("%s: %v", k, err)
			continue
		}
		if want := normalize(reflect.ValueOf(keys[k])); !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", k, got, want)
		}
	}
}

func nodeNames(nodes []Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Name)
	}
	return out
}

// flatten lists the leaf keys of a decoded TOML document as paths such as
// proxy.config[0].simple_loadbalance.nodes.
func flatten(prefix string, v any, out map[string]any) {
	join := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			flatten(join(k), x, out)
		}
	case []any:
		if len(v) > 0 && !slices.ContainsFunc(v, func(x any) bool { _, ok := x.(map[string]any); return !ok }) {
			for i, x := range v {
				flatten(fmt.Sprintf("%s[%d]", prefix, i), x, out)
			}
			return
		}
		out[prefix] = v
	default:
		out[prefix] = v
	}
}

var pathPart = regexp.MustCompile(`^([A-Za-z_]+)(?:\[(\d+)\])?$`)

// lookup follows a key path through the config by the names the tag (toml
// or json) gives its fields, and returns the value found, normalized.
func lookup(c *Config, tag, path string) (any, error) {
	v := reflect.ValueOf(c).Elem()
	for _, part := range strings.Split(path, ".") {
		m := pathPart.FindStringSubmatch(part)
		if m == nil {
			return nil, fmt.Errorf("bad path part %q", part)
		}
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return nil, fmt.Errorf("%s: not set", part)
			}
			v = v.Elem()
		}
		f, ok := fieldByTag(v, tag, m[1])
		if !ok {
			return nil, fmt.Errorf("no field %q in %s", m[1], v.Type())
		}
		v = f
		if m[2] != "" {
			i, _ := strconv.Atoi(m[2])
			if v.Kind() != reflect.Slice || i >= v.Len() {
				return nil, fmt.Errorf("%s: no element %d", part, i)
			}
			v = v.Index(i)
		}
	}
	return normalize(v), nil
}

func fieldByTag(v reflect.Value, tag, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := range t.NumField() {
		if n, _, _ := strings.Cut(t.Field(i).Tag.Get(tag), ","); n == name {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// normalize makes a config value and a decoded TOML value comparable:
// integers as int64, strings, lists as []any (nil or empty alike: nil),
// a nil pointer as nil.
func normalize(v reflect.Value) any {
	if !v.IsValid() {
		return nil
	}
	if d, ok := v.Interface().(Duration); ok {
		return time.Duration(d).String()
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return normalize(v.Elem())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return int64(v.Uint())
	case reflect.String:
		return v.String()
	case reflect.Bool:
		return v.Bool()
	case reflect.Float32, reflect.Float64:
		if f := v.Float(); f == float64(int64(f)) {
			return int64(f) // JSON numbers
		}
		return v.Float()
	case reflect.Slice, reflect.Array:
		if v.Len() == 0 {
			return nil
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = normalize(v.Index(i))
		}
		return out
	}
	return v.Interface()
}

// controllerCase is the JSON an earlier pisa-controller served a sidecar
// (testdata/pisanix-controller, see its README), and what it becomes.
type controllerCase struct {
	file              string
	err               string
	changed, defaults map[string]any
	// gone are keys of the file (prefixes) that the config does not keep.
	gone                []string
	primaries, replicas []string
	warnings            []string
}

var controllerCases = []controllerCase{
	{
		file: "v0.1.0.json",
		changed: map[string]any{
			"admin.port": 8888, // a string
			"proxy.config[0].plugin.circuit_break[0].regex":          []string{"^DROP"},
			"proxy.config[0].plugin.concurrency_control[0].regex":    []string{"^SELECT"},
			"proxy.config[0].plugin.concurrency_control[0].duration": 1, // 1e9 ns
		},
		defaults:  map[string]any{"mysql.node[0].role": RoleReadWrite},
		primaries: []string{"catalogue-db"},
		warnings:  []string{"proxy.config[0] (mysql).plugin.concurrency_control[0].duration: 1000000000 read as nanoseconds (1s), as an earlier pisa-controller sent it: 1 s"},
	},
	{
		file: "v0.1.1.json",
		changed: map[string]any{
			"proxy.config[0].serverVersion":                          "", // moved to server_version
			"proxy.config[1].plugin.concurrency_control[0].duration": 10,
		},
		defaults: map[string]any{
			"proxy.config[0].server_version": "5.7.37",
			"proxy.config[1].server_version": "", // the backend's
			"admin.port":                     DefaultAdminPort,
		},
		gone:      []string{"mysql.node[2]", "mysql.node[3]"}, // listed again for the second service
		primaries: []string{"mysql-primary"},
		replicas:  []string{"mysql-replica"},
		warnings: []string{
			`proxy.config[1] (reports).plugin.concurrency_control[0].duration: 10000000000 read as nanoseconds (10s)`,
			`mysql.node: node "mysql-primary" was listed more than once; one is kept`,
			`mysql.node: node "mysql-replica" was listed more than once; one is kept`,
		},
	},
	{
		file: "v0.3.2.json",
		changed: map[string]any{
			"proxy.config[0].plugin.concurrency_control[0].duration": 2, // 1.5 s, rounded up
		},
		defaults: map[string]any{
			"proxy.config[0].read_write_splitting.dynamic.rule[0].target": RoleRead, // the generic rule's
		},
		primaries: []string{"mysql-primary"},
		replicas:  []string{"mysql-replica"},
		warnings: []string{
			"duration: 1500000000 read as nanoseconds (1.5s), as an earlier pisa-controller sent it: 2 s",
			"max_replication_lag: 3 is milliseconds here",
		},
	},
	{
		file:      "v0.3.2-sharding.json",
		err:       `proxy.config[0] (mysql).sharding: data sharding is not supported yet: this proxy cannot route table "t_order" by shard key`,
		primaries: []string{"ds001", "ds002"},
	},
}

// A new pisa-proxy fed by an earlier pisa-controller: every key of what it
// served reads as that controller meant it.
func TestPisanixControllerJSON(t *testing.T) {
	for _, tc := range controllerCases {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "pisanix-controller", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			c, err := ParseJSON(data, tc.file)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("does not load: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "\n")):
				t.Fatalf("error %v, want only %q", err, tc.err)
			case tc.err != "":
				if c, err = decodeJSON(data); err != nil {
					t.Fatal(err)
				}
				c.ApplyDefaults()
			}
			var doc map[string]any
			if err := json.Unmarshal(data, &doc); err != nil {
				t.Fatal(err)
			}
			all := map[string]any{}
			flatten("", doc, all)
			kept := map[string]any{}
			for k, v := range all {
				if slices.ContainsFunc(tc.gone, func(p string) bool { return strings.HasPrefix(k, p+".") }) {
					if _, err := lookup(c, "json", k); err == nil {
						t.Errorf("%s is still there", k)
					}
					continue
				}
				kept[k] = v
			}
			checkKeys(t, c, kept, "json", tc.changed, tc.defaults)
			l := &c.Proxy.Config[0]
			if got := nodeNames(c.Primaries(l)); !slices.Equal(got, tc.primaries) {
				t.Errorf("primaries %v, want %v", got, tc.primaries)
			}
			if got := nodeNames(c.Replicas(l)); !slices.Equal(got, tc.replicas) {
				t.Errorf("replicas %v, want %v", got, tc.replicas)
			}
			warnings := c.Warnings()
			if len(warnings) != len(tc.warnings) {
				t.Errorf("warnings %q, want %d", warnings, len(tc.warnings))
			}
			for _, w := range tc.warnings {
				if !slices.ContainsFunc(warnings, func(s string) bool { return strings.Contains(s, w) }) {
					t.Errorf("no warning says %q: %q", w, warnings)
				}
			}
		})
	}
}
