package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// checkParsed is the invariant of the config fuzz targets: a parse either
// fails or gives a config that validates, whose defaults are already
// applied, and that the JSON form (what the controller serves proxies)
// carries unchanged.
func checkParsed(t *testing.T, c *Config, err error) {
	t.Helper()
	if err != nil {
		return
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("parsed config does not validate: %v", err)
	}
	first, err := json.Marshal(c)
	if err != nil {
		t.Fatalf("parsed config does not encode: %v", err)
	}
	c.ApplyDefaults()
	again, _ := json.Marshal(c)
	if string(again) != string(first) {
		t.Fatalf("defaults applied twice differ:\n%s\n%s", first, again)
	}
	back, err := ParseJSON(first, "round-trip.json")
	if err != nil {
		t.Fatalf("config does not survive its JSON form: %v\n%s", err, first)
	}
	if b, _ := json.Marshal(back); string(b) != string(first) {
		t.Fatalf("JSON round trip changed the config:\n%s\n%s", first, b)
	}
	_ = c.Redacted()
}

// tomlSeeds are the committed example configs, Pisanix's own and the
// test's.
func tomlSeeds(f *testing.F) [][]byte {
	seeds := [][]byte{[]byte(pisanixTOML)}
	files, _ := filepath.Glob("testdata/pisanix/*/*.toml")
	for _, name := range append(files, "../etc/config.toml") {
		if b, err := os.ReadFile(name); err == nil {
			seeds = append(seeds, b)
		}
	}
	return seeds
}

// FuzzParseTOML: arbitrary bytes as a TOML config file (pisa-proxy
// --config): no panic; an error, or a config as checkParsed wants.
func FuzzParseTOML(f *testing.F) {
	for _, s := range tomlSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte("[admin]\nport = 99999\n"))
	f.Add([]byte("[[proxy.config]]\nname = \"a\"\nlisten_addr = \"x\"\nlogin_timeout = \"-5s\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseTOML(data, "fuzz.toml")
		checkParsed(t, c, err)
	})
}

// FuzzParseJSON: arbitrary bytes as the JSON config the controller serves
// (pisa-proxy in sidecar mode): no panic; an error, or a config as
// checkParsed wants.
func FuzzParseJSON(f *testing.F) {
	for _, s := range tomlSeeds(f) {
		if c, err := ParseTOML(s, "seed.toml"); err == nil {
			b, _ := json.Marshal(c)
			f.Add(b)
		}
	}
	f.Add([]byte(`{"proxy":{"config":[{"name":"a","login_timeout":5}]}}`))
	files, _ := filepath.Glob("testdata/pisanix-controller/*.json")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseJSON(data, "fuzz.json")
		checkParsed(t, c, err)
	})
}
