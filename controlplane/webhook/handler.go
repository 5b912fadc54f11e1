package webhook

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Path the webhook is served on.
const Path = "/inject-pisa-proxy"

// PortsFunc returns the MySQL ports the app's VirtualDatabase listens on
// (nil when unknown); used to declare them on the sidecar.
type PortsFunc func(ctx context.Context, namespace, app string) []int32

// Handler is the admission adapter around Inject.
type Handler struct {
	Params  Params
	Decoder admission.Decoder
	Ports   PortsFunc // optional
	Log     *slog.Logger
}

var _ admission.Handler = (*Handler)(nil)

// Handle decodes the pod, injects, and answers with a JSON patch.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	pod := &corev1.Pod{}
	if err := h.Decoder.Decode(req, pod); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if !Enabled(pod) {
		return admission.Allowed("pod is not labelled " + InjectLabel + "=" + InjectEnabled)
	}
	if Injected(pod) {
		return admission.Allowed("sidecar already present")
	}
	if pod.Namespace == "" {
		pod.Namespace = req.Namespace
	}
	p := h.Params
	if h.Ports != nil {
		if app, err := AppName(pod); err == nil {
			if ports := h.Ports(ctx, pod.Namespace, app); len(ports) > 0 {
				p.MySQLPorts = ports
			}
		}
	}
	changed, err := Inject(pod, p)
	if err != nil {
		h.Log.Error("sidecar injection failed", "namespace", req.Namespace, "pod", pod.Name, "generateName", pod.GenerateName, "err", err)
		return admission.Errored(http.StatusInternalServerError, err)
	}
	if !changed {
		return admission.Allowed("nothing to inject")
	}
	raw, err := json.Marshal(pod)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	h.Log.Info("sidecar injected", "namespace", pod.Namespace, "pod", pod.Name, "generateName", pod.GenerateName, "app", pod.Annotations[InjectedAnnotation])
	return admission.PatchResponseFromRaw(req.Object.Raw, raw)
}
