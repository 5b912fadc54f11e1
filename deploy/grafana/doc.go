// Package grafana holds the Grafana dashboard pisanix.json (also shipped
// in charts/pisanix as a ConfigMap). It has no code: its test checks that
// every PromQL expression in the dashboard parses and names only metrics,
// and groups by labels, that pisa-proxy, pisa-daemon and pisa-controller
// export.
package grafana
