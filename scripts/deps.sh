#!/usr/bin/env bash
# Installs what the tests need when it is missing: Debian packages with apt-get,
# Go tools built from modules into the cache dir. Idempotent and quiet when all is there.
set -euo pipefail
CACHE=${PISANIX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pisanix}
BIN=$CACHE/bin
mkdir -p "$BIN"

# The Go tools build while apt-get installs (on a new machine each takes
# minutes: one waits on the network, the other on the CPU). Each job logs
# to its own file, shown when it fails.
jobs_dir=$(mktemp -d); trap 'rm -rf "$jobs_dir"' EXIT
pids=()
bg() { # bg NAME CMD...: runs CMD in the background, output to NAME's log
  local name=$1; shift
  { "$@" >"$jobs_dir/$name.log" 2>&1 || { echo "deps: $name failed:" >&2; tail -30 "$jobs_dir/$name.log" >&2; exit 1; }; } &
  pids+=($!)
}

if [ ! -x "$BIN/staticcheck" ]; then
  echo "deps: building staticcheck into $BIN" >&2
  bg staticcheck env GOBIN="$BIN" go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi

# helm for the chart's tests (charts/), built from its Go module; the
# version is pinned here and in charts/helm_test.go.
HELM_VERSION=v4.3.2
if [ "$("$BIN/helm" version --template '{{.Version}}' 2>/dev/null)" != "$HELM_VERSION" ]; then
  echo "deps: building helm $HELM_VERSION into $BIN (several minutes, once)" >&2
  bg helm env GOBIN="$BIN" go install -ldflags "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
fi

# A real kube-apiserver and etcd for envtest, built from Go modules once
# into the cache (no binary downloads are possible here).
bg k8s-test-binaries "$(dirname "$0")/k8s-test-binaries.sh"

need_pkgs=()
command -v mariadbd >/dev/null 2>&1 || need_pkgs+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || need_pkgs+=(mariadb-client)
# MariaDB's own test runner and main.* suite, for the mysqltest conformance suites.
[ -f /usr/share/mysql/mysql-test/mariadb-test-run ] || need_pkgs+=(mariadb-test)
command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
command -v tc >/dev/null 2>&1 || need_pkgs+=(iproute2)
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)
# A container engine for the image tests (internal/imagebuild): podman, run
# with runc (crun, podman's default, refuses hosts with hybrid cgroups).
command -v podman >/dev/null 2>&1 || need_pkgs+=(podman)
command -v runc >/dev/null 2>&1 || need_pkgs+=(runc)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  echo "deps: installing ${need_pkgs[*]}" >&2
  # A new machine's package lists can be months old: installing from them
  # gives an old patch release (or fails on a removed one), so refresh first.
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"; } >"$CACHE/apt.log" 2>&1 \
    || { tail -20 "$CACHE/apt.log" >&2; kill "${pids[@]}" 2>/dev/null; exit 1; }
fi

failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
exit "$failed"
