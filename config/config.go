// Package config is the proxy's configuration model: the Pisa-Proxy standalone
// TOML schema (kept key for key so Pisanix files load unchanged) plus this
// project's additions. The controller serves the same model as JSON with the
// same key names, so every field carries identical toml and json tags.
package config

import (
	"slices"
	"time"
)

// Defaults, as in Pisa-Proxy where Pisa-Proxy had one.
const (
	DefaultAdminHost          = "127.0.0.1" // the sidecar's is set to 0.0.0.0 by the webhook, for probes and scrapes
	DefaultAdminPort          = 5591
	DefaultLogLevel           = "INFO"
	DefaultListenAddr         = "0.0.0.0:3306"
	DefaultBackendType        = BackendMySQL
	DefaultPoolSize           = 64
	MaxPoolSize               = 255
	DefaultNodeHost           = "127.0.0.1"
	DefaultNodePort           = 3306
	DefaultNodeWeight         = 1
	DefaultMaxConnections     = 4096
	DefaultPoolAcquireTimeout = 5 * time.Second
	DefaultDialTimeout        = 3 * time.Second
	DefaultPoolMinIdle        = 2
	DefaultIdleCheckAfter     = 30 * time.Second
	DefaultAuthPlugin         = AuthNative
	DefaultReadAfterWrite     = time.Second
	DefaultLoginTimeout       = 10 * time.Second
	DefaultMaxAllowedPacket   = 1 << 30
	DefaultParseBudget        = 4 << 20
	DefaultMaxConnectErrors   = 100
	ParseBudgetBurst          = 1 << 20
	MaxMaxAllowedPacket       = 1 << 30
	// DefaultClientIdleTimeout and DefaultClientWriteTimeout are MySQL's
	// wait_timeout and net_write_timeout defaults.
	DefaultClientIdleTimeout  = 8 * time.Hour
	DefaultClientWriteTimeout = 60 * time.Second
)

// Auth plugins the proxy offers to clients.
const (
	AuthNative      = "mysql_native_password"
	AuthCachingSHA2 = "caching_sha2_password"
)

// Auth modes of a listener: the proxy checks clients against its own users
// (proxy), or the backend checks each client's own credentials
// (passthrough).
const (
	AuthModeProxy       = "proxy"
	AuthModePassthrough = "passthrough"
)

// TLS modes towards a backend node (Node.TLS), as MySQL's --ssl-mode.
const (
	NodeTLSOff = "off"
	// NodeTLSPreferred verifies as verify-full when the server offers
	// TLS, and connects in plaintext when it offers none.
	NodeTLSPreferred = "preferred"
	// NodeTLSRequired is verify-full (kept under its older name).
	NodeTLSRequired = "required"
	// NodeTLSVerifyCA verifies the certificate chain against tls_ca (or
	// the system's roots) but not the host name.
	NodeTLSVerifyCA = "verify-ca"
	// NodeTLSVerifyFull verifies the chain and that the certificate names
	// the node's host.
	NodeTLSVerifyFull = "verify-full"
	// NodeTLSSkipVerify encrypts without verifying anything.
	NodeTLSSkipVerify = "skip-verify"
)

// Backend types (a listener's backend_type): MySQL-protocol servers from
// [[mysql.node]], or ShardingSphere-Proxy instances from
// [[shardingsphere_proxy.node]] (they speak the MySQL protocol too).
const (
	BackendMySQL               = "mysql"
	BackendShardingSphereProxy = "shardingsphere-proxy"
)

// Balance types and node roles.
const (
	BalanceRandom     = "random"
	BalanceRoundRobin = "roundrobin"
	BalanceLeastConn  = "leastconn" // addition
	RoleRead          = "read"
	RoleReadWrite     = "readwrite"
)

// Config is one whole proxy configuration.
type Config struct {
	Admin     Admin      `toml:"admin" json:"admin"`
	Proxy     Proxy      `toml:"proxy" json:"proxy"`
	MySQL     MySQL      `toml:"mysql" json:"mysql"`
	NodeGroup *NodeGroup `toml:"node_group,omitempty" json:"node_group,omitempty"`
	// ShardingSphereProxy is `[[shardingsphere_proxy.node]]`: the backends
	// of listeners with backend_type = "shardingsphere-proxy", with the keys
	// of a [[mysql.node]]. Node names are unique across both lists.
	ShardingSphereProxy *MySQL `toml:"shardingsphere_proxy,omitempty" json:"shardingsphere_proxy,omitempty"`
	// Version is Pisa-Proxy's top-level key, which it overwrote with its
	// own build's version at start; accepted and not used (the admin
	// /version endpoint reports the running binary).
	Version string `toml:"version,omitempty" json:"version,omitempty"`

	// notes are what loading an older form changed (ParseJSON's readings
	// of an earlier pisa-controller's JSON); see Warnings.
	notes []string
}

// Admin is the HTTP admin endpoint: metrics, health, pprof.
type Admin struct {
	Host string `toml:"host" json:"host"`
	// Port is a number; Pisa-Proxy v0.1.0 wrote it as a string ("8081"),
	// which is read too.
	Port Port `toml:"port" json:"port"`
	// LogLevel: DEBUG, INFO, WARN (or WARNING), ERROR, or Pisa-Proxy's TRACE
	// (as DEBUG, the most verbose level here); any case.
	LogLevel string `toml:"log_level" json:"log_level"`
	// Token lets requests from other addresses than the loopback reach
	// /config, /sessions, /drain and /debug/pprof ("Authorization: Bearer
	// <token>"); without one those answer only on the loopback.
	Token string `toml:"token,omitempty" json:"token,omitempty"`
	// Pprof serves /debug/pprof (off: a CPU profile or trace on demand is
	// a cost anyone reaching the endpoint could impose).
	Pprof bool `toml:"pprof,omitempty" json:"pprof,omitempty"`
}

// Proxy holds the listeners; `[[proxy.config]]` in TOML.
type Proxy struct {
	Config []Listener `toml:"config" json:"config"`
}

// Listener is one `[[proxy.config]]` entry: a frontend address, the
// credentials applications log in with, and how statements reach backends.
// Each listener is its own tenant (crash isolation boundary).
type Listener struct {
	// Name identifies the listener (metrics' domain label, logs, reloads).
	// Unset, it is the listen address (see DefaultName).
	Name       string `toml:"name" json:"name"`
	ListenAddr string `toml:"listen_addr" json:"listen_addr"`
	User       string `toml:"user" json:"user"`
	// Password is what applications log in with: in clear text, as
	// mysql_native_password's hash ("*" and 40 hex digits, as in
	// mysql.user) or as caching_sha2_password's ($A$005$..., or 0x and
	// the hex of it as SELECT HEX(authentication_string) shows it); see
	// package credential.
	Password string `toml:"password" json:"password"`
	// PasswordFile and PasswordEnv give the password from a file (read at
	// load and at each reload; one trailing newline dropped) or an
	// environment variable, in any of its forms; at most one of the three.
	// ResolvedPassword is the one in effect.
	PasswordFile string `toml:"password_file,omitempty" json:"password_file,omitempty"`
	PasswordEnv  string `toml:"password_env,omitempty" json:"password_env,omitempty"`
	passwordRead string // from PasswordFile or PasswordEnv, at load
	DB           string `toml:"db" json:"db"`
	// BackendType is "mysql" (the default: nodes from [[mysql.node]]) or
	// "shardingsphere-proxy" (nodes from [[shardingsphere_proxy.node]]).
	BackendType   string `toml:"backend_type" json:"backend_type"`
	PoolSize      int    `toml:"pool_size" json:"pool_size"`
	ServerVersion string `toml:"server_version" json:"server_version"`
	// LegacyServerVersion is server_version as pisa-controller v0.1.1
	// served it ("serverVersion", JSON only); moved to ServerVersion at
	// load when that is unset.
	LegacyServerVersion string `toml:"-" json:"serverVersion,omitempty"`
	// Strategy is Pisa-Proxy's key (default "simple_balance"), which it
	// never read; accepted and not used.
	Strategy string `toml:"strategy,omitempty" json:"strategy,omitempty"`
	// Sharding is `[[proxy.config.sharding]]`, Pisa-Proxy v0.3's data
	// sharding rules: read and checked, but refused at load, data
	// sharding not being supported yet (see ShardingRule).
	Sharding []ShardingRule `toml:"sharding,omitempty" json:"sharding,omitempty"`

	SimpleLoadBalance  *SimpleLoadBalance  `toml:"simple_loadbalance,omitempty" json:"simple_loadbalance,omitempty"`
	ReadWriteSplitting *ReadWriteSplitting `toml:"read_write_splitting,omitempty" json:"read_write_splitting,omitempty"`
	Plugin             *Plugin             `toml:"plugin,omitempty" json:"plugin,omitempty"`

	// Additions beyond Pisa-Proxy.

	// MaxConnections bounds concurrent client sessions; more get ER_CON_COUNT_ERROR.
	MaxConnections int `toml:"max_connections,omitempty" json:"max_connections,omitempty"`
	// Multiplex: a session holds a backend connection only while a
	// statement, a transaction or state that cannot move (pins) needs it,
	// so many client sessions share few backend connections.
	Multiplex bool `toml:"multiplex,omitempty" json:"multiplex,omitempty"`
	// MaxAllowedPacket bounds a client's command in bytes, as a server's
	// max_allowed_packet: a bigger one gets error 1153 and the session
	// closes. Default and most 1 GiB (MySQL's largest: the proxy is never
	// stricter than a server unless told to be; only one physical packet
	// of at most 16 MiB is held at a time).
	MaxAllowedPacket int `toml:"max_allowed_packet,omitempty" json:"max_allowed_packet,omitempty"`
	// ProxyProtocolNetworks are the client networks (CIDRs or addresses,
	// "*" for any) that may start with a PROXY protocol header (v1 or v2,
	// as from HAProxy or a cloud load balancer): the address it names is
	// then the client's, for access rules, failed-login blocking, logs and
	// a passthrough node with proxy_protocol. As MariaDB's variable of the
	// same name.
	ProxyProtocolNetworks []string `toml:"proxy_protocol_networks,omitempty" json:"proxy_protocol_networks,omitempty"`
	// MaxConnectErrors blocks a client address after this many failed
	// logins in a row (refused credentials, malformed handshakes), as
	// MySQL's max_connect_errors: it gets 1129 until a POST /flush-hosts
	// to the admin API. Default 100 (MySQL's); 0 or less: no limit.
	MaxConnectErrors *int `toml:"max_connect_errors,omitempty" json:"max_connect_errors,omitempty"`
	// ParseBudget bounds the bytes of new statement text (not in the
	// classification cache, 1 KiB or longer) the parser reads per second
	// for each user; past it, a statement is read lexically (routed to the
	// primary, not checked: refused with 1226 for users with access
	// rules). Default 4 MiB/s; bursts up to a second's worth, at most 1 MiB;
	// 0 or less: no bound.
	ParseBudget *int `toml:"parse_budget,omitempty" json:"parse_budget,omitempty"`
	// AuthMode is proxy (the default: clients log in as the listener's
	// users) or passthrough (clients log in as the backend's own accounts,
	// checked by the backend; each session has a backend connection of its
	// own, logged in as its client).
	AuthMode string `toml:"auth_mode,omitempty" json:"auth_mode,omitempty"`
	// AuthPlugin is the plugin announced to clients (mysql_native_password or caching_sha2_password).
	AuthPlugin string `toml:"auth_plugin,omitempty" json:"auth_plugin,omitempty"`
	// TLS for client connections.
	TLS *ServerTLS `toml:"tls,omitempty" json:"tls,omitempty"`
	// PoolAcquireTimeout is how long a new session waits for a backend connection.
	PoolAcquireTimeout Duration `toml:"pool_acquire_timeout,omitempty" json:"pool_acquire_timeout,omitempty"`
	// PoolMinIdle connections per node are dialled at start and kept warm.
	PoolMinIdle *int `toml:"pool_min_idle,omitempty" json:"pool_min_idle,omitempty"`
	// DialTimeout bounds one backend dial including its handshake.
	DialTimeout Duration `toml:"dial_timeout,omitempty" json:"dial_timeout,omitempty"`
	// LoginTimeout bounds a client's connection phase (MySQL's connect_timeout).
	LoginTimeout Duration `toml:"login_timeout,omitempty" json:"login_timeout,omitempty"`
	// ClientIdleTimeout closes a session whose client sent no command for
	// this long (MySQL's wait_timeout).
	ClientIdleTimeout Duration `toml:"client_idle_timeout,omitempty" json:"client_idle_timeout,omitempty"`
	// ClientWriteTimeout bounds each write to a client that stopped
	// reading (MySQL's net_write_timeout); the session then ends.
	ClientWriteTimeout Duration `toml:"client_write_timeout,omitempty" json:"client_write_timeout,omitempty"`
	// BackendReadTimeout: a backend that sends nothing for this long while
	// its answer is awaited has failed (a frozen node): the client gets
	// 1158 and the node's breaker counts it. Unset: no limit, as a long
	// statement may say nothing for its whole run.
	BackendReadTimeout Duration `toml:"backend_read_timeout,omitempty" json:"backend_read_timeout,omitempty"`
	// IdleCheckAfter: an idle backend connection older than this is reset before reuse.
	IdleCheckAfter Duration `toml:"idle_check_after,omitempty" json:"idle_check_after,omitempty"`
	// Users are further application users of this listener, each with its
	// own password and access rules (User/Password above stays unrestricted).
	Users []User `toml:"users,omitempty" json:"users,omitempty"`
	// Audit logs statements (off when absent).
	Audit *Audit `toml:"audit,omitempty" json:"audit,omitempty"`
}

// Access rule operations and actions.
const (
	OpSelect = "select"
	OpInsert = "insert"
	OpUpdate = "update"
	OpDelete = "delete"
	OpDDL    = "ddl"
	OpOther  = "other"
	OpAll    = "all"

	ActionAllow = "allow"
	ActionDeny  = "deny"
)

// User is one `[[proxy.config.users]]` application user.
type User struct {
	User string `toml:"user" json:"user"`
	// Password, PasswordFile and PasswordEnv: as the listener's.
	Password     string `toml:"password" json:"password"`
	PasswordFile string `toml:"password_file,omitempty" json:"password_file,omitempty"`
	PasswordEnv  string `toml:"password_env,omitempty" json:"password_env,omitempty"`
	passwordRead string // from PasswordFile or PasswordEnv, at load
	// ReadOnly users may only read (SELECT, SHOW, EXPLAIN).
	ReadOnly bool `toml:"read_only,omitempty" json:"read_only,omitempty"`
	// AllowedHosts are client addresses or CIDR blocks the user may log in
	// from; empty means any.
	AllowedHosts []string `toml:"allowed_hosts,omitempty" json:"allowed_hosts,omitempty"`
	// Rules allow or deny operations on databases and tables. Deny wins over
	// allow; with no allow rule everything not denied is allowed, with at
	// least one, only what an allow rule covers.
	Rules []AccessRule `toml:"rule,omitempty" json:"rule,omitempty"`
}

// AccessRule is one `[[proxy.config.users.rule]]`.
type AccessRule struct {
	Action string `toml:"action" json:"action"`
	// Databases and Tables are names or wildcard patterns (* and ?),
	// compared without regard to case; empty means "*".
	Databases []string `toml:"databases,omitempty" json:"databases,omitempty"`
	Tables    []string `toml:"tables,omitempty" json:"tables,omitempty"`
	// Operations: select, insert, update, delete, ddl, other, all (default all).
	Operations []string `toml:"operations,omitempty" json:"operations,omitempty"`
}

// Audit sinks.
const (
	AuditSinkStdout = "stdout"
	AuditSinkFile   = "file"
)

// Audit is `[proxy.config.audit]`: one JSON line per statement.
type Audit struct {
	// Sink is "stdout" or "file" (default file when Path is set, else stdout).
	Sink string `toml:"sink,omitempty" json:"sink,omitempty"`
	// Path of the log file; it is rotated when it reaches MaxSizeMB.
	Path       string `toml:"path,omitempty" json:"path,omitempty"`
	MaxSizeMB  int    `toml:"max_size_mb,omitempty" json:"max_size_mb,omitempty"` // default 100
	MaxBackups int    `toml:"max_backups,omitempty" json:"max_backups,omitempty"` // rotated files kept (default 5; 0 keeps the default)
	// QueueSize bounds the records waiting for the writer (default 8192).
	QueueSize int `toml:"queue_size,omitempty" json:"queue_size,omitempty"`
	// Lossless makes statements wait for room in the queue instead of
	// dropping records when it is full.
	Lossless bool `toml:"lossless,omitempty" json:"lossless,omitempty"`
	// SampleRate is the fraction of matching statements logged (default 1).
	SampleRate *float64 `toml:"sample_rate,omitempty" json:"sample_rate,omitempty"`
	// Filters; empty means all. Users and Tables take wildcard patterns
	// (tables as db.table); Kinds are statement kinds (select, insert, ...).
	Users  []string `toml:"users,omitempty" json:"users,omitempty"`
	Kinds  []string `toml:"kinds,omitempty" json:"kinds,omitempty"`
	Tables []string `toml:"tables,omitempty" json:"tables,omitempty"`
	// ErrorsOnly logs only statements that failed.
	ErrorsOnly bool `toml:"errors_only,omitempty" json:"errors_only,omitempty"`
}

// ServerTLS configures TLS towards clients.
type ServerTLS struct {
	// Cert and Key are PEM file paths. With AutoGenerate and no files, a
	// self-signed pair is generated at start.
	Cert         string `toml:"cert,omitempty" json:"cert,omitempty"`
	Key          string `toml:"key,omitempty" json:"key,omitempty"`
	AutoGenerate bool   `toml:"auto_generate,omitempty" json:"auto_generate,omitempty"`
	// Required rejects clients that do not switch to TLS.
	Required bool `toml:"required,omitempty" json:"required,omitempty"`
}

// SimpleLoadBalance is `[proxy.config.simple_loadbalance]`.
type SimpleLoadBalance struct {
	BalanceType string   `toml:"balance_type" json:"balance_type"`
	Nodes       []string `toml:"nodes" json:"nodes"`
}

// ReadWriteSplitting is `[proxy.config.read_write_splitting]`; accepted and
// validated here, routed by the strategy package.
type ReadWriteSplitting struct {
	Static  *RWStatic  `toml:"static,omitempty" json:"static,omitempty"`
	Dynamic *RWDynamic `toml:"dynamic,omitempty" json:"dynamic,omitempty"`
}

// RWStatic routes by rule, with a default target.
type RWStatic struct {
	DefaultTarget string   `toml:"default_target" json:"default_target"`
	Rules         []RWRule `toml:"rule,omitempty" json:"rule,omitempty"`
	// ReadAfterWriteWindow keeps a session's reads on the primary this long
	// after its last write (addition; default 1s, "0s" turns it off).
	ReadAfterWriteWindow *Duration `toml:"read_after_write_window,omitempty" json:"read_after_write_window,omitempty"`
	// ReadYourWrites = "gtid" (addition, MariaDB): after a write the session's
	// @@last_gtid is noted, and a replica read first waits for it there
	// (MASTER_GTID_WAIT, up to GTIDWaitTimeout) or goes to the primary.
	ReadYourWrites  string    `toml:"read_your_writes,omitempty" json:"read_your_writes,omitempty"`
	GTIDWaitTimeout *Duration `toml:"gtid_wait_timeout,omitempty" json:"gtid_wait_timeout,omitempty"`
}

// RWDynamic is RWStatic plus replica discovery.
type RWDynamic struct {
	DefaultTarget string      `toml:"default_target" json:"default_target"`
	Rules         []RWRule    `toml:"rule,omitempty" json:"rule,omitempty"`
	Discovery     RWDiscovery `toml:"discovery" json:"discovery"`
}

// Read/write rule types: regex matches statement texts; generic (Pisa-Proxy's,
// no regex needed) matches every statement read/write splitting may move.
const (
	RWRuleRegex   = "regex"
	RWRuleGeneric = "generic"
)

// RWRule decides where a read that may leave the primary goes. A regex
// rule sends reads matching Regex to Target. A generic rule without regex
// (Pisa-Proxy's, which names neither regex nor target) classifies by
// statement kind: it sends every movable SELECT to Target (read unless
// set) and lets other statements fall through; generic rules are tried
// after every regex rule, as Pisa-Proxy did. A generic rule with regex is
// a regex rule.
type RWRule struct {
	Name          string   `toml:"name" json:"name"`
	Type          string   `toml:"type" json:"type"`
	Regex         []string `toml:"regex" json:"regex"`
	Target        string   `toml:"target" json:"target"`
	AlgorithmName string   `toml:"algorithm_name" json:"algorithm_name"`
	// NodeGroupName names [[node_group.member]]s, which Pisa-Proxy used
	// only to route sharded statements; accepted and checked, not used
	// (data sharding is not supported yet).
	NodeGroupName []string `toml:"node_group_name,omitempty" json:"node_group_name,omitempty"`
}

// IsGenericAll reports a generic rule without regex (by statement kind).
func (r RWRule) IsGenericAll() bool { return r.Type == RWRuleGeneric && len(r.Regex) == 0 }

// RWDiscovery is the MHA monitor (Pisa-Proxy keys; periods in milliseconds).
type RWDiscovery struct {
	Type                           string `toml:"type" json:"type"`
	User                           string `toml:"user" json:"user"`
	Password                       string `toml:"password" json:"password"`
	PasswordFile                   string `toml:"password_file,omitempty" json:"password_file,omitempty"` // as a node's
	PasswordEnv                    string `toml:"password_env,omitempty" json:"password_env,omitempty"`
	passwordRead                   string // from PasswordFile or PasswordEnv, at load
	MonitorPeriod                  int    `toml:"monitor_period,omitempty" json:"monitor_period,omitempty"`
	ConnectPeriod                  int    `toml:"connect_period,omitempty" json:"connect_period,omitempty"`
	ConnectTimeout                 int    `toml:"connect_timeout,omitempty" json:"connect_timeout,omitempty"`
	ConnectFailureThreshold        int    `toml:"connect_failure_threshold,omitempty" json:"connect_failure_threshold,omitempty"`
	PingPeriod                     int    `toml:"ping_period,omitempty" json:"ping_period,omitempty"`
	PingTimeout                    int    `toml:"ping_timeout,omitempty" json:"ping_timeout,omitempty"`
	PingFailureThreshold           int    `toml:"ping_failure_threshold,omitempty" json:"ping_failure_threshold,omitempty"`
	ReplicationLagPeriod           int    `toml:"replication_lag_period,omitempty" json:"replication_lag_period,omitempty"`
	ReplicationLagTimeout          int    `toml:"replication_lag_timeout,omitempty" json:"replication_lag_timeout,omitempty"`
	ReplicationLagFailureThreshold int    `toml:"replication_lag_failure_threshold,omitempty" json:"replication_lag_failure_threshold,omitempty"`
	MaxReplicationLag              int    `toml:"max_replication_lag,omitempty" json:"max_replication_lag,omitempty"`
	ReadOnlyPeriod                 int    `toml:"read_only_period,omitempty" json:"read_only_period,omitempty"`
	ReadOnlyTimeout                int    `toml:"read_only_timeout,omitempty" json:"read_only_timeout,omitempty"`
	ReadOnlyFailureThreshold       int    `toml:"read_only_failure_threshold,omitempty" json:"read_only_failure_threshold,omitempty"`
	ReadOnlyEnabled                *bool  `toml:"read_only_enabled,omitempty" json:"read_only_enabled,omitempty"`
	ReplicationLagEnabled          *bool  `toml:"replication_lag_enabled,omitempty" json:"replication_lag_enabled,omitempty"`
}

// Plugin is `[proxy.config.plugin]`.
type Plugin struct {
	CircuitBreak       []CircuitBreak       `toml:"circuit_break,omitempty" json:"circuit_break,omitempty"`
	ConcurrencyControl []ConcurrencyControl `toml:"concurrency_control,omitempty" json:"concurrency_control,omitempty"`
	RateLimit          []RateLimit          `toml:"rate_limit,omitempty" json:"rate_limit,omitempty"`
	Fuse               *Fuse                `toml:"fuse,omitempty" json:"fuse,omitempty"`
}

// RateLimit is a token bucket for statements matching Regex (all when
// empty) and, when User is set, only that user's (addition).
type RateLimit struct {
	Regex []string `toml:"regex,omitempty" json:"regex,omitempty"`
	User  string   `toml:"user,omitempty" json:"user,omitempty"`
	// Rate is statements per second; Burst the bucket size (default: Rate, at least 1).
	Rate  float64 `toml:"rate" json:"rate"`
	Burst int     `toml:"burst,omitempty" json:"burst,omitempty"`
	// MaxWait: a statement over the limit waits up to this for a token,
	// then is rejected (default 0: rejected at once).
	MaxWait Duration `toml:"max_wait,omitempty" json:"max_wait,omitempty"`
}

// CircuitBreak rejects statements matching Regex, or (addition) whose
// fingerprint equals that of a Fingerprint sample: the statement with its
// literals removed, so `SELECT * FROM t WHERE id = 1` covers every id.
type CircuitBreak struct {
	Regex           Patterns `toml:"regex,omitempty" json:"regex,omitempty"`
	CaseInsensitive bool     `toml:"case_insensitive,omitempty" json:"case_insensitive,omitempty"`
	Fingerprint     []string `toml:"fingerprint,omitempty" json:"fingerprint,omitempty"`
}

// Fuse is an error-rate breaker per statement fingerprint (addition).
type Fuse struct {
	Errors   int      `toml:"errors,omitempty" json:"errors,omitempty"`       // failures within Window that open it (default 5)
	Window   Duration `toml:"window,omitempty" json:"window,omitempty"`       // default 10s
	CoolDown Duration `toml:"cool_down,omitempty" json:"cool_down,omitempty"` // rejected this long, then half-open (default 30s)
	Slow     Duration `toml:"slow,omitempty" json:"slow,omitempty"`           // slower statements count as failures (0: off)
}

// ConcurrencyControl bounds in-flight statements matching Regex. Duration is
// in seconds, as in Pisa-Proxy.
type ConcurrencyControl struct {
	Regex          Patterns `toml:"regex" json:"regex"`
	MaxConcurrency int      `toml:"max_concurrency" json:"max_concurrency"`
	Duration       int      `toml:"duration" json:"duration"`
}

// MySQL is `[mysql]`, holding `[[mysql.node]]`.
type MySQL struct {
	Node []Node `toml:"node" json:"node"`
}

// Node is one real backend and the credentials the proxy uses for it.
type Node struct {
	Name string `toml:"name" json:"name"`
	DB   string `toml:"db" json:"db"`
	User string `toml:"user" json:"user"`
	// Password is in clear text (the proxy logs in with it); PasswordFile
	// and PasswordEnv give it from a file (read at load and at each
	// reload; one trailing newline dropped) or an environment variable;
	// at most one of the three. ResolvedPassword is the one in effect.
	Password     string `toml:"password" json:"password"`
	PasswordFile string `toml:"password_file,omitempty" json:"password_file,omitempty"`
	PasswordEnv  string `toml:"password_env,omitempty" json:"password_env,omitempty"`
	passwordRead string // from PasswordFile or PasswordEnv, at load
	Host         string `toml:"host" json:"host"`
	Port         int    `toml:"port" json:"port"`
	Weight       int    `toml:"weight" json:"weight"`
	Role         string `toml:"role" json:"role"`

	// TLS towards this backend: one of the NodeTLS modes ("" is off).
	TLS string `toml:"tls,omitempty" json:"tls,omitempty"`
	// TLSCA is a PEM file with the CA that signed the backend's
	// certificate; without it the system's roots are used.
	TLSCA string `toml:"tls_ca,omitempty" json:"tls_ca,omitempty"`
	// ProxyProtocol: connections logged in as a client (auth passthrough)
	// open with a PROXY protocol v1 header naming the client's address, so
	// that the server sees it (its proxy_protocol_networks must include
	// the proxy's address).
	ProxyProtocol bool `toml:"proxy_protocol,omitempty" json:"proxy_protocol,omitempty"`
}

// NodeGroup is `[[node_group.member]]`: primaries with their replicas, which
// Pisa-Proxy used to route sharded statements (rule.node_group_name);
// accepted and checked, not used (data sharding is not supported yet).
type NodeGroup struct {
	Member []NodeGroupMember `toml:"member" json:"member"`
}

// NodeGroupMember pairs a primary with its replicas.
type NodeGroupMember struct {
	Name      string   `toml:"name" json:"name"`
	ReadWrite string   `toml:"readwrite" json:"readwrite"`
	Reads     []string `toml:"reads" json:"reads"`
}

// NodeByName returns the node called name, from [[mysql.node]] or
// [[shardingsphere_proxy.node]].
func (c *Config) NodeByName(name string) (Node, bool) {
	for _, n := range slices.Concat(c.MySQL.Node, c.shardingSphereNodes()) {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// BackendNodes are the nodes a listener's backend_type draws from:
// [[shardingsphere_proxy.node]] for "shardingsphere-proxy", else
// [[mysql.node]].
func (c *Config) BackendNodes(l *Listener) []Node {
	if l.BackendType == BackendShardingSphereProxy {
		return c.shardingSphereNodes()
	}
	return c.MySQL.Node
}

// Primaries are the nodes a listener sends what must go to a primary: its
// simple_loadbalance nodes; with read_write_splitting (as Pisa-Proxy, which
// then ignored simple_loadbalance) the role = "readwrite" nodes of its
// backend list, or, when none has that role, its role = "read" nodes, which
// then take the writes too (Pisa-Proxy's example-config.toml has only a
// read node).
func (c *Config) Primaries(l *Listener) []Node {
	if l.ReadWriteSplitting == nil {
		if l.SimpleLoadBalance == nil {
			return nil
		}
		out := make([]Node, 0, len(l.SimpleLoadBalance.Nodes))
		for _, name := range l.SimpleLoadBalance.Nodes {
			if n, ok := c.NodeByName(name); ok {
				out = append(out, n)
			}
		}
		return out
	}
	if p := nodesWithRole(c.BackendNodes(l), RoleReadWrite); len(p) > 0 {
		return p
	}
	return c.Replicas(l)
}

// Replicas are, with read_write_splitting, the role = "read" nodes of the
// listener's backend list; none without it.
func (c *Config) Replicas(l *Listener) []Node {
	if l.ReadWriteSplitting == nil {
		return nil
	}
	return nodesWithRole(c.BackendNodes(l), RoleRead)
}

func nodesWithRole(nodes []Node, role string) []Node {
	var out []Node
	for _, n := range nodes {
		if n.Role == role {
			out = append(out, n)
		}
	}
	return out
}

func (c *Config) shardingSphereNodes() []Node {
	if c.ShardingSphereProxy == nil {
		return nil
	}
	return c.ShardingSphereProxy.Node
}

// Addr is the node's dial address.
func (n Node) Addr() string {
	return joinHostPort(n.Host, n.Port)
}

// ResolvedPassword is the listener's password in effect: the one read
// from password_file or password_env at load when either was given, else
// password.
func (l *Listener) ResolvedPassword() string { return resolved(l.passwordRead, l.Password) }

// ResolvedPassword is the user's password in effect (see Listener's).
func (u User) ResolvedPassword() string { return resolved(u.passwordRead, u.Password) }

// ResolvedPassword is the node's password in effect (see Listener's).
func (n Node) ResolvedPassword() string { return resolved(n.passwordRead, n.Password) }

// ResolvedPassword is the monitor account's password in effect (see Listener's).
func (d RWDiscovery) ResolvedPassword() string { return resolved(d.passwordRead, d.Password) }

// resolved is the password read from a file or variable (never empty:
// empty ones are refused) when there is one, else the configured one.
func resolved(read, configured string) string {
	if read != "" {
		return read
	}
	return configured
}
