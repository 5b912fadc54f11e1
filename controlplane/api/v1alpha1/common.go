package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func metav1AddToGroupVersion(s *runtime.Scheme) { metav1.AddToGroupVersion(s, GroupVersion) }

// Condition types and reasons written to the status of every kind.
const (
	// ConditionReady is true when the object was translated into served
	// configuration without problems.
	ConditionReady = "Ready"
	// ConditionQoSClaimed, on a VirtualDatabase whose services name
	// QoSClaims, is true when every named claim exists.
	ConditionQoSClaimed = "QoSClaimed"
	// ConditionDataShard, on a VirtualDatabase whose services name a
	// DataShard (Pisanix's data sharding), is false with reason
	// NotSupported: data sharding is not supported yet, and the services
	// are served without it.
	ConditionDataShard = "DataShard"

	ReasonReady              = "Ready"
	ReasonStrategyMissing    = "StrategyMissing"
	ReasonNoEndpointSelected = "NoEndpointSelected"
	ReasonSecretMissing      = "SecretMissing"
	ReasonSecretNotAllowed   = "SecretNotAllowed"
	ReasonInvalidSelector    = "InvalidSelector"
	ReasonInvalidRole        = "InvalidRole"
	ReasonInvalidConfig      = "InvalidConfig"
	ReasonQoSClaimMissing    = "QoSClaimMissing"
	ReasonNotSupported       = "NotSupported"
)

// RoleAnnotation on a DatabaseEndpoint sets its role: read or readwrite (default).
const RoleAnnotation = "database-mesh.io/role"

// Endpoint roles.
const (
	RoleRead      = "read"
	RoleReadWrite = "readwrite"
)

// SecretKeyRef names one key of a Secret in the object's namespace.
type SecretKeyRef struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Key inside the Secret; defaults to "password".
	// +optional
	// +kubebuilder:default=password
	Key string `json:"key,omitempty"`
}

// CommonStatus is shared by the status of every kind.
type CommonStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, with a reason when it is false.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}
