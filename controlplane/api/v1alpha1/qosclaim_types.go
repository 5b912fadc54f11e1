package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// QoSClaimSpec claims bandwidth for an application's database traffic.
type QoSClaimSpec struct {
	TrafficQoS TrafficQoS `json:"trafficQoS"`
}

// TrafficQoS is one shaping class.
type TrafficQoS struct {
	// Name of the class.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// QoSGroup is the HTB class (snake_case key as in Pisanix).
	QoSGroup QoSGroup `json:"qos_group"`
}

// Rate is a tc rate: a number and a unit, "mbit" = megabits/s, "mbps" = megabytes/s.
// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?([kKmMgGtT]i?)?([bB]it|[bB]ps)$`
type Rate string

// QoSGroup is an HTB rate and ceiling.
type QoSGroup struct {
	// Rate guaranteed, e.g. "10mbit".
	Rate Rate `json:"rate"`
	// Ceil the class may borrow up to; default the rate.
	// +optional
	Ceil Rate `json:"ceil,omitempty"`
}

// QoSClaimStatus reports whether the claim is in the daemon configuration.
type QoSClaimStatus struct {
	CommonStatus `json:",inline"`
}

// QoSClaim asks the node daemon to shape an application's database traffic.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=qc,categories=pisanix
// +kubebuilder:printcolumn:name="Rate",type=string,JSONPath=`.spec.trafficQoS.qos_group.rate`
// +kubebuilder:printcolumn:name="Ceil",type=string,JSONPath=`.spec.trafficQoS.qos_group.ceil`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type QoSClaim struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   QoSClaimSpec   `json:"spec"`
	Status QoSClaimStatus `json:"status,omitempty"`
}

// QoSClaimList is a list of QoSClaims.
//
// +kubebuilder:object:root=true
type QoSClaimList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []QoSClaim `json:"items"`
}
