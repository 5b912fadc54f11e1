package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// VirtualDatabaseSpec lists the database services an application sees. The
// VirtualDatabase's name is the application's name (its Deployment,
// StatefulSet, ...), which is how a sidecar finds its configuration.
type VirtualDatabaseSpec struct {
	// Services, one proxy listener each.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	Services []Service `json:"services"`
}

// Service is one database service of the application.
// +kubebuilder:validation:XValidation:rule="!has(self.users) || !has(self.databaseMySQL) || self.users.all(u, u.user != self.databaseMySQL.user)",message="users[].user must differ from databaseMySQL.user"
type Service struct {
	// Name of the service; the proxy listener's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`
	Name string `json:"name"`
	// DatabaseMySQL is what the application sees: the address the proxy
	// listens on and the credentials the application logs in with.
	DatabaseMySQL *DatabaseMySQL `json:"databaseMySQL"`
	// TrafficStrategy names the TrafficStrategy (same namespace) that picks
	// the backends and says how statements reach them.
	// +kubebuilder:validation:MinLength=1
	TrafficStrategy string `json:"trafficStrategy"`
	// DataShard names a DataShard: Pisanix's data sharding, which is not
	// supported yet. Accepted so that Pisanix manifests apply; the
	// VirtualDatabase's DataShard condition is then false (NotSupported)
	// and the service is served without sharding.
	// +optional
	DataShard string `json:"dataShard,omitempty"`
	// QoSClaim names a QoSClaim (same namespace) for the daemon's traffic shaping.
	// +optional
	QoSClaim string `json:"qosClaim,omitempty"`
	// Users are further application users of this service, each with its
	// own password and access rules; the user of databaseMySQL stays
	// unrestricted. The proxy's `[[proxy.config.users]]`.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=user
	Users []ServiceUser `json:"users,omitempty"`
	// Audit logs the service's statements, one JSON line each; off when
	// absent. The proxy's `[proxy.config.audit]`.
	// +optional
	Audit *Audit `json:"audit,omitempty"`
}

// ServiceUser is one further application user of a service.
// +kubebuilder:validation:XValidation:rule="!(has(self.password) && has(self.passwordSecretRef))",message="set password or passwordSecretRef, not both"
type ServiceUser struct {
	// User name the application logs in with; unique in the service and
	// different from databaseMySQL.user.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=80
	User string `json:"user"`
	// Password (inline).
	// +optional
	Password string `json:"password,omitempty"`
	// PasswordSecretRef takes the password from a Secret instead.
	// +optional
	PasswordSecretRef *SecretKeyRef `json:"passwordSecretRef,omitempty"`
	// ReadOnly users may only read (SELECT, SHOW, EXPLAIN).
	// +optional
	ReadOnly bool `json:"readOnly,omitempty"`
	// AllowedHosts are the client IP addresses or CIDR blocks the user may
	// log in from; empty means any.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:items:Pattern=`^[0-9A-Fa-f.:]+(/[0-9]{1,3})?$`
	AllowedHosts []string `json:"allowedHosts,omitempty"`
	// Rules allow or deny operations on databases and tables. Deny wins;
	// with no allow rule everything not denied is allowed, with at least
	// one only what an allow rule covers.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Rules []AccessRule `json:"rules,omitempty"`
}

// AccessAction is what an access rule does.
// +kubebuilder:validation:Enum=allow;deny
type AccessAction string

// Access rule actions.
const (
	AccessAllow AccessAction = "allow"
	AccessDeny  AccessAction = "deny"
)

// AccessOperation is an operation an access rule covers.
// +kubebuilder:validation:Enum=select;insert;update;delete;ddl;other;all
type AccessOperation string

// AccessRule is one rule of a user.
type AccessRule struct {
	// Action: allow or deny.
	Action AccessAction `json:"action"`
	// Databases are names or wildcard patterns (* and ?, case-insensitive);
	// empty means all.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=128
	Databases []string `json:"databases,omitempty"`
	// Tables are names or wildcard patterns like databases; empty means all.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=128
	Tables []string `json:"tables,omitempty"`
	// Operations: select, insert, update, delete, ddl, other, all; empty
	// means all.
	// +optional
	// +kubebuilder:validation:MaxItems=7
	Operations []AccessOperation `json:"operations,omitempty"`
}

// AuditSink is where audit records go.
// +kubebuilder:validation:Enum=stdout;file
type AuditSink string

// Audit sinks.
const (
	AuditStdout AuditSink = "stdout"
	AuditFile   AuditSink = "file"
)

// AuditKind is a statement kind an audit filter names.
// +kubebuilder:validation:Enum=other;select;insert;update;delete;replace;ddl;begin;commit;rollback;set;use;show;prepare;execute;call;load;kill
type AuditKind string

// Audit is a service's audit log.
// +kubebuilder:validation:XValidation:rule="!has(self.sink) || self.sink != 'file' || has(self.path)",message="path is required when sink is file"
type Audit struct {
	// Sink: stdout or file; default file when path is set, else stdout.
	// The injected sidecar's root filesystem is read-only: a file needs a
	// writable volume mounted into the pisa-proxy container.
	// +optional
	Sink AuditSink `json:"sink,omitempty"`
	// Path of the log file inside the proxy's container.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Path string `json:"path,omitempty"`
	// MaxSizeMB: the file is rotated at this size (default 100).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1048576
	MaxSizeMB int32 `json:"maxSizeMB,omitempty"`
	// MaxBackups is the number of rotated files kept (default 5; 0 keeps the default).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	MaxBackups int32 `json:"maxBackups,omitempty"`
	// QueueSize bounds the records waiting for the writer (default 8192).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1048576
	QueueSize int32 `json:"queueSize,omitempty"`
	// Lossless makes statements wait for room in the queue instead of
	// dropping records when it is full.
	// +optional
	Lossless bool `json:"lossless,omitempty"`
	// SampleRate is the fraction of matching statements logged, a decimal
	// string in (0, 1] such as "0.5" or "0.001" (quote it in YAML); default "1".
	// +optional
	// +kubebuilder:validation:MaxLength=20
	// +kubebuilder:validation:Pattern=`^(0?\.0*[1-9][0-9]*|1(\.0*)?)$`
	SampleRate string `json:"sampleRate,omitempty"`
	// Users filters by user name patterns (* and ?); empty means all.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=80
	Users []string `json:"users,omitempty"`
	// Kinds filters by statement kind; empty means all.
	// +optional
	// +kubebuilder:validation:MaxItems=18
	Kinds []AuditKind `json:"kinds,omitempty"`
	// Tables filters by db.table patterns (* and ?); empty means all.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=257
	Tables []string `json:"tables,omitempty"`
	// ErrorsOnly logs only statements that failed.
	// +optional
	ErrorsOnly bool `json:"errorsOnly,omitempty"`
}

// DatabaseMySQL is the frontend of one service.
// +kubebuilder:validation:XValidation:rule="!(has(self.password) && has(self.passwordSecretRef))",message="set password or passwordSecretRef, not both"
type DatabaseMySQL struct {
	// Host the proxy listens on; default 0.0.0.0.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9.:_-]*$`
	Host string `json:"host,omitempty"`
	// Port the proxy listens on; default 3306.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`
	// User the application logs in with.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=80
	User string `json:"user"`
	// Password the application logs in with (inline).
	// +optional
	Password string `json:"password,omitempty"`
	// PasswordSecretRef takes the password from a Secret instead.
	// +optional
	PasswordSecretRef *SecretKeyRef `json:"passwordSecretRef,omitempty"`
	// DB is the default schema.
	// +optional
	DB string `json:"db,omitempty"`
	// PoolSize is the backend pool size per node (1..255, default 64).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=255
	PoolSize int32 `json:"poolSize,omitempty"`
	// ServerVersion the proxy announces (default: the backend's own).
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9]+\.[0-9]+\.[0-9]+.*$`
	ServerVersion string `json:"serverVersion,omitempty"`
	// Multiplex: between statements outside a transaction a client session
	// holds no backend connection, so many clients share a few (the
	// listener's multiplex key; see the README's multiplexing section).
	// +optional
	Multiplex bool `json:"multiplex,omitempty"`
	// MaxConnections bounds concurrent client sessions (default 4096);
	// more get error 1040.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	MaxConnections int32 `json:"maxConnections,omitempty"`
}

// VirtualDatabaseStatus reports whether the configuration is served.
type VirtualDatabaseStatus struct {
	CommonStatus `json:",inline"`
	// Endpoints is the number of backends in the served configuration.
	// +optional
	Endpoints int32 `json:"endpoints,omitempty"`
	// ConfigVersion is the version of the served proxy configuration.
	// +optional
	ConfigVersion string `json:"configVersion,omitempty"`
}

// VirtualDatabase is an application's view of its databases.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=vdb,categories=pisanix
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Endpoints",type=integer,JSONPath=`.status.endpoints`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type VirtualDatabase struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   VirtualDatabaseSpec   `json:"spec"`
	Status VirtualDatabaseStatus `json:"status,omitempty"`
}

// VirtualDatabaseList is a list of VirtualDatabases.
//
// +kubebuilder:object:root=true
type VirtualDatabaseList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VirtualDatabase `json:"items"`
}
