package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// Load reads, defaults and validates a TOML file. Errors name the file and key.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return ParseTOML(data, path)
}

// ParseTOML decodes TOML strictly (unknown keys are errors), applies defaults
// and validates. name is used in error messages (usually the file path).
func ParseTOML(data []byte, name string) (*Config, error) {
	c, err := decodeTOML(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", name, err)
	}
	return finish(c, name)
}

// decodeTOML only decodes; errors name the key and position.
func decodeTOML(data []byte) (*Config, error) {
	var c Config
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, errors.New(describeTOMLError(err))
	}
	return &c, nil
}

// ParseJSON decodes the controller-served JSON form of the same model,
// including the forms earlier pisa-controllers served (see Warnings).
func ParseJSON(data []byte, name string) (*Config, error) {
	c, err := decodeJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return finish(c, name)
}

// decodeJSON decodes and reads the earlier controllers' forms.
func decodeJSON(data []byte) (*Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, err
	}
	c.readLegacyJSON()
	return &c, nil
}

func finish(c *Config, name string) (*Config, error) {
	c.ApplyDefaults()
	if err := errors.Join(c.resolvePasswords(), c.Validate()); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

func describeTOMLError(err error) string {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		keys := make([]string, 0, len(strict.Errors))
		for _, e := range strict.Errors {
			row, col := e.Position()
			keys = append(keys, fmt.Sprintf("unknown key %q (line %d, column %d)", strings.Join(e.Key(), "."), row, col))
		}
		return strings.Join(keys, "; ")
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		hint := ""
		if strings.Contains(de.Error(), "already exists") {
			// Pisa-Proxy's guide repeats [proxy] before each [[proxy.config]].
			hint = " (TOML allows a table header once: remove the repeated one)"
		}
		if k := de.Key(); len(k) > 0 {
			return fmt.Sprintf("key %q (line %d, column %d): %s%s", strings.Join(k, "."), row, col, de.Error(), hint)
		}
		return fmt.Sprintf("line %d, column %d: %s%s", row, col, de.Error(), hint)
	}
	return err.Error()
}

// Redacted returns a deep-enough copy with every password (clear or
// hashed) replaced, for logging and the admin /config endpoint; of one
// read from a file or environment variable only its password_file or
// password_env remains.
func (c *Config) Redacted() *Config {
	out := *c
	out.Admin.Token = redact(out.Admin.Token)
	// Copies of everything that holds a password, then every password
	// blanked through the same list that resolves them.
	out.Proxy.Config = append([]Listener(nil), c.Proxy.Config...)
	for i := range out.Proxy.Config {
		l := &out.Proxy.Config[i]
		l.Users = append([]User(nil), l.Users...)
		if l.ReadWriteSplitting != nil && l.ReadWriteSplitting.Dynamic != nil {
			rw := *l.ReadWriteSplitting
			dyn := *rw.Dynamic
			rw.Dynamic = &dyn
			l.ReadWriteSplitting = &rw
		}
	}
	out.MySQL.Node = append([]Node(nil), c.MySQL.Node...)
	if c.ShardingSphereProxy != nil {
		out.ShardingSphereProxy = &MySQL{Node: append([]Node(nil), c.ShardingSphereProxy.Node...)}
	}
	for _, p := range out.passwords() {
		redactPassword(p.password, p.read)
	}
	return &out
}

func redact(s string) string {
	if s == "" {
		return ""
	}
	return "******"
}
