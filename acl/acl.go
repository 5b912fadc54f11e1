// Package acl owns access control: the application users of a listener,
// where they may log in from, and which operations on which databases and
// tables their statements may perform. It decides from the accesses the
// sqlinfo package finds in a statement; the session layer asks before a
// statement reaches a backend and answers refusals with the error a MySQL
// server would give.
package acl

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/glob"
	"pisanix.io/pisanix/sqlinfo"
	"pisanix.io/pisanix/wire"
)

// Policy is the users of one listener. It is immutable: a reload builds a
// new one, and sessions pick it up at their next statement.
type Policy struct {
	users map[string]*User
	// open: users not named are let in unrestricted (auth passthrough,
	// where the backend's accounts and grants decide who may do what).
	open bool
}

// User is one application user and its compiled rules.
type User struct {
	Name     string
	Password string
	// Restricted users have rules or are read-only: their statements are
	// checked. The listener's own user and users with neither are not.
	Restricted bool

	readOnly    bool
	hosts       []netip.Prefix
	allow, deny []rule
}

// rule is a compiled config.AccessRule.
type rule struct {
	dbs, tables []glob.Pattern
	ops         uint8 // bit per sqlinfo.Op
	allDBs      bool  // databases cover every database
	allTables   bool  // tables cover every table
}

// New compiles the listener's own user (unrestricted) and its further
// users. The config was validated; an invalid host is still reported.
// open: users not named are unrestricted (auth passthrough).
func New(owner, ownerPassword string, users []config.User, open bool) (*Policy, error) {
	p := &Policy{users: map[string]*User{}, open: open}
	if owner != "" {
		p.users[owner] = &User{Name: owner, Password: ownerPassword}
	}
	for _, cu := range users {
		u := &User{Name: cu.User, Password: cu.ResolvedPassword(), readOnly: cu.ReadOnly}
		for _, h := range cu.AllowedHosts {
			pr, err := config.ParseHost(h)
			if err != nil {
				return nil, fmt.Errorf("user %q: allowed_hosts: %w", cu.User, err)
			}
			u.hosts = append(u.hosts, pr)
		}
		for _, r := range cu.Rules {
			cr := compile(r)
			if r.Action == config.ActionDeny {
				u.deny = append(u.deny, cr)
			} else {
				u.allow = append(u.allow, cr)
			}
		}
		u.Restricted = u.readOnly || len(u.allow) > 0 || len(u.deny) > 0
		p.users[cu.User] = u
	}
	return p, nil
}

func compile(r config.AccessRule) rule {
	cr := rule{dbs: compileAll(r.Databases), tables: compileAll(r.Tables)}
	cr.allDBs, cr.allTables = coversAll(cr.dbs), coversAll(cr.tables)
	if len(r.Operations) == 0 {
		cr.ops = allOps
	}
	for _, o := range r.Operations {
		cr.ops |= opBits(o)
	}
	return cr
}

// allOps: every operation a rule can name (OpUse is never named).
const allOps = 1<<sqlinfo.OpSelect | 1<<sqlinfo.OpInsert | 1<<sqlinfo.OpUpdate |
	1<<sqlinfo.OpDelete | 1<<sqlinfo.OpDDL | 1<<sqlinfo.OpOther

func opBits(name string) uint8 {
	switch name {
	case config.OpSelect:
		return 1 << sqlinfo.OpSelect
	case config.OpInsert:
		return 1 << sqlinfo.OpInsert
	case config.OpUpdate:
		return 1 << sqlinfo.OpUpdate
	case config.OpDelete:
		return 1 << sqlinfo.OpDelete
	case config.OpDDL:
		return 1 << sqlinfo.OpDDL
	case config.OpOther:
		return 1 << sqlinfo.OpOther
	}
	return allOps
}

func compileAll(ps []string) []glob.Pattern {
	if len(ps) == 0 {
		return []glob.Pattern{glob.Compile("*")}
	}
	return glob.CompileAll(ps)
}

func coversAll(ps []glob.Pattern) bool {
	for i := range ps {
		if ps[i].All() {
			return true
		}
	}
	return false
}

// User returns the user called name, or nil. In an open policy a user not
// named is unrestricted.
func (p *Policy) User(name string) *User {
	if p == nil {
		return nil
	}
	if u := p.users[name]; u != nil || !p.open {
		return u
	}
	return &User{Name: name}
}

// Password is the authenticator's lookup.
func (p *Policy) Password(name string) (string, bool) {
	u := p.User(name)
	if u == nil {
		return "", false
	}
	return u.Password, true
}

// HostAllowed reports whether the user may log in from addr.
func (u *User) HostAllowed(addr netip.Addr) bool {
	if len(u.hosts) == 0 {
		return true
	}
	addr = addr.Unmap()
	for _, h := range u.hosts {
		if h.Contains(addr) {
			return true
		}
	}
	return false
}

// HasHosts reports whether the user is limited to some client addresses.
func (u *User) HasHosts() bool { return len(u.hosts) > 0 }

// Reasons a statement or login is refused (metric label values).
const (
	ReasonHost         = "host"
	ReasonDatabase     = "database"
	ReasonTable        = "table"
	ReasonReadOnly     = "read_only"
	ReasonServer       = "server"
	ReasonUnverifiable = "unverifiable"
	ReasonThrottled    = "parse_budget"
	ReasonRemoved      = "removed"
)

// Denial is a refused access.
type Denial struct {
	Reason string
	Access sqlinfo.Access
}

// Check decides a classified statement. A nil user (removed from the
// configuration since login) may do nothing.
// hot path: unrestricted users return at once; no allocation unless denied.
func (u *User) Check(info *sqlinfo.Info) *Denial {
	if u == nil {
		return &Denial{Reason: ReasonRemoved}
	}
	if !u.Restricted {
		return nil
	}
	if info.Unverifiable {
		return &Denial{Reason: ReasonUnverifiable}
	}
	for _, a := range info.Access {
		if a.DB == "" && a.Name != "" {
			// No current database: the server refuses it (1046); a replica
			// connection still in its last database would not.
			return &Denial{Reason: ReasonUnverifiable, Access: a}
		}
		if reason := u.decide(a); reason != "" {
			return &Denial{Reason: reason, Access: a}
		}
	}
	return nil
}

// CheckDB decides entering database db (USE, COM_INIT_DB, login).
func (u *User) CheckDB(db string) *Denial {
	a := sqlinfo.Access{Table: sqlinfo.Table{DB: db}, Op: sqlinfo.OpUse}
	if u == nil {
		return &Denial{Reason: ReasonRemoved, Access: a}
	}
	if !u.Restricted || db == "" {
		return nil
	}
	if reason := u.decide(a); reason != "" {
		return &Denial{Reason: reason, Access: a}
	}
	return nil
}

// decide returns "" when a is allowed, else the reason.
func (u *User) decide(a sqlinfo.Access) string {
	if u.readOnly && a.Op != sqlinfo.OpSelect && a.Op != sqlinfo.OpUse {
		return ReasonReadOnly
	}
	for i := range u.deny {
		if u.deny[i].denies(a) {
			return reasonFor(a)
		}
	}
	if len(u.allow) == 0 {
		if a.DB == "" && a.Name == "" {
			// Server-wide statements act with the proxy's backend account
			// (GRANT, SET PASSWORD, LOAD_FILE): only an allow rule over
			// everything lets a restricted user run them.
			return ReasonServer
		}
		return ""
	}
	for i := range u.allow {
		if u.allow[i].allows(a) {
			return ""
		}
	}
	if catalogue(a) {
		return ""
	}
	return reasonFor(a)
}

// catalogue: reading information_schema needs no allow rule, as on a MySQL
// server, where every account may (ORMs and drivers read it to learn the
// schema). The server filters its rows by privilege; the proxy cannot, so
// names and definitions of tables the user may not read show. Its tables
// that show other sessions or data also count as server-wide (sqlinfo), and
// deny rules apply as to any database.
func catalogue(a sqlinfo.Access) bool {
	return (a.Op == sqlinfo.OpSelect || a.Op == sqlinfo.OpUse) && strings.EqualFold(a.DB, "information_schema")
}

func reasonFor(a sqlinfo.Access) string {
	switch {
	case a.DB == "" && a.Name == "":
		return ReasonServer
	case a.Name == "":
		return ReasonDatabase
	}
	return ReasonTable
}

// allows: the rule grants a. A database-wide operation needs a rule over
// all its tables; USE and listing the database need any rule in it; a
// server-wide one a rule over everything.
func (r *rule) allows(a sqlinfo.Access) bool {
	switch {
	case a.Op == sqlinfo.OpUse:
		return glob.Any(r.dbs, a.DB)
	case r.ops&(1<<a.Op) == 0:
		return false
	case a.DB == "" && a.Name == "":
		return r.allDBs && r.allTables
	case a.Name == "" && a.Op == sqlinfo.OpSelect:
		// Listing a database (SHOW TABLES) shows names, as
		// information_schema does to everyone: any rule in it will do.
		return glob.Any(r.dbs, a.DB)
	case a.Name == "":
		return r.allTables && glob.Any(r.dbs, a.DB)
	}
	return glob.Any(r.dbs, a.DB) && glob.Any(r.tables, a.Name)
}

// denies: the rule refuses a. DDL on a table or database is refused by any
// deny rule on it, whatever its operations: DDL could rename or drop the
// table out of the rule's reach. USE is refused only by a rule denying
// everything in the database; a server-wide operation only by a rule over
// everything.
func (r *rule) denies(a sqlinfo.Access) bool {
	switch {
	case a.Op == sqlinfo.OpUse:
		return r.ops == allOps && r.allTables && glob.Any(r.dbs, a.DB)
	case a.DB == "" && a.Name == "":
		return r.ops&(1<<a.Op) != 0 && r.allDBs && r.allTables
	case a.Name == "" && a.Op == sqlinfo.OpDDL:
		return glob.Any(r.dbs, a.DB) // DROP DATABASE drops the rule's tables too
	case a.Name == "":
		// Listing a database (SHOW TABLES) is refused only by a rule over
		// all its tables: one denied table must not hide the catalogue.
		return r.ops&(1<<a.Op) != 0 && r.allTables && glob.Any(r.dbs, a.DB)
	case a.Op == sqlinfo.OpDDL:
		return glob.Any(r.dbs, a.DB) && glob.Any(r.tables, a.Name)
	}
	return r.ops&(1<<a.Op) != 0 && glob.Any(r.dbs, a.DB) && glob.Any(r.tables, a.Name)
}

// SQLError is the error a MySQL server gives for the denial: 1142 for a
// table, 1044 for a database (both SQLSTATE 42000), 1227 for what needs
// server-wide rights or cannot be checked.
func (d *Denial) SQLError(user, host string) *wire.SQLError {
	a := d.Access
	switch d.Reason {
	case ReasonUnverifiable:
		return wire.NewError(mysql.ER_SPECIFIC_ACCESS_DENIED_ERROR, fmt.Sprintf(
			"Access denied for user '%s'@'%s': pisa-proxy cannot tell which tables this statement uses, and the user's access rules require it", user, host))
	case ReasonRemoved:
		return wire.NewError(mysql.ER_SPECIFIC_ACCESS_DENIED_ERROR, fmt.Sprintf(
			"Access denied for user '%s'@'%s': the user is no longer configured", user, host))
	case ReasonThrottled:
		return wire.NewError(mysql.ER_USER_LIMIT_REACHED, fmt.Sprintf(
			"User '%s' has exceeded the 'parse_budget' resource: pisa-proxy reads a limited amount of new statement text per second for a user with access rules; retry later", user))
	}
	switch {
	case a.Op == sqlinfo.OpUse || (a.Name == "" && a.DB != ""):
		return wire.NewError(mysql.ER_DBACCESS_DENIED_ERROR, fmt.Sprintf(
			"Access denied for user '%s'@'%s' to database '%s'", user, host, a.DB))
	case a.Name == "":
		return wire.NewError(mysql.ER_SPECIFIC_ACCESS_DENIED_ERROR, fmt.Sprintf(
			"Access denied for user '%s'@'%s': pisa-proxy access rules do not allow this statement (%s)", user, host, opCommand(a.Op)))
	}
	return wire.NewError(mysql.ER_TABLEACCESS_DENIED_ERROR, fmt.Sprintf(
		"%s command denied to user '%s'@'%s' for table `%s`.`%s`", opCommand(a.Op), user, host, a.DB, a.Name))
}

func opCommand(o sqlinfo.Op) string {
	switch o {
	case sqlinfo.OpSelect:
		return "SELECT"
	case sqlinfo.OpInsert:
		return "INSERT"
	case sqlinfo.OpUpdate:
		return "UPDATE"
	case sqlinfo.OpDelete:
		return "DELETE"
	case sqlinfo.OpDDL:
		return "DDL"
	}
	return "OTHER"
}
