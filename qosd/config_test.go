package qosd

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"pisanix.io/pisanix/bpf"
	"pisanix.io/pisanix/config"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		bits config.Rate
		err  string
	}{
		{"10mbit", 10_000_000, ""},
		{"10Mbit", 10_000_000, ""},
		{"1gbit", 1_000_000_000, ""},
		{"10mbps", 80_000_000, ""}, // bytes per second
		{"100kbps", 800_000, ""},
		{"1.5mbit", 1_500_000, ""},
		{"1mibit", 1 << 20, ""},
		{"2kibps", 2 * 8 << 10, ""},
		{"8000", 8000, ""}, // a bare number is bits per second
		{"64bit", 64, ""},
		{"10mbt", 0, `unknown unit "mbt"`},
		{"1MB", 0, `unknown unit "mb"`},
		{"", 0, "empty rate"},
		{"mbit", 0, "not a number"},
		{"10%", 0, "unknown unit"},
		{"1bit", 0, "out of range"},
	}
	for _, tt := range tests {
		got, err := config.ParseRate(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseRate(%q) error = %v, want one containing %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.bits {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", tt.in, got, err, tt.bits)
		}
	}
	if s := config.Rate(10_000_000).String(); s != "10mbit" {
		t.Errorf("Rate.String() = %q", s)
	}
}

func TestValidateNamesKey(t *testing.T) {
	base := func() *config.DaemonConfig {
		return &config.DaemonConfig{
			Global: config.DaemonGlobal{EgressDevice: "eth0"},
			App: []config.QoSApp{{Name: "a", Service: []config.QoSService{{
				Name: "s", QoSGroup: &config.QoSGroup{Rate: "1mbit"}, Ports: []int{3306},
			}}}},
		}
	}
	if err := base().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(*config.DaemonConfig)
		key    string
	}{
		{"empty app name", func(c *config.DaemonConfig) { c.App[0].Name = "" }, "app[0].name"},
		{"duplicate service", func(c *config.DaemonConfig) { c.App[0].Service = append(c.App[0].Service, c.App[0].Service[0]) }, "app[0].service[1].name"},
		{"bad rate", func(c *config.DaemonConfig) { c.App[0].Service[0].QoSGroup.Rate = "fast" }, "app[0].service[0].qos_group.rate"},
		{"bad ceil", func(c *config.DaemonConfig) { c.App[0].Service[0].QoSGroup.Ceil = "1kbit" }, "app[0].service[0].qos_group.ceil"},
		{"no interface", func(c *config.DaemonConfig) { c.Global.EgressDevice = "" }, "app[0].service[0].interfaces"},
		{"no selector", func(c *config.DaemonConfig) { c.App[0].Service[0].Ports = nil }, "app[0].service[0]: selects no traffic"},
		{"bad port", func(c *config.DaemonConfig) { c.App[0].Service[0].Ports = []int{70000} }, "app[0].service[0].ports[0]"},
		{"bad endpoint", func(c *config.DaemonConfig) {
			c.App[0].Service[0].Endpoints = []config.QoSEndpoint{{IP: "not a host", Port: 3306}}
		}, "app[0].service[0].endpoints[0].ip"},
		{"bad qos class", func(c *config.DaemonConfig) { c.App[0].Service[0].QoSClass = "gold" }, "app[0].service[0].qos_class"},
	}
	for _, tt := range tests {
		c := base()
		tt.mutate(c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%s: error = %v, want one naming %q", tt.name, err, tt.key)
		}
	}
}

func TestParseDaemonConfigFormats(t *testing.T) {
	const js = `{"global":{"egress_device":"eth0"},"app":[{"name":"a","service":[{"name":"s",
		"qos_group":{"rate":"10mbit","ceil":"20mbit"},"endpoints":[{"ip":"db.local","port":3306}]}]}]}`
	const tomlDoc = `
[global]
egress_device = "eth0"
[[app]]
name = "a"
[[app.service]]
name = "s"
[[app.service.endpoints]]
ip = "db.local"
port = 3306
[app.service.qos_group]
rate = "10mbit"
ceil = "20mbit"
`
	for name, doc := range map[string]string{"c.json": js, "c.toml": tomlDoc} {
		c, err := ParseDaemonConfig([]byte(doc), name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		svc := c.App[0].Service[0]
		if c.Global.EgressDevice != "eth0" || svc.QoSGroup.Ceil != "20mbit" || svc.Endpoints[0].IP != "db.local" {
			t.Errorf("%s: parsed %+v", name, c)
		}
	}
	if _, err := ParseDaemonConfig([]byte(`{"app":[{"nmae":"x"}]}`), "typo.json"); err == nil || !strings.Contains(err.Error(), "nmae") {
		t.Errorf("unknown key: error = %v, want one naming it", err)
	}
}

type fakeEnv struct {
	links  map[string]int
	hosts  map[string][]netip.Addr
	groups map[string]uint64
}

func (f fakeEnv) linkIndex(name string) (int, error) {
	if i, ok := f.links[name]; ok {
		return i, nil
	}
	return 0, errors.New("no such interface on this node")
}

func (f fakeEnv) lookupHost(_ context.Context, host string) ([]netip.Addr, error) {
	if a, ok := f.hosts[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

func (f fakeEnv) cgroupID(path string) (uint64, error) {
	if id, ok := f.groups[path]; ok {
		return id, nil
	}
	return 0, errors.New("no such cgroup")
}

func TestBuildPlanRules(t *testing.T) {
	env := fakeEnv{
		links:  map[string]int{"eth0": 2, "cni0": 5},
		hosts:  map[string][]netip.Addr{"db.local": {netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("fd00::5")}},
		groups: map[string]uint64{"/kubepods/pod1": 4242},
	}
	cfg := &config.DaemonConfig{
		Global: config.DaemonGlobal{EgressDevice: "eth0", BridgeDevice: "cni0"},
		App: []config.QoSApp{{Name: "app", Service: []config.QoSService{{
			Name: "db", QoSGroup: &config.QoSGroup{Rate: "10mbit"},
			Endpoints: []config.QoSEndpoint{{IP: "db.local", Port: 3306}, {IP: "[fd00::9]", Port: 3306}},
			Sources:   []string{"10.244.0.7"},
			Cgroups:   []string{"/kubepods/pod1"},
			Ports:     []int{3306, 3307},
		}, {
			Name: "unclaimed", Ports: []int{1}, // no qos_group: ignored
		}}}},
	}
	p, err := buildPlan(context.Background(), cfg, env)
	if err != nil {
		t.Fatalf("build plan: %v", err)
	}
	if len(p.devices) != 2 || p.devices[0].name != "cni0" || p.devices[1].name != "eth0" {
		t.Fatalf("devices = %+v, want cni0 and eth0", p.devices)
	}
	if !p.cgroups {
		t.Error("cgroup lookups not enabled")
	}
	c := p.devices[1].classes[0]
	if len(p.devices[1].classes) != 1 || c.rate != 10_000_000 || c.ceil != 10_000_000 {
		t.Fatalf("eth0 classes = %+v", p.devices[1].classes)
	}
	key := func(kind uint8, port uint16, addr [16]byte) bpf.QosRuleKey {
		return bpf.QosRuleKey{Ifindex: 2, Kind: kind, Port: port, Addr: addr}
	}
	a := func(s string) [16]byte { return bpf.AddrKey(netip.MustParseAddr(s)) }
	want := []bpf.QosRuleKey{
		key(bpf.RuleEndpoint, 3306, a("10.0.0.5")),
		key(bpf.RuleEndpoint, 3306, a("fd00::5")),
		key(bpf.RuleEndpoint, 3306, a("fd00::9")),
		key(bpf.RuleSource, 3306, a("10.244.0.7")),
		key(bpf.RuleSource, 3307, a("10.244.0.7")),
		key(bpf.RuleCgroup, 3306, bpf.CgroupKey(4242)),
		key(bpf.RuleCgroup, 3307, bpf.CgroupKey(4242)),
	}
	if len(c.rules) != len(want) {
		t.Fatalf("rules = %+v\nwant %+v", c.rules, want)
	}
	for i := range want {
		if c.rules[i] != want[i] {
			t.Errorf("rule %d = %+v, want %+v", i, c.rules[i], want[i])
		}
	}

	// Adding a claim keeps the existing class's id.
	minor := c.minor
	cfg.App = append(cfg.App, config.QoSApp{Name: "other", Service: []config.QoSService{{
		Name: "db", QoSGroup: &config.QoSGroup{Rate: "1mbit"}, Ports: []int{5432},
	}}})
	p2, err := buildPlan(context.Background(), cfg, env)
	if err != nil {
		t.Fatalf("build plan: %v", err)
	}
	for _, c2 := range p2.devices[1].classes {
		if c2.app == "app" && c2.minor != minor {
			t.Errorf("class of app/db moved from %x to %x when another claim was added", minor, c2.minor)
		}
	}

	// Port-only service: any source to the port.
	cfg.App = cfg.App[1:]
	p3, err := buildPlan(context.Background(), cfg, env)
	if err != nil {
		t.Fatalf("build plan: %v", err)
	}
	if got := p3.devices[1].classes[0].rules; len(got) != 1 || got[0] != key(bpf.RuleSource, 5432, [16]byte{}) {
		t.Errorf("port-only rules = %+v", got)
	}

	cfg.App[0].Service[0].Interfaces = []string{"eth9"}
	if _, err := buildPlan(context.Background(), cfg, env); err == nil || !strings.Contains(err.Error(), `app[0].service[0].interfaces[0]: interface "eth9"`) {
		t.Errorf("unknown interface: error = %v", err)
	}
}
