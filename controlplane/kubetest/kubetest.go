// Package kubetest holds test helpers of the control plane: it finds the
// kube-apiserver and etcd binaries that scripts/k8s-test-binaries.sh builds
// for envtest, and holds the expected socks-shop proxy configuration.
package kubetest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// K8sVersion is the Kubernetes version the script builds by default.
const K8sVersion = "1.34.2"

// Script builds the binaries.
const Script = "scripts/k8s-test-binaries.sh"

// BinaryDir returns the directory holding kube-apiserver and etcd:
// $KUBEBUILDER_ASSETS, else the script's cache dir
// ($PISANIX_CACHE, $XDG_CACHE_HOME/pisanix or ~/.cache/pisanix, then k8s-v<version>).
func BinaryDir() (string, error) {
	var tried []string
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		if ok(d) {
			return d, nil
		}
		tried = append(tried, d+" (KUBEBUILDER_ASSETS)")
	}
	var caches []string
	if c := os.Getenv("PISANIX_CACHE"); c != "" {
		caches = append(caches, c)
	}
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
		caches = append(caches, filepath.Join(x, "pisanix"))
	}
	if h, err := os.UserHomeDir(); err == nil {
		caches = append(caches, filepath.Join(h, ".cache", "pisanix"))
	}
	for _, c := range caches {
		d := filepath.Join(c, "k8s-v"+K8sVersion)
		if ok(d) {
			return d, nil
		}
		tried = append(tried, d)
	}
	return "", fmt.Errorf("kube-apiserver and etcd for envtest not found (looked in %s); build them with %s (make test does it when they are missing)",
		strings.Join(tried, ", "), Script)
}

func ok(dir string) bool {
	for _, b := range []string{"kube-apiserver", "etcd"} {
		st, err := os.Stat(filepath.Join(dir, b))
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// RepoRoot is the directory of the module's go.mod, found upwards from the
// working directory (tests run in their package directory).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("repo root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repo root: no go.mod above the working directory")
		}
		dir = parent
	}
}
