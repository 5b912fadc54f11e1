package charts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// kustomization is the part of kustomize's format deploy/ uses. Loading
// is strict: a kustomization using more (patches, generators, ...) fails
// the test instead of being compared wrongly.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
	} `json:"images"`
}

// kustomizeBuild renders dir's kustomization as kustomize build would for
// the features it uses: its resources in order, images rewritten.
func kustomizeBuild(dir string) ([]*unstructured.Unstructured, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(raw, &k); err != nil {
		return nil, fmt.Errorf("%s/kustomization.yaml uses more than resources and images (teach kustomizeBuild): %w", dir, err)
	}
	var objs []*unstructured.Unstructured
	for _, r := range k.Resources {
		b, err := os.ReadFile(filepath.Join(dir, r))
		if err != nil {
			return nil, fmt.Errorf("resource %s: %w", r, err)
		}
		o, err := parseObjects(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("resource %s: %w", r, err)
		}
		objs = append(objs, o...)
	}
	for _, o := range objs {
		for _, path := range [][]string{{"spec", "template", "spec", "containers"}, {"spec", "template", "spec", "initContainers"}} {
			cs, found, err := unstructured.NestedSlice(o.Object, path...)
			if err != nil || !found {
				continue
			}
			for _, c := range cs {
				m := c.(map[string]any)
				image, _ := m["image"].(string)
				name, tag := image, ""
				if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
					name, tag = image[:i], image[i+1:]
				}
				for _, im := range k.Images {
					if im.Name != name {
						continue
					}
					if im.NewName != "" {
						name = im.NewName
					}
					if im.NewTag != "" {
						tag = im.NewTag
					}
				}
				if tag != "" {
					m["image"] = name + ":" + tag
				} else {
					m["image"] = name
				}
			}
			if err := unstructured.SetNestedSlice(o.Object, cs, path...); err != nil {
				return nil, err
			}
		}
	}
	return objs, nil
}

// normalizedRules sorts each rule's lists and the rules, so that equal
// permissions compare equal whatever order they were written in.
func normalizedRules(o *unstructured.Unstructured) []string {
	rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
	var out []string
	for _, r := range rules {
		m := r.(map[string]any)
		for k, v := range m {
			if l, ok := v.([]any); ok {
				s := stringSlice(l)
				sort.Strings(s)
				m[k] = s
			}
		}
		b, _ := json.Marshal(m)
		out = append(out, string(b))
	}
	sort.Strings(out)
	return out
}

func field(t *testing.T, o *unstructured.Unstructured, path ...string) any {
	t.Helper()
	v, _, err := unstructured.NestedFieldCopy(o.Object, path...)
	if err != nil {
		t.Fatalf("%s/%s %s: %v", o.GetKind(), o.GetName(), strings.Join(path, "."), err)
	}
	return v
}

func jsonString(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

// deploy/ (kubectl apply -k deploy/) and the chart's default render agree:
// the same objects, identical CRDs, the same RBAC, webhook, and the
// controller's and daemon's arguments, environment, mounts and privileges.
func TestChartMatchesDeploy(t *testing.T) {
	kust, err := kustomizeBuild(filepath.Join(repoRoot(t), "deploy"))
	if err != nil {
		t.Fatal(err)
	}
	chart := render(t)

	for _, d := range kust {
		if d.GetKind() == "Namespace" {
			continue // helm install --create-namespace; see docs/install.md for its labels
		}
		c := find(chart, d.GetKind(), d.GetName())
		if c == nil {
			t.Errorf("deploy/ has %s/%s, the chart does not", d.GetKind(), d.GetName())
			continue
		}
		if c.GetNamespace() != d.GetNamespace() {
			t.Errorf("%s/%s: namespace %q in the chart, %q in deploy/", d.GetKind(), d.GetName(), c.GetNamespace(), d.GetNamespace())
		}
		what := d.GetKind() + "/" + d.GetName()
		same := func(aspect string, path ...string) {
			t.Helper()
			dv, cv := field(t, d, path...), field(t, c, path...)
			if !reflect.DeepEqual(dv, cv) {
				t.Errorf("%s %s differs:\ndeploy/: %s\nchart:   %s", what, aspect, jsonString(dv), jsonString(cv))
			}
		}
		switch d.GetKind() {
		case "CustomResourceDefinition":
			if !reflect.DeepEqual(d.Object, c.Object) {
				t.Errorf("%s is not identical in deploy/crd and the chart's crds/", what)
			}
		case "ClusterRole", "Role":
			if dr, cr := normalizedRules(d), normalizedRules(c); !reflect.DeepEqual(dr, cr) {
				t.Errorf("%s rules differ:\ndeploy/: %s\nchart:   %s", what, strings.Join(dr, "\n         "), strings.Join(cr, "\n         "))
			}
		case "ClusterRoleBinding", "RoleBinding":
			same("roleRef", "roleRef")
			same("subjects", "subjects")
		case "MutatingWebhookConfiguration":
			same("webhooks", "webhooks")
		case "Deployment", "DaemonSet":
			same("selector", "spec", "selector")
			same("serviceAccountName", "spec", "template", "spec", "serviceAccountName")
			same("hostNetwork", "spec", "template", "spec", "hostNetwork")
			same("volumes", "spec", "template", "spec", "volumes")
			same("pod securityContext", "spec", "template", "spec", "securityContext")
			dcs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
			for _, dc := range dcs {
				name := dc.(map[string]any)["name"].(string)
				dm, cm := dc.(map[string]any), container(t, c, name)
				for _, k := range []string{"image", "args", "env", "volumeMounts", "resources"} {
					if !reflect.DeepEqual(dm[k], cm[k]) {
						t.Errorf("%s container %s: %s differs:\ndeploy/: %s\nchart:   %s", what, name, k, jsonString(dm[k]), jsonString(cm[k]))
					}
				}
				for _, k := range []string{"capabilities", "seccompProfile", "runAsNonRoot", "allowPrivilegeEscalation", "readOnlyRootFilesystem"} {
					dv, _, _ := unstructured.NestedFieldCopy(dm, "securityContext", k)
					cv, _, _ := unstructured.NestedFieldCopy(cm, "securityContext", k)
					if !reflect.DeepEqual(dv, cv) {
						t.Errorf("%s container %s: securityContext.%s differs: deploy/ %v, chart %v", what, name, k, dv, cv)
					}
				}
			}
		case "Service":
			same("selector", "spec", "selector")
		}
	}
	// And nothing the chart renders by default is missing from deploy/,
	// but for what only Helm needs.
	for _, c := range chart {
		if find(kust, c.GetKind(), c.GetName()) == nil {
			t.Errorf("the chart renders %s/%s by default, deploy/ has none", c.GetKind(), c.GetName())
		}
	}
}

// kustomizeBuild follows deploy/'s images: and refuses what it cannot do.
func TestKustomizeBuild(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("d.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      containers:\n      - {name: a, image: example/a:latest}\n      - {name: b, image: example/b}\n")
	write("kustomization.yaml", "resources: [d.yaml]\nimages:\n- {name: example/a, newTag: v2}\n- {name: example/b, newName: reg.example.com/b, newTag: v3}\n")
	objs, err := kustomizeBuild(dir)
	if err != nil {
		t.Fatal(err)
	}
	cs, _, _ := unstructured.NestedSlice(objs[0].Object, "spec", "template", "spec", "containers")
	if a, b := cs[0].(map[string]any)["image"], cs[1].(map[string]any)["image"]; a != "example/a:v2" || b != "reg.example.com/b:v3" {
		t.Errorf("images %v, %v", a, b)
	}
	write("kustomization.yaml", "resources: [d.yaml]\npatches: [{path: p.yaml}]\n")
	if _, err := kustomizeBuild(dir); err == nil {
		t.Error("a kustomization with patches was accepted")
	}
}
