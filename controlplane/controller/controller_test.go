package controller_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/controlplane/api/v1alpha1"
	"pisanix.io/pisanix/controlplane/configclient"
	"pisanix.io/pisanix/controlplane/configserver"
	"pisanix.io/pisanix/controlplane/kubetest"
	"pisanix.io/pisanix/controlplane/translate"
)

const timeout = 20 * time.Second

// applyYAML creates every document of a manifest, like kubectl apply on a fresh cluster.
func applyYAML(t *testing.T, data []byte) {
	t.Helper()
	for i, doc := range bytes.Split(data, []byte("\n---")) {
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &obj.Object); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		if err := k8s.Create(context.Background(), obj); err != nil {
			t.Fatalf("apply %s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
		t.Cleanup(func() {
			if err := k8s.Delete(context.Background(), obj); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("delete %s %s: %v", obj.GetKind(), obj.GetName(), err)
			}
		})
	}
}

// update re-reads obj, applies mutate and writes it, retrying on conflicts
// with the controller's status writes.
func update[T client.Object](t *testing.T, obj T, mutate func(T)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		mutate(obj)
		return k8s.Update(context.Background(), obj)
	})
	if err != nil {
		t.Fatalf("update %s: %v", obj.GetName(), err)
	}
}

func namespace(t *testing.T, name string) {
	t.Helper()
	if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// newNamespace creates a namespace of its own for one test run (tests may
// run several times against the same API server with -count).
func newNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func fetch(ns, app string) (*config.Config, error) {
	c, _, err := configclient.Fetch(context.Background(), configURL, ns, app)
	return c, err
}

func readyReason(conds []metav1.Condition) string {
	c := meta.FindStatusCondition(conds, v1alpha1.ConditionReady)
	if c == nil {
		return "<none>"
	}
	return string(c.Status) + "/" + c.Reason
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The seed's socks-shop YAML applies unchanged and the config served for
// the catalogue app is exactly the expected proxy config.
func TestSocksShop(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root, "deploy", "examples", "socks-shop.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	applyYAML(t, data)
	want := jsonOf(t, kubetest.SocksShopExpected())
	eventually(t, timeout, func() error {
		c, err := fetch("default", "catalogue")
		if err != nil {
			return err
		}
		if got := jsonOf(t, c); got != want {
			return fmt.Errorf("served config differs\ngot:  %s\nwant: %s", got, want)
		}
		return nil
	})
	ctx := context.Background()
	eventually(t, timeout, func() error {
		vdb := &v1alpha1.VirtualDatabase{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: "default", Name: "catalogue"}, vdb); err != nil {
			return err
		}
		ts := &v1alpha1.TrafficStrategy{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: "default", Name: "catalogue"}, ts); err != nil {
			return err
		}
		ep := &v1alpha1.DatabaseEndpoint{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: "default", Name: "catalogue-db"}, ep); err != nil {
			return err
		}
		if r := readyReason(vdb.Status.Conditions); r != "True/Ready" || vdb.Status.Endpoints != 1 || vdb.Status.ConfigVersion == "" {
			return fmt.Errorf("vdb status %s endpoints %d version %q", r, vdb.Status.Endpoints, vdb.Status.ConfigVersion)
		}
		if r := readyReason(ts.Status.Conditions); r != "True/Ready" || ts.Status.Endpoints != 1 {
			return fmt.Errorf("ts status %s endpoints %d", r, ts.Status.Endpoints)
		}
		if r := readyReason(ep.Status.Conditions); r != "True/Ready" || ep.Status.Role != "readwrite" {
			return fmt.Errorf("dbep status %s role %q", r, ep.Status.Role)
		}
		return nil
	})
}

// Objects the schema refuses, with the field named in the API server's message.
func TestInvalidObjectsRefused(t *testing.T) {
	ns := newNamespace(t, "invalid")
	obj := func(kind, spec string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		doc := fmt.Sprintf("apiVersion: core.database-mesh.io/v1alpha1\nkind: %s\nmetadata: {name: bad, namespace: %s}\nspec:\n%s", kind, ns, spec)
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatalf("test manifest: %v", err)
		}
		return u
	}
	tests := []struct {
		name, kind, spec string
		wantField        string
	}{
		{"unknown balance kind", "TrafficStrategy", `
  selector: {matchLabels: {a: b}}
  loadBalance: {simpleLoadBalance: {kind: weighted}}`, "spec.loadBalance.simpleLoadBalance.kind"},
		{"both load balancers", "TrafficStrategy", `
  selector: {}
  loadBalance: {simpleLoadBalance: {kind: random}, readWriteSplitting: {static: {defaultTarget: read}}}`, "exactly one of simpleLoadBalance or readWriteSplitting"},
		{"no selector", "TrafficStrategy", `
  loadBalance: {simpleLoadBalance: {kind: random}}`, "spec.selector"},
		{"bad duration", "TrafficStrategy", `
  selector: {}
  loadBalance: {simpleLoadBalance: {kind: random}}
  concurrencyControls: [{regex: ["^insert"], maxConcurrency: 1, duration: "5 parsecs"}]`, "spec.concurrencyControls[0].duration"},
		{"zero concurrency", "TrafficStrategy", `
  selector: {}
  loadBalance: {simpleLoadBalance: {kind: random}}
  concurrencyControls: [{regex: ["^insert"], maxConcurrency: 0}]`, "spec.concurrencyControls[0].maxConcurrency"},
		{"monitor interval under both names", "TrafficStrategy", `
  selector: {}
  loadBalance: {readWriteSplitting: {dynamic: {defaultTarget: read, discovery: {masterHighAvailability: {user: m, monitorInterval: 1000, monitorPeriod: 1000}}}}}`, "set monitorInterval or monitorPeriod (its Pisanix alias), not both"},
		{"regex rule without target", "TrafficStrategy", `
  selector: {}
  loadBalance: {readWriteSplitting: {static: {defaultTarget: read, rules: [{name: r, type: regex, regex: ["^select"]}]}}}`, "a regex rule needs regex and target"},
		{"port out of range", "DatabaseEndpoint", `
  database: {MySQL: {host: db, port: 70000, user: root}}`, "spec.database.MySQL.port"},
		{"password twice", "DatabaseEndpoint", `
  database: {MySQL: {host: db, port: 3306, user: root, password: x, passwordSecretRef: {name: s}}}`, "set password or passwordSecretRef, not both"},
		{"no services", "VirtualDatabase", `
  services: []`, "spec.services"},
		{"service without strategy", "VirtualDatabase", `
  services: [{name: mysql, databaseMySQL: {user: u}}]`, "spec.services[0].trafficStrategy"},
		{"duplicate service names", "VirtualDatabase", `
  services: [{name: a, trafficStrategy: t, databaseMySQL: {user: u}}, {name: a, trafficStrategy: t, databaseMySQL: {user: u, port: 3307}}]`, "spec.services[1]"},
		{"pool too big", "VirtualDatabase", `
  services: [{name: a, trafficStrategy: t, databaseMySQL: {user: u, poolSize: 1000}}]`, "spec.services[0].databaseMySQL.poolSize"},
		{"unknown rule action", "VirtualDatabase", `
  services: [{name: a, trafficStrategy: t, databaseMySQL: {user: u}, users: [{user: r, rules: [{action: block}]}]}]`, "spec.services[0].users[0].rules[0].action"},
		{"unknown rule operation", "VirtualDatabase", `
  services: [{name: a, trafficStrategy: t, databaseMySQL: {user: u}, users: [{user: r, rules: [{action: deny, operations: [drop]}]}]}]`, "spec.services[0].users[0].rules[0].operations[0]"},
		{"rule without action", "VirtualDatabase", `
  services: [{name: a, trafficStrategy: t, databaseMySQL: {user: u}, users: [{user: r, rules: [{databases: [shop]}]}]}]`, "spec.services[0].users[0].rules[0].action"},
		{"allowed host not an address", "VirtualDatabase", `
  services: [{name: a, trafficStrategy: t, databaseMySQL: {user: u}, users: [{user: r, allowedHosts: [example.com]}]}]`, "spec.services[0].users[0].allowedHosts[0]"},
		{"user password twice", "VirtualDatabase", `
  services: [{name: a, trafficStrategy: t, databaseMySQL: {user: u}, users: [{user: r, password: x, passwordSecretRef: {name: s}}]}]`, "set password or passwordSecretRef, not both"},
		{"duplicate user", "VirtualDatabase", `
  services: [{name: a, trafficStrategy: t, databaseMySQL: {user: u}, users: [{user: r}, {user: r}]}]`, "spec.services[0].users[1]"},
		{"user named like the service's user", "VirtualDatabase", `
  services: [{name: a, trafficStrategy: t, databaseMySQL: {user: u}, users: [{user: u}]}]`, "users[].user must differ from databaseMySQL.user"},
		{"unknown audit sink", "VirtualDatabase", `
  services: [{name: a, trafficStrategy: t, databaseMySQL: {user: u}, audit: {sink: syslog}}]`, "spec.services[0].audit.sink"},
		{"unknown audit kind", "VirtualDatabase", `
  services: [{name: a, trafficStrategy: t, databaseMySQL: {user: u}, audit: {kinds: [truncate]}}]`, "spec.services[0].audit.kinds[0]"},
		{"file audit without path", "VirtualDatabase", `
  services: [{name: a, trafficStrategy: t, databaseMySQL: {user: u}, audit: {sink: file}}]`, "path is required when sink is file"},
		{"sample rate above 1", "VirtualDatabase", `
  services: [{name: a, trafficStrategy: t, databaseMySQL: {user: u}, audit: {sampleRate: "1.5"}}]`, "spec.services[0].audit.sampleRate"},
		{"sample rate zero", "VirtualDatabase", `
  services: [{name: a, trafficStrategy: t, databaseMySQL: {user: u}, audit: {sampleRate: "0.0"}}]`, "spec.services[0].audit.sampleRate"},
		{"sample rate as a number", "VirtualDatabase", `
  services: [{name: a, trafficStrategy: t, databaseMySQL: {user: u}, audit: {sampleRate: 0.5}}]`, "spec.services[0].audit.sampleRate"},
		{"bad rate", "QoSClaim", `
  trafficQoS: {name: q, qos_group: {rate: fast}}`, "spec.trafficQoS.qos_group.rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := k8s.Create(context.Background(), obj(tt.kind, tt.spec))
			if err == nil {
				t.Fatal("the API server accepted the object")
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want an Invalid error, got %v", err)
			}
			if !strings.Contains(err.Error(), tt.wantField) {
				t.Fatalf("error does not name %q: %v", tt.wantField, err)
			}
		})
	}
	// Old manifests: an integer duration is accepted.
	ok := obj("TrafficStrategy", `
  selector: {}
  loadBalance: {simpleLoadBalance: {kind: random}}
  concurrencyControls: [{regex: ["^insert"], maxConcurrency: 1, duration: 10000000000}]`)
	if err := k8s.Create(context.Background(), ok); err != nil {
		t.Fatalf("integer duration refused: %v", err)
	}
}

func newEndpoint(ns, name string, labels map[string]string) *v1alpha1.DatabaseEndpoint {
	return &v1alpha1.DatabaseEndpoint{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: v1alpha1.DatabaseEndpointSpec{Database: v1alpha1.Database{MySQL: &v1alpha1.MySQLEndpoint{
			Host: name + ".db.svc", Port: 3306, User: "root", Password: "pw", DB: "shop",
		}}},
	}
}

func nodes(c *config.Config) string {
	var names []string
	for _, n := range c.MySQL.Node {
		names = append(names, n.Name+"("+n.Role+")")
	}
	slices.Sort(names)
	return strings.Join(names, ",")
}

// Selector changes, endpoint add/remove and strategy edits show up in the
// served config, and a watching proxy learns of each within the 2 s goal.
func TestChangesReachTheProxy(t *testing.T) {
	ns := newNamespace(t, "changes")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// A watching client, as the sidecar will run it.
	type applied struct {
		cfg *config.Config
		at  time.Time
	}
	got := make(chan applied, 64)
	go func() {
		_ = configclient.Watch(ctx, configURL, ns, "shop", func(c *config.Config) { got <- applied{c, time.Now()} },
			configclient.WithBackoff(20*time.Millisecond, 200*time.Millisecond))
	}()
	// expect waits until the watcher applies a config for which check is nil
	// and returns how long after since it took.
	expect := func(step string, since time.Time, check func(*config.Config) error) {
		t.Helper()
		deadline := time.After(timeout)
		var last error
		for {
			select {
			case a := <-got:
				if last = check(a.cfg); last == nil {
					d := a.at.Sub(since)
					t.Logf("%s: applied by the watching client %v after the API write", step, d.Round(time.Millisecond))
					if d > 2*time.Second {
						t.Errorf("%s: took %v, goal is 2s", step, d)
					}
					return
				}
			case <-deadline:
				t.Fatalf("%s: not applied within %v (last: %v)", step, timeout, last)
			}
		}
	}

	ts := &v1alpha1.TrafficStrategy{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns},
		Spec: v1alpha1.TrafficStrategySpec{
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": "shop"}},
			LoadBalance: &v1alpha1.LoadBalance{SimpleLoadBalance: &v1alpha1.SimpleLoadBalance{Kind: v1alpha1.LoadBalanceRandom}},
		},
	}
	vdb := &v1alpha1.VirtualDatabase{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns},
		Spec: v1alpha1.VirtualDatabaseSpec{Services: []v1alpha1.Service{{
			Name: "mysql", TrafficStrategy: "shop",
			DatabaseMySQL: &v1alpha1.DatabaseMySQL{User: "app", Password: "apppw", DB: "shop"},
		}}},
	}
	// VirtualDatabase first: its strategy is missing.
	if err := k8s.Create(ctx, vdb); err != nil {
		t.Fatal(err)
	}
	waitReason := func(want string) {
		t.Helper()
		eventually(t, timeout, func() error {
			v := &v1alpha1.VirtualDatabase{}
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(vdb), v); err != nil {
				return err
			}
			if r := readyReason(v.Status.Conditions); r != want {
				return fmt.Errorf("vdb Ready = %s, want %s", r, want)
			}
			_, err := fetch(ns, "shop")
			var nr *configclient.NotReadyError
			if want != "True/Ready" && (!errors.As(err, &nr) || "False/"+nr.Reason != want) {
				return fmt.Errorf("served: %v, want not ready %s", err, want)
			}
			return nil
		})
	}
	waitReason("False/" + v1alpha1.ReasonStrategyMissing)
	if err := k8s.Create(ctx, ts); err != nil {
		t.Fatal(err)
	}
	waitReason("False/" + v1alpha1.ReasonNoEndpointSelected)

	// An endpoint the selector does not pick changes nothing.
	other := newEndpoint(ns, "other", map[string]string{"app": "orders"})
	if err := k8s.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	// A matching endpoint: the first config.
	start := time.Now()
	primary := newEndpoint(ns, "primary", map[string]string{"app": "shop"})
	if err := k8s.Create(ctx, primary); err != nil {
		t.Fatal(err)
	}
	expect("endpoint added", start, func(c *config.Config) error {
		if n := nodes(c); n != "primary(readwrite)" {
			return fmt.Errorf("nodes %s", n)
		}
		if c.Proxy.Config[0].ListenAddr != "0.0.0.0:3306" || c.Proxy.Config[0].User != "app" {
			return fmt.Errorf("listener %+v", c.Proxy.Config[0])
		}
		return nil
	})
	waitReason("True/Ready")

	// Relabel the other endpoint (as a replica) so the selector picks it.
	start = time.Now()
	update(t, other, func(o *v1alpha1.DatabaseEndpoint) {
		o.Labels["app"] = "shop"
		o.Annotations = map[string]string{v1alpha1.RoleAnnotation: "read"}
	})
	expect("endpoint relabelled into the selector", start, func(c *config.Config) error {
		if n := nodes(c); n != "other(read),primary(readwrite)" {
			return fmt.Errorf("nodes %s", n)
		}
		if lb := c.Proxy.Config[0].SimpleLoadBalance; strings.Join(lb.Nodes, ",") != "other,primary" {
			return fmt.Errorf("load balance nodes %v", lb.Nodes)
		}
		return nil
	})

	// Strategy edit: round robin, a circuit break and a concurrency control.
	start = time.Now()
	update(t, ts, func(ts *v1alpha1.TrafficStrategy) {
		ts.Spec.LoadBalance.SimpleLoadBalance.Kind = v1alpha1.LoadBalanceRoundRobin
		ts.Spec.CircuitBreaks = []v1alpha1.CircuitBreak{{Regex: []string{"^drop"}}}
		ts.Spec.ConcurrencyControls = []v1alpha1.ConcurrencyControl{{Regex: []string{"^insert"}, MaxConcurrency: 4, Duration: "5s"}}
	})
	expect("strategy edited", start, func(c *config.Config) error {
		l := c.Proxy.Config[0]
		if l.SimpleLoadBalance.BalanceType != "roundrobin" || l.Plugin == nil || len(l.Plugin.CircuitBreak) != 1 ||
			len(l.Plugin.ConcurrencyControl) != 1 || l.Plugin.ConcurrencyControl[0].Duration != 5 {
			return fmt.Errorf("listener %s", jsonOf(t, l))
		}
		return nil
	})

	// Selector change: only the replica.
	start = time.Now()
	update(t, ts, func(ts *v1alpha1.TrafficStrategy) {
		ts.Spec.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"shop"}},
		}, MatchLabels: map[string]string{"tier": "replica"}}
	})
	update(t, other, func(o *v1alpha1.DatabaseEndpoint) { o.Labels["tier"] = "replica" })
	expect("selector changed", start, func(c *config.Config) error {
		if n := nodes(c); n != "other(read)" {
			return fmt.Errorf("nodes %s", n)
		}
		return nil
	})

	// Endpoint removed: back to "no endpoint selected"; the proxy keeps its last config.
	if err := k8s.Delete(ctx, other); err != nil {
		t.Fatal(err)
	}
	waitReason("False/" + v1alpha1.ReasonNoEndpointSelected)
	ep := &v1alpha1.TrafficStrategy{}
	eventually(t, timeout, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(ts), ep); err != nil {
			return err
		}
		if r := readyReason(ep.Status.Conditions); r != "False/"+v1alpha1.ReasonNoEndpointSelected || ep.Status.Endpoints != 0 {
			return fmt.Errorf("ts Ready = %s endpoints %d", r, ep.Status.Endpoints)
		}
		return nil
	})

	// The VirtualDatabase deleted: its config is withdrawn.
	if err := k8s.Delete(ctx, vdb); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, func() error {
		if _, err := fetch(ns, "shop"); !errors.Is(err, configclient.ErrNotFound) {
			return fmt.Errorf("after delete: %v", err)
		}
		return nil
	})
}

// Passwords from Secrets, the service's users' included; a missing Secret
// is a reason on the status. The users' rules and the audit log reach the
// served config.
func TestSecretPasswords(t *testing.T) {
	ns := newNamespace(t, "secrets")
	ctx := context.Background()
	sel := map[string]string{"app": "vault"}
	ts := &v1alpha1.TrafficStrategy{
		ObjectMeta: metav1.ObjectMeta{Name: "vault", Namespace: ns},
		Spec: v1alpha1.TrafficStrategySpec{
			Selector:    &metav1.LabelSelector{MatchLabels: sel},
			LoadBalance: &v1alpha1.LoadBalance{SimpleLoadBalance: &v1alpha1.SimpleLoadBalance{Kind: v1alpha1.LoadBalanceRandom}},
		},
	}
	ep := newEndpoint(ns, "db", sel)
	ep.Spec.Database.MySQL.Password = ""
	ep.Spec.Database.MySQL.PasswordSecretRef = &v1alpha1.SecretKeyRef{Name: "db-creds", Key: "password"}
	vdb := &v1alpha1.VirtualDatabase{
		ObjectMeta: metav1.ObjectMeta{Name: "vault", Namespace: ns},
		Spec: v1alpha1.VirtualDatabaseSpec{Services: []v1alpha1.Service{{
			Name: "mysql", TrafficStrategy: "vault",
			DatabaseMySQL: &v1alpha1.DatabaseMySQL{User: "app", PasswordSecretRef: &v1alpha1.SecretKeyRef{Name: "app-creds"}},
			Users: []v1alpha1.ServiceUser{{
				User: "report", PasswordSecretRef: &v1alpha1.SecretKeyRef{Name: "report-creds"}, AllowedHosts: []string{"10.0.0.0/8"},
				Rules: []v1alpha1.AccessRule{{Action: v1alpha1.AccessAllow, Databases: []string{"shop"}, Operations: []v1alpha1.AccessOperation{"select"}}},
			}},
			Audit: &v1alpha1.Audit{SampleRate: "0.5", Kinds: []v1alpha1.AuditKind{"insert", "ddl"}, Lossless: true},
		}}},
	}
	secret := func(ns, name, value string, optIn bool) *corev1.Secret {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, StringData: map[string]string{"password": value}}
		if optIn {
			s.Labels = map[string]string{translate.SecretOptInLabel: "true"}
		}
		if err := k8s.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, o := range []client.Object{ts, ep, vdb} {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	secret(ns, "app-creds", "app-secret", true)
	waitReason := func(reason, name string) {
		t.Helper()
		eventually(t, timeout, func() error {
			v := &v1alpha1.VirtualDatabase{}
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(vdb), v); err != nil {
				return err
			}
			c := meta.FindStatusCondition(v.Status.Conditions, v1alpha1.ConditionReady)
			if c == nil || c.Reason != reason || !strings.Contains(c.Message, name) {
				return fmt.Errorf("Ready = %+v", c)
			}
			if strings.Contains(c.Message, "secret-") {
				t.Fatalf("a secret value in the status: %s", c.Message)
			}
			return nil
		})
	}
	// The service (and its users) come before the endpoints.
	waitReason(v1alpha1.ReasonSecretMissing, "users[0] (report).passwordSecretRef")
	// A Secret of another namespace, opted in there, is not reachable:
	// references name Secrets of their own namespace only.
	other := newNamespace(t, "secrets-other")
	secret(other, "report-creds", "other-secret", true)
	waitReason(v1alpha1.ReasonSecretMissing, ns+"/report-creds")
	// A Secret without the opt-in label is not read.
	report := secret(ns, "report-creds", "report-secret", false)
	waitReason(v1alpha1.ReasonSecretNotAllowed, ns+"/report-creds is not labelled "+translate.SecretOptInLabel+"=true")
	report.Labels = map[string]string{translate.SecretOptInLabel: "true"}
	if err := k8s.Update(ctx, report); err != nil {
		t.Fatal(err)
	}
	// Secrets are not watched: the reconciler retries a missing one (every second here).
	waitReason(v1alpha1.ReasonSecretMissing, "db-creds")
	secret(ns, "db-creds", "db-secret", true)
	rate := 0.5
	wantUsers := jsonOf(t, []config.User{{User: "report", Password: "report-secret", AllowedHosts: []string{"10.0.0.0/8"},
		Rules: []config.AccessRule{{Action: "allow", Databases: []string{"shop"}, Operations: []string{"select"}}}}})
	wantAudit := jsonOf(t, &config.Audit{Sink: "stdout", MaxSizeMB: config.DefaultAuditMaxSizeMB, MaxBackups: config.DefaultAuditMaxBackups,
		QueueSize: config.DefaultAuditQueueSize, Lossless: true, SampleRate: &rate, Kinds: []string{"insert", "ddl"}})
	eventually(t, timeout, func() error {
		c, err := fetch(ns, "vault")
		if err != nil {
			return err
		}
		l := c.Proxy.Config[0]
		if l.Password != "app-secret" || c.MySQL.Node[0].Password != "db-secret" {
			return fmt.Errorf("passwords %q %q", l.Password, c.MySQL.Node[0].Password)
		}
		if got := jsonOf(t, l.Users); got != wantUsers {
			return fmt.Errorf("users\ngot:  %s\nwant: %s", got, wantUsers)
		}
		if got := jsonOf(t, l.Audit); got != wantAudit {
			return fmt.Errorf("audit\ngot:  %s\nwant: %s", got, wantAudit)
		}
		return nil
	})
}

// QoSClaims become the served daemon config.
func TestDaemonConfig(t *testing.T) {
	ns := newNamespace(t, "qos")
	ctx := context.Background()
	sel := map[string]string{"app": "pay"}
	objs := []client.Object{
		&v1alpha1.QoSClaim{
			ObjectMeta: metav1.ObjectMeta{Name: "gold", Namespace: ns},
			Spec:       v1alpha1.QoSClaimSpec{TrafficQoS: v1alpha1.TrafficQoS{Name: "gold", QoSGroup: v1alpha1.QoSGroup{Rate: "10mbit", Ceil: "20mbit"}}},
		},
		&v1alpha1.TrafficStrategy{
			ObjectMeta: metav1.ObjectMeta{Name: "pay", Namespace: ns},
			Spec: v1alpha1.TrafficStrategySpec{Selector: &metav1.LabelSelector{MatchLabels: sel},
				LoadBalance: &v1alpha1.LoadBalance{SimpleLoadBalance: &v1alpha1.SimpleLoadBalance{Kind: v1alpha1.LoadBalanceRandom}}},
		},
		newEndpoint(ns, "paydb", sel),
		&v1alpha1.VirtualDatabase{
			ObjectMeta: metav1.ObjectMeta{Name: "payments", Namespace: ns},
			Spec: v1alpha1.VirtualDatabaseSpec{Services: []v1alpha1.Service{{
				Name: "mysql", TrafficStrategy: "pay", QoSClaim: "gold",
				DatabaseMySQL: &v1alpha1.DatabaseMySQL{User: "app"},
			}}},
		},
	}
	for _, o := range objs {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, timeout, func() error {
		resp, err := httpGet(configURL + configserver.DaemonPath())
		if err != nil {
			return err
		}
		var dc config.DaemonConfig
		if err := json.Unmarshal(resp, &dc); err != nil {
			return err
		}
		for _, app := range dc.App {
			// Qualified with the namespace when another namespace (an
			// earlier -count run) has a "payments" too.
			if (app.Name == "payments" || app.Name == ns+"/payments") && len(app.Service) == 1 && app.Service[0].QoSGroup.Rate == "10mbit" &&
				len(app.Service[0].Endpoints) == 1 && app.Service[0].Endpoints[0].IP == "paydb.db.svc" {
				return dc.Validate()
			}
		}
		return fmt.Errorf("payments not in daemon config: %s", resp)
	})
	eventually(t, timeout, func() error {
		qc := &v1alpha1.QoSClaim{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "gold"}, qc); err != nil {
			return err
		}
		if r := readyReason(qc.Status.Conditions); r != "True/Ready" {
			return fmt.Errorf("qosclaim Ready = %s", r)
		}
		return nil
	})
	// A service naming a claim that does not exist: QoSClaimed is false.
	vdb := &v1alpha1.VirtualDatabase{}
	update(t, objs[3].(*v1alpha1.VirtualDatabase), func(v *v1alpha1.VirtualDatabase) { v.Spec.Services[0].QoSClaim = "platinum" })
	eventually(t, timeout, func() error {
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "payments"}, vdb); err != nil {
			return err
		}
		c := meta.FindStatusCondition(vdb.Status.Conditions, v1alpha1.ConditionQoSClaimed)
		if c == nil || c.Reason != v1alpha1.ReasonQoSClaimMissing || !strings.Contains(c.Message, "platinum") {
			return fmt.Errorf("QoSClaimed = %+v", c)
		}
		return nil
	})
	// Creating the claim makes it true.
	if err := k8s.Create(ctx, &v1alpha1.QoSClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "platinum", Namespace: ns},
		Spec:       v1alpha1.QoSClaimSpec{TrafficQoS: v1alpha1.TrafficQoS{Name: "platinum", QoSGroup: v1alpha1.QoSGroup{Rate: "1gbit"}}},
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, func() error {
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "payments"}, vdb); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(vdb.Status.Conditions, v1alpha1.ConditionQoSClaimed); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("QoSClaimed = %+v", c)
		}
		return nil
	})
}
