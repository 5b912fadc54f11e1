package controller

import (
	"context"
	"fmt"
	"log/slog"

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

// daemonRequest is the single work item of the daemon config reconciler.
func daemonRequest() reconcile.Request {
	return reconcile.Request{NamespacedName: types.NamespacedName{Name: "daemonconfig"}}
}

// DaemonConfigReconciler serves the node daemons' configuration, built
// from every QoSClaim and the VirtualDatabase services that claim them.
type DaemonConfigReconciler struct {
	Client client.Client
	Store  *configserver.Store
	Global config.DaemonGlobal
	Log    *slog.Logger
	// Leader reports whether this replica writes statuses (nil: always).
	Leader func() bool
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
		if setReady(&c.Status.CommonStatus, cond) && leads(r.Leader) {
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
		return []reconcile.Request{daemonRequest()}
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("daemonconfig").
		WithOptions(everyReplica()).
		Watches(&v1alpha1.QoSClaim{}, all). // status updates too: see VirtualDatabaseReconciler
		Watches(&v1alpha1.VirtualDatabase{}, all, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.TrafficStrategy{}, all, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.DatabaseEndpoint{}, all, builder.WithPredicates(specOrMeta())).
		Complete(r)
}
