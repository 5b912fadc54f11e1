package main

import (
	"os"
	"path/filepath"
	proxyconfig "pisanix.io/pisanix/config"
	"strings"
	"testing"
)

const sampleReport = `sysbench 1.0.20 (using system LuaJIT 2.1.0-beta3)

Running the test with following options:
Number of threads: 1

Latency histogram (values are in milliseconds)
       value  ------------- distribution ------------- count
       0.100 |****************************************  90
       0.200 |***                                       6
       0.300 |*                                         3
       5.000 |*                                         1
 
SQL statistics:
    queries performed:
        read:                            100
        write:                           0
        other:                           0
        total:                           100
    transactions:                        100    (20.00 per sec.)
    queries:                             100    (20.00 per sec.)
    ignored errors:                      2      (0.00 per sec.)
    reconnects:                          1      (0.00 per sec.)

Latency (ms):
         min:                                    0.09
         avg:                                    0.15
         max:                                    5.00
         95th percentile:                        0.20
         sum:                                   15.00
`

func TestParseReport(t *testing.T) {
	var r result
	if err := parseReport([]byte(sampleReport), &r); err != nil {
		t.Fatal(err)
	}
	// 100 events: the 95th lands in the 0.2 bucket (cumulative 96), the 99th
	// in the 0.3 bucket (cumulative 99).
	if r.qps != 20 || r.tps != 20 || r.p95 != 0.2 || r.p99 != 0.3 || r.p95Sysbench != 0.2 ||
		r.errors != 2 || r.reconnects != 1 {
		t.Errorf("parsed %+v", r)
	}
	if err := parseReport([]byte("garbage"), &r); err == nil {
		t.Error("garbage parsed without error")
	}
}

func TestWriteSectionKeepsOutsideText(t *testing.T) {
	path := filepath.Join(t.TempDir(), "RESULTS.md")
	orig := "# Title\nintro\n" + benchBegin + "\nold\n" + benchEnd + "\ntrailer\n"
	if err := os.WriteFile(path, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeSection(path, benchBegin, benchEnd, "new\n"); err != nil {
		t.Fatal(err)
	}
	if err := writeSection(path, memBegin, memEnd, "mem\n"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	want := "# Title\nintro\n" + benchBegin + "\nnew\n" + benchEnd + "\ntrailer\n\n" + memBegin + "\nmem\n" + memEnd + "\n"
	if string(got) != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"--targets", "direct,haproxy", "--threads", "1,8", "--time", "5"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.targets, ",") != "direct,haproxy" || len(cfg.threads) != 2 || cfg.seconds != 5 {
		t.Errorf("cfg %+v", cfg)
	}
	if cfg, _ := parseFlags([]string{"--mem"}); strings.Join(cfg.targets, ",") != targetProxy {
		t.Errorf("--mem targets %v, want proxy", cfg.targets)
	}
	if cfg, _ := parseFlags([]string{"--scale"}); strings.Join(cfg.targets, ",") != targetProxyMux || cfg.idleClients != defaultIdleClients {
		t.Errorf("--scale: targets %v, idle clients %d", cfg.targets, cfg.idleClients)
	}
	for _, bad := range [][]string{{"--targets", "nginx"}, {"--threads", "0"}, {"--time", "0"}, {"--mem", "--scale"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) succeeded", bad)
		}
	}
}

func TestProxyConfigsAreValid(t *testing.T) {
	for _, name := range []string{targetProxy, targetProxyRules, targetProxyMux} {
		c, err := proxyconfig.ParseTOML([]byte(proxyConfig(5591, 3306, 3307, name)), "bench.toml")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		l := c.Proxy.Config[0]
		if name == targetProxyRules && (l.Plugin == nil || len(l.Plugin.CircuitBreak) != 120 || l.ReadWriteSplitting == nil || len(c.MySQL.Node) != 2) {
			t.Fatalf("rules config incomplete: %+v", l)
		}
		if l.Multiplex != (name == targetProxyMux) || l.MaxConnections < defaultIdleClients {
			t.Fatalf("%s: multiplex %v, max_connections %d", name, l.Multiplex, l.MaxConnections)
		}
	}
}
