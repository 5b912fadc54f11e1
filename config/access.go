package config

import (
	"fmt"
	"net/netip"
	"slices"
)

// Audit defaults.
const (
	DefaultAuditMaxSizeMB  = 100
	DefaultAuditMaxBackups = 5
	DefaultAuditQueueSize  = 8192
)

// AuditKinds are the statement kinds an audit filter may name (the
// sqlinfo kinds; kept here so that config stays free of the SQL parser).
var AuditKinds = []string{"other", "select", "insert", "update", "delete", "replace", "ddl",
	"begin", "commit", "rollback", "set", "use", "show", "prepare", "execute", "call", "load", "kill"}

var operations = []string{OpSelect, OpInsert, OpUpdate, OpDelete, OpDDL, OpOther, OpAll}

func (a *Audit) applyDefaults() {
	if a.Sink == "" {
		a.Sink = AuditSinkStdout
		if a.Path != "" {
			a.Sink = AuditSinkFile
		}
	}
	setDefault(&a.MaxSizeMB, DefaultAuditMaxSizeMB)
	setDefault(&a.MaxBackups, DefaultAuditMaxBackups)
	setDefault(&a.QueueSize, DefaultAuditQueueSize)
	if a.SampleRate == nil {
		one := 1.0
		a.SampleRate = &one
	}
}

func (l *Listener) validateUsers(key string, add addFunc) {
	seen := map[string]bool{l.User: true}
	for i, u := range l.Users {
		k := fmt.Sprintf("%s.users[%d]", key, i)
		switch {
		case u.User == "":
			add(k+".user", "required")
		case seen[u.User]:
			add(k+".user", "duplicate user %q (the listener's own user counts)", u.User)
		}
		seen[u.User] = true
		for j, h := range u.AllowedHosts {
			if _, err := ParseHost(h); err != nil {
				add(fmt.Sprintf("%s.allowed_hosts[%d]", k, j), "%v", err)
			}
		}
		for j, r := range u.Rules {
			r.validate(fmt.Sprintf("%s.rule[%d]", k, j), add)
		}
	}
}

func (r AccessRule) validate(key string, add addFunc) {
	if r.Action != ActionAllow && r.Action != ActionDeny {
		add(key+".action", "%q is not one of allow, deny", r.Action)
	}
	for i, op := range r.Operations {
		if !slices.Contains(operations, op) {
			add(fmt.Sprintf("%s.operations[%d]", key, i), "%q is not one of select, insert, update, delete, ddl, other, all", op)
		}
	}
	for i, p := range append(slices.Clone(r.Databases), r.Tables...) {
		if p == "" {
			add(fmt.Sprintf("%s.databases/tables[%d]", key, i), "empty pattern (use \"*\" for all)")
		}
	}
}

// ParseHost reads an allowed_hosts entry: an IP address or a CIDR block.
func ParseHost(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR block", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

func (a *Audit) validate(key string, add addFunc) {
	switch a.Sink {
	case AuditSinkStdout:
	case AuditSinkFile:
		if a.Path == "" {
			add(key+".path", "required for sink = \"file\"")
		}
	default:
		add(key+".sink", "%q is not one of stdout, file", a.Sink)
	}
	if a.MaxSizeMB < 1 {
		add(key+".max_size_mb", "must be at least 1, got %d", a.MaxSizeMB)
	}
	if a.MaxBackups < 0 {
		add(key+".max_backups", "must not be negative, got %d", a.MaxBackups)
	}
	if a.QueueSize < 1 {
		add(key+".queue_size", "must be at least 1, got %d", a.QueueSize)
	}
	if r := *a.SampleRate; r <= 0 || r > 1 {
		add(key+".sample_rate", "%g is outside (0, 1]", r)
	}
	for i, k := range a.Kinds {
		if !slices.Contains(AuditKinds, k) {
			add(fmt.Sprintf("%s.kinds[%d]", key, i), "%q is not a statement kind (%v)", k, AuditKinds)
		}
	}
}
