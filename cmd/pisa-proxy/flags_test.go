package main

import (
	"bytes"
	"strings"
	"testing"
)

// Pisa-Proxy's own flag names are accepted beside ours: a user's old
// command line parses, and each flag reaches the setting it names (shown by
// the error naming the value given).
func TestPisaProxyFlagNames(t *testing.T) {
	t.Setenv("PISA_DEPLOYED_NAME", "")
	t.Setenv("PISA_DEPLOYED_NAMESPACE", "")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--host", "127.0.0.1", "--port", "0", "--log-level", "WARN", "daemon", "--config", "/nonexistent/pisa.toml"}, "/nonexistent/pisa.toml"},
		{[]string{"--port", "99999", "daemon", "-c", "../../etc/config.toml"}, `admin port "99999"`},
		{[]string{"--log-level", "LOUD", "daemon", "-c", "../../etc/config.toml"}, `log level "LOUD"`},
		{[]string{"sidecar", "--pisa-deployed-namespace", "shop", "--pisa-deployed-name", "catalogue", "--pisa-controller-service", "ctl"}, "controller"},
	} {
		var stderr bytes.Buffer
		err := run(c.args, &stderr)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("run(%q) = %v, want an error naming %q", c.args, err, c.want)
		}
	}
	var out bytes.Buffer
	if err := run([]string{"-V"}, &out); err != nil || strings.TrimSpace(out.String()) == "" {
		t.Errorf("-V: %v, printed %q", err, out.String())
	}
}

// The sidecar's namespace and app default to Pisa-Proxy's "default", each
// named so that the log says which was not given.
func TestDeployedTargetDefaults(t *testing.T) {
	for _, c := range []struct {
		ns, app, wantNS, wantApp string
		defaulted                int
	}{
		{"shop", "catalogue", "shop", "catalogue", 0},
		{"", "catalogue", "default", "catalogue", 1},
		{"shop", "", "shop", "default", 1},
		{"", "", "default", "default", 2},
	} {
		ns, app, d := deployedTarget(c.ns, c.app)
		if ns != c.wantNS || app != c.wantApp || len(d) != c.defaulted {
			t.Errorf("deployedTarget(%q, %q) = %q, %q, %q", c.ns, c.app, ns, app, d)
		}
	}
}
