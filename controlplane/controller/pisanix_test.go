package controller_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/controlplane/api/v1alpha1"
)

// pisanixCRDCase is a set of Pisanix's own manifests (testdata/pisanix,
// see its README) applied together to one namespace of the real API
// server, and what the controller makes of them.
type pisanixCRDCase struct {
	name  string
	files []string
	// vdb, for manifests that show a TrafficStrategy without a
	// VirtualDatabase: ours, naming that strategy ("" when the files
	// have one).
	vdb string
	// refused: documents the API server refuses, by file, with a
	// substring of the error ("no matches for kind" for kinds that do not
	// exist here).
	refused map[string]string
	// app is the VirtualDatabase, ready its Ready condition (status/reason).
	app, ready string
	// want is the configuration served for app, in TOML ("" when none is).
	want string
	// dataShard: the DataShard condition is set (false, NotSupported).
	dataShard bool
	// warnings the proxy logs on loading the served configuration.
	warnings []string
}

const noKind = "no matches for kind"

// catalogueWant is the served configuration of Pisanix's Kubernetes guide.
const catalogueWant = `
[[proxy.config]]
name = "mysql"
listen_addr = "127.0.0.1:3306"
user = "catalogue_user"
password = "default_password"
db = "socksdb"
[proxy.config.simple_loadbalance]
balance_type = "random"
nodes = ["catalogue-db"]
[[mysql.node]]
name = "catalogue-db"
host = "catalogue-db.demotest"
port = 3306
user = "root"
password = "fake_password"
db = "socksdb"
`

// testVDB is the VirtualDatabase the test adds where a manifest shows only
// a strategy: one service "mysql" using it.
func testVDB(strategy string) string {
	return fmt.Sprintf(`apiVersion: core.database-mesh.io/v1alpha1
kind: VirtualDatabase
metadata: {name: app}
spec:
  services:
  - name: mysql
    databaseMySQL: {host: 127.0.0.1, port: 3306, user: root, password: root, db: test}
    trafficStrategy: %s
`, strategy)
}

// The listener of testVDB, and the node "mysql" of Pisanix's
// readwritesplitting guide (a read endpoint).
const testListener = `
[[proxy.config]]
name = "mysql"
listen_addr = "127.0.0.1:3306"
user = "root"
password = "root"
db = "test"
`
const guideReadNode = `
[[mysql.node]]
name = "mysql"
host = "mysql.default"
port = 3306
user = "root"
password = "root"
db = "test"
role = "read"
`

var pisanixCRDCases = []pisanixCRDCase{
	{
		name:  "Kubernetes guide (v0.1.0 to v0.3.2)",
		files: []string{"v0.1.0/docs/kubernetes-1.yaml", "v0.1.0/docs/kubernetes-2.yaml", "v0.1.0/docs/kubernetes-3.yaml"},
		app:   "catalogue", ready: "True/Ready", want: catalogueWant,
	},
	{
		name:  "microservices demo (v0.3.0 to v0.3.2)",
		files: []string{"v0.3.0/example/microservices-demo/virtualdatabase.yaml", "v0.3.0/example/microservices-demo/trafficstrategy.yaml", "v0.3.0/example/microservices-demo/databaseendpoint.yaml"},
		app:   "catalogue", ready: "True/Ready", want: catalogueWant,
	},
	{
		// The endpoint has no label, so the strategy's selector picks
		// nothing: Pisanix v0.1's controller found nothing either (v0.2
		// and later ignored selectors, see docs/pisanix-compat.md).
		name:  "announcement blog post (v0.1.1)",
		files: []string{"v0.1.1/docs/blog-2022-04-25-greetings-1.yaml", "v0.1.1/docs/blog-2022-04-25-greetings-2.yaml", "v0.1.1/docs/blog-2022-04-25-greetings-3.yaml"},
		app:   "catalogue", ready: "False/" + v1alpha1.ReasonNoEndpointSelected,
	},
	{
		name:  "end-to-end test manifests (v0.1.1 to v0.3.2)",
		files: []string{"v0.1.1/test/kubernetes/virtualdatabase.yml", "v0.1.1/test/kubernetes/trafficstrategy.yml", "v0.1.1/test/kubernetes/databaseendpoint.yml"},
		app:   "test", ready: "True/Ready", want: `
[[proxy.config]]
name = "mysql"
listen_addr = "127.0.0.1:3306"
user = "root"
password = "root"
db = "test"
[proxy.config.simple_loadbalance]
balance_type = "random"
nodes = ["mysql"]
[[mysql.node]]
name = "mysql"
host = "mysql.default"
port = 3306
user = "root"
password = "root"
db = "test"
`,
	},
	{
		// Integer durations: seconds (see v1alpha1.Duration).
		name:  "config sample (v0.2.0 to v0.3.2)",
		files: []string{"v0.2.0/example/config-sample.yaml"},
		app:   "nginx-deployment", ready: "True/Ready", want: `
[[proxy.config]]
name = "my_mysql"
listen_addr = "localhost:3306"
user = "root"
password = "root"
db = "foo"
pool_size = 3
[proxy.config.simple_loadbalance]
balance_type = "random"
nodes = ["databaseendpoint-sample1", "databaseendpoint-sample2"]
[[proxy.config.plugin.circuit_break]]
regex = ["/[1-9][0-9]*/"]
[[proxy.config.plugin.circuit_break]]
regex = ["/[1-2][0-9]*/"]
[[proxy.config.plugin.concurrency_control]]
regex = ["/[1-2][0-9]*/"]
max_concurrency = 11
duration = 1
[[proxy.config.plugin.concurrency_control]]
regex = ["/[1-7][0-9]*/"]
max_concurrency = 20
duration = 1
[[mysql.node]]
name = "databaseendpoint-sample1"
host = "127.0.0.1"
user = "root"
password = "root"
db = "foo"
[[mysql.node]]
name = "databaseendpoint-sample2"
host = "127.0.0.2"
user = "root"
password = "root"
db = "foo"
`,
	},
	{
		// v0.1's CRDs had regex as one string; its v0.2 made it a list,
		// which is what applies here (docs/pisanix-compat.md).
		name:    "config sample (v0.1.0, v0.1.1)",
		files:   []string{"v0.1.0/example/config-sample.yaml"},
		refused: map[string]string{"v0.1.0/example/config-sample.yaml#TrafficStrategy": `spec.circuitBreaks[0].regex: Invalid value: "string": spec.circuitBreaks[0].regex in body must be of type array`},
		app:     "nginx-deployment", ready: "False/" + v1alpha1.ReasonStrategyMissing,
	},
	{
		name:  "read/write splitting guide, static (v0.1.1 to v0.3.2)",
		files: []string{"v0.1.1/docs/readwritesplitting-1.yaml", "v0.1.1/docs/readwritesplitting-2.yaml"},
		vdb:   "test", app: "app", ready: "True/Ready", want: testListener + `
[proxy.config.read_write_splitting.static]
default_target = "read"
[[proxy.config.read_write_splitting.static.rule]]
name = "read-rule"
type = "regex"
regex = ["^select"]
target = "read"
algorithm_name = "random"
[[proxy.config.read_write_splitting.static.rule]]
name = "write-rule"
type = "regex"
regex = ["^insert"]
target = "readwrite"
algorithm_name = "roundrobin"
` + guideReadNode,
		warnings: []string{`no node has role = "readwrite"`},
	},
	{
		// maxReplicationLag: 3 was seconds there, is milliseconds here.
		name:  "read/write splitting guide, dynamic (v0.2.0 to v0.3.2)",
		files: []string{"v0.2.0/docs/readwritesplitting-3.yaml", "v0.1.1/docs/readwritesplitting-2.yaml"},
		vdb:   "catalogue", app: "app", ready: "True/Ready", want: testListener + `
[proxy.config.read_write_splitting.dynamic]
default_target = "readwrite"
[[proxy.config.read_write_splitting.dynamic.rule]]
name = "write-rule"
type = "regex"
regex = ["^insert"]
target = "readwrite"
algorithm_name = "roundrobin"
[[proxy.config.read_write_splitting.dynamic.rule]]
name = "read-rule"
type = "regex"
regex = ["^select"]
target = "read"
algorithm_name = "roundrobin"
[proxy.config.read_write_splitting.dynamic.discovery]
type = "mha"
user = "monitor"
password = "monitor"
monitor_period = 1000
connect_period = 1000
connect_timeout = 6000
connect_failure_threshold = 3
ping_period = 1000
ping_timeout = 6000
ping_failure_threshold = 3
read_only_enabled = true
read_only_period = 1000
read_only_timeout = 6000
read_only_failure_threshold = 3
replication_lag_enabled = true
replication_lag_period = 1000
replication_lag_timeout = 6000
replication_lag_failure_threshold = 3
max_replication_lag = 3
` + guideReadNode,
		warnings: []string{`no node has role = "readwrite"`, "max_replication_lag: 3 is milliseconds here"},
	},
	{
		// Pisanix's generic rule: no regex, no target.
		name:  "read/write splitting guide, generic rule (v0.3.0 to v0.3.2)",
		files: []string{"v0.3.0/docs/readwritesplitting-1.yaml", "v0.1.1/docs/readwritesplitting-2.yaml"},
		vdb:   "test", app: "app", ready: "True/Ready", want: testListener + `
[proxy.config.read_write_splitting.static]
default_target = "read"
[[proxy.config.read_write_splitting.static.rule]]
name = "read-rule"
type = "generic"
target = "read"
algorithm_name = "random"
` + guideReadNode,
		warnings: []string{`no node has role = "readwrite"`},
	},
	{
		// Served without sharding, the VirtualDatabase saying so; the
		// DataShard kind does not exist here yet.
		name: "sharding example, table strategy (v0.3.0 to v0.3.2)",
		files: []string{"v0.3.0/example/sharding/virtualdatabase.yml", "v0.3.0/example/sharding/trafficstrategy.yml",
			"v0.3.0/example/sharding/databaseendpoint.yml", "v0.3.0/example/sharding/datashard.yml"},
		refused: map[string]string{"v0.3.0/example/sharding/datashard.yml#DataShard": noKind},
		app:     "test", ready: "True/Ready", dataShard: true, want: shardingWant("ds001"),
	},
	{
		name: "sharding example, database strategy (v0.3.1, v0.3.2)",
		files: []string{"v0.3.0/example/sharding/virtualdatabase.yml", "v0.3.0/example/sharding/trafficstrategy.yml",
			"v0.3.1/example/sharding/database-strategy/databaseendpoint1.yml", "v0.3.1/example/sharding/database-strategy/databaseendpoint2.yml",
			"v0.3.1/example/sharding/database-strategy/datashard.yml"},
		refused: map[string]string{"v0.3.1/example/sharding/database-strategy/datashard.yml#DataShard": noKind},
		app:     "test", ready: "True/Ready", dataShard: true, want: shardingWant("ds001", "ds002"),
	},
	{
		name: "sharding example, database-table strategy (v0.3.2)",
		files: []string{"v0.3.0/example/sharding/virtualdatabase.yml", "v0.3.0/example/sharding/trafficstrategy.yml",
			"v0.3.1/example/sharding/database-strategy/databaseendpoint1.yml", "v0.3.1/example/sharding/database-strategy/databaseendpoint2.yml",
			"v0.3.2/example/sharding/database-table-strategy/datashard.yml"},
		refused: map[string]string{"v0.3.2/example/sharding/database-table-strategy/datashard.yml#DataShard": noKind},
		app:     "test", ready: "True/Ready", dataShard: true, want: shardingWant("ds001", "ds002"),
	},
	{
		// The sharding guide: its endpoints apply, its DataShards do not.
		name: "sharding guide (v0.3.0 to v0.3.2)",
		files: []string{"v0.1.0/docs/kubernetes-1.yaml", "v0.1.0/docs/kubernetes-2.yaml", "v0.3.2/docs/sharding-5.yaml", "v0.3.2/docs/sharding-6.yaml",
			"v0.3.0/docs/sharding-1.yaml", "v0.3.1/docs/sharding-2.yaml", "v0.3.2/docs/sharding-3.yaml", "v0.3.2/docs/sharding-8.yaml"},
		refused: map[string]string{
			"v0.3.0/docs/sharding-1.yaml#DataShard": noKind, "v0.3.1/docs/sharding-2.yaml#DataShard": noKind,
			"v0.3.2/docs/sharding-3.yaml#DataShard": noKind, "v0.3.2/docs/sharding-8.yaml#DataShard": noKind,
		},
		app: "catalogue", ready: "True/Ready", want: strings.NewReplacer(`nodes = ["catalogue-db"]`, `nodes = ["catalogue-db001", "catalogue-db002"]`,
			`name = "catalogue-db"`, `name = "catalogue-db001"`).Replace(catalogueWant) + `
[[mysql.node]]
name = "catalogue-db002"
host = "catalogue-db.demotest"
port = 3306
user = "root"
password = "fake_password"
db = "socksdb"
`,
	},
	{
		// The guide misspells the kind (QoSCliam): Pisanix's API server
		// refused it as well.
		name:    "traffic QoS guide (v0.3.1, v0.3.2)",
		files:   []string{"v0.3.1/docs/traffic-qos-1.yaml"},
		refused: map[string]string{"v0.3.1/docs/traffic-qos-1.yaml#QoSCliam": noKind},
	},
}

// shardingWant is the served configuration of Pisanix's sharding examples:
// their listener over the given endpoints, unsharded.
func shardingWant(nodes ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `
[[proxy.config]]
name = "mysql"
listen_addr = "127.0.0.1:3306"
user = "root"
password = "root"
db = "test"
[proxy.config.simple_loadbalance]
balance_type = "random"
nodes = ["%s"]
`, strings.Join(nodes, `", "`))
	hosts := map[string]string{"ds001": "mysql1.default", "ds002": "mysql2.default"}
	if len(nodes) == 1 {
		hosts["ds001"] = "mysql.default"
	}
	for _, n := range nodes {
		fmt.Fprintf(&b, "[[mysql.node]]\nname = %q\nhost = %q\nuser = \"root\"\npassword = \"root\"\ndb = \"test\"\n", n, hosts[n])
	}
	return b.String()
}

// Pisanix's own manifests (v0.1.0 to v0.3.2: example/, test/kubernetes and
// every YAML block of its documentation) apply to the API server and are
// translated as they were meant, or are refused with the reason.
func TestPisanixManifests(t *testing.T) {
	for _, tc := range pisanixCRDCases {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t, "pisanix")
			for _, f := range tc.files {
				applyPisanix(t, ns, f, tc.refused)
			}
			if tc.vdb != "" {
				applyDoc(t, ns, "test VirtualDatabase", []byte(testVDB(tc.vdb)), nil)
			}
			if tc.app == "" {
				return
			}
			ctx := context.Background()
			eventually(t, timeout, func() error {
				vdb := &v1alpha1.VirtualDatabase{}
				if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: tc.app}, vdb); err != nil {
					return err
				}
				if vdb.Status.ObservedGeneration != vdb.Generation {
					return fmt.Errorf("status of generation %d, want %d", vdb.Status.ObservedGeneration, vdb.Generation)
				}
				if r := readyReason(vdb.Status.Conditions); r != tc.ready {
					return fmt.Errorf("Ready %s, want %s", r, tc.ready)
				}
				c := meta.FindStatusCondition(vdb.Status.Conditions, v1alpha1.ConditionDataShard)
				switch {
				case !tc.dataShard && c != nil:
					return fmt.Errorf("DataShard condition without dataShard: %+v", c)
				case tc.dataShard && (c == nil || c.Status != "False" || c.Reason != v1alpha1.ReasonNotSupported ||
					c.Message != `spec.services[0] (mysql).dataShard "test": data sharding is not supported yet; served without sharding`):
					return fmt.Errorf("DataShard condition %+v", c)
				}
				return nil
			})
			if tc.want == "" {
				return
			}
			want, err := config.ParseTOML([]byte(tc.want), "want.toml")
			if err != nil {
				t.Fatal(err)
			}
			// Ready may be seen before every endpoint applied reached the
			// served config: it converges.
			var got *config.Config
			eventually(t, timeout, func() error {
				if got, err = fetch(ns, tc.app); err != nil {
					return err
				}
				if g, w := jsonOf(t, got.Proxy), jsonOf(t, want.Proxy); g != w {
					return fmt.Errorf("served listeners differ\ngot:  %s\nwant: %s", g, w)
				}
				if g, w := jsonOf(t, got.MySQL), jsonOf(t, want.MySQL); g != w {
					return fmt.Errorf("served nodes differ\ngot:  %s\nwant: %s", g, w)
				}
				return nil
			})
			warnings := got.Warnings()
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
	// Every manifest of testdata/pisanix is used.
	used := map[string]bool{}
	for _, tc := range pisanixCRDCases {
		for _, f := range tc.files {
			used[f] = true
		}
	}
	err := filepath.WalkDir(filepath.Join("testdata", "pisanix"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, "ml") {
			return err
		}
		if rel := strings.TrimPrefix(filepath.ToSlash(path), "testdata/pisanix/"); !used[rel] {
			t.Errorf("%s is in no case", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// applyPisanix creates the Pisanix objects of one file (testdata/pisanix)
// in ns; other kinds (a Namespace, Deployments) are left out, the
// namespace the file names is replaced by ns.
func applyPisanix(t *testing.T, ns, file string, refused map[string]string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "pisanix", file))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range bytes.Split(data, []byte("\n---")) {
		applyDoc(t, ns, file, doc, refused)
	}
}

func applyDoc(t *testing.T, ns, file string, doc []byte, refused map[string]string) {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(doc, &obj.Object); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if len(obj.Object) == 0 || obj.GroupVersionKind().Group != v1alpha1.GroupVersion.Group {
		return
	}
	obj.SetNamespace(ns)
	err := k8s.Create(context.Background(), obj)
	key := file + "#" + obj.GetKind()
	want, refuse := refused[key]
	switch {
	case err == nil && refuse:
		t.Errorf("%s: created; want it refused (%s)", key, want)
	case err != nil && !refuse:
		t.Fatalf("%s: %v", key, err)
	case err != nil && !strings.Contains(err.Error(), want):
		t.Errorf("%s: refused with %v, want %q", key, err, want)
	case err != nil && want == noKind && !meta.IsNoMatchError(err):
		t.Errorf("%s: want a no-match error, got %v", key, err)
	case err != nil && want != noKind && !apierrors.IsInvalid(err):
		t.Errorf("%s: want an Invalid error, got %v", key, err)
	}
}
