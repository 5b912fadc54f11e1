package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// MySQL's PASSWORD('password') and a caching_sha2 hash (MySQL 8's for
// "foobar") as SELECT HEX(authentication_string) shows it.
const (
	nativeHashTOML = "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
	sha2HashTOML   = "0x24412430303524031A69251C34295C4B35167C7F1E5A7B63091349503974624D34504B5A424679354856336868686F52485A736E4A733368786E427575516C73446469496537"
)

// withPasswords replaces the catalogue listener's and node1's passwords
// in pisanixTOML by the given lines (each may be several keys).
func withPasswords(listener, node string) string {
	src := strings.Replace(pisanixTOML, `password = "default_password"`, listener, 1)
	return strings.Replace(src, `password = "secret"`, node, 1)
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPasswordFromFileAndEnv(t *testing.T) {
	listenerFile := writeFile(t, "from-file\n")
	t.Setenv("PISA_TEST_NODE_PASSWORD", "from-env")
	src := withPasswords(`password_file = "`+listenerFile+`"`, `password_env = "PISA_TEST_NODE_PASSWORD"`) + `
[[proxy.config.users]]
user = "report"
password_file = "` + writeFile(t, "crlf\r\n") + `"
`
	c, err := ParseTOML([]byte(src), "pisa.toml")
	if err != nil {
		t.Fatal(err)
	}
	l, n := c.Proxy.Config[0], c.MySQL.Node[0]
	if l.ResolvedPassword() != "from-file" || n.ResolvedPassword() != "from-env" || l.Users[0].ResolvedPassword() != "crlf" {
		t.Fatalf("listener %q, node %q, user %q", l.ResolvedPassword(), n.ResolvedPassword(), l.Users[0].ResolvedPassword())
	}
	// The keys stay as given: the config's JSON form loads again (and
	// reads the file and variable again).
	data, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseJSON(data, "round-trip.json")
	if err != nil || back.Proxy.Config[0].ResolvedPassword() != "from-file" || back.MySQL.Node[0].ResolvedPassword() != "from-env" {
		t.Fatalf("JSON form: %v\n%s", err, data)
	}
	// Redacted: where the password comes from, never what it is.
	r := c.Redacted()
	if rl, rn := r.Proxy.Config[0], r.MySQL.Node[0]; rl.ResolvedPassword() != "" || rl.PasswordFile != listenerFile ||
		rn.ResolvedPassword() != "" || rn.PasswordEnv != "PISA_TEST_NODE_PASSWORD" || rl.Users[0].ResolvedPassword() != "" {
		t.Fatalf("redacted: listener %+v, node %+v", rl, rn)
	}
	// A reload reads the file again.
	if err := os.WriteFile(listenerFile, []byte("changed"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err = ParseTOML([]byte(src), "pisa.toml"); err != nil || c.Proxy.Config[0].ResolvedPassword() != "changed" {
		t.Fatalf("after the file changed: %v", err)
	}
	// The controller's JSON takes the same keys.
	data, _ = json.Marshal(map[string]any{
		"proxy": map[string]any{"config": []any{map[string]any{"name": "j", "listen_addr": "127.0.0.1:0", "user": "u", "password_env": "PISA_TEST_NODE_PASSWORD",
			"simple_loadbalance": map[string]any{"nodes": []string{"n"}}}}},
		"mysql": map[string]any{"node": []any{map[string]any{"name": "n", "user": "u", "password_file": listenerFile}}},
	})
	if c, err = ParseJSON(data, "served"); err != nil || c.Proxy.Config[0].ResolvedPassword() != "from-env" || c.MySQL.Node[0].ResolvedPassword() != "changed" {
		t.Fatalf("JSON: %v", err)
	}
}

func TestPasswordSourceErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent")
	t.Setenv("PISA_TEST_EMPTY", "")
	for _, tc := range []struct{ name, listener, node, want string }{
		{"both", `password = "a"` + "\n" + `password_env = "HOME"`, "",
			`pisa.toml: proxy.config[0] (catalogue).password: password and password_env are set; give only one of password, password_file, password_env`},
		{"all three", "", `password = "a"` + "\n" + `password_env = "HOME"` + "\n" + `password_file = "/etc/hostname"`,
			`mysql.node[0].password: password and password_file and password_env are set`},
		{"file missing", `password_file = "` + missing + `"`, "",
			`proxy.config[0] (catalogue).password_file: open ` + missing + `: no such file or directory`},
		{"file empty", `password_file = "` + writeFile(t, "\n") + `"`, "", `is empty`},
		{"file of lines", "", `password_file = "` + writeFile(t, "a\nb\n") + `"`, `holds more than one line`},
		{"env unset", "", `password_env = "PISA_TEST_UNSET_VARIABLE"`,
			`mysql.node[0].password_env: environment variable PISA_TEST_UNSET_VARIABLE is not set`},
		{"env empty", `password_env = "PISA_TEST_EMPTY"`, "", `proxy.config[0] (catalogue).password_env: environment variable PISA_TEST_EMPTY is empty`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTOML([]byte(withPasswords(tc.listener, tc.node)), "pisa.toml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestHashedPasswordsByPlugin(t *testing.T) {
	for _, tc := range []struct{ plugin, password, want string }{
		{"mysql_native_password", nativeHashTOML, ""},
		{"caching_sha2_password", nativeHashTOML, ""},
		{"caching_sha2_password", sha2HashTOML, ""},
		{"caching_sha2_password", "$A$005$tooshort", "proxy.config[0] (catalogue).password: starts as a caching_sha2_password hash"},
		{"mysql_native_password", sha2HashTOML, `proxy.config[0] (catalogue).password: is a caching_sha2_password hash, which cannot check mysql_native_password logins`},
	} {
		src := withPasswords(`auth_plugin = "`+tc.plugin+`"`+"\n"+`password = "`+tc.password+`"`, `password = "secret"`)
		c, err := ParseTOML([]byte(src), "pisa.toml")
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s with %s: %v", tc.plugin, tc.password, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s with %s: got %v, want %q", tc.plugin, tc.password, err, tc.want)
		case err == nil && c.Redacted().Proxy.Config[0].Password != "******":
			t.Errorf("hash not redacted: %q", c.Redacted().Proxy.Config[0].Password)
		}
	}
	// Users follow the listener's plugin, and a hash from a file counts as one.
	src := withPasswords(`password = "x"`, `password = "secret"`) + `
[[proxy.config.users]]
user = "report"
password_file = "` + writeFile(t, sha2HashTOML+"\n") + `"
`
	if _, err := ParseTOML([]byte(src), "pisa.toml"); err == nil || !strings.Contains(err.Error(), "proxy.config[0] (catalogue).users[0].password_file: is a caching_sha2_password hash") {
		t.Fatalf("user's hash from a file on a native listener: %v", err)
	}
}

func TestPassthroughRefusesPasswordSources(t *testing.T) {
	src := strings.Replace(withPasswords(`password_env = "HOME"`, `password = "secret"`), `user = "catalogue_user"`, `auth_mode = "passthrough"`, 1)
	if _, err := ParseTOML([]byte(src), "pt.toml"); err == nil || !strings.Contains(err.Error(), `proxy.config[0] (catalogue).password_env: not used`) {
		t.Fatalf("got %v", err)
	}
}

func TestDiscoveryPasswordFromEnv(t *testing.T) {
	t.Setenv("PISA_TEST_MONITOR_PASSWORD", "monitor-secret")
	l := parseListener(t, `[proxy.config.read_write_splitting.dynamic]
default_target = "readwrite"
[proxy.config.read_write_splitting.dynamic.discovery]
type = "mha"
user = "monitor"
password_env = "PISA_TEST_MONITOR_PASSWORD"`)
	if got := l.ReadWriteSplitting.Dynamic.Discovery.ResolvedPassword(); got != "monitor-secret" {
		t.Fatalf("discovery password %q", got)
	}
}
