package controller

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"pisanix.io/pisanix/config"
	"pisanix.io/pisanix/controlplane/api/v1alpha1"
	"pisanix.io/pisanix/controlplane/configserver"
	"pisanix.io/pisanix/controlplane/translate"
)

var specOrMeta = predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{})

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
	return ctrl.NewControllerManagedBy(mgr).
		Named("trafficstrategy").
		For(&v1alpha1.TrafficStrategy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.DatabaseEndpoint{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			var list v1alpha1.TrafficStrategyList
			if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
				r.Log.Error("list trafficstrategies", "namespace", o.GetNamespace(), "err", err)
				return nil
			}
			reqs := make([]reconcile.Request, 0, len(list.Items))
			for _, ts := range list.Items {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&ts)})
			}
			return reqs
		}), builder.WithPredicates(specOrMeta)).
		Complete(r)
}

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
	return ctrl.NewControllerManagedBy(mgr).
		Named("databaseendpoint").
		For(&v1alpha1.DatabaseEndpoint{}, builder.WithPredicates(specOrMeta)).
		Complete(r)
}

// daemonRequest is the single work item of the daemon config reconciler.
var daemonRequest = reconcile.Request{NamespacedName: types.NamespacedName{Name: "daemonconfig"}}

// DaemonConfigReconciler serves the node daemons' configuration, built
// from every QoSClaim and the VirtualDatabase services that claim them.
type DaemonConfigReconciler struct {
	Client client.Client
	Store  *configserver.Store
	Global config.DaemonGlobal
	Log    *slog.Logger
}

// Reconcile rebuilds the whole daemon configuration.
func (r *DaemonConfigReconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	namespaces := map[string]*translate.Namespace{}
	nsOf := func(name string) *translate.Namespace {
		n := namespaces[name]
		if n == nil {
			n = &translate.Namespace{Strategies: map[string]*v1alpha1.TrafficStrategy{}, Claims: map[string]*v1alpha1.QoSClaim{}}
			namespaces[name] = n
		}
		return n
	}
	var claims v1alpha1.QoSClaimList
	if err := r.Client.List(ctx, &claims); err != nil {
		return reconcile.Result{}, fmt.Errorf("list qosclaims: %w", err)
	}
	for i := range claims.Items {
		c := &claims.Items[i]
		nsOf(c.Namespace).Claims[c.Name] = c
	}
	var vdbs v1alpha1.VirtualDatabaseList
	if err := r.Client.List(ctx, &vdbs); err != nil {
		return reconcile.Result{}, fmt.Errorf("list virtualdatabases: %w", err)
	}
	for _, v := range vdbs.Items {
		nsOf(v.Namespace).VirtualDatabases = append(nsOf(v.Namespace).VirtualDatabases, v)
	}
	var tss v1alpha1.TrafficStrategyList
	if err := r.Client.List(ctx, &tss); err != nil {
		return reconcile.Result{}, fmt.Errorf("list trafficstrategies: %w", err)
	}
	for i := range tss.Items {
		nsOf(tss.Items[i].Namespace).Strategies[tss.Items[i].Name] = &tss.Items[i]
	}
	var eps v1alpha1.DatabaseEndpointList
	if err := r.Client.List(ctx, &eps); err != nil {
		return reconcile.Result{}, fmt.Errorf("list databaseendpoints: %w", err)
	}
	for _, ep := range eps.Items {
		nsOf(ep.Namespace).Endpoints = append(nsOf(ep.Namespace).Endpoints, ep)
	}
	cfg, uses := translate.DaemonConfig(r.Global, namespaces)
	if err := cfg.Validate(); err != nil {
		// Cannot happen for claims that passed their checks; keep serving the last one.
		return reconcile.Result{}, fmt.Errorf("daemon config invalid: %w", err)
	}
	v, err := r.Store.SetDaemon(cfg)
	if err != nil {
		return reconcile.Result{}, err
	}
	r.Log.Debug("daemon config served", "version", v, "apps", len(cfg.App))
	var errs []error
	for i := range claims.Items {
		c := &claims.Items[i]
		use := uses[c.Namespace+"/"+c.Name]
		base := c.DeepCopy()
		cond := readyCondition(c.Generation, v1alpha1.ReasonReady, use.String())
		if use.Problem != nil {
			cond = readyCondition(c.Generation, use.Problem.Reason, use.Problem.Message)
		}
		if setReady(&c.Status.CommonStatus, cond) {
			if err := patchStatus(ctx, r.Client, c, base); err != nil && !apierrors.IsConflict(err) {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return reconcile.Result{}, errs[0]
	}
	return reconcile.Result{}, nil
}

// SetupWithManager funnels every relevant change into one work item.
func (r *DaemonConfigReconciler) SetupWithManager(mgr ctrl.Manager) error {
	all := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{daemonRequest}
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("daemonconfig").
		Watches(&v1alpha1.QoSClaim{}, all, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.VirtualDatabase{}, all, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.TrafficStrategy{}, all, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.DatabaseEndpoint{}, all, builder.WithPredicates(specOrMeta)).
		Complete(r)
}
