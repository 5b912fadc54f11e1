package controller

import (
	"context"
	"fmt"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"pisanix.io/pisanix/controlplane/configserver"
	"pisanix.io/pisanix/controlplane/webhook"
)

// RBAC of the config channel: token reviews, and reading the pod a token
// is bound to (to learn its application).
//
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups="",resources=pods,verbs=get

// TokenReviewer asks the API server about a token with a TokenReview.
type TokenReviewer struct {
	Client   client.Client
	Audience string
}

// Review implements configserver.Reviewer.
func (t TokenReviewer) Review(ctx context.Context, token string) (configserver.Identity, error) {
	tr := &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token, Audiences: []string{t.Audience}}}
	if err := t.Client.Create(ctx, tr); err != nil {
		return configserver.Identity{}, fmt.Errorf("token review: %w", err)
	}
	st := tr.Status
	if !st.Authenticated {
		msg := st.Error
		if msg == "" {
			msg = "the API server did not authenticate it"
		}
		return configserver.Identity{}, fmt.Errorf("%w: %s", configserver.ErrUnauthenticated, msg)
	}
	if !configserver.HasAudience(st.Audiences, t.Audience) {
		return configserver.Identity{}, fmt.Errorf("%w: the token is not for audience %q", configserver.ErrUnauthenticated, t.Audience)
	}
	extra := make(map[string][]string, len(st.User.Extra))
	for k, v := range st.User.Extra {
		extra[k] = v
	}
	return configserver.ParseUser(st.User.Username, extra)
}

// PodApp reads a pod (uncached: one read per token per cache period) and
// names its application: the one the webhook injected the sidecar for,
// else the one it would.
func PodApp(r client.Reader) configserver.PodApp {
	return func(ctx context.Context, ns, name, uid string) (string, error) {
		pod := &corev1.Pod{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, pod); err != nil {
			if apierrors.IsNotFound(err) {
				return "", fmt.Errorf("its pod %s/%s does not exist", ns, name)
			}
			return "", fmt.Errorf("read its pod %s/%s: %w", ns, name, err)
		}
		if uid != "" && string(pod.UID) != uid {
			return "", fmt.Errorf("its pod %s/%s was replaced (uid %s, token for %s)", ns, name, pod.UID, uid)
		}
		if app := pod.Annotations[webhook.InjectedAnnotation]; app != "" {
			return app, nil
		}
		return webhook.AppName(pod)
	}
}
