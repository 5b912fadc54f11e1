package controller

import (
	"context"
	"log/slog"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"pisanix.io/pisanix/controlplane/api/v1alpha1"
	"pisanix.io/pisanix/controlplane/translate"
)

// DatabaseEndpointReconciler reports an endpoint's role.
type DatabaseEndpointReconciler struct {
	Client client.Client
	Log    *slog.Logger
}

// Reconcile updates one DatabaseEndpoint's status.
func (r *DatabaseEndpointReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	ep := &v1alpha1.DatabaseEndpoint{}
	if err := r.Client.Get(ctx, req.NamespacedName, ep); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	base := ep.DeepCopy()
	role, err := translate.EndpointRole(ep)
	cond := readyCondition(ep.Generation, v1alpha1.ReasonReady, "role "+role)
	if err != nil {
		cond = readyCondition(ep.Generation, v1alpha1.ReasonInvalidRole, err.Error())
	}
	ep.Status.Role = role
	setReady(&ep.Status.CommonStatus, cond)
	return reconcile.Result{}, patchStatus(ctx, r.Client, ep, base)
}

// SetupWithManager watches endpoints.
func (r *DatabaseEndpointReconciler) SetupWithManager(mgr ctrl.Manager) error {
	// For() takes every event, status updates included: a status written
	// from a stale cache is re-checked once the cache has caught up (the
	// extra reconcile finds nothing to change and writes nothing).
	return ctrl.NewControllerManagedBy(mgr).
		Named("databaseendpoint").
		For(&v1alpha1.DatabaseEndpoint{}).
		Complete(r)
}
