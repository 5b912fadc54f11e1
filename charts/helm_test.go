package charts

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"pisanix.io/pisanix/controlplane/kubetest"
)

// HelmVersion is the helm scripts/deps.sh builds (helm.sh/helm/v4).
const HelmVersion = "v4.3.2"

const (
	chartDir    = "pisanix"
	releaseName = "pisanix"
	namespace   = "pisa-system"
	ciValues    = "pisanix/ci/nondefault-values.yaml"
)

// helmBin finds the helm that scripts/deps.sh builds into the cache dir.
func helmBin(t *testing.T) string {
	t.Helper()
	var tried []string
	for _, c := range cacheDirs() {
		p := filepath.Join(c, "bin", "helm")
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			out, err := exec.Command(p, "version", "--template", "{{.Version}}").Output()
			if err == nil && strings.TrimSpace(string(out)) == HelmVersion {
				return p
			}
			tried = append(tried, fmt.Sprintf("%s (version %q, want %s)", p, strings.TrimSpace(string(out)), HelmVersion))
			continue
		}
		tried = append(tried, p)
	}
	t.Fatalf("helm %s not found (looked at %s); scripts/deps.sh builds it (make test runs it)", HelmVersion, strings.Join(tried, ", "))
	return ""
}

func cacheDirs() []string {
	var dirs []string
	if c := os.Getenv("PISANIX_CACHE"); c != "" {
		dirs = append(dirs, c)
	}
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
		dirs = append(dirs, filepath.Join(x, "pisanix"))
	}
	if h, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(h, ".cache", "pisanix"))
	}
	return dirs
}

func helm(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(helmBin(t), args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// render runs helm template (CRDs included) and parses the objects.
func render(t *testing.T, extra ...string) []*unstructured.Unstructured {
	t.Helper()
	out := helm(t, append([]string{"template", releaseName, chartDir, "--namespace", namespace, "--include-crds"}, extra...)...)
	objs, err := parseObjects(strings.NewReader(out))
	if err != nil {
		t.Fatalf("helm template output: %v", err)
	}
	if len(objs) == 0 {
		t.Fatal("helm template rendered nothing")
	}
	return objs
}

// parseObjects reads a multi-document YAML stream; empty documents are skipped.
func parseObjects(r io.Reader) ([]*unstructured.Unstructured, error) {
	yr := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var objs []*unstructured.Unstructured
	for {
		doc, err := yr.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("%w in\n%s", err, doc)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "" || u.GetAPIVersion() == "" {
			return nil, fmt.Errorf("object without kind or apiVersion:\n%s", doc)
		}
		objs = append(objs, u)
	}
}

// find returns the object of kind and name, or nil.
func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func kinds(objs []*unstructured.Unstructured) map[string]int {
	k := map[string]int{}
	for _, o := range objs {
		k[o.GetKind()]++
	}
	return k
}

// container returns the named container of a workload's pod template.
func container(t *testing.T, w *unstructured.Unstructured, name string) map[string]any {
	t.Helper()
	cs, _, err := unstructured.NestedSlice(w.Object, "spec", "template", "spec", "containers")
	if err != nil {
		t.Fatalf("%s/%s: %v", w.GetKind(), w.GetName(), err)
	}
	for _, c := range cs {
		if m, ok := c.(map[string]any); ok && m["name"] == name {
			return m
		}
	}
	t.Fatalf("%s/%s has no container %s", w.GetKind(), w.GetName(), name)
	return nil
}

func stringSlice(v any) []string {
	l, _ := v.([]any)
	s := make([]string, 0, len(l))
	for _, x := range l {
		s = append(s, fmt.Sprint(x))
	}
	return s
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestHelmLint(t *testing.T) {
	helm(t, "lint", "--strict", chartDir)
	helm(t, "lint", "--strict", chartDir, "--values", ciValues)
}

func TestHelmTemplateDefault(t *testing.T) {
	objs := render(t)
	want := map[string]int{
		"CustomResourceDefinition": 4, "ServiceAccount": 2, "ClusterRole": 1, "ClusterRoleBinding": 1,
		"Role": 1, "RoleBinding": 1, "Deployment": 1, "Service": 1, "MutatingWebhookConfiguration": 1, "DaemonSet": 1,
	}
	if got := kinds(objs); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("default render: kinds %v, want %v", got, want)
	}
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" || strings.HasPrefix(o.GetKind(), "Cluster") || o.GetKind() == "MutatingWebhookConfiguration" {
			continue
		}
		if o.GetNamespace() != namespace {
			t.Errorf("%s/%s in namespace %q, want the release's %s", o.GetKind(), o.GetName(), o.GetNamespace(), namespace)
		}
	}
	wh := find(objs, "MutatingWebhookConfiguration", "pisa-controller")
	hooks, _, _ := unstructured.NestedSlice(wh.Object, "webhooks")
	if len(hooks) != 1 {
		t.Fatalf("%d webhooks", len(hooks))
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(hooks[0].(map[string]any), "clientConfig", "caBundle"); found {
		t.Error("the chart sets the webhook's caBundle: the controller owns it")
	}
	ds := find(objs, "DaemonSet", "pisa-daemon")
	sc, _, _ := unstructured.NestedMap(container(t, ds, "pisa-daemon"), "securityContext")
	if fmt.Sprint(sc["runAsUser"]) != "0" {
		t.Errorf("pisa-daemon securityContext %v: want runAsUser 0 (its capabilities need root)", sc)
	}
}

func TestHelmTemplateNonDefault(t *testing.T) {
	objs := render(t, "--values", ciValues)
	k := kinds(objs)
	if k["DaemonSet"] != 0 {
		t.Error("daemon.enabled=false still renders the DaemonSet")
	}
	if k["ServiceMonitor"] != 1 || k["PodMonitor"] != 1 || k["ConfigMap"] != 1 {
		t.Errorf("kinds %v: want a ServiceMonitor, a PodMonitor (sidecars; none for the disabled daemon) and the dashboard ConfigMap", k)
	}
	dep := find(objs, "Deployment", "pisa-controller")
	if r, _, _ := unstructured.NestedFieldNoCopy(dep.Object, "spec", "replicas"); fmt.Sprint(r) != "2" {
		t.Errorf("replicas %v, want 2", r)
	}
	c := container(t, dep, "pisa-controller")
	if c["image"] != "registry.example.com/pisanix/pisa-controller:1.2.3" || c["imagePullPolicy"] != "Always" {
		t.Errorf("controller image %v %v", c["image"], c["imagePullPolicy"])
	}
	args := strings.Join(stringSlice(c["args"]), " ")
	for _, a := range []string{
		"--proxy-image=registry.example.com/pisanix/pisa-proxy:1.2.3", "--proxy-pull-policy=Always", "--proxy-log-level=DEBUG",
		"--proxy-cpu-request=50m", "--proxy-memory-request=32Mi", "--proxy-memory-limit=128Mi", "--classic-sidecar",
		"--leader-elect", "--log-level=debug", "--config-auth=token", "--daemon-egress-device=ens5", "--daemon-bridge-device=cni0",
		"--controller-host=pisa-controller.pisa-system.svc:8080",
	} {
		if !strings.Contains(" "+args+" ", " "+a+" ") {
			t.Errorf("controller args %q lack %s", args, a)
		}
	}
	wh := find(objs, "MutatingWebhookConfiguration", "pisa-controller")
	hooks, _, _ := unstructured.NestedSlice(wh.Object, "webhooks")
	h := hooks[0].(map[string]any)
	if h["failurePolicy"] != "Ignore" {
		t.Errorf("failurePolicy %v", h["failurePolicy"])
	}
	exprs, _, _ := unstructured.NestedSlice(h, "namespaceSelector", "matchExpressions")
	if got := strings.Join(stringSlice(exprs[0].(map[string]any)["values"]), ","); got != "kube-system,pisa-system,monitoring" {
		t.Errorf("excluded namespaces %s", got)
	}
	cm := find(objs, "ConfigMap", "pisanix-dashboard")
	if cm.GetNamespace() != "monitoring" || cm.GetLabels()["grafana_dashboard"] != "1" || cm.GetAnnotations()["grafana_folder"] != "Pisanix" {
		t.Errorf("dashboard ConfigMap %s labels %v annotations %v", cm.GetNamespace(), cm.GetLabels(), cm.GetAnnotations())
	}
	dash, _, _ := unstructured.NestedString(cm.Object, "data", "pisanix.json")
	want, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "grafana", "pisanix.json"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(dash) != strings.TrimSpace(string(want)) {
		t.Error("the dashboard ConfigMap differs from deploy/grafana/pisanix.json")
	}
	sm := find(objs, "ServiceMonitor", "pisa-controller")
	if sm.GetLabels()["release"] != "prometheus" {
		t.Errorf("ServiceMonitor labels %v", sm.GetLabels())
	}
}

// The chart's copies of deploy/'s files are the same bytes.
func TestChartCopiesMatchDeploy(t *testing.T) {
	root := repoRoot(t)
	crds, err := filepath.Glob(filepath.Join(root, "deploy", "crd", "*.yaml"))
	if err != nil || len(crds) == 0 {
		t.Fatalf("no CRDs in deploy/crd: %v", err)
	}
	chartCRDs, _ := filepath.Glob(filepath.Join(chartDir, "crds", "*.yaml"))
	if len(chartCRDs) != len(crds) {
		t.Errorf("%d CRD files in the chart, %d in deploy/crd", len(chartCRDs), len(crds))
	}
	pairs := map[string]string{filepath.Join(root, "deploy", "grafana", "pisanix.json"): filepath.Join(chartDir, "dashboards", "pisanix.json")}
	for _, c := range crds {
		pairs[c] = filepath.Join(chartDir, "crds", filepath.Base(c))
	}
	for src, cp := range pairs {
		a, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(cp)
		if err != nil {
			t.Errorf("%v (copy it from %s)", err, src)
			continue
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from %s: copy it again", cp, src)
		}
	}
}
