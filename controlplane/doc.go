// Package controlplane is the Pisanix control plane: CRD types (api/v1alpha1),
// their translation into proxy and daemon configuration (translate), the
// reconcilers (controller), the configuration server and its client
// (configserver, configclient) and the sidecar-injection webhook (webhook).
//
// `go generate ./controlplane` regenerates the deepcopy code, the CRD YAML in
// deploy/crd and the RBAC role in deploy/rbac with controller-gen.
package controlplane

//go:generate go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.19.0 object:headerFile=hack/boilerplate.go.txt paths=./api/...
//go:generate go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.19.0 crd paths=./api/... output:crd:dir=../deploy/crd
//go:generate go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.19.0 rbac:roleName=pisa-controller paths=./controller/... output:rbac:dir=../deploy/rbac
