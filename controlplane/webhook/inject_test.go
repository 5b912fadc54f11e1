package webhook

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func ctrl(kind, name string) []metav1.OwnerReference {
	t := true
	return []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name, UID: "u", Controller: &t}}
}

func pod(mut func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "catalogue-7d9f8b6c5-", Namespace: "default",
			Labels:          map[string]string{InjectLabel: InjectEnabled, "pod-template-hash": "7d9f8b6c5"},
			OwnerReferences: ctrl("ReplicaSet", "catalogue-7d9f8b6c5"),
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
	}
	if mut != nil {
		mut(p)
	}
	return p
}

var params = Params{Image: "pisanix/pisa-proxy:test", ControllerService: "pisa-controller", ControllerNamespace: "pisa-system"}

func TestAppName(t *testing.T) {
	tests := []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"deployment via replicaset hash label", pod(nil), "catalogue"},
		{"replicaset without hash label", pod(func(p *corev1.Pod) { delete(p.Labels, "pod-template-hash") }), "catalogue"},
		{"statefulset", pod(func(p *corev1.Pod) { p.OwnerReferences = ctrl("StatefulSet", "orders") }), "orders"},
		{"daemonset", pod(func(p *corev1.Pod) { p.OwnerReferences = ctrl("DaemonSet", "agent") }), "agent"},
		{"cronjob job", pod(func(p *corev1.Pod) {
			p.OwnerReferences = ctrl("Job", "report-28999000")
			p.Labels["batch.kubernetes.io/cronjob-name"] = "report"
		}), "report"},
		{"annotation override", pod(func(p *corev1.Pod) { p.Annotations = map[string]string{AppAnnotation: "shop"} }), "shop"},
		{"bare pod", pod(func(p *corev1.Pod) { p.OwnerReferences = nil; p.Name = "debug" }), "debug"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppName(tt.pod)
			if err != nil || got != tt.want {
				t.Fatalf("AppName = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func env(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

func TestInject(t *testing.T) {
	p := pod(nil)
	changed, err := Inject(p, params)
	if err != nil || !changed {
		t.Fatalf("Inject = %v, %v", changed, err)
	}
	if len(p.Spec.Containers) != 1 || len(p.Spec.InitContainers) != 1 {
		t.Fatalf("containers = %d, init containers %d; want the app and a native sidecar", len(p.Spec.Containers), len(p.Spec.InitContainers))
	}
	c := p.Spec.InitContainers[0]
	if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways ||
		c.StartupProbe == nil || c.StartupProbe.HTTPGet.Path != "/readyz" {
		t.Fatalf("native sidecar: restartPolicy %v, startup probe %+v", c.RestartPolicy, c.StartupProbe)
	}
	if c.Name != ContainerName || c.Image != params.Image || !reflect.DeepEqual(c.Args, []string{"sidecar"}) {
		t.Fatalf("container = %+v", c)
	}
	wantEnv := map[string]string{
		EnvControllerService: "pisa-controller", EnvControllerNamespace: "pisa-system",
		EnvDeployedNamespace: "default", EnvDeployedName: "catalogue",
		EnvAdminHost: "0.0.0.0", EnvAdminPort: "5591", EnvAdminLogLevel: "INFO",
	}
	if got := env(c); !reflect.DeepEqual(got, wantEnv) {
		t.Fatalf("env = %v, want %v", got, wantEnv)
	}
	if len(c.Ports) != 2 || c.Ports[0].Name != AdminPortName || c.Ports[0].ContainerPort != 5591 || c.Ports[1].ContainerPort != 3306 {
		t.Fatalf("ports = %+v", c.Ports)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.ReadinessProbe.HTTPGet.Port.StrVal != AdminPortName {
		t.Fatalf("readiness = %+v", c.ReadinessProbe)
	}
	sc := c.SecurityContext
	if sc == nil || !*sc.RunAsNonRoot || *sc.RunAsUser == 0 || *sc.AllowPrivilegeEscalation {
		t.Fatalf("securityContext = %+v", sc)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Fatalf("resources = %+v", c.Resources)
	}
	// A writable log directory in the read-only filesystem, for audit files.
	if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != LogDir ||
		len(p.Spec.Volumes) != 1 || p.Spec.Volumes[0].Name != c.VolumeMounts[0].Name || p.Spec.Volumes[0].EmptyDir == nil {
		t.Fatalf("log volume: mounts %+v, volumes %+v", c.VolumeMounts, p.Spec.Volumes)
	}

	// Idempotent: a second call changes nothing.
	before := p.DeepCopy()
	if changed, err := Inject(p, params); err != nil || changed || !reflect.DeepEqual(before, p) {
		t.Fatalf("second Inject changed the pod: %v %v", changed, err)
	}
}

func TestInjectLeavesOthersAlone(t *testing.T) {
	for name, p := range map[string]*corev1.Pod{
		"no label":       pod(func(p *corev1.Pod) { delete(p.Labels, InjectLabel) }),
		"label disabled": pod(func(p *corev1.Pod) { p.Labels[InjectLabel] = "disabled" }),
	} {
		t.Run(name, func(t *testing.T) {
			before := p.DeepCopy()
			changed, err := Inject(p, params)
			if err != nil || changed || !reflect.DeepEqual(before, p) {
				t.Fatalf("pod changed: %v %v", changed, err)
			}
		})
	}
}

func TestInjectParams(t *testing.T) {
	p := pod(nil)
	pp := params
	pp.ControllerHost = "ctl:8080"
	pp.MySQLPorts = []int32{3306, 3307}
	pp.AdminPort = 6000
	if _, err := Inject(p, pp); err != nil {
		t.Fatal(err)
	}
	c := *Sidecar(p)
	if env(c)[EnvControllerHost] != "ctl:8080" || env(c)[EnvAdminPort] != "6000" {
		t.Fatalf("env = %v", env(c))
	}
	if len(c.Ports) != 3 || c.Ports[2].Name != "pisa-mysql-1" || c.Ports[2].ContainerPort != 3307 {
		t.Fatalf("ports = %+v", c.Ports)
	}
	if _, err := Inject(pod(nil), Params{}); err == nil {
		t.Fatal("Inject without an image must fail")
	}
}

// Clusters before Kubernetes 1.29 get the proxy as a plain container.
func TestInjectClassicSidecar(t *testing.T) {
	p := pod(func(p *corev1.Pod) {
		p.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: "app"}}
	})
	pp := params
	pp.ClassicSidecar = true
	if _, err := Inject(p, pp); err != nil {
		t.Fatal(err)
	}
	if len(p.Spec.Containers) != 2 || p.Spec.Containers[1].Name != ContainerName || p.Spec.Containers[1].RestartPolicy != nil ||
		len(p.Spec.InitContainers) != 1 {
		t.Fatalf("containers %+v, init containers %+v", p.Spec.Containers, p.Spec.InitContainers)
	}
	if changed, err := Inject(p, params); err != nil || changed {
		t.Fatalf("a pod with a classic sidecar was injected again: %v %v", changed, err)
	}
}
