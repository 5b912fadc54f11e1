#!/usr/bin/env bash
# Runs the benchmark harness (bench/harness): one MariaDB, HAProxy 2.6,
# pisa-proxy (bin/pisa-proxy, from `make build`) and optionally TiProxy side by
# side under sysbench. Results go to bench/RESULTS.md between the harness
# markers (QPS, p95/p99, proxy and server CPU per statement), with one PNG per
# sysbench test (QPS against threads) next to it.
#
#   make bench                      # full run: default targets, 1/8/32 threads, 20 s per case
#   bench/run.sh --time 60          # harness flags pass through (see --help)
#   bench/run.sh --tiproxy-src DIR  # also TiProxy, built from a pingcap/tiproxy checkout
#                                   # at v26.3.1 (or set PISANIX_TIPROXY_SRC=DIR)
#   bench/run.sh --mem              # memory check: ~1 GiB result set through the proxy
#
# Installs sysbench and haproxy with apt-get when they are missing (under the
# same lock file internal/testenv uses for mariadb-server).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${PISANIX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pisanix}
mkdir -p "$CACHE"

need=()
command -v sysbench >/dev/null 2>&1 || need+=(sysbench)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
if [ "${#need[@]}" -gt 0 ]; then
  echo "bench: installing ${need[*]}" >&2
  (
    flock 9
    # A new machine's package lists can be months old: refresh first.
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 "${need[@]}"; } >"$CACHE/apt-bench.log" 2>&1 \
      || { tail -20 "$CACHE/apt-bench.log" >&2; exit 1; }
  ) 9>"$CACHE/apt.lock"
fi

harness=$(mktemp -d)/harness
trap 'rm -rf "$(dirname "$harness")"' EXIT
go build -o "$harness" ./bench/harness
PISANIX_BENCH_COMMAND="bench/run.sh${*:+ $*}" "$harness" "$@"
