// Package controller holds the reconcilers: VirtualDatabases (with their
// TrafficStrategies, DatabaseEndpoints and Secrets) become served proxy
// configurations, QoSClaims become the served daemon configuration, and every
// kind gets a status with a Ready condition.
package controller

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/controlplane/api/v1alpha1"
	"pisanix.io/pisanix/controlplane/configserver"
)

// RBAC of the reconcilers (deploy/rbac is generated from these markers).
// Secrets: get only, for passwordSecretRef (read uncached, so no list/watch).
//
// +kubebuilder:rbac:groups=core.database-mesh.io,resources=virtualdatabases;trafficstrategies;databaseendpoints;qosclaims,verbs=get;list;watch
// +kubebuilder:rbac:groups=core.database-mesh.io,resources=virtualdatabases/status;trafficstrategies/status;databaseendpoints/status;qosclaims/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations,verbs=get;patch,resourceNames=pisa-controller
// +kubebuilder:rbac:groups="",namespace=pisa-system,resources=secrets,verbs=create;update
// +kubebuilder:rbac:groups="",namespace=pisa-system,resources=configmaps,verbs=get;create;update
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=pisa-system,resources=leases,verbs=get;create;update

// NewScheme returns a scheme with the Kubernetes built-in types and ours.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("scheme: %w", err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("scheme: %w", err)
	}
	return s, nil
}

// Options configure the reconcilers.
type Options struct {
	Store *configserver.Store
	Log   *slog.Logger
	// DaemonGlobal is the node-wide part of the served daemon configuration.
	DaemonGlobal config.DaemonGlobal
	// SecretRetry is how soon a configuration waiting for a missing Secret
	// is retried (Secrets are not watched); default DefaultSecretRetry.
	SecretRetry time.Duration
}

// Setup registers every reconciler with mgr.
func Setup(mgr ctrl.Manager, o Options) error {
	elected := mgr.Elected()
	leader := func() bool {
		select {
		case <-elected:
			return true
		default:
			return false
		}
	}
	vdb := &VirtualDatabaseReconciler{Client: mgr.GetClient(), Secrets: mgr.GetAPIReader(), Store: o.Store, SecretRetry: o.SecretRetry, Leader: leader, Log: o.Log.With("controller", "virtualdatabase")}
	if err := vdb.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setup virtualdatabase controller: %w", err)
	}
	ts := &TrafficStrategyReconciler{Client: mgr.GetClient(), Log: o.Log.With("controller", "trafficstrategy")}
	if err := ts.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setup trafficstrategy controller: %w", err)
	}
	ep := &DatabaseEndpointReconciler{Client: mgr.GetClient(), Log: o.Log.With("controller", "databaseendpoint")}
	if err := ep.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setup databaseendpoint controller: %w", err)
	}
	d := &DaemonConfigReconciler{Client: mgr.GetClient(), Store: o.Store, Global: o.DaemonGlobal, Leader: leader, Log: o.Log.With("controller", "daemonconfig")}
	if err := d.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setup daemonconfig controller: %w", err)
	}
	return nil
}

// VirtualDatabasePorts returns the MySQL ports app's VirtualDatabase listens
// on, for the webhook to declare on the sidecar (nil when unknown).
func VirtualDatabasePorts(c client.Reader) func(ctx context.Context, ns, app string) []int32 {
	return func(ctx context.Context, ns, app string) []int32 {
		vdb := &v1alpha1.VirtualDatabase{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: app}, vdb); err != nil {
			return nil
		}
		var ports []int32
		for _, s := range vdb.Spec.Services {
			p := int32(3306)
			if s.DatabaseMySQL != nil && s.DatabaseMySQL.Port != 0 {
				p = s.DatabaseMySQL.Port
			}
			if !contains(ports, p) {
				ports = append(ports, p)
			}
		}
		return ports
	}
}

func contains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
