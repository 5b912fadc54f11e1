package controller

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	"pisanix.io/pisanix/controlplane/api/v1alpha1"
)

// readyCondition builds the Ready condition from a translation problem.
func readyCondition(gen int64, reason, message string) metav1.Condition {
	status := metav1.ConditionFalse
	if reason == v1alpha1.ReasonReady {
		status = metav1.ConditionTrue
	}
	return metav1.Condition{Type: v1alpha1.ConditionReady, Status: status, Reason: reason, Message: truncate(message, 32*1024), ObservedGeneration: gen}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// setReady puts cond into st; it reports whether anything changed.
func setReady(st *v1alpha1.CommonStatus, cond metav1.Condition) bool {
	changed := meta.SetStatusCondition(&st.Conditions, cond)
	if st.ObservedGeneration != cond.ObservedGeneration {
		st.ObservedGeneration = cond.ObservedGeneration
		changed = true
	}
	return changed
}

// everyReplica runs a reconciler that serves configuration on every
// replica, leader or not: proxies and daemons may ask any of them.
func everyReplica() controller.Options {
	return controller.Options{NeedLeaderElection: ptr.To(false)}
}

// leads reports whether this replica writes statuses: every replica
// reconciles what it serves, only the leader writes to the API.
func leads(leader func() bool) bool { return leader == nil || leader() }

// patchStatus writes obj's status as a merge patch against base.
func patchStatus(ctx context.Context, c client.Client, obj, base client.Object) error {
	patch := client.MergeFrom(base)
	if data, err := patch.Data(obj); err == nil && string(data) == "{}" {
		return nil // nothing changed: no API call
	}
	if err := c.Status().Patch(ctx, obj, patch); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("update status of %T %s/%s: %w", obj, obj.GetNamespace(), obj.GetName(), err)
	}
	return nil
}
