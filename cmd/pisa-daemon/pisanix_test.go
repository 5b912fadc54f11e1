package main

import (
	"context"
	"testing"

	"pisanix.io/pisanix/config"
)

// Pisa-Daemon's own flags: the controller by host or by Service and
// namespace, and the global devices, each also from its variable.
func TestPisaDaemonFlagNames(t *testing.T) {
	for _, v := range []string{"PISA_CONTROLLER_HOST", "PISA_CONTROLLER_SERVICE", "PISA_CONTROLLER_NAMESPACE", "PISA_DAEMON_GLOBAL_EGRESS_DEVICE", "PISA_DAEMON_GLOBAL_BRIDGE_DEVICE"} {
		t.Setenv(v, "")
	}
	for _, c := range []struct {
		args           []string
		env            map[string]string
		controller     string
		egress, bridge string
	}{
		{args: []string{"--pisa-controller-host", "ctl:8080"}, controller: "http://ctl:8080"},
		{args: []string{"--pisa-controller-service", "pisa-controller", "--pisa-controller-namespace", "mesh"}, controller: "http://pisa-controller.mesh:8080"},
		{args: []string{"--pisa-controller-service", "pisa-controller"}, controller: "http://pisa-controller.pisa-system:8080"},
		{env: map[string]string{"PISA_CONTROLLER_SERVICE": "c", "PISA_DAEMON_GLOBAL_EGRESS_DEVICE": "ens5"}, controller: "http://c.pisa-system:8080", egress: "ens5"},
		{args: []string{"--controller", "http://x", "--pisa-controller-host", "ignored:1", "--global-bridge-device", "cni0"}, controller: "http://x", bridge: "cni0"},
	} {
		for k, v := range c.env {
			t.Setenv(k, v)
		}
		f, err := parseFlags(c.args)
		if err != nil || f.controller != c.controller || f.global.EgressDevice != c.egress || f.global.BridgeDevice != c.bridge {
			t.Errorf("%q %v: controller %q, global %+v, %v", c.args, c.env, f.controller, f.global, err)
		}
		for k := range c.env {
			t.Setenv(k, "")
		}
	}
}

type oneConfig struct{ c *config.DaemonConfig }

func (s oneConfig) String() string { return "test" }
func (s oneConfig) Watch(_ context.Context, emit func(*config.DaemonConfig, string), _ func(error)) error {
	emit(s.c, "v1")
	return nil
}

// The global devices given replace the config's; the others stay, and the
// source's config is not changed.
func TestGlobalDevicesOverride(t *testing.T) {
	in := &config.DaemonConfig{Global: config.DaemonGlobal{EgressDevice: "eth0", BridgeDevice: "docker0"}}
	src := withGlobal{Source: oneConfig{in}, global: config.DaemonGlobal{BridgeDevice: "cni0"}}
	var got *config.DaemonConfig
	if err := src.Watch(context.Background(), func(c *config.DaemonConfig, _ string) { got = c }, nil); err != nil {
		t.Fatal(err)
	}
	if got.Global != (config.DaemonGlobal{EgressDevice: "eth0", BridgeDevice: "cni0"}) || in.Global.BridgeDevice != "docker0" {
		t.Fatalf("emitted %+v, source's now %+v", got.Global, in.Global)
	}
}
