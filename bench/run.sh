#!/usr/bin/env bash
# Benchmarks Sluicegate against the same fake upstream reached directly and
# through a plain nginx reverse proxy, with wrk, in one run:
# - a tiny chat prompt, non-streaming and streaming, at several concurrencies;
# - a deterministic ~300 KB chat prompt (`bench/prompt.py`: a coding agent's
#   turn, model `gpt-4o-mini`), non-streaming, at concurrency 1 and 8.
# It reports the ratios to nginx and the gateway's RSS at idle, after the
# warm-up traffic (whose upstream reports usage) and at peak (VmHWM).
# Everything listens on 127.0.0.1 only.
#
#   bench/run.sh
#
# Settings (env): BENCH_DURATION (10s), BENCH_CONCURRENCY ("1 32 128"),
# BENCH_BIG_CONCURRENCY ("1 8"; empty skips the large prompt),
# BENCH_MODES ("plain stream"), BENCH_THREADS (2), BENCH_P99_RUNS (5) and
# BENCH_P99_DURATION (3s) for the concurrency-1 p99 medians, BENCH_WARMUP (2s),
# BENCH_ALLOCATIONS (1; 0 skips the allocation count at the end).
# Not part of CI: it installs nginx and wrk with apt-get when they are missing.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
DURATION=${BENCH_DURATION:-10s}
CONCURRENCY=${BENCH_CONCURRENCY:-"1 32 128"}
BIG_CONCURRENCY=${BENCH_BIG_CONCURRENCY-"1 8"}
MODES=${BENCH_MODES:-"plain stream"}
THREADS=${BENCH_THREADS:-2}
P99_RUNS=${BENCH_P99_RUNS:-5}
P99_DURATION=${BENCH_P99_DURATION:-3s}
WARMUP=${BENCH_WARMUP:-2s}
ADMIN_TOKEN=bench-admin-token
WORK=$(mktemp -d -t sluicegate-bench.XXXXXX)
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '== %s\n' "$*" >&2; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for_port() {
  local port=$1 name=$2
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  log "$name did not start listening on $port"
  exit 1
}

install_tools() {
  local missing=()
  command -v nginx >/dev/null || missing+=(nginx)
  command -v wrk >/dev/null || missing+=(wrk)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  # Keep the package's init script from starting a system nginx on :80.
  local policy=/usr/sbin/policy-rc.d made_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
  [ -n "$made_policy" ] && rm -f "$policy"
  return 0
}

build() {
  log "building the release binary and the fake upstream"
  (cd "$ROOT" && cargo build --release --locked --bin sluicegate --example fake_upstream \
    --example allocations)
}

start_upstream() {
  UPSTREAM_PORT=$(free_port)
  "$TARGET/release/examples/fake_upstream" "127.0.0.1:$UPSTREAM_PORT" >"$WORK/upstream.log" 2>&1 &
  PIDS+=($!)
  wait_for_port "$UPSTREAM_PORT" "the fake upstream"
}

start_gateway() {
  GATEWAY_PORT=$(free_port)
  SLUICEGATE_ADMIN_TOKEN=$ADMIN_TOKEN "$TARGET/release/sluicegate" serve \
    --listen "127.0.0.1:$GATEWAY_PORT" --data-dir "$WORK/data" --log-level warn \
    >"$WORK/gateway.log" 2>&1 &
  GATEWAY_PID=$!
  PIDS+=("$GATEWAY_PID")
  wait_for_port "$GATEWAY_PORT" "sluicegate"
}

start_nginx() {
  NGINX_PORT=$(free_port)
  mkdir -p "$WORK/nginx/tmp"
  cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/tmp/body;
  proxy_temp_path $WORK/nginx/tmp/proxy;
  fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
  uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
  scgi_temp_path $WORK/nginx/tmp/scgi;
  upstream fake { server 127.0.0.1:$UPSTREAM_PORT; keepalive 256; }
  # Keep request bodies (the ~300 KB prompt) in memory, as the gateway does.
  client_body_buffer_size 1m;
  client_max_body_size 64m;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://fake;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
EOF
  nginx -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" &
  PIDS+=($!)
  wait_for_port "$NGINX_PORT" "nginx"
}

admin() {
  curl -fsS -X POST "http://127.0.0.1:$GATEWAY_PORT$1" \
    -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' -d "$2"
}

create_key() {
  admin /api/channels "{\"name\":\"bench\",\"base_url\":\"http://127.0.0.1:$UPSTREAM_PORT/v1\",\
\"key\":\"sk-bench-upstream\",\"models\":[\"bench-model\",\"gpt-4o-mini\"]}" >/dev/null
  API_KEY=$(admin /api/tokens '{"name":"bench"}' \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')
}

url_of() {
  case $1 in
    direct) echo "http://127.0.0.1:$UPSTREAM_PORT/v1/chat/completions" ;;
    nginx) echo "http://127.0.0.1:$NGINX_PORT/v1/chat/completions" ;;
    sluicegate) echo "http://127.0.0.1:$GATEWAY_PORT/v1/chat/completions" ;;
  esac
}

# drive KIND TARGET MODE CONCURRENCY DURATION: one wrk run, one TSV row.
drive() {
  local kind=$1 target=$2 mode=$3 conc=$4 duration=$5
  local threads=$((conc < THREADS ? conc : THREADS)) key=sk-bench-upstream stream=0 body=""
  [ "$target" = sluicegate ] && key=$API_KEY
  [ "$mode" = stream ] && stream=1
  [ "$mode" = big ] && body=$WORK/big.json
  local line
  line=$(BENCH_KEY=$key BENCH_STREAM=$stream BENCH_BODY_FILE=$body wrk -t "$threads" -c "$conc" -d "$duration" \
    -s "$ROOT/bench/post.lua" --latency "$(url_of "$target")" | grep '^RESULT') || {
    log "wrk failed for $target $mode c=$conc"
    exit 1
  }
  [ "$kind" = warmup ] && return 0
  log "$target $mode c=$conc: $line"
  set -- $line
  local rps=${2#rps=} p50=${3#p50_us=} p99=${4#p99_us=} non2xx=${6#non2xx=} errors=${7#socket_errors=}
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$kind" "$target" "$mode" "$conc" "$rps" "$p50" "$p99" "$non2xx" "$errors" >>"$WORK/results.tsv"
}

rss_kb() { awk -v field="$2:" '$1 == field { print $2 }' "/proc/$1/status"; }

main() {
  install_tools
  build
  start_upstream
  start_gateway
  start_nginx
  create_key
  python3 "$ROOT/bench/prompt.py" "$WORK/big.json" gpt-4o-mini false
  sleep 1
  local idle_rss warm_rss
  idle_rss=$(rss_kb "$GATEWAY_PID" VmRSS)
  : >"$WORK/results.tsv"

  local modes=$MODES
  [ -n "$BIG_CONCURRENCY" ] && modes="$modes big"
  for mode in $modes; do
    for target in direct nginx sluicegate; do
      drive warmup "$target" "$mode" 8 "$WARMUP"
    done
  done
  sleep 1
  warm_rss=$(rss_kb "$GATEWAY_PID" VmRSS)
  for mode in $modes; do
    local levels=$CONCURRENCY
    [ "$mode" = big ] && levels=$BIG_CONCURRENCY
    for conc in $levels; do
      for target in direct nginx sluicegate; do
        drive main "$target" "$mode" "$conc" "$DURATION"
      done
    done
  done
  # One run's p99 at concurrency 1 is noisy here: take the median of several
  # short runs, interleaving the targets so drift hits them alike.
  for mode in $MODES; do
    for _ in $(seq 1 "$P99_RUNS"); do
      for target in direct nginx sluicegate; do
        drive p99 "$target" "$mode" 1 "$P99_DURATION"
      done
    done
  done

  local peak_rss
  peak_rss=$(rss_kb "$GATEWAY_PID" VmHWM)
  echo
  python3 "$ROOT/bench/report.py" "$WORK/results.tsv" "$idle_rss" "$peak_rss" "$warm_rss"
  # Heap allocations per relayed request, in-process under a counting
  # allocator (examples/allocations.rs); BENCH_ALLOCATIONS=0 skips it.
  if [ "${BENCH_ALLOCATIONS:-1}" != 0 ]; then
    echo
    "$TARGET/release/examples/allocations" "${BENCH_ALLOCATION_REQUESTS:-2000}"
  fi
}

main "$@"
