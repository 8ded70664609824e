#!/usr/bin/env bash
# Checks packaging/ without a Docker engine or a running systemd:
#  1. hadolint (pinned, from PyPI, in target/packaging-venv) on the Dockerfile;
#  2. every SLUICEGATE_* name in packaging/ is a real setting, and the compose
#     file is a 3-node cluster that can form (packaging/tools/settings_check.py);
#  3. the compose file against Compose's own schema (`docker compose config`,
#     else Debian's docker-compose, installed with apt-get when missing);
#  4. `systemd-analyze verify` on the unit and its cluster drop-in (any
#     message fails), and `systemd-analyze security` under a threshold;
#  5. the image's binary: the `RUN cargo build` command read from the
#     Dockerfile, run on the build context .dockerignore leaves (synced to
#     target/packaging/context), then `--version` and a short start on
#     127.0.0.1:0 with the image's environment: GET / serves the embedded UI,
#     GET /api/channels answers 401, SIGTERM exits 0.
# Step 5 is a full dist build (thin LTO): SLUICEGATE_CHECK_DIST=0 skips it.
# Prints "packaging: N checks ok, N failed, N skipped"; exits non-zero on a failure.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

dockerfile=packaging/docker/Dockerfile
compose=packaging/docker/docker-compose.yml
unit_dir=packaging/systemd
# Exposure as `systemd-analyze security` prints it, times ten (1.1 today).
max_exposure=20

venv="$root/target/packaging-venv"
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/hadolint" ] || ! cmp -s "$here/tools/requirements.txt" "$stamp"; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/tools/requirements.txt"
  cp "$here/tools/requirements.txt" "$stamp"
fi
py="$venv/bin/python"
tools="$here/tools"
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ in packaging/tools

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Where the build context is synced and built (kept between runs, so an
# unchanged tree rebuilds nothing), and the binary that build leaves.
context="$root/target/packaging/context"
dist_target="$root/target/packaging/target"
binary_path="$("$py" "$tools/dockerfile.py" binary-path "$dockerfile")" || binary_path=target/missing
bin="$dist_target/${binary_path#target/}"

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing $* with apt-get" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
      || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
  else
    return 1
  fi
}

lint_dockerfile() {
  "$venv/bin/hadolint" "$dockerfile"
}

check_settings() {
  "$py" "$tools/settings_check.py" "$root"
}

compose_schema() {
  if docker compose version >/dev/null 2>&1; then
    docker compose -f "$compose" config --quiet
  elif command -v docker-compose >/dev/null || apt_install docker-compose; then
    docker-compose -f "$compose" config --quiet
  else
    echo "no docker compose or docker-compose, and cannot install one" >&2
    return 77
  fi
}

# The unit as installed, with ExecStart's binary pointed at one that exists
# here (verify checks it is executable).
unit_copy() {
  local binary="$1"
  mkdir -p "$work/unit"
  sed "s#^ExecStart=/usr/local/bin/sluicegate #ExecStart=$binary #" \
    "$unit_dir/sluicegate.service" >"$work/unit/sluicegate.service"
  cp -r "$unit_dir/sluicegate.service.d" "$work/unit/"
}

verify_unit() {
  if ! command -v systemd-analyze >/dev/null && ! apt_install systemd; then
    echo "no systemd-analyze, and cannot install it" >&2
    return 77
  fi
  unit_copy "$(command -v true)"
  local messages
  messages="$(systemd-analyze verify "$work/unit/sluicegate.service" 2>&1)" || true
  if [ -n "$messages" ]; then
    echo "$messages" >&2
    return 1
  fi
  systemd-analyze security --offline=yes --no-pager --threshold="$max_exposure" \
    "$work/unit/sluicegate.service" | tail -n 1
}

dist_binary() {
  mkdir -p "$context"
  "$py" "$tools/dockerfile.py" context "$root" "$context"
  local command=()
  mapfile -t command < <("$py" "$tools/dockerfile.py" cargo-command "$dockerfile")
  echo "in the build context: ${command[*]}" >&2
  local started=$SECONDS
  (cd "$context" && CARGO_TARGET_DIR="$dist_target" "${command[@]}")
  echo "dist build: $((SECONDS - started)) s" >&2
  test -x "$bin"
}

# One HTTP status (and the body, into a file) without needing curl.
http_get() {
  "$py" - "$1" "$2" <<'EOF'
import sys, urllib.request, urllib.error
try:
    response = urllib.request.urlopen(sys.argv[1], timeout=10)
    status, body = response.status, response.read()
except urllib.error.HTTPError as error:
    status, body = error.code, error.read()
open(sys.argv[2], "wb").write(body)
print(status)
EOF
}

smoke_test() {
  local version expected
  version="$("$bin" --version)"
  expected="sluicegate $(cargo metadata --no-deps --format-version 1 --offline |
    "$py" -c 'import json,sys; print(json.load(sys.stdin)["packages"][0]["version"])')"
  if [ "$version" != "$expected" ]; then
    echo "--version printed '$version', expected '$expected'" >&2
    return 1
  fi
  # The image's environment, moved to loopback and a temporary data dir.
  local image_env=()
  mapfile -t image_env < <("$py" "$tools/dockerfile.py" env "$dockerfile")
  env -i PATH=/usr/bin:/bin HOME="$work" "${image_env[@]}" \
    SLUICEGATE_LISTEN=127.0.0.1:0 SLUICEGATE_DATA_DIR="$work/data" SLUICEGATE_LOG_FORMAT=json \
    "$bin" 2>"$work/server.log" &
  server_pid=$!
  trap 'kill -KILL "$server_pid" 2>/dev/null || true' EXIT
  local addr="" tries=0
  while [ -z "$addr" ] && [ "$tries" -lt 300 ] && kill -0 "$server_pid" 2>/dev/null; do
    sleep 0.1
    tries=$((tries + 1))
    addr="$(grep '"listening"' "$work/server.log" | grep -o '"addr":"[^"]*"' | cut -d'"' -f4 || true)"
  done
  if [ -z "$addr" ]; then
    echo "the binary did not start listening:" >&2
    cat "$work/server.log" >&2
    return 1
  fi
  local ui api
  ui="$(http_get "http://$addr/" "$work/index.html")"
  api="$(http_get "http://$addr/api/channels" "$work/api.json")"
  kill -TERM "$server_pid"
  local code=0
  wait "$server_pid" || code=$?
  trap - EXIT
  if grep -q "unknown SLUICEGATE_" "$work/server.log"; then
    grep "unknown SLUICEGATE_" "$work/server.log" >&2
    return 1
  fi
  if [ "$ui" != 200 ] || ! grep -qi "<html" "$work/index.html"; then
    echo "GET / answered $ui without the UI's index.html" >&2
    return 1
  fi
  if [ "$api" != 401 ]; then
    echo "GET /api/channels without a token answered $api, expected 401" >&2
    return 1
  fi
  if [ "$code" != 0 ]; then
    echo "SIGTERM: exit status $code, expected 0" >&2
    return 1
  fi
  echo "$version on $addr: GET / 200 (UI), GET /api/channels 401, SIGTERM exit 0" >&2
}

passed=0 failed=0 skipped=0
# Each step runs in a subshell with errexit (which a `||` would switch off):
# status 0 passes, 77 (automake's SKIP) is skipped, anything else fails.
step() {
  local name="$1"
  shift
  echo "== $name" >&2
  local status=0
  set +e
  (set -e; "$@")
  status=$?
  set -e
  last_status=$status
  case "$status" in
    0) passed=$((passed + 1)) ;;
    77) skipped=$((skipped + 1)); echo "-- skipped: $name" >&2 ;;
    *) failed=$((failed + 1)); echo "-- FAILED: $name" >&2 ;;
  esac
}

step "hadolint $dockerfile" lint_dockerfile
step "settings and cluster wiring" check_settings
step "compose schema" compose_schema
step "systemd unit" verify_unit
if [ "${SLUICEGATE_CHECK_DIST:-1}" = 1 ]; then
  step "the image's binary (dist build)" dist_binary
  if [ "$last_status" = 0 ]; then
    step "the image's binary runs" smoke_test
  else
    failed=$((failed + 1))
    echo "-- FAILED: the image's binary runs (not built)" >&2
  fi
else
  skipped=$((skipped + 2))
  echo "-- skipped: the image's binary (SLUICEGATE_CHECK_DIST=0)" >&2
fi

echo "packaging: $passed checks ok, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
