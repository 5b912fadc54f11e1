package controller_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"pisanix.io/pisanix/controlplane/api/v1alpha1"
	"pisanix.io/pisanix/controlplane/certs"
	"pisanix.io/pisanix/controlplane/configclient"
	"pisanix.io/pisanix/controlplane/webhook"
)

func httpGet(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return b, nil
}

func sidecar(p *corev1.Pod) *corev1.Container { return webhook.Sidecar(p) }

// A pod created with the label gets the sidecar through the webhook; one
// without the label does not.
func TestWebhookInjects(t *testing.T) {
	ns := newNamespace(t, "apps")
	ctx := context.Background()
	// The app's VirtualDatabase listens on 3307: the sidecar declares that port.
	vdb := &v1alpha1.VirtualDatabase{
		ObjectMeta: metav1.ObjectMeta{Name: "catalogue", Namespace: ns},
		Spec: v1alpha1.VirtualDatabaseSpec{Services: []v1alpha1.Service{{
			Name: "mysql", TrafficStrategy: "catalogue", DatabaseMySQL: &v1alpha1.DatabaseMySQL{User: "u", Port: 3307},
		}}},
	}
	if err := k8s.Create(ctx, vdb); err != nil {
		t.Fatal(err)
	}
	ctrlRef := true
	labelled := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "catalogue-5d8f9c7b6-", Namespace: ns,
			Labels: map[string]string{webhook.InjectLabel: webhook.InjectEnabled, "pod-template-hash": "5d8f9c7b6"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "catalogue-5d8f9c7b6",
				UID: "0b5e1f0c-0000-4000-8000-000000000001", Controller: &ctrlRef}},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "weaveworksdemos/catalogue:0.3.5"}}},
	}
	if err := k8s.Create(ctx, labelled); err != nil {
		t.Fatalf("create labelled pod: %v", err)
	}
	got := &corev1.Pod{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(labelled), got); err != nil {
		t.Fatal(err)
	}
	c := sidecar(got)
	if c == nil {
		t.Fatalf("labelled pod has no %s container: %+v", webhook.ContainerName, got.Spec.Containers)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if env[webhook.EnvDeployedName] != "catalogue" || env[webhook.EnvDeployedNamespace] != ns || env[webhook.EnvControllerService] != "pisa-controller" {
		t.Fatalf("sidecar env = %v", env)
	}
	if env[webhook.EnvControllerCA] != string(injectParams.ControllerCA) {
		t.Fatalf("sidecar has no controller CA: %v", env)
	}
	// The controller token: projected for its audience, mounted where the
	// sidecar reads it, and accepted by the API server's validation.
	var tokenVol *corev1.Volume
	for i := range got.Spec.Volumes {
		if got.Spec.Volumes[i].Name == webhook.TokenVolume {
			tokenVol = &got.Spec.Volumes[i]
		}
	}
	if tokenVol == nil || tokenVol.Projected == nil || tokenVol.Projected.Sources[0].ServiceAccountToken.Audience != "pisa-controller" {
		t.Fatalf("no projected controller token volume: %+v", got.Spec.Volumes)
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		mounted = mounted || m.Name == webhook.TokenVolume && filepath.Join(m.MountPath, "token") == configclient.DefaultTokenFile && m.ReadOnly
	}
	if !mounted {
		t.Fatalf("token not mounted at %s: %+v", configclient.DefaultTokenFile, c.VolumeMounts)
	}
	if c.Image != injectParams.Image || len(c.Args) != 1 || c.Args[0] != "sidecar" {
		t.Fatalf("sidecar image %q args %v", c.Image, c.Args)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports[webhook.AdminPortName] != 5591 || ports["pisa-mysql"] != 3307 {
		t.Fatalf("sidecar ports = %v", ports)
	}
	if c.ReadinessProbe == nil || c.SecurityContext == nil || c.SecurityContext.RunAsNonRoot == nil || !*c.SecurityContext.RunAsNonRoot {
		t.Fatalf("sidecar probe/securityContext missing: %+v", c)
	}
	// A native sidecar, which the API server accepts as such.
	if len(got.Spec.Containers) != 1 || len(got.Spec.InitContainers) != 1 || c.RestartPolicy == nil ||
		*c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Fatalf("containers = %d, init containers %d (restartPolicy %v); want the app and a native sidecar",
			len(got.Spec.Containers), len(got.Spec.InitContainers), c.RestartPolicy)
	}

	plain := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: ns, Labels: map[string]string{"app": "plain"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "busybox"}}},
	}
	if err := k8s.Create(ctx, plain); err != nil {
		t.Fatalf("create unlabelled pod: %v", err)
	}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(plain), got); err != nil {
		t.Fatal(err)
	}
	if sidecar(got) != nil || len(got.Spec.Containers) != 1 {
		t.Fatalf("unlabelled pod was changed: %+v", got.Spec.Containers)
	}
}

// The self-signed bootstrap creates the Secret once, fills the webhook
// configuration's caBundle, and reuses the Secret afterwards.
func TestCertBootstrap(t *testing.T) {
	namespace(t, "pisa-system")
	ctx := context.Background()
	dir := t.TempDir()
	b := &certs.Bootstrap{
		Client: k8s, Namespace: "pisa-system", SecretName: "pisa-controller-webhook-cert", ServiceName: "pisa-controller",
		WebhookConfigName: "pisa-controller", CertDir: dir, Log: slog.New(slog.DiscardHandler),
	}
	// envtest pointed the webhook at its own CA; remember it and restore it.
	orig := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := k8s.Get(ctx, client.ObjectKey{Name: "pisa-controller"}, orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.PatchCABundle(ctx, orig.Webhooks[0].ClientConfig.CABundle); err != nil {
			t.Error(err)
		}
	})
	first, err := b.Ensure(ctx)
	if err != nil {
		t.Fatal(err)
	}
	second, err := b.Ensure(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.CA, second.CA) || !bytes.Equal(first.Cert, second.Cert) {
		t.Fatal("second Ensure generated new certificates instead of reusing the Secret")
	}
	got := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := k8s.Get(ctx, client.ObjectKey{Name: "pisa-controller"}, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Webhooks[0].ClientConfig.CABundle, first.CA) {
		t.Fatal("caBundle not filled with the bootstrap CA")
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, certs.CertKey), filepath.Join(dir, certs.PrivKeyKey))
	if err != nil {
		t.Fatalf("cert dir: %v", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.VerifyHostname("pisa-controller.pisa-system.svc"); err != nil {
		t.Fatal(err)
	}
}
