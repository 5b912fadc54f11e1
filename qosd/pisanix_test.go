package qosd

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"pisanix.io/pisanix/config"
)

// Pisanix's own pisa-daemon files (config/testdata/pisanix: its
// example/config.toml and the traffic QoS guide's) load and validate, key
// by key as written; "mbps" is megabytes per second, as in tc and as the
// guide says.
func TestPisanixDaemonExamples(t *testing.T) {
	for _, tc := range []struct {
		file                     string
		egress, bridge, app, svc string
		ip                       string
		port                     int
		rate, ceil               string
		rateBits, ceilBits       config.Rate
		devices                  []string
	}{
		// eth0 as both devices: shaped there once
		{"v0.3.1/pisa-daemon-example-config.toml", "eth0", "eth0", "test1", "svc", "1.1.1.1", 3306, "1mbps", "1mbps", 8_000_000, 8_000_000, []string{"eth0"}},
		{"v0.3.1/traffic-qos-1.toml", "cali16adef18cfd", "tunl0", "test1", "test", "192.168.136.29", 5201, "5mbps", "5mbps", 40_000_000, 40_000_000, []string{"cali16adef18cfd", "tunl0"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("..", "config", "testdata", "pisanix", tc.file)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			c, err := ParseDaemonConfig(data, path)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			if c.Global.EgressDevice != tc.egress || c.Global.BridgeDevice != tc.bridge {
				t.Errorf("global = %+v", c.Global)
			}
			if len(c.App) != 1 || c.App[0].Name != tc.app || len(c.App[0].Service) != 1 {
				t.Fatalf("app = %+v", c.App)
			}
			s := c.App[0].Service[0]
			if s.Name != tc.svc || len(s.Endpoints) != 1 || s.Endpoints[0].IP != tc.ip || s.Endpoints[0].Port != tc.port {
				t.Errorf("service = %+v", s)
			}
			if s.QoSGroup == nil || s.QoSGroup.Rate != tc.rate || s.QoSGroup.Ceil != tc.ceil {
				t.Fatalf("qos_group = %+v", s.QoSGroup)
			}
			rate, ceil, err := s.QoSGroup.Rates()
			if err != nil || rate != tc.rateBits || ceil != tc.ceilBits {
				t.Errorf("rates %v, %v, %v; want %v, %v", rate, ceil, err, tc.rateBits, tc.ceilBits)
			}
			// Shaped on the global devices, one class on each.
			if d := s.Devices(c.Global); !slices.Equal(d, tc.devices) {
				t.Errorf("devices %q, want %q", d, tc.devices)
			}
			links := map[string]int{}
			for i, d := range tc.devices {
				links[d] = i + 2
			}
			p, err := buildPlan(context.Background(), c, fakeEnv{links: links})
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range p.devices {
				if len(d.classes) != 1 || d.classes[0].rate != tc.rateBits || len(d.classes[0].rules) != 1 {
					t.Errorf("%s: classes %+v", d.name, d.classes)
				}
			}
			if len(p.devices) != len(tc.devices) {
				t.Errorf("%d devices planned, want %d", len(p.devices), len(tc.devices))
			}
		})
	}
}
