package config

import (
	"strings"
	"testing"
)

const usersTOML = `
[[proxy.config.users]]
user = "report"
password = "r"
read_only = true
allowed_hosts = ["10.0.0.0/8", "127.0.0.1"]
[[proxy.config.users.rule]]
action = "deny"
databases = ["socksdb"]
tables = ["card_*"]
operations = ["select"]

[proxy.config.audit]
path = "/var/log/pisa/audit.log"
kinds = ["insert", "delete"]
`

// withUsers puts users and audit into the catalogue listener.
func withUsers(extra string) string {
	return strings.Replace(pisanixTOML, "[proxy.config.simple_loadbalance]", extra+"\n[proxy.config.simple_loadbalance]", 1)
}

func TestUsersAndAudit(t *testing.T) {
	c, err := ParseTOML([]byte(withUsers(usersTOML)), "pisa.toml")
	if err != nil {
		t.Fatal(err)
	}
	l := c.Proxy.Config[0]
	u := l.Users[0]
	if u.User != "report" || !u.ReadOnly || len(u.AllowedHosts) != 2 || u.Rules[0].Tables[0] != "card_*" {
		t.Fatalf("users decoded wrong: %+v", l.Users)
	}
	a := l.Audit
	if a.Sink != AuditSinkFile || a.MaxSizeMB != DefaultAuditMaxSizeMB || a.QueueSize != DefaultAuditQueueSize || *a.SampleRate != 1 {
		t.Fatalf("audit defaults wrong: %+v", a)
	}
	if r := c.Redacted(); r.Proxy.Config[0].Users[0].Password != "******" || u.Password != "r" {
		t.Fatal("user passwords must be redacted in a copy")
	}
}

func TestBadUsersAndAudit(t *testing.T) {
	cases := map[string]struct{ from, to, want string }{
		"bad host":      {`"127.0.0.1"]`, `"localhost"]`, `users[0].allowed_hosts[1]: "localhost" is not an IP address or CIDR block`},
		"bad action":    {`action = "deny"`, `action = "block"`, `users[0].rule[0].action: "block" is not one of allow, deny`},
		"bad operation": {`operations = ["select"]`, `operations = ["read"]`, `users[0].rule[0].operations[0]: "read" is not one of`},
		"owner twice":   {`user = "report"`, `user = "catalogue_user"`, `users[0].user: duplicate user "catalogue_user"`},
		"bad kind":      {`kinds = ["insert", "delete"]`, `kinds = ["insert", "erase"]`, `audit.kinds[1]: "erase" is not a statement kind`},
		"bad sink":      {`path = "/var/log/pisa/audit.log"`, `sink = "syslog"`, `audit.sink: "syslog" is not one of stdout, file`},
		"bad sample":    {`kinds = ["insert", "delete"]`, `sample_rate = 1.5`, `audit.sample_rate: 1.5 is outside (0, 1]`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseTOML([]byte(withUsers(strings.Replace(usersTOML, tc.from, tc.to, 1))), "pisa.toml")
			if err == nil || !strings.Contains(err.Error(), "proxy.config[0] (catalogue)."+tc.want) {
				t.Fatalf("error %v does not say %q", err, tc.want)
			}
		})
	}
}
