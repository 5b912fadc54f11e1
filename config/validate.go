package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ApplyDefaults fills every unset key with its documented default.
func (c *Config) ApplyDefaults() {
	if c.Admin.Host == "" {
		c.Admin.Host = DefaultAdminHost
	}
	if c.Admin.Port == 0 {
		c.Admin.Port = DefaultAdminPort
	}
	if c.Admin.LogLevel == "" {
		c.Admin.LogLevel = DefaultLogLevel
	}
	for i := range c.Proxy.Config {
		c.Proxy.Config[i].applyDefaults()
	}
	c.defaultNames()
	for _, nodes := range [][]Node{c.MySQL.Node, c.shardingSphereNodes()} {
		for i := range nodes {
			n := &nodes[i]
			setDefault(&n.Host, DefaultNodeHost)
			setDefault(&n.Port, DefaultNodePort)
			setDefault(&n.Weight, DefaultNodeWeight)
			setDefault(&n.Role, RoleReadWrite)
		}
	}
}

func (l *Listener) applyDefaults() {
	setDefault(&l.ListenAddr, DefaultListenAddr)
	setDefault(&l.ServerVersion, l.LegacyServerVersion)
	l.LegacyServerVersion = ""
	setDefault(&l.BackendType, DefaultBackendType)
	setDefault(&l.PoolSize, DefaultPoolSize)
	setDefault(&l.MaxConnections, DefaultMaxConnections)
	setDefault(&l.AuthMode, AuthModeProxy)
	setDefault(&l.MaxAllowedPacket, DefaultMaxAllowedPacket)
	if l.ParseBudget == nil {
		v := DefaultParseBudget
		l.ParseBudget = &v
	}
	if l.MaxConnectErrors == nil {
		v := DefaultMaxConnectErrors
		l.MaxConnectErrors = &v
	}
	if l.AuthMode == AuthModeProxy {
		setDefault(&l.AuthPlugin, DefaultAuthPlugin)
	}
	setDefault(&l.PoolAcquireTimeout, Duration(DefaultPoolAcquireTimeout))
	setDefault(&l.DialTimeout, Duration(DefaultDialTimeout))
	setDefault(&l.IdleCheckAfter, Duration(DefaultIdleCheckAfter))
	setDefault(&l.LoginTimeout, Duration(DefaultLoginTimeout))
	setDefault(&l.ClientIdleTimeout, Duration(DefaultClientIdleTimeout))
	setDefault(&l.ClientWriteTimeout, Duration(DefaultClientWriteTimeout))
	if l.PoolMinIdle == nil {
		v := min(DefaultPoolMinIdle, l.PoolSize)
		l.PoolMinIdle = &v
	}
	if l.Audit != nil {
		l.Audit.applyDefaults()
	}
	if lb := l.SimpleLoadBalance; lb != nil {
		setDefault(&lb.BalanceType, BalanceRandom) // Pisa-Proxy's default
	}
	if rw := l.ReadWriteSplitting; rw != nil {
		if rw.Static != nil {
			genericTargets(rw.Static.Rules)
		}
		if rw.Dynamic != nil {
			genericTargets(rw.Dynamic.Rules)
		}
	}
	for i := range l.Sharding {
		for _, s := range []*ShardingStrategy{l.Sharding[i].TableStrategy, l.Sharding[i].DatabaseStrategy, l.Sharding[i].DatabaseTableStrategy} {
			if s != nil {
				s.applyDefaults()
			}
		}
	}
}

// genericTargets gives generic rules without a target Pisa-Proxy's: a
// generic rule classifies by statement kind, sending the SELECTs it may
// move to the replicas.
func genericTargets(rules []RWRule) {
	for i := range rules {
		if rules[i].Type == RWRuleGeneric {
			setDefault(&rules[i].Target, RoleRead)
		}
	}
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// Validate checks the whole config and reports every problem, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.Admin.Port < 0 || c.Admin.Port > 65535 {
		add("admin.port", "%d is not a TCP port", c.Admin.Port)
	}
	if !validLogLevel(c.Admin.LogLevel) {
		add("admin.log_level", "%q is not one of TRACE, DEBUG, INFO, WARN, ERROR", c.Admin.LogLevel)
	}
	nodes := c.validateNodes(add)
	c.validateNodeGroup(nodes, add)
	if len(c.Proxy.Config) == 0 {
		add("proxy.config", "no [[proxy.config]] listener is defined")
	}
	names := map[string]bool{}
	addrs := map[string]string{}
	auditPaths := map[string]string{}
	for i := range c.Proxy.Config {
		l := &c.Proxy.Config[i]
		key := listenerKey(i, l.Name)
		l.validate(key, nodes[l.BackendType], add)
		l.validateRuleGroups(key, c.NodeGroup, add)
		c.validateSharding(key, l, add)
		if l.Name != "" {
			if names[l.Name] {
				add(key+".name", "duplicate listener name %q", l.Name)
			}
			names[l.Name] = true
		}
		if other, dup := addrs[l.ListenAddr]; dup {
			add(key+".listen_addr", "%q is already used by listener %q", l.ListenAddr, other)
		}
		if !strings.HasSuffix(l.ListenAddr, ":0") { // port 0: the kernel picks one per listener
			addrs[l.ListenAddr] = l.Name
		}
		if a := l.Audit; a != nil && a.Sink == AuditSinkFile {
			if other, dup := auditPaths[a.Path]; dup {
				add(key+".audit.path", "%q is already the audit log of listener %q", a.Path, other)
			}
			auditPaths[a.Path] = l.Name
		}
	}
	return errors.Join(errs...)
}

type addFunc func(key, format string, args ...any)

// listenerKey names the i-th listener in errors.
func listenerKey(i int, name string) string {
	if name == "" {
		return fmt.Sprintf("proxy.config[%d]", i)
	}
	return fmt.Sprintf("proxy.config[%d] (%s)", i, name)
}

// validateNodes checks [[mysql.node]] and [[shardingsphere_proxy.node]] and
// returns the node names of each list by the backend_type that uses it.
func (c *Config) validateNodes(add addFunc) map[string]map[string]bool {
	byType := map[string]map[string]bool{BackendMySQL: {}, BackendShardingSphereProxy: {}}
	all := map[string]bool{}
	for _, list := range []struct {
		key, backend string
		nodes        []Node
	}{{"mysql.node", BackendMySQL, c.MySQL.Node}, {"shardingsphere_proxy.node", BackendShardingSphereProxy, c.shardingSphereNodes()}} {
		for i, n := range list.nodes {
			validateNode(fmt.Sprintf("%s[%d]", list.key, i), n, all, add)
			byType[list.backend][n.Name] = true
		}
	}
	return byType
}

// uniqueName checks that key's name is given and not one of seen, which
// it joins.
func uniqueName(key, name, what string, seen map[string]bool, add addFunc) {
	switch {
	case name == "":
		add(key+".name", "required")
	case seen[name]:
		add(key+".name", "duplicate %s name %q", what, name)
	}
	seen[name] = true
}

// validateNode checks one node; names are unique across both node lists.
func validateNode(key string, n Node, names map[string]bool, add addFunc) {
	uniqueName(key, n.Name, "node", names, add)
	if n.User == "" {
		add(key+".user", "required")
	}
	if n.Host == "" {
		add(key+".host", "required")
	}
	if n.Port <= 0 || n.Port > 65535 {
		add(key+".port", "%d is not a TCP port", n.Port)
	}
	if n.Weight < 0 {
		add(key+".weight", "must not be negative, got %d", n.Weight)
	}
	if n.Role != RoleRead && n.Role != RoleReadWrite {
		add(key+".role", "%q is not one of read, readwrite", n.Role)
	}
	switch n.TLS {
	case "", NodeTLSOff, NodeTLSPreferred, NodeTLSRequired, NodeTLSVerifyCA, NodeTLSVerifyFull, NodeTLSSkipVerify:
	default:
		add(key+".tls", "%q is not one of off, preferred, required, verify-ca, verify-full, skip-verify", n.TLS)
	}
}

// validateNodeGroup checks [[node_group.member]]: named, each naming nodes
// that exist.
func (c *Config) validateNodeGroup(nodes map[string]map[string]bool, add addFunc) {
	if c.NodeGroup == nil {
		return
	}
	defined := func(n string) bool { return nodes[BackendMySQL][n] || nodes[BackendShardingSphereProxy][n] }
	names := map[string]bool{}
	for i, m := range c.NodeGroup.Member {
		key := fmt.Sprintf("node_group.member[%d]", i)
		uniqueName(key, m.Name, "member", names, add)
		if m.ReadWrite == "" {
			add(key+".readwrite", "required")
		} else if !defined(m.ReadWrite) {
			add(key+".readwrite", "node %q is not defined", m.ReadWrite)
		}
		for j, r := range m.Reads {
			if !defined(r) {
				add(fmt.Sprintf("%s.reads[%d]", key, j), "node %q is not defined", r)
			}
		}
	}
}

// validateRuleGroups checks that each read/write rule's node_group_name
// names a [[node_group.member]].
func (l *Listener) validateRuleGroups(key string, g *NodeGroup, add addFunc) {
	rw := l.ReadWriteSplitting
	if rw == nil {
		return
	}
	members := map[string]bool{}
	if g != nil {
		for _, m := range g.Member {
			members[m.Name] = true
		}
	}
	for _, set := range []struct {
		key   string
		rules []RWRule
	}{{"static", staticRules(rw)}, {"dynamic", dynamicRules(rw)}} {
		for i, r := range set.rules {
			for j, name := range r.NodeGroupName {
				if !members[name] {
					add(fmt.Sprintf("%s.read_write_splitting.%s.rule[%d].node_group_name[%d]", key, set.key, i, j), "%q is not a [[node_group.member]]", name)
				}
			}
		}
	}
}

func staticRules(rw *ReadWriteSplitting) []RWRule {
	if rw.Static == nil {
		return nil
	}
	return rw.Static.Rules
}

func dynamicRules(rw *ReadWriteSplitting) []RWRule {
	if rw.Dynamic == nil {
		return nil
	}
	return rw.Dynamic.Rules
}

func (l *Listener) validate(key string, nodes map[string]bool, add addFunc) {
	if l.Name == "" {
		add(key+".name", "required")
	}
	if err := checkListenAddr(l.ListenAddr); err != nil {
		add(key+".listen_addr", "%v", err)
	}
	if l.User == "" && l.AuthMode != AuthModePassthrough {
		add(key+".user", "required")
	}
	if l.BackendType != BackendMySQL && l.BackendType != BackendShardingSphereProxy {
		add(key+".backend_type", "%q is not one of %s, %s", l.BackendType, BackendMySQL, BackendShardingSphereProxy)
	}
	if l.PoolSize < 1 || l.PoolSize > MaxPoolSize {
		add(key+".pool_size", "%d is outside 1..%d", l.PoolSize, MaxPoolSize)
	}
	if *l.PoolMinIdle < 0 || *l.PoolMinIdle > l.PoolSize {
		add(key+".pool_min_idle", "%d is outside 0..pool_size (%d)", *l.PoolMinIdle, l.PoolSize)
	}
	for _, t := range []struct {
		name string
		d    Duration
	}{{"client_idle_timeout", l.ClientIdleTimeout}, {"client_write_timeout", l.ClientWriteTimeout}, {"backend_read_timeout", l.BackendReadTimeout}} {
		if t.d < 0 {
			add(key+"."+t.name, "must not be negative, got %s", t.d.D())
		}
	}
	for i, n := range l.ProxyProtocolNetworks {
		if _, err := ParseNetwork(n); err != nil {
			add(fmt.Sprintf("%s.proxy_protocol_networks[%d]", key, i), "%v", err)
		}
	}
	if l.MaxAllowedPacket < 1024 || l.MaxAllowedPacket > MaxMaxAllowedPacket {
		add(key+".max_allowed_packet", "%d is outside 1024..%d bytes (as MySQL's)", l.MaxAllowedPacket, MaxMaxAllowedPacket)
	}
	if l.MaxConnections < 1 {
		add(key+".max_connections", "must be at least 1, got %d", l.MaxConnections)
	}
	l.validateAuth(key, add)
	if t := l.TLS; t != nil && (t.Cert == "") != (t.Key == "") {
		add(key+".tls", "cert and key must be given together")
	}
	if t := l.TLS; t != nil && t.Cert == "" && !t.AutoGenerate {
		add(key+".tls", "set cert and key, or auto_generate = true")
	}
	l.validateRouting(key, nodes, add)
	l.validatePlugins(key, add)
	l.validateUsers(key, add)
	if l.Audit != nil {
		l.Audit.validate(key+".audit", add)
	}
}

func (l *Listener) validateAuth(key string, add addFunc) {
	switch l.AuthMode {
	case AuthModeProxy:
		if l.AuthPlugin != AuthNative && l.AuthPlugin != AuthCachingSHA2 {
			add(key+".auth_plugin", "%q is not one of %s, %s", l.AuthPlugin, AuthNative, AuthCachingSHA2)
		}
		validatePassword(givenKey(key+".password", l.PasswordFile, l.PasswordEnv), l.ResolvedPassword(), l.AuthPlugin, add)
		for i, u := range l.Users {
			validatePassword(givenKey(fmt.Sprintf("%s.users[%d].password", key, i), u.PasswordFile, u.PasswordEnv), u.ResolvedPassword(), l.AuthPlugin, add)
		}
		return
	case AuthModePassthrough:
	default:
		add(key+".auth_mode", "%q is not one of %s, %s", l.AuthMode, AuthModeProxy, AuthModePassthrough)
		return
	}
	// Passthrough: a session's backend connection is logged in as its
	// client, whose password the proxy never learns.
	why := "with auth_mode = \"passthrough\" the backend checks each client's own credentials"
	if l.AuthPlugin != "" {
		add(key+".auth_plugin", "not used: %s, with the plugin of the client's account", why)
	}
	if l.Password != "" || l.PasswordFile != "" || l.PasswordEnv != "" {
		add(givenKey(key+".password", l.PasswordFile, l.PasswordEnv), "not used: %s; remove it", why)
	}
	for i, u := range l.Users {
		if u.Password != "" || u.PasswordFile != "" || u.PasswordEnv != "" {
			add(givenKey(fmt.Sprintf("%s.users[%d].password", key, i), u.PasswordFile, u.PasswordEnv), "not used: %s; keep the user's rules, remove the password", why)
		}
	}
	if l.Multiplex {
		add(key+".multiplex", "not available with auth_mode = \"passthrough\": a connection logged in as one client cannot serve another")
	}
	if l.ReadWriteSplitting != nil {
		add(key+".read_write_splitting", "not available with auth_mode = \"passthrough\": the proxy cannot log in to a replica as the client")
	}
}

func (l *Listener) validateRouting(key string, nodes map[string]bool, add addFunc) {
	lb := l.SimpleLoadBalance
	if lb == nil && l.ReadWriteSplitting == nil {
		add(key, "needs [proxy.config.simple_loadbalance] or [proxy.config.read_write_splitting]")
		return
	}
	if lb != nil {
		if lb.BalanceType != BalanceRandom && lb.BalanceType != BalanceRoundRobin && lb.BalanceType != BalanceLeastConn {
			add(key+".simple_loadbalance.balance_type", "%q is not one of random, roundrobin, leastconn", lb.BalanceType)
		}
		if len(lb.Nodes) == 0 {
			add(key+".simple_loadbalance.nodes", "at least one node is required")
		}
		for j, n := range lb.Nodes {
			if !nodes[n] {
				add(fmt.Sprintf("%s.simple_loadbalance.nodes[%d]", key, j), "node %q is not defined by any %s", n, nodeListName(l))
			}
		}
	}
	if rw := l.ReadWriteSplitting; rw != nil {
		switch {
		case rw.Static == nil && rw.Dynamic == nil:
			add(key+".read_write_splitting", "one of static or dynamic is required")
		case rw.Static != nil && rw.Dynamic != nil:
			// Pisa-Proxy used static and ignored dynamic; its standalone
			// guide's dynamic example has a static rule by mistake (and
			// no static default_target, which Pisa-Proxy refused).
			add(key+".read_write_splitting", "static and dynamic are both given; keep one "+
				"(Pisa-Proxy used static and ignored dynamic; a rule meant for dynamic goes under [[proxy.config.read_write_splitting.dynamic.rule]])")
		}
		if rw.Static != nil {
			if w := rw.Static.ReadAfterWriteWindow; w != nil && w.D() < 0 {
				add(key+".read_write_splitting.static.read_after_write_window", "must not be negative")
			}
			if m := rw.Static.ReadYourWrites; m != "" && m != "gtid" {
				add(key+".read_write_splitting.static.read_your_writes", "%q is not \"gtid\"", m)
			}
			validateRW(key+".read_write_splitting.static", rw.Static.DefaultTarget, rw.Static.Rules, add)
		}
		if rw.Dynamic != nil {
			validateRW(key+".read_write_splitting.dynamic", rw.Dynamic.DefaultTarget, rw.Dynamic.Rules, add)
		}
	}
}

func validateRW(key, def string, rules []RWRule, add addFunc) {
	switch def {
	case RoleRead, RoleReadWrite:
	case "":
		add(key+".default_target", "required: read or readwrite")
	default:
		add(key+".default_target", "%q is not one of read, readwrite", def)
	}
	for i, r := range rules {
		rk := fmt.Sprintf("%s.rule[%d]", key, i)
		if r.Type != RWRuleRegex && r.Type != RWRuleGeneric {
			add(rk+".type", "%q is not one of regex, generic", r.Type)
		}
		if r.Target != RoleRead && r.Target != RoleReadWrite {
			add(rk+".target", "%q is not one of read, readwrite", r.Target)
		}
		switch r.AlgorithmName {
		case "", BalanceRandom, BalanceRoundRobin, BalanceLeastConn:
		default:
			add(rk+".algorithm_name", "%q is not one of random, roundrobin, leastconn", r.AlgorithmName)
		}
		if r.Type != RWRuleGeneric || len(r.Regex) > 0 { // a generic rule may name none
			validateRegexes(rk+".regex", r.Regex, false, add)
		}
	}
}

func (l *Listener) validatePlugins(key string, add addFunc) {
	if l.Plugin == nil {
		return
	}
	for i, cb := range l.Plugin.CircuitBreak {
		k := fmt.Sprintf("%s.plugin.circuit_break[%d]", key, i)
		if len(cb.Regex) == 0 && len(cb.Fingerprint) == 0 {
			add(k, "needs regex or fingerprint")
		}
		if len(cb.Regex) > 0 {
			validateRegexes(k+".regex", cb.Regex, cb.CaseInsensitive, add)
		}
	}
	if f := l.Plugin.Fuse; f != nil {
		setDefault(&f.Errors, 5)
		setDefault(&f.Window, Duration(10*time.Second))
		setDefault(&f.CoolDown, Duration(30*time.Second))
		if f.Errors < 1 || f.Window < 0 || f.CoolDown < 0 || f.Slow < 0 {
			add(key+".plugin.fuse", "errors must be at least 1 and durations not negative")
		}
	}
	for i, rl := range l.Plugin.RateLimit {
		k := fmt.Sprintf("%s.plugin.rate_limit[%d]", key, i)
		if len(rl.Regex) > 0 {
			validateRegexes(k+".regex", rl.Regex, false, add)
		}
		if rl.Rate <= 0 {
			add(k+".rate", "must be positive, got %v", rl.Rate)
		}
		if rl.Burst < 0 || rl.MaxWait < 0 {
			add(k, "burst and max_wait must not be negative")
		}
	}
	for i, cc := range l.Plugin.ConcurrencyControl {
		k := fmt.Sprintf("%s.plugin.concurrency_control[%d]", key, i)
		validateRegexes(k+".regex", cc.Regex, false, add)
		if cc.MaxConcurrency < 1 {
			add(k+".max_concurrency", "must be at least 1, got %d", cc.MaxConcurrency)
		}
		switch {
		case cc.Duration < 0:
			add(k+".duration", "must not be negative, got %d", cc.Duration)
		case cc.Duration >= LegacyNanoseconds:
			// Served as JSON it would read as an earlier controller's
			// nanoseconds: the config would change meaning on its way.
			add(k+".duration", "is in seconds and must be below %d (11 days), got %d", LegacyNanoseconds, cc.Duration)
		}
	}
}

func validateRegexes(key string, res []string, ci bool, add addFunc) {
	if len(res) == 0 {
		add(key, "at least one pattern is required")
	}
	for i, re := range res {
		if ci {
			re = "(?i)" + re
		}
		if _, err := regexp.Compile(re); err != nil {
			add(fmt.Sprintf("%s[%d]", key, i), "bad pattern: %v", err)
		}
	}
}

func checkListenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %v", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%q has a bad port", addr)
	}
	if host != "" && net.ParseIP(host) == nil && strings.ContainsAny(host, " /") {
		return fmt.Errorf("%q has a bad host", addr)
	}
	return nil
}

func validLogLevel(s string) bool {
	_, err := ParseLogLevel(s)
	return err == nil
}

// ParseLogLevel reads a log_level (any case): DEBUG, INFO, WARN (or
// WARNING), ERROR, or Pisa-Proxy's TRACE, which is DEBUG here (nothing is
// logged below it).
func ParseLogLevel(s string) (slog.Level, error) {
	switch strings.ToUpper(s) {
	case "TRACE", "DEBUG":
		return slog.LevelDebug, nil
	case "INFO":
		return slog.LevelInfo, nil
	case "WARN", "WARNING":
		return slog.LevelWarn, nil
	case "ERROR":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q is not one of TRACE, DEBUG, INFO, WARN, ERROR", s)
}
