#!/usr/bin/env bash
# `make run`: the in-memory socks-shop demo database (bin/pisa-demo-backend)
# with pisa-proxy in front of it, in the foreground until Ctrl-C.
#
# Needs bin/pisa-proxy and bin/pisa-demo-backend (`make build`) and bash;
# nothing else. Ports: proxy 3306, admin 5591, backend 3307, each replaced by
# a free one when taken. Override with PROXY_PORT, ADMIN_PORT, BACKEND_PORT.
# Writes etc/demo.toml from etc/demo.toml.tmpl; logs go to a temp directory.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BACKEND_USER=${BACKEND_USER:-pisa_proxy}
BACKEND_PASSWORD=${BACKEND_PASSWORD:-pisa_demo_backend}
CLIENT_USER=catalogue_user
CLIENT_PASSWORD=default_password
DB=socksdb
HOST=127.0.0.1

die() { echo "run-demo: $*" >&2; exit 1; }

for b in bin/pisa-proxy bin/pisa-demo-backend; do
  [ -x "$b" ] || die "$b is missing: run 'make build' (or 'make run') first"
done
[ -f etc/demo.toml.tmpl ] || die "etc/demo.toml.tmpl is missing"

# port_busy PORT: true when something accepts TCP on 127.0.0.1:PORT.
port_busy() {
  (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# pick_port PREFERRED TAKEN...: PREFERRED if free, else the next free port
# above it that is not among TAKEN.
pick_port() {
  local p=$1; shift
  local limit=$((p + 200))
  while [ "$p" -le "$limit" ]; do
    if ! port_busy "$p" && [[ " $* " != *" $p "* ]]; then
      echo "$p"
      return 0
    fi
    p=$((p + 1))
  done
  die "no free port in $1..$limit"
}

BACKEND_PORT=${BACKEND_PORT:-$(pick_port 3307)}
PROXY_PORT=${PROXY_PORT:-$(pick_port 3306 "$BACKEND_PORT")}
ADMIN_PORT=${ADMIN_PORT:-$(pick_port 5591 "$BACKEND_PORT" "$PROXY_PORT")}
for p in "$BACKEND_PORT" "$PROXY_PORT" "$ADMIN_PORT"; do
  port_busy "$p" && die "port $p on $HOST is already in use"
done
[ "$(printf '%s\n' "$BACKEND_PORT" "$PROXY_PORT" "$ADMIN_PORT" | sort -u | wc -l)" -eq 3 ] ||
  die "backend, proxy and admin ports must differ ($BACKEND_PORT, $PROXY_PORT, $ADMIN_PORT)"

# sed replacement text with \, & and | escaped.
sed_escape() { printf '%s' "$1" | sed -e 's/[\\&|]/\\&/g'; }
# TOML basic-string content with \ and " escaped.
toml_escape() { local s=${1//\\/\\\\}; printf '%s' "${s//\"/\\\"}"; }

sed -e "s|@ADMIN_PORT@|$ADMIN_PORT|g" \
    -e "s|@PROXY_PORT@|$PROXY_PORT|g" \
    -e "s|@BACKEND_PORT@|$BACKEND_PORT|g" \
    -e "s|@BACKEND_USER@|$(sed_escape "$(toml_escape "$BACKEND_USER")")|g" \
    -e "s|@BACKEND_PASSWORD@|$(sed_escape "$(toml_escape "$BACKEND_PASSWORD")")|g" \
    etc/demo.toml.tmpl >etc/demo.toml.new
mv etc/demo.toml.new etc/demo.toml

LOGS=$(mktemp -d "${TMPDIR:-/tmp}/pisanix-demo.XXXXXX")
BACKEND_PID=
PROXY_PID=

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  echo
  for pid in $PROXY_PID $BACKEND_PID; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in $PROXY_PID $BACKEND_PID; do
    wait "$pid" 2>/dev/null || true
  done
  [ -n "$PROXY_PID$BACKEND_PID" ] && echo "run-demo: stopped pisa-proxy and pisa-demo-backend (logs kept in $LOGS)"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# fail LOG MESSAGE: show the end of a child's log and give up.
fail() {
  echo "run-demo: $2; last lines of $1:" >&2
  tail -n 20 "$1" >&2 || true
  exit 1
}

# wait_for WHAT PID LOG CHECK...: run CHECK until it succeeds (20 s at most),
# giving up early when PID exits.
wait_for() {
  local what=$1 pid=$2 log=$3; shift 3
  local i
  for ((i = 0; i < 200; i++)); do
    "$@" && return 0
    kill -0 "$pid" 2>/dev/null || fail "$log" "$what exited during start-up"
    sleep 0.1
  done
  fail "$log" "$what did not become ready within 20s"
}

# http_ok PORT PATH: true on an HTTP 200 from 127.0.0.1:PORT (curl when
# installed, else bash's /dev/tcp).
http_ok() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -o /dev/null --max-time 2 "http://$HOST:$1$2" 2>/dev/null
    return
  fi
  local status
  status=$(
    exec 2>/dev/null
    exec 3<>"/dev/tcp/$HOST/$1" || exit 1
    printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$2" "$HOST" >&3
    IFS= read -r -t 2 line <&3 && printf '%s' "$line"
  ) || return 1
  [[ $status == "HTTP/1."?" 200"* ]]
}

echo "run-demo: starting pisa-demo-backend on $HOST:$BACKEND_PORT (log: $LOGS/backend.log)"
bin/pisa-demo-backend --addr "$HOST:$BACKEND_PORT" --user "$BACKEND_USER" --password "$BACKEND_PASSWORD" \
  >"$LOGS/backend.log" 2>&1 &
BACKEND_PID=$!
backend_up() { grep -q "demo backend ready" "$LOGS/backend.log" && port_busy "$BACKEND_PORT"; }
wait_for pisa-demo-backend "$BACKEND_PID" "$LOGS/backend.log" backend_up

echo "run-demo: starting pisa-proxy daemon -c etc/demo.toml (log: $LOGS/proxy.log)"
bin/pisa-proxy daemon -c etc/demo.toml >"$LOGS/proxy.log" 2>&1 &
PROXY_PID=$!
wait_for pisa-proxy "$PROXY_PID" "$LOGS/proxy.log" http_ok "$ADMIN_PORT" /readyz

cat <<EOF

================================================================================
 Pisanix demo is running: pisa-proxy on $HOST:$PROXY_PORT, in front of an
 in-memory MySQL-compatible socks-shop database ($DB: catalogue, tag, sock_tag).

 Connect through the proxy:
   mariadb -h$HOST -P$PROXY_PORT -u$CLIENT_USER -p$CLIENT_PASSWORD $DB
   mysql   -h$HOST -P$PROXY_PORT -u$CLIENT_USER -p$CLIENT_PASSWORD $DB
 (The proxy serves plain TCP here. A client that insists on TLS needs it off:
  mariadb --skip-ssl, MySQL's mysql --ssl-mode=DISABLED.)

 Metrics and health:
   curl http://$HOST:$ADMIN_PORT/metrics
   curl http://$HOST:$ADMIN_PORT/readyz
   curl http://$HOST:$ADMIN_PORT/sessions

 Config: etc/demo.toml   Logs: $LOGS/{proxy,backend}.log
 Press Ctrl-C to stop both.
================================================================================
EOF

if command -v mariadb >/dev/null 2>&1; then
  query="SELECT id, name, price FROM catalogue LIMIT 3"
  echo
  echo "\$ mariadb -h$HOST -P$PROXY_PORT -u$CLIENT_USER -p$CLIENT_PASSWORD $DB -t -e \"$query\""
  mariadb -h"$HOST" -P"$PROXY_PORT" -u"$CLIENT_USER" -p"$CLIENT_PASSWORD" "$DB" -t -e "$query" ||
    echo "run-demo: the example query failed; see $LOGS/proxy.log" >&2
fi

# Until Ctrl-C, or until either child exits on its own.
while kill -0 "$BACKEND_PID" 2>/dev/null && kill -0 "$PROXY_PID" 2>/dev/null; do
  sleep 1
done
kill -0 "$BACKEND_PID" 2>/dev/null || fail "$LOGS/backend.log" "pisa-demo-backend exited"
fail "$LOGS/proxy.log" "pisa-proxy exited"
