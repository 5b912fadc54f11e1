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
	var c Config
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %s", name, describeTOMLError(err))
	}
	return finish(&c, name)
}

// ParseJSON decodes the controller-served JSON form of the same model.
func ParseJSON(data []byte, name string) (*Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return finish(&c, name)
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
		if k := de.Key(); len(k) > 0 {
			return fmt.Sprintf("key %q (line %d, column %d): %s", strings.Join(k, "."), row, col, de.Error())
		}
		return fmt.Sprintf("line %d, column %d: %s", row, col, de.Error())
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
	out.Proxy.Config = append([]Listener(nil), c.Proxy.Config...)
	for i := range out.Proxy.Config {
		l := &out.Proxy.Config[i]
		redactPassword(&l.Password, &l.passwordRead)
		l.Users = append([]User(nil), l.Users...)
		for j := range l.Users {
			u := &l.Users[j]
			redactPassword(&u.Password, &u.passwordRead)
		}
		if l.ReadWriteSplitting != nil && l.ReadWriteSplitting.Dynamic != nil {
			rw := *l.ReadWriteSplitting
			dyn := *rw.Dynamic
			d := &dyn.Discovery
			redactPassword(&d.Password, &d.passwordRead)
			rw.Dynamic = &dyn
			l.ReadWriteSplitting = &rw
		}
	}
	out.MySQL.Node = append([]Node(nil), c.MySQL.Node...)
	for i := range out.MySQL.Node {
		n := &out.MySQL.Node[i]
		redactPassword(&n.Password, &n.passwordRead)
	}
	return &out
}

func redact(s string) string {
	if s == "" {
		return ""
	}
	return "******"
}
