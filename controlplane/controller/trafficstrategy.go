package controller

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"pisanix.io/pisanix/controlplane/api/v1alpha1"
	"pisanix.io/pisanix/controlplane/translate"
)

// specOrMeta passes changes of the spec, labels or annotations (not of the status).
func specOrMeta() predicate.Predicate {
	return predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{})
}

// TrafficStrategyReconciler reports how many endpoints a strategy selects.
type TrafficStrategyReconciler struct {
	Client client.Client
	Log    *slog.Logger
}

// Reconcile updates one TrafficStrategy's status.
func (r *TrafficStrategyReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	ts := &v1alpha1.TrafficStrategy{}
	if err := r.Client.Get(ctx, req.NamespacedName, ts); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	var eps v1alpha1.DatabaseEndpointList
	if err := r.Client.List(ctx, &eps, client.InNamespace(ts.Namespace)); err != nil {
		return reconcile.Result{}, fmt.Errorf("list databaseendpoints in %s: %w", ts.Namespace, err)
	}
	base := ts.DeepCopy()
	selected, err := translate.SelectEndpoints(ts, eps.Items)
	var cond = readyCondition(ts.Generation, v1alpha1.ReasonReady, fmt.Sprintf("selects %d endpoint(s)", len(selected)))
	switch {
	case err != nil:
		cond = readyCondition(ts.Generation, v1alpha1.ReasonInvalidSelector, err.Error())
	case len(selected) == 0:
		cond = readyCondition(ts.Generation, v1alpha1.ReasonNoEndpointSelected, "the selector picks no DatabaseEndpoint in namespace "+ts.Namespace)
	default:
		names := make([]string, len(selected))
		for i := range selected {
			names[i] = selected[i].Name
		}
		cond.Message = "selects " + strings.Join(names, ", ")
	}
	ts.Status.Endpoints = int32(len(selected))
	setReady(&ts.Status.CommonStatus, cond)
	return reconcile.Result{}, patchStatus(ctx, r.Client, ts, base)
}

// SetupWithManager watches strategies and the endpoints they may select.
func (r *TrafficStrategyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	// For() takes every event, status updates included: a status written
	// from a stale cache is re-checked once the cache has caught up (the
	// extra reconcile finds nothing to change and writes nothing).
	return ctrl.NewControllerManagedBy(mgr).
		Named("trafficstrategy").
		For(&v1alpha1.TrafficStrategy{}).
		Watches(&v1alpha1.DatabaseEndpoint{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return everyInNamespace(ctx, r.Client, r.Log, &v1alpha1.TrafficStrategyList{}, o.GetNamespace())
		}), builder.WithPredicates(specOrMeta())).
		Complete(r)
}
