package strategy

import (
	"fmt"
	"regexp"
	"time"

	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/sqlinfo"
)

// Route is where a statement goes under read/write splitting.
type Route uint8

// Routes.
const (
	ToPrimary Route = iota
	ToReplica
)

func (r Route) String() string {
	if r == ToReplica {
		return config.RoleRead
	}
	return config.RoleReadWrite
}

// Router is a listener's read/write splitting table, immutable once built.
// It decides by statement text alone; the session adds what it knows
// (open transaction, recent write, pinned state).
type Router struct {
	rules         []rwRule
	defaultTarget Route
	// Window keeps reads on the primary after a write.
	Window time.Duration
	// GTIDWait > 0: read-your-writes by GTID, waiting up to this on a replica.
	GTIDWait time.Duration
}

type rwRule struct {
	name   string
	res    []*regexp.Regexp
	target Route
	// selects: a generic rule without regex (Pisa-Proxy's), deciding by
	// statement kind: every movable SELECT, nothing else.
	selects bool
}

// NewRouter compiles the static (or dynamic) rules; nil when rw is nil.
func NewRouter(rw *config.ReadWriteSplitting) (*Router, error) {
	if rw == nil {
		return nil, nil
	}
	def, rules := "", []config.RWRule(nil)
	window, gtidWait := config.DefaultReadAfterWrite, time.Duration(0)
	if rw.Static != nil {
		def, rules = rw.Static.DefaultTarget, rw.Static.Rules
		if w := rw.Static.ReadAfterWriteWindow; w != nil {
			window = w.D()
		}
		if rw.Static.ReadYourWrites == "gtid" {
			gtidWait = time.Second
			if w := rw.Static.GTIDWaitTimeout; w != nil {
				gtidWait = w.D()
			}
		}
	} else if rw.Dynamic != nil {
		def, rules = rw.Dynamic.DefaultTarget, rw.Dynamic.Rules
	}
	r := &Router{defaultTarget: routeOf(def), Window: window, GTIDWait: gtidWait}
	var generic []rwRule
	for _, rule := range rules {
		rr := rwRule{name: rule.Name, target: routeOf(rule.Target), selects: rule.IsGenericAll()}
		if rr.selects {
			generic = append(generic, rr)
			continue
		}
		for _, pat := range rule.Regex {
			re, err := regexp.Compile(pat)
			if err != nil {
				return nil, fmt.Errorf("read/write rule %q: %w", rule.Name, err)
			}
			rr.res = append(rr.res, re)
		}
		r.rules = append(r.rules, rr)
	}
	// Pisa-Proxy tried its generic rules after every regex rule.
	r.rules = append(r.rules, generic...)
	return r, nil
}

func routeOf(target string) Route {
	if target == config.RoleRead {
		return ToReplica
	}
	return ToPrimary
}

// Route decides for one COM_QUERY. Only single, read-only, non-locking
// reads that do not touch session state (as the parser saw them) may leave
// the primary: the first matching rule decides for them (regex rules in
// their order, then generic rules, which match SELECTs), else the default
// target. Unparsable statements are not read-only, so they stay.
func (r *Router) Route(sql []byte, info sqlinfo.Info) Route {
	route, _ := r.RouteByRule(sql, info)
	return route
}

// RouteByRule is Route that also names the rule that decided ("" when
// none did).
func (r *Router) RouteByRule(sql []byte, info sqlinfo.Info) (Route, string) {
	if (info.Kind != sqlinfo.KindSelect && info.Kind != sqlinfo.KindShow) || !info.ReadOnly ||
		info.Locking || info.UsesSessionState || info.Statements != 1 || needsPrimary(sql) {
		return ToPrimary, ""
	}
	for _, rule := range r.rules {
		if rule.selects {
			if info.Kind == sqlinfo.KindSelect {
				return rule.target, rule.name
			}
			continue
		}
		for _, re := range rule.res {
			if re.Match(sql) {
				return rule.target, rule.name
			}
		}
	}
	return r.defaultTarget, ""
}

// primaryMarkers: functions with side effects the parser does not flag
// (MariaDB sequences) or that belong to one connection.
var primaryMarkers = [][]byte{
	[]byte("NEXTVAL"), []byte("LASTVAL"), []byte("SETVAL"), []byte("NEXT VALUE FOR"),
	[]byte("IS_USED_LOCK"),
}

// needsPrimary is a conservative lexical check behind the parser's view: a
// false positive only costs a read on the primary.
// hot path: case-insensitive searches without allocating.
func needsPrimary(sql []byte) bool {
	for _, m := range primaryMarkers {
		if containsFold(sql, m) {
			return true
		}
	}
	return false
}

// containsFold reports whether upper (ASCII upper case) occurs in b, ignoring case.
func containsFold(b, upper []byte) bool {
	n := len(upper)
	for i := 0; i+n <= len(b); i++ {
		c := b[i]
		if c|0x20 != upper[0]|0x20 {
			continue
		}
		j := 1
		for ; j < n; j++ {
			c := b[i+j]
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			if c != upper[j] {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}

// PinsSession reports statements after which a session must stay on its
// primary: temporary tables and explicit locks live on that connection.
func PinsSession(sql []byte, kind sqlinfo.Kind) bool {
	return (kind == sqlinfo.KindDDL && containsFold(sql, []byte("TEMPORARY"))) ||
		containsFold(sql, []byte("LOCK TABLES")) || containsFold(sql, []byte("GET_LOCK"))
}
