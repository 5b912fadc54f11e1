package charts

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"pisanix.io/pisanix/controlplane/kubetest"
)

// monitoringCRDs stand in for prometheus-operator's ServiceMonitor and
// PodMonitor CRDs, which envtest does not have: their group, version, kind
// and scope, with any content accepted. The dry run so checks that the
// chart's monitors name real kinds, not their fields.
func monitoringCRDs() []*apiextensionsv1.CustomResourceDefinition {
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, k := range []struct{ kind, plural string }{{"ServiceMonitor", "servicemonitors"}, {"PodMonitor", "podmonitors"}} {
		preserve := true
		crds = append(crds, &apiextensionsv1.CustomResourceDefinition{
			ObjectMeta: metav1.ObjectMeta{Name: k.plural + ".monitoring.coreos.com"},
			Spec: apiextensionsv1.CustomResourceDefinitionSpec{
				Group: "monitoring.coreos.com",
				Names: apiextensionsv1.CustomResourceDefinitionNames{Kind: k.kind, Plural: k.plural, ListKind: k.kind + "List"},
				Scope: apiextensionsv1.NamespaceScoped,
				Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
					Name: "v1", Served: true, Storage: true,
					Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
						Type: "object", XPreserveUnknownFields: &preserve,
					}},
				}},
			},
		})
	}
	return crds
}

// Every object the chart renders, with the default and the ci/ values, is
// accepted by a real kube-apiserver in a server-side dry-run apply (as
// helm install --server-side, and kubectl apply --server-side, send them).
func TestChartAppliesToAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver and etcd")
	}
	renders := []struct {
		name string
		objs []*unstructured.Unstructured
	}{{"default values", render(t)}, {"ci/nondefault-values.yaml", render(t, "--values", ciValues)}}

	dir, err := kubetest.BinaryDir()
	if err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	te := &envtest.Environment{BinaryAssetsDirectory: dir, Scheme: scheme, CRDs: monitoringCRDs()}
	cfg, err := te.Start()
	if err != nil {
		_ = te.Stop()
		t.Fatalf("start envtest with binaries from %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := te.Stop(); err != nil {
			t.Errorf("stop envtest: %v", err)
		}
	})
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	// Namespaces are made for real: a dry run in a missing one is refused.
	for _, ns := range []string{namespace, "monitoring"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range renders {
		for _, o := range r.objs {
			err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), client.DryRunAll, client.FieldOwner("helm"), client.ForceOwnership)
			if err != nil {
				t.Errorf("%s: server-side dry-run apply of %s %s/%s: %v", r.name, o.GetKind(), o.GetNamespace(), o.GetName(), err)
			}
		}
		t.Logf("%s: %d objects accepted", r.name, len(r.objs))
	}
	// The dry run really asks the API server: invalid objects are refused.
	dep := find(renders[0].objs, "Deployment", "pisa-controller")
	missingNS := dep.DeepCopy()
	missingNS.SetNamespace("no-such-namespace")
	badPort := dep.DeepCopy()
	if err := unstructured.SetNestedField(badPort.Object, "not a number", "spec", "replicas"); err != nil {
		t.Fatal(err)
	}
	for what, o := range map[string]*unstructured.Unstructured{"into a missing namespace": missingNS, "with replicas not a number": badPort} {
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), client.DryRunAll, client.FieldOwner("helm")); err == nil {
			t.Errorf("dry-run apply of the Deployment %s was accepted", what)
		}
	}
}
