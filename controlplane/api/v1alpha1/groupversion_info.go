// Package v1alpha1 holds the Pisanix CRD types, group core.database-mesh.io,
// version v1alpha1: VirtualDatabase, TrafficStrategy, DatabaseEndpoint and
// QoSClaim. The field names are those of the original Pisanix CRDs so its
// manifests apply unchanged.
//
// +kubebuilder:object:generate=true
// +groupName=core.database-mesh.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API group and version of every type here.
var GroupVersion = schema.GroupVersion{Group: "core.database-mesh.io", Version: "v1alpha1"}

// AddToScheme registers the types of this package in a scheme.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&VirtualDatabase{}, &VirtualDatabaseList{},
		&TrafficStrategy{}, &TrafficStrategyList{},
		&DatabaseEndpoint{}, &DatabaseEndpointList{},
		&QoSClaim{}, &QoSClaimList{},
	)
	metav1AddToGroupVersion(s)
	return nil
}
