package translate

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/controlplane/api/v1alpha1"
	"pisanix.io/pisanix/controlplane/kubetest"
)

func vdb(services ...v1alpha1.Service) *v1alpha1.VirtualDatabase {
	return &v1alpha1.VirtualDatabase{
		ObjectMeta: metav1.ObjectMeta{Name: "catalogue", Namespace: "default"},
		Spec:       v1alpha1.VirtualDatabaseSpec{Services: services},
	}
}

func svc(name, ts string) v1alpha1.Service {
	return v1alpha1.Service{
		Name:            name,
		TrafficStrategy: ts,
		DatabaseMySQL: &v1alpha1.DatabaseMySQL{
			DB: "socksdb", Host: "127.0.0.1", Port: 3306, User: "catalogue_user", Password: "default_password",
		},
	}
}

func strategy(name string, labels map[string]string, mut ...func(*v1alpha1.TrafficStrategySpec)) *v1alpha1.TrafficStrategy {
	ts := &v1alpha1.TrafficStrategy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: v1alpha1.TrafficStrategySpec{
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			LoadBalance: &v1alpha1.LoadBalance{SimpleLoadBalance: &v1alpha1.SimpleLoadBalance{Kind: v1alpha1.LoadBalanceRandom}},
		},
	}
	for _, m := range mut {
		m(&ts.Spec)
	}
	return ts
}

func endpoint(name string, labels map[string]string, role string) v1alpha1.DatabaseEndpoint {
	ep := v1alpha1.DatabaseEndpoint{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: labels},
		Spec: v1alpha1.DatabaseEndpointSpec{Database: v1alpha1.Database{MySQL: &v1alpha1.MySQLEndpoint{
			DB: "socksdb", Host: name + ".example", Port: 3306, User: "root", Password: "fake_password",
		}}},
	}
	if role != "" {
		ep.Annotations = map[string]string{v1alpha1.RoleAnnotation: role}
	}
	return ep
}

var catalogue = map[string]string{"source": "catalogue"}

// TestSocksShop pins the exact proxy configuration of the socks-shop example.
func TestSocksShop(t *testing.T) {
	out, p := ProxyConfig(ProxyInput{
		VirtualDatabase: vdb(svc("mysql", "catalogue")),
		Strategies:      map[string]*v1alpha1.TrafficStrategy{"catalogue": strategy("catalogue", catalogue)},
		Endpoints: []v1alpha1.DatabaseEndpoint{func() v1alpha1.DatabaseEndpoint {
			ep := endpoint("catalogue-db", catalogue, "")
			ep.Spec.Database.MySQL.Host = "cataloguedb.codtynlacssn.rds.cn-northwest-1.amazonaws.com.cn"
			return ep
		}()},
	})
	if p != nil {
		t.Fatal(p)
	}
	want := kubetest.SocksShopExpected()
	if got, w := mustJSON(t, out.Config), mustJSON(t, want); got != w {
		t.Fatalf("config differs\ngot:  %s\nwant: %s", got, w)
	}
	if out.Endpoints != 1 {
		t.Fatalf("endpoints = %d, want 1", out.Endpoints)
	}
	// The served JSON must load in the proxy unchanged.
	if _, err := config.ParseJSON([]byte(mustJSON(t, out.Config)), "served"); err != nil {
		t.Fatalf("served config does not parse: %v", err)
	}
}

// wantProblem checks ProxyConfig's problem against the wanted reason (""
// for none) and message part; it reports whether a config came out to check.
func wantProblem(t *testing.T, out *ProxyOutput, p *Problem, reason, in string) bool {
	t.Helper()
	if reason == "" {
		if p != nil {
			t.Fatalf("unexpected problem: %v", p)
		}
		return true
	}
	if p == nil {
		t.Fatalf("want problem %s, got config %s", reason, mustJSON(t, out.Config))
	}
	if p.Reason != reason || !strings.Contains(p.Message, in) {
		t.Fatalf("problem = %v, want reason %s containing %q", p, reason, in)
	}
	return false
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestProxyConfig(t *testing.T) {
	secrets := func(name, key string) (string, error) {
		if name == "db" && key == "password" {
			return "from-secret", nil
		}
		return "", fmt.Errorf("secret %s key %s: %w", name, key, ErrSecretNotFound)
	}
	tests := []struct {
		name       string
		in         ProxyInput
		wantReason string
		wantIn     string // substring of the problem message
		check      func(t *testing.T, c *config.Config)
	}{
		{
			name:       "strategy missing",
			in:         ProxyInput{VirtualDatabase: vdb(svc("mysql", "nope"))},
			wantReason: v1alpha1.ReasonStrategyMissing, wantIn: `"nope"`,
		},
		{
			name: "selector honoured: no endpoint selected",
			in: ProxyInput{
				VirtualDatabase: vdb(svc("mysql", "catalogue")),
				Strategies:      map[string]*v1alpha1.TrafficStrategy{"catalogue": strategy("catalogue", catalogue)},
				Endpoints:       []v1alpha1.DatabaseEndpoint{endpoint("other-db", map[string]string{"source": "orders"}, "")},
			},
			wantReason: v1alpha1.ReasonNoEndpointSelected, wantIn: "catalogue",
		},
		{
			name: "selector honoured: only matching endpoints, sorted, roles from annotation",
			in: ProxyInput{
				VirtualDatabase: vdb(svc("mysql", "catalogue")),
				Strategies: map[string]*v1alpha1.TrafficStrategy{"catalogue": strategy("catalogue", catalogue, func(s *v1alpha1.TrafficStrategySpec) {
					s.LoadBalance.SimpleLoadBalance.Kind = v1alpha1.LoadBalanceRoundRobin
				})},
				Endpoints: []v1alpha1.DatabaseEndpoint{
					endpoint("z-replica", catalogue, "read"),
					endpoint("other", map[string]string{"source": "orders"}, ""),
					endpoint("a-primary", catalogue, "readwrite"),
				},
			},
			check: func(t *testing.T, c *config.Config) {
				lb := c.Proxy.Config[0].SimpleLoadBalance
				if lb.BalanceType != "roundrobin" || strings.Join(lb.Nodes, ",") != "a-primary,z-replica" {
					t.Fatalf("load balance = %+v", lb)
				}
				if len(c.MySQL.Node) != 2 || c.MySQL.Node[0].Role != "readwrite" || c.MySQL.Node[1].Role != "read" {
					t.Fatalf("nodes = %+v", c.MySQL.Node)
				}
			},
		},
		{
			name: "multiplexing and max connections reach the listener",
			in: ProxyInput{
				VirtualDatabase: vdb(func() v1alpha1.Service {
					s := svc("mysql", "catalogue")
					s.DatabaseMySQL.Multiplex, s.DatabaseMySQL.MaxConnections = true, 20000
					return s
				}()),
				Strategies: map[string]*v1alpha1.TrafficStrategy{"catalogue": strategy("catalogue", catalogue)},
				Endpoints:  []v1alpha1.DatabaseEndpoint{endpoint("db", catalogue, "")},
			},
			check: func(t *testing.T, c *config.Config) {
				if l := c.Proxy.Config[0]; !l.Multiplex || l.MaxConnections != 20000 {
					t.Fatalf("listener multiplex %v, max_connections %d; want true, 20000", l.Multiplex, l.MaxConnections)
				}
			},
		},
		{
			name: "generic read/write rule without regex or target (Pisanix's)",
			in: ProxyInput{
				VirtualDatabase: vdb(svc("mysql", "catalogue")),
				Strategies: map[string]*v1alpha1.TrafficStrategy{"catalogue": strategy("catalogue", catalogue, func(s *v1alpha1.TrafficStrategySpec) {
					s.LoadBalance = &v1alpha1.LoadBalance{ReadWriteSplitting: &v1alpha1.ReadWriteSplitting{Static: &v1alpha1.ReadWriteSplittingStatic{
						DefaultTarget: "readwrite",
						Rules:         []v1alpha1.ReadWriteSplittingRule{{Name: "g", Type: "generic"}},
					}}}
				})},
				Endpoints: []v1alpha1.DatabaseEndpoint{endpoint("p", catalogue, "readwrite"), endpoint("r", catalogue, "read")},
			},
			check: func(t *testing.T, c *config.Config) {
				if r := c.Proxy.Config[0].ReadWriteSplitting.Static.Rules[0]; r.Type != "generic" || r.Target != "read" {
					t.Fatalf("rule = %+v, want generic with target read", r)
				}
			},
		},
		{
			name: "bad role annotation",
			in: ProxyInput{
				VirtualDatabase: vdb(svc("mysql", "catalogue")),
				Strategies:      map[string]*v1alpha1.TrafficStrategy{"catalogue": strategy("catalogue", catalogue)},
				Endpoints:       []v1alpha1.DatabaseEndpoint{endpoint("db", catalogue, "writer")},
			},
			wantReason: v1alpha1.ReasonInvalidRole, wantIn: "database-mesh.io/role",
		},
		{
			name: "listen address defaults to 0.0.0.0:3306",
			in: ProxyInput{
				VirtualDatabase: func() *v1alpha1.VirtualDatabase {
					v := vdb(svc("mysql", "catalogue"))
					v.Spec.Services[0].DatabaseMySQL.Host, v.Spec.Services[0].DatabaseMySQL.Port = "", 0
					return v
				}(),
				Strategies: map[string]*v1alpha1.TrafficStrategy{"catalogue": strategy("catalogue", catalogue)},
				Endpoints:  []v1alpha1.DatabaseEndpoint{endpoint("db", catalogue, "")},
			},
			check: func(t *testing.T, c *config.Config) {
				if got := c.Proxy.Config[0].ListenAddr; got != "0.0.0.0:3306" {
					t.Fatalf("listen_addr = %q", got)
				}
			},
		},
		{
			name: "passwords from secrets",
			in: ProxyInput{
				VirtualDatabase: func() *v1alpha1.VirtualDatabase {
					v := vdb(svc("mysql", "catalogue"))
					v.Spec.Services[0].DatabaseMySQL.Password = ""
					v.Spec.Services[0].DatabaseMySQL.PasswordSecretRef = &v1alpha1.SecretKeyRef{Name: "db"}
					return v
				}(),
				Strategies: map[string]*v1alpha1.TrafficStrategy{"catalogue": strategy("catalogue", catalogue)},
				Endpoints: []v1alpha1.DatabaseEndpoint{func() v1alpha1.DatabaseEndpoint {
					ep := endpoint("db", catalogue, "")
					ep.Spec.Database.MySQL.Password = ""
					ep.Spec.Database.MySQL.PasswordSecretRef = &v1alpha1.SecretKeyRef{Name: "db", Key: "password"}
					return ep
				}()},
				Secrets: secrets,
			},
			check: func(t *testing.T, c *config.Config) {
				if c.Proxy.Config[0].Password != "from-secret" || c.MySQL.Node[0].Password != "from-secret" {
					t.Fatalf("passwords not resolved: %q %q", c.Proxy.Config[0].Password, c.MySQL.Node[0].Password)
				}
			},
		},
		{
			name: "missing secret",
			in: ProxyInput{
				VirtualDatabase: vdb(svc("mysql", "catalogue")),
				Strategies:      map[string]*v1alpha1.TrafficStrategy{"catalogue": strategy("catalogue", catalogue)},
				Endpoints: []v1alpha1.DatabaseEndpoint{func() v1alpha1.DatabaseEndpoint {
					ep := endpoint("db", catalogue, "")
					ep.Spec.Database.MySQL.PasswordSecretRef = &v1alpha1.SecretKeyRef{Name: "gone", Key: "pw"}
					return ep
				}()},
				Secrets: secrets,
			},
			wantReason: v1alpha1.ReasonSecretMissing, wantIn: "gone",
		},
		{
			name: "plugins: circuit break and concurrency control with duration in seconds",
			in: ProxyInput{
				VirtualDatabase: vdb(svc("mysql", "catalogue")),
				Strategies: map[string]*v1alpha1.TrafficStrategy{"catalogue": strategy("catalogue", catalogue, func(s *v1alpha1.TrafficStrategySpec) {
					s.CircuitBreaks = []v1alpha1.CircuitBreak{{Regex: []string{"^drop"}}}
					s.ConcurrencyControls = []v1alpha1.ConcurrencyControl{
						{Regex: []string{"^insert"}, MaxConcurrency: 10, Duration: "5s"},
						{Regex: []string{"^update"}, MaxConcurrency: 2, Duration: "10000000000"}, // old manifest: 10s in ns
						{Regex: []string{"^delete"}, MaxConcurrency: 3, Duration: "7"},           // old manifest: seconds
						{Regex: []string{"^select"}, MaxConcurrency: 4, Duration: "1500ms"},
					}
				})},
				Endpoints: []v1alpha1.DatabaseEndpoint{endpoint("db", catalogue, "")},
			},
			check: func(t *testing.T, c *config.Config) {
				pl := c.Proxy.Config[0].Plugin
				if len(pl.CircuitBreak) != 1 || pl.CircuitBreak[0].Regex[0] != "^drop" {
					t.Fatalf("circuit_break = %+v", pl.CircuitBreak)
				}
				var got []int
				for _, cc := range pl.ConcurrencyControl {
					got = append(got, cc.Duration)
				}
				if fmt.Sprint(got) != "[5 10 7 2]" {
					t.Fatalf("durations = %v, want [5 10 7 2] seconds", got)
				}
			},
		},
		{
			name: "read write splitting static and dynamic",
			in: ProxyInput{
				VirtualDatabase: vdb(svc("mysql", "catalogue")),
				Strategies: map[string]*v1alpha1.TrafficStrategy{"catalogue": strategy("catalogue", catalogue, func(s *v1alpha1.TrafficStrategySpec) {
					s.LoadBalance = &v1alpha1.LoadBalance{ReadWriteSplitting: &v1alpha1.ReadWriteSplitting{Dynamic: &v1alpha1.ReadWriteSplittingDynamic{
						DefaultTarget: "read",
						Rules:         []v1alpha1.ReadWriteSplittingRule{{Name: "w", Type: "regex", Regex: []string{"^insert"}, Target: "readwrite", AlgorithmName: "random"}},
						Discovery: v1alpha1.ReadWriteDiscovery{MasterHighAvailability: &v1alpha1.MasterHighAvailability{
							User: "mon", Password: "pw", MonitorInterval: 1000,
							ReplicationLagProbe: &v1alpha1.ReplicationLagProbe{Probe: v1alpha1.Probe{PeriodMilliseconds: 500, TimeoutMilliseconds: 200, FailureThreshold: 3}, MaxReplicationLag: 10000},
						}},
					}}}
				})},
				Endpoints: []v1alpha1.DatabaseEndpoint{endpoint("p", catalogue, "readwrite"), endpoint("r", catalogue, "read")},
			},
			check: func(t *testing.T, c *config.Config) {
				d := c.Proxy.Config[0].ReadWriteSplitting.Dynamic
				if d.DefaultTarget != "read" || len(d.Rules) != 1 || d.Rules[0].Target != "readwrite" {
					t.Fatalf("dynamic = %+v", d)
				}
				if d.Discovery.Type != "mha" || d.Discovery.MaxReplicationLag != 10000 || !*d.Discovery.ReplicationLagEnabled || *d.Discovery.ReadOnlyEnabled {
					t.Fatalf("discovery = %+v", d.Discovery)
				}
			},
		},
		{
			name: "two services share an endpoint once",
			in: ProxyInput{
				VirtualDatabase: func() *v1alpha1.VirtualDatabase {
					v := vdb(svc("a", "catalogue"), svc("b", "catalogue"))
					v.Spec.Services[1].DatabaseMySQL.Port = 3307
					return v
				}(),
				Strategies: map[string]*v1alpha1.TrafficStrategy{"catalogue": strategy("catalogue", catalogue)},
				Endpoints:  []v1alpha1.DatabaseEndpoint{endpoint("db", catalogue, "")},
			},
			check: func(t *testing.T, c *config.Config) {
				if len(c.Proxy.Config) != 2 || len(c.MySQL.Node) != 1 {
					t.Fatalf("listeners %d nodes %d", len(c.Proxy.Config), len(c.MySQL.Node))
				}
			},
		},
		{
			name: "invalid config is reported with the proxy key",
			in: ProxyInput{
				VirtualDatabase: vdb(svc("a", "catalogue"), svc("b", "catalogue")), // same listen address
				Strategies:      map[string]*v1alpha1.TrafficStrategy{"catalogue": strategy("catalogue", catalogue)},
				Endpoints:       []v1alpha1.DatabaseEndpoint{endpoint("db", catalogue, "")},
			},
			wantReason: v1alpha1.ReasonInvalidConfig, wantIn: "listen_addr",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, p := ProxyConfig(tt.in)
			if !wantProblem(t, out, p, tt.wantReason, tt.wantIn) {
				return
			}
			if _, err := config.ParseJSON([]byte(mustJSON(t, out.Config)), "served"); err != nil {
				t.Fatalf("served config does not parse: %v", err)
			}
			tt.check(t, out.Config)
		})
	}
}

func TestSeconds(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want int
	}{{0, 0}, {time.Nanosecond, 1}, {time.Second, 1}, {1500 * time.Millisecond, 2}, {time.Hour, 3600}} {
		if got := Seconds(tt.d); got != tt.want {
			t.Errorf("Seconds(%v) = %d, want %d", tt.d, got, tt.want)
		}
	}
}

// TestMonitorPeriodAlias: Pisanix's docs named the MHA monitor interval
// monitorPeriod; either name reaches the proxy.
func TestMonitorPeriodAlias(t *testing.T) {
	for _, mha := range []v1alpha1.MasterHighAvailability{
		{User: "m", MonitorInterval: 750},
		{User: "m", MonitorPeriod: 750},
	} {
		if d := discovery(&mha, "pw"); d.MonitorPeriod != 750 {
			t.Errorf("%+v: monitor period %d, want 750", mha, d.MonitorPeriod)
		}
	}
}
