package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"pisanix.io/pisanix/credential"
)

// maxPasswordFile bounds a password file: anything bigger is the wrong file.
const maxPasswordFile = 64 << 10

// passwordKeys is one password key and its alternatives: the password
// inline, from a file or from an environment variable.
type passwordKeys struct {
	key      string  // the password's key, as config errors name it
	password *string // the inline key, which Redacted blanks
	file     string
	env      string
	read     *string // where a password from file or env goes
}

// passwords lists every password key of the config.
func (c *Config) passwords() []passwordKeys {
	var ps []passwordKeys
	for i := range c.Proxy.Config {
		l := &c.Proxy.Config[i]
		key := listenerKey(i, l.Name)
		ps = append(ps, passwordKeys{key + ".password", &l.Password, l.PasswordFile, l.PasswordEnv, &l.passwordRead})
		for j := range l.Users {
			u := &l.Users[j]
			ps = append(ps, passwordKeys{fmt.Sprintf("%s.users[%d].password", key, j), &u.Password, u.PasswordFile, u.PasswordEnv, &u.passwordRead})
		}
		if rw := l.ReadWriteSplitting; rw != nil && rw.Dynamic != nil {
			d := &rw.Dynamic.Discovery
			ps = append(ps, passwordKeys{key + ".read_write_splitting.dynamic.discovery.password", &d.Password, d.PasswordFile, d.PasswordEnv, &d.passwordRead})
		}
	}
	for i := range c.MySQL.Node {
		n := &c.MySQL.Node[i]
		ps = append(ps, passwordKeys{fmt.Sprintf("mysql.node[%d].password", i), &n.Password, n.PasswordFile, n.PasswordEnv, &n.passwordRead})
	}
	for i, nodes := 0, c.shardingSphereNodes(); i < len(nodes); i++ {
		n := &nodes[i]
		ps = append(ps, passwordKeys{fmt.Sprintf("shardingsphere_proxy.node[%d].password", i), &n.Password, n.PasswordFile, n.PasswordEnv, &n.passwordRead})
	}
	return ps
}

// resolvePasswords reads each password given by file or environment
// variable (see ResolvedPassword); it reports every key it could not read.
// The keys stay as configured, so the config's JSON form loads again.
func (c *Config) resolvePasswords() error {
	var errs []error
	for _, p := range c.passwords() {
		if err := p.resolve(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (p passwordKeys) resolve() error {
	var given []string
	for _, k := range []struct{ name, v string }{{"password", *p.password}, {"password_file", p.file}, {"password_env", p.env}} {
		if k.v != "" {
			given = append(given, k.name)
		}
	}
	if len(given) > 1 {
		return fmt.Errorf("%s: %s are set; give only one of password, password_file, password_env", p.key, strings.Join(given, " and "))
	}
	var v string
	var err error
	switch {
	case p.file != "":
		v, err = readPasswordFile(p.file)
		if err != nil {
			return fmt.Errorf("%s_file: %w", p.key, err)
		}
	case p.env != "":
		var set bool
		if v, set = os.LookupEnv(p.env); !set {
			return fmt.Errorf("%s_env: environment variable %s is not set", p.key, p.env)
		}
		if v == "" {
			return fmt.Errorf("%s_env: environment variable %s is empty (an empty password is password = \"\")", p.key, p.env)
		}
	default:
		return nil
	}
	*p.read = v
	return nil
}

// readPasswordFile reads a password from its own file: one line, its
// newline (if any) dropped.
func readPasswordFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err // names the path
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPasswordFile+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxPasswordFile {
		return "", fmt.Errorf("%s is larger than %d bytes: not a password", path, maxPasswordFile)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	switch {
	case s == "":
		return "", fmt.Errorf("%s is empty (an empty password is password = \"\")", path)
	case strings.ContainsAny(s, "\r\n"):
		return "", fmt.Errorf("%s holds more than one line; a password file holds the password alone", path)
	}
	return s, nil
}

// validatePassword checks an application user's password (resolved) for
// the listener's auth plugin. key is the password key.
func validatePassword(key, password, plugin string, add addFunc) {
	cred, err := credential.Parse(password)
	if err != nil {
		add(key, "%v", err)
		return
	}
	if cred.Kind() == credential.CachingSHA2Hash && plugin == AuthNative {
		add(key, "is a caching_sha2_password hash, which cannot check mysql_native_password logins (it holds no SHA1(SHA1(password))); set auth_plugin = %q, or give the clear password or its \"*\" native hash", AuthCachingSHA2)
	}
}

// givenKey is the key a password was given under: password, or its _file
// or _env alternative.
func givenKey(key, file, env string) string {
	switch {
	case file != "":
		return key + "_file"
	case env != "":
		return key + "_env"
	}
	return key
}

// redactPassword hides a password and forgets one read from a file or
// variable (password_file or password_env says where it comes from).
func redactPassword(password, read *string) {
	*password, *read = redact(*password), ""
}
