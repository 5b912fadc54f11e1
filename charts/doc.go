// Package charts holds no code: its tests check the Helm chart
// charts/pisanix with a real helm (built by scripts/deps.sh from
// helm.sh/helm/v4 into the cache dir) and a real kube-apiserver: helm lint
// and helm template with the default and the ci/ values, a server-side dry
// run of every rendered object, and that the chart and deploy/ (kustomize)
// agree on the CRDs, the RBAC and the programs' arguments.
package charts
