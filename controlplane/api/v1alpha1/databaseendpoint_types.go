package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DatabaseEndpointSpec is one real backend. Its role comes from the
// annotation database-mesh.io/role (read | readwrite, default readwrite).
type DatabaseEndpointSpec struct {
	Database Database `json:"database"`
}

// Database holds the backend by kind; only MySQL exists.
type Database struct {
	MySQL *MySQLEndpoint `json:"MySQL"`
}

// MySQLEndpoint is the backend's address and the credentials the proxy uses.
// +kubebuilder:validation:XValidation:rule="!(has(self.password) && has(self.passwordSecretRef))",message="set password or passwordSecretRef, not both"
type MySQLEndpoint struct {
	// Host name or IP address of the backend.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9.:_-]+$`
	Host string `json:"host"`
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=80
	User string `json:"user"`
	// Password, inline.
	// +optional
	Password string `json:"password,omitempty"`
	// PasswordSecretRef takes the password from a Secret instead.
	// +optional
	PasswordSecretRef *SecretKeyRef `json:"passwordSecretRef,omitempty"`
	// DB is the default schema on the backend.
	// +optional
	DB string `json:"db,omitempty"`
}

// DatabaseEndpointStatus reports the endpoint's role as read from its annotation.
type DatabaseEndpointStatus struct {
	CommonStatus `json:",inline"`
	// Role as understood by the controller: read or readwrite.
	// +optional
	Role string `json:"role,omitempty"`
}

// DatabaseEndpoint is one real database backend.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=dbep,categories=pisanix
// +kubebuilder:printcolumn:name="Host",type=string,JSONPath=`.spec.database.MySQL.host`
// +kubebuilder:printcolumn:name="Port",type=integer,JSONPath=`.spec.database.MySQL.port`
// +kubebuilder:printcolumn:name="Role",type=string,JSONPath=`.status.role`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type DatabaseEndpoint struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   DatabaseEndpointSpec   `json:"spec"`
	Status DatabaseEndpointStatus `json:"status,omitempty"`
}

// DatabaseEndpointList is a list of DatabaseEndpoints.
//
// +kubebuilder:object:root=true
type DatabaseEndpointList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DatabaseEndpoint `json:"items"`
}
