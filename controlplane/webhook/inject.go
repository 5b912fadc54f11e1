// Package webhook injects the pisa-proxy sidecar into pods labelled
// pisanix.io/inject=enabled. Inject is a pure function over the pod; Handler
// adapts it to a mutating admission webhook.
package webhook

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Labels, annotations and names of the injected sidecar.
const (
	InjectLabel        = "pisanix.io/inject"
	InjectEnabled      = "enabled"
	AppAnnotation      = "pisanix.io/app" // overrides the app name derived from the owner
	InjectedAnnotation = "pisanix.io/injected"
	ContainerName      = "pisa-proxy"
	AdminPortName      = "pisa-admin"
	DefaultAdminPort   = 5591
	DefaultMySQLPort   = 3306
	DefaultUID         = 65532
	// LogVolume is an emptyDir mounted at LogDir, the one writable place in
	// the sidecar's read-only filesystem: audit logs with sink = "file"
	// go there (path = "/var/log/pisa/audit.log").
	LogVolume = "pisa-proxy-log"
	LogDir    = "/var/log/pisa"
	// TokenVolume is the projected ServiceAccount token the sidecar shows
	// the controller, mounted at TokenDir (configclient.DefaultTokenFile).
	TokenVolume = "pisa-controller-token"
	TokenDir    = "/var/run/secrets/pisanix.io"
	// tokenTTL is the token's lifetime; the kubelet renews it at 80%.
	tokenTTL = 3600
)

// logSizeLimit bounds the log emptyDir (the audit log rotates well below it
// at its defaults: 100 MB x 6 files).
var logSizeLimit = resource.MustParse("1Gi")

// Env names read by `pisa-proxy sidecar` (the Pisanix names).
const (
	EnvControllerService   = "PISA_CONTROLLER_SERVICE"
	EnvControllerNamespace = "PISA_CONTROLLER_NAMESPACE"
	EnvControllerHost      = "PISA_CONTROLLER_HOST"
	EnvDeployedNamespace   = "PISA_DEPLOYED_NAMESPACE"
	EnvDeployedName        = "PISA_DEPLOYED_NAME"
	EnvAdminHost           = "PISA_PROXY_ADMIN_LISTEN_HOST"
	EnvAdminPort           = "PISA_PROXY_ADMIN_LISTEN_PORT"
	EnvAdminLogLevel       = "PISA_PROXY_ADMIN_LOG_LEVEL"
	EnvControllerCA        = "PISA_CONTROLLER_CA"
)

// Params configure the injected container; they come from the controller's flags.
type Params struct {
	Image               string
	ImagePullPolicy     corev1.PullPolicy
	ControllerService   string
	ControllerNamespace string
	// ControllerHost, when set, is passed as PISA_CONTROLLER_HOST.
	ControllerHost string
	// ControllerCA (PEM), when set, is passed as PISA_CONTROLLER_CA: the
	// sidecar then speaks https to the controller and verifies it.
	ControllerCA []byte
	// TokenAudience, when set, mounts a projected ServiceAccount token for
	// that audience, which the sidecar shows the controller.
	TokenAudience string
	AdminPort     int32
	LogLevel      string
	// MySQLPorts the proxy listens on (the VirtualDatabase's service ports);
	// default 3306.
	MySQLPorts []int32
	Resources  corev1.ResourceRequirements
	RunAsUser  int64
	// ClassicSidecar injects the proxy as a plain container, for clusters
	// before Kubernetes 1.29. By default it is a native sidecar (an init
	// container with restartPolicy Always): Kubernetes starts it before the
	// application and stops it after, so the application's last
	// transactions at shutdown still find the proxy.
	ClassicSidecar bool
}

// DefaultResources is what the sidecar asks for unless configured.
func DefaultResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("100m"),
			corev1.ResourceMemory: resource.MustParse("64Mi"),
		},
		Limits: corev1.ResourceList{
			corev1.ResourceMemory: resource.MustParse("256Mi"),
		},
	}
}

// Enabled reports whether pod asks for injection.
func Enabled(pod *corev1.Pod) bool { return pod.Labels[InjectLabel] == InjectEnabled }

// Injected reports whether pod already has the sidecar.
func Injected(pod *corev1.Pod) bool { return Sidecar(pod) != nil }

// Sidecar is the injected proxy container (native or classic), or nil.
func Sidecar(pod *corev1.Pod) *corev1.Container {
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			if list[i].Name == ContainerName {
				return &list[i]
			}
		}
	}
	return nil
}

// AppName is the application a pod belongs to, which names its
// VirtualDatabase: the pisanix.io/app annotation, else the controlling
// owner (a ReplicaSet's Deployment, a StatefulSet, DaemonSet, Job, a Job's
// CronJob), else the pod's own name.
func AppName(pod *corev1.Pod) (string, error) {
	if v := pod.Annotations[AppAnnotation]; v != "" {
		return v, nil
	}
	if ref := metav1.GetControllerOfNoCopy(pod); ref != nil {
		switch ref.Kind {
		case "ReplicaSet":
			if h := pod.Labels["pod-template-hash"]; h != "" && strings.HasSuffix(ref.Name, "-"+h) {
				return strings.TrimSuffix(ref.Name, "-"+h), nil
			}
			// No hash label: a Deployment's ReplicaSet is <deployment>-<hash>.
			if i := strings.LastIndexByte(ref.Name, '-'); i > 0 {
				return ref.Name[:i], nil
			}
			return ref.Name, nil
		case "Job":
			// A CronJob's pods carry its name (Kubernetes 1.32+).
			if n := pod.Labels["batch.kubernetes.io/cronjob-name"]; n != "" {
				return n, nil
			}
			return ref.Name, nil
		default:
			return ref.Name, nil
		}
	}
	if pod.Name != "" {
		return pod.Name, nil
	}
	if g := strings.TrimSuffix(pod.GenerateName, "-"); g != "" {
		return g, nil
	}
	return "", errors.New("pod has no name, owner or " + AppAnnotation + " annotation to derive the application name from")
}

// Inject adds the pisa-proxy container to pod. It changes nothing and
// returns false when the pod is not labelled for injection or already has
// the sidecar. pod.Namespace must be set.
func Inject(pod *corev1.Pod, p Params) (bool, error) {
	if !Enabled(pod) || Injected(pod) {
		return false, nil
	}
	if p.Image == "" {
		return false, errors.New("inject: no sidecar image configured")
	}
	if pod.Namespace == "" {
		return false, errors.New("inject: pod namespace unknown")
	}
	app, err := AppName(pod)
	if err != nil {
		return false, fmt.Errorf("inject: %w", err)
	}
	adminPort := p.AdminPort
	if adminPort == 0 {
		adminPort = DefaultAdminPort
	}
	mysqlPorts := p.MySQLPorts
	if len(mysqlPorts) == 0 {
		mysqlPorts = []int32{DefaultMySQLPort}
	}
	logLevel := p.LogLevel
	if logLevel == "" {
		logLevel = "INFO"
	}
	uid := p.RunAsUser
	if uid == 0 {
		uid = DefaultUID
	}
	res := p.Resources
	if res.Requests == nil && res.Limits == nil {
		res = DefaultResources()
	}
	env := []corev1.EnvVar{
		{Name: EnvControllerService, Value: p.ControllerService},
		{Name: EnvControllerNamespace, Value: p.ControllerNamespace},
	}
	if p.ControllerHost != "" {
		env = append(env, corev1.EnvVar{Name: EnvControllerHost, Value: p.ControllerHost})
	}
	if len(p.ControllerCA) > 0 {
		env = append(env, corev1.EnvVar{Name: EnvControllerCA, Value: string(p.ControllerCA)})
	}
	env = append(env,
		corev1.EnvVar{Name: EnvDeployedNamespace, Value: pod.Namespace},
		corev1.EnvVar{Name: EnvDeployedName, Value: app},
		corev1.EnvVar{Name: EnvAdminHost, Value: "0.0.0.0"},
		corev1.EnvVar{Name: EnvAdminPort, Value: strconv.Itoa(int(adminPort))},
		corev1.EnvVar{Name: EnvAdminLogLevel, Value: logLevel},
	)
	ports := []corev1.ContainerPort{{Name: AdminPortName, ContainerPort: adminPort, Protocol: corev1.ProtocolTCP}}
	for i, mp := range mysqlPorts {
		name := "pisa-mysql"
		if i > 0 {
			name = fmt.Sprintf("pisa-mysql-%d", i)
		}
		ports = append(ports, corev1.ContainerPort{Name: name, ContainerPort: mp, Protocol: corev1.ProtocolTCP})
	}
	pullPolicy := p.ImagePullPolicy
	if pullPolicy == "" {
		pullPolicy = corev1.PullIfNotPresent
	}
	c := corev1.Container{
		Name:            ContainerName,
		Image:           p.Image,
		ImagePullPolicy: pullPolicy,
		Args:            []string{"sidecar"},
		Env:             env,
		Ports:           ports,
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString(AdminPortName)}},
			PeriodSeconds:    2,
			FailureThreshold: 3,
		},
		LivenessProbe: &corev1.Probe{
			ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString(AdminPortName)}},
			InitialDelaySeconds: 5,
			PeriodSeconds:       10,
			FailureThreshold:    6,
		},
		Resources: res,
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             ptr(true),
			RunAsUser:                ptr(uid),
			RunAsGroup:               ptr(uid),
			AllowPrivilegeEscalation: ptr(false),
			ReadOnlyRootFilesystem:   ptr(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		VolumeMounts:             []corev1.VolumeMount{{Name: LogVolume, MountPath: LogDir}},
	}
	if p.ClassicSidecar {
		pod.Spec.Containers = append(pod.Spec.Containers, c)
	} else {
		// First of the init containers, so that those after it (schema
		// migrations) reach the database too; the application starts
		// once the proxy has its configuration.
		c.RestartPolicy = ptr(corev1.ContainerRestartPolicyAlways)
		c.StartupProbe = &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString(AdminPortName)}},
			PeriodSeconds:    1,
			FailureThreshold: 120,
		}
		pod.Spec.InitContainers = append([]corev1.Container{c}, pod.Spec.InitContainers...)
	}
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: LogVolume,
		VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: &logSizeLimit}}})
	if p.TokenAudience != "" {
		mountToken(pod, Sidecar(pod), p.TokenAudience)
	}
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[InjectedAnnotation] = app
	return true, nil
}

// mountToken gives the sidecar a ServiceAccount token bound to its pod and
// to audience, so that the controller can tell which workload asks for a
// configuration (and the token is worth nothing to the API server itself).
// It is mounted whatever the pod's automountServiceAccountToken says: the
// application's containers do not see it.
func mountToken(pod *corev1.Pod, c *corev1.Container, audience string) {
	// A projected token needs a named account; the API server's
	// ServiceAccount admission names "default" anyway, and usually has by
	// the time a webhook runs.
	if pod.Spec.ServiceAccountName == "" {
		pod.Spec.ServiceAccountName = "default"
	}
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: TokenVolume,
		VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: audience, ExpirationSeconds: ptr(int64(tokenTTL)), Path: "token",
			}}},
		}}})
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: TokenVolume, MountPath: TokenDir, ReadOnly: true})
}

func ptr[T any](v T) *T { return &v }
