package controller

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"pisanix.io/pisanix/controlplane/api/v1alpha1"
	"pisanix.io/pisanix/controlplane/configserver"
	"pisanix.io/pisanix/controlplane/translate"
)

// SecretResync is how often a configuration that reads Secrets is rebuilt,
// so a rotated password is picked up (Secrets are read, not watched, to keep
// the controller's RBAC to "get").
const SecretResync = 2 * time.Minute

// DefaultSecretRetry is how soon a configuration waiting for a missing
// Secret is rebuilt.
const DefaultSecretRetry = 10 * time.Second

// VirtualDatabaseReconciler serves one proxy configuration per VirtualDatabase.
type VirtualDatabaseReconciler struct {
	Client  client.Client
	Secrets client.Reader // uncached; needs only "get" on Secrets
	Store   *configserver.Store
	Log     *slog.Logger
	// SecretRetry: see Options.SecretRetry.
	SecretRetry time.Duration
	// Leader reports whether this replica writes statuses (nil: always).
	Leader func() bool
}

// Reconcile rebuilds the configuration of one VirtualDatabase.
func (r *VirtualDatabaseReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	key := configserver.Key{Namespace: req.Namespace, App: req.Name}
	vdb := &v1alpha1.VirtualDatabase{}
	if err := r.Client.Get(ctx, req.NamespacedName, vdb); err != nil {
		if apierrors.IsNotFound(err) {
			r.Store.DeleteProxy(key)
			r.Log.Info("virtual database gone; config withdrawn", "app", key.String())
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("get virtualdatabase %s: %w", req, err)
	}
	// A Secret that cannot be read for another reason than not existing
	// (API unavailable, forbidden) is retried with backoff; the served
	// config and the status stay as they are.
	var secretErr error
	in, err := r.inputs(ctx, vdb, func(err error) { secretErr = err })
	if err != nil {
		return reconcile.Result{}, err
	}
	base := vdb.DeepCopy()
	out, prob := translate.ProxyConfig(in)
	if secretErr != nil {
		return reconcile.Result{}, fmt.Errorf("virtualdatabase %s: %w", req, secretErr)
	}
	var res reconcile.Result
	var cond = readyCondition(vdb.Generation, v1alpha1.ReasonReady, "configuration served")
	if prob != nil {
		r.Store.SetProxyNotReady(key, prob.Reason, prob.Message)
		cond = readyCondition(vdb.Generation, prob.Reason, prob.Message)
		vdb.Status.Endpoints, vdb.Status.ConfigVersion = 0, ""
		r.Log.Info("virtual database not ready", "app", key.String(), "reason", prob.Reason, "message", prob.Message)
		if prob.Reason == v1alpha1.ReasonSecretMissing || prob.Reason == v1alpha1.ReasonSecretNotAllowed {
			res.RequeueAfter = r.SecretRetry
			if res.RequeueAfter <= 0 {
				res.RequeueAfter = DefaultSecretRetry
			}
		}
	} else {
		v, err := r.Store.SetProxy(key, out.Config)
		if err != nil {
			return reconcile.Result{}, err
		}
		if v != vdb.Status.ConfigVersion {
			r.Log.Info("proxy config served", "app", key.String(), "version", v, "endpoints", out.Endpoints)
		}
		vdb.Status.Endpoints, vdb.Status.ConfigVersion = int32(out.Endpoints), v
	}
	if len(translate.SecretNames(in)) > 0 && res.RequeueAfter == 0 {
		res.RequeueAfter = SecretResync
	}
	setReady(&vdb.Status.CommonStatus, cond)
	if err := r.qosCondition(ctx, vdb); err != nil {
		return reconcile.Result{}, err
	}
	dataShardCondition(vdb)
	if leads(r.Leader) {
		if err := patchStatus(ctx, r.Client, vdb, base); err != nil {
			return reconcile.Result{}, err
		}
	}
	return res, nil
}

// qosCondition sets QoSClaimed when a service names a QoSClaim, and removes
// it when none does.
func (r *VirtualDatabaseReconciler) qosCondition(ctx context.Context, vdb *v1alpha1.VirtualDatabase) error {
	var named, missing []string
	for _, svc := range vdb.Spec.Services {
		if svc.QoSClaim == "" || slices.Contains(named, svc.QoSClaim) {
			continue
		}
		named = append(named, svc.QoSClaim)
		err := r.Client.Get(ctx, types.NamespacedName{Namespace: vdb.Namespace, Name: svc.QoSClaim}, &v1alpha1.QoSClaim{})
		switch {
		case apierrors.IsNotFound(err):
			missing = append(missing, svc.QoSClaim)
		case err != nil:
			return fmt.Errorf("get qosclaim %s/%s: %w", vdb.Namespace, svc.QoSClaim, err)
		}
	}
	if len(named) == 0 {
		meta.RemoveStatusCondition(&vdb.Status.Conditions, v1alpha1.ConditionQoSClaimed)
		return nil
	}
	c := metav1.Condition{Type: v1alpha1.ConditionQoSClaimed, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonReady,
		Message: "claims " + strings.Join(named, ", "), ObservedGeneration: vdb.Generation}
	if len(missing) > 0 {
		c.Status, c.Reason = metav1.ConditionFalse, v1alpha1.ReasonQoSClaimMissing
		c.Message = "QoSClaim not found: " + strings.Join(missing, ", ")
	}
	meta.SetStatusCondition(&vdb.Status.Conditions, c)
	return nil
}

// dataShardCondition says, when a service names a DataShard, that data
// sharding is not supported yet (the services are served without it), and
// removes the condition when none does.
func dataShardCondition(vdb *v1alpha1.VirtualDatabase) {
	var named []string
	for i, svc := range vdb.Spec.Services {
		if svc.DataShard != "" {
			named = append(named, fmt.Sprintf("spec.services[%d] (%s).dataShard %q", i, svc.Name, svc.DataShard))
		}
	}
	if len(named) == 0 {
		meta.RemoveStatusCondition(&vdb.Status.Conditions, v1alpha1.ConditionDataShard)
		return
	}
	meta.SetStatusCondition(&vdb.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionDataShard, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonNotSupported, ObservedGeneration: vdb.Generation,
		Message: strings.Join(named, ", ") + ": data sharding is not supported yet; served without sharding",
	})
}

// inputs gathers the strategies and endpoints of the VirtualDatabase's
// namespace, and a Secret lookup. Secret read errors other than "not found" are also passed to transient.
func (r *VirtualDatabaseReconciler) inputs(ctx context.Context, vdb *v1alpha1.VirtualDatabase, transient func(error)) (translate.ProxyInput, error) {
	in := translate.ProxyInput{VirtualDatabase: vdb, Strategies: map[string]*v1alpha1.TrafficStrategy{}}
	var tss v1alpha1.TrafficStrategyList
	if err := r.Client.List(ctx, &tss, client.InNamespace(vdb.Namespace)); err != nil {
		return in, fmt.Errorf("list trafficstrategies in %s: %w", vdb.Namespace, err)
	}
	for i := range tss.Items {
		in.Strategies[tss.Items[i].Name] = &tss.Items[i]
	}
	var eps v1alpha1.DatabaseEndpointList
	if err := r.Client.List(ctx, &eps, client.InNamespace(vdb.Namespace)); err != nil {
		return in, fmt.Errorf("list databaseendpoints in %s: %w", vdb.Namespace, err)
	}
	in.Endpoints = eps.Items
	in.Secrets = func(name, key string) (string, error) {
		sec := &corev1.Secret{}
		if err := r.Secrets.Get(ctx, types.NamespacedName{Namespace: vdb.Namespace, Name: name}, sec); err != nil {
			if apierrors.IsNotFound(err) {
				return "", fmt.Errorf("secret %s/%s: %w", vdb.Namespace, name, translate.ErrSecretNotFound)
			}
			err = fmt.Errorf("secret %s/%s: %w", vdb.Namespace, name, err)
			transient(err)
			return "", err
		}
		if sec.Labels[translate.SecretOptInLabel] != "true" {
			return "", fmt.Errorf("secret %s/%s is not labelled %s=true, which a Secret must carry to be read into a configuration: %w",
				vdb.Namespace, name, translate.SecretOptInLabel, translate.ErrSecretNotAllowed)
		}
		v, ok := sec.Data[key]
		if !ok {
			return "", fmt.Errorf("secret %s/%s has no key %q: %w", vdb.Namespace, name, key, translate.ErrSecretNotFound)
		}
		return string(v), nil
	}
	return in, nil
}

// SetupWithManager watches VirtualDatabases and everything their
// configuration depends on.
func (r *VirtualDatabaseReconciler) SetupWithManager(mgr ctrl.Manager) error {

	// For() takes every event, status updates included: a status written
	// from a stale cache is re-checked once the cache has caught up (the
	// extra reconcile finds nothing to change and writes nothing).
	return ctrl.NewControllerManagedBy(mgr).
		Named("virtualdatabase").
		WithOptions(everyReplica()).
		For(&v1alpha1.VirtualDatabase{}).
		Watches(&v1alpha1.TrafficStrategy{}, handler.EnqueueRequestsFromMapFunc(r.forStrategy), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.DatabaseEndpoint{}, handler.EnqueueRequestsFromMapFunc(r.inNamespace), builder.WithPredicates(specOrMeta())).
		Watches(&v1alpha1.QoSClaim{}, handler.EnqueueRequestsFromMapFunc(r.forClaim), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Complete(r)
}

// forStrategy maps a TrafficStrategy to the VirtualDatabases that name it.
func (r *VirtualDatabaseReconciler) forStrategy(ctx context.Context, o client.Object) []reconcile.Request {
	return r.naming(ctx, o, func(s v1alpha1.Service) string { return s.TrafficStrategy })
}

// forClaim maps a QoSClaim to the VirtualDatabases that name it.
func (r *VirtualDatabaseReconciler) forClaim(ctx context.Context, o client.Object) []reconcile.Request {
	return r.naming(ctx, o, func(s v1alpha1.Service) string { return s.QoSClaim })
}

// naming lists the VirtualDatabases of o's namespace with a service whose
// field (as returned by ref) names o.
func (r *VirtualDatabaseReconciler) naming(ctx context.Context, o client.Object, ref func(v1alpha1.Service) string) []reconcile.Request {
	var list v1alpha1.VirtualDatabaseList
	if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		r.Log.Error("list virtualdatabases", "namespace", o.GetNamespace(), "err", err)
		return nil
	}
	var reqs []reconcile.Request
	for _, v := range list.Items {
		for _, s := range v.Spec.Services {
			if ref(s) == o.GetName() {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&v)})
				break
			}
		}
	}
	return reqs
}

// inNamespace maps an object to every VirtualDatabase of its namespace (an
// endpoint's labels decide which strategies pick it, before and after a change).
func (r *VirtualDatabaseReconciler) inNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	return everyInNamespace(ctx, r.Client, r.Log, &v1alpha1.VirtualDatabaseList{}, o.GetNamespace())
}

// everyInNamespace lists list's kind in ns and returns a request for each
// object; a failed list is logged and maps to nothing.
func everyInNamespace(ctx context.Context, c client.Client, log *slog.Logger, list client.ObjectList, ns string) []reconcile.Request {
	if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
		log.Error("list for a watch", "kind", fmt.Sprintf("%T", list), "namespace", ns, "err", err)
		return nil
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		log.Error("list for a watch", "kind", fmt.Sprintf("%T", list), "err", err)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(items))
	for _, it := range items {
		if obj, ok := it.(client.Object); ok {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(obj)})
		}
	}
	return reqs
}
