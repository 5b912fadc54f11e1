{{/*
Names are fixed, as in deploy/: the controller's flags, the webhook, the
ClusterRole and the daemon's ServiceAccount refer to one another by them,
and the cluster-scoped ones allow one Pisanix per cluster.
*/}}
{{- define "pisanix.controller" -}}pisa-controller{{- end -}}
{{- define "pisanix.daemon" -}}pisa-daemon{{- end -}}

{{- define "pisanix.labels" -}}
app.kubernetes.io/part-of: pisanix
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "pisanix.image" -}}
{{- printf "%s:%s" .repository (toString .tag) -}}
{{- end -}}
