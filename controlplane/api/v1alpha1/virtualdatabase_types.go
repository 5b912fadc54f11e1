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
	// DataShard names a DataShard (sharding; accepted, not yet used).
	// +optional
	DataShard string `json:"dataShard,omitempty"`
	// QoSClaim names a QoSClaim (same namespace) for the daemon's traffic shaping.
	// +optional
	QoSClaim string `json:"qosClaim,omitempty"`
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
	// ServerVersion the proxy announces (default 5.7.37).
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9]+\.[0-9]+\.[0-9]+.*$`
	ServerVersion string `json:"serverVersion,omitempty"`
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
