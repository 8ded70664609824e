#!/usr/bin/env bash
# Benchmarks a three-node Sluicegate cluster on 127.0.0.1 against the fake
# upstream and prints a summary:
#   (a) replicated counting throughput: load on nodes 1 and 2 only, while the
#       day count and the raft applied index are sampled on node 3, which
#       serves nothing itself, so everything it sees was committed;
#   (b) p99 relay latency at concurrency 32, clustered vs a single node
#       (wrk, median of several interleaved runs);
#   (c) failover: kill -9 the leader -> a new leader -> a config write
#       accepted, polled every 50 ms.
#
#   bench/cluster.sh
#
# Settings (env): BENCH_P99_RUNS (5), BENCH_P99_DURATION (5s), BENCH_WARMUP
# (2s), BENCH_THREADS (2), BENCH_THROUGHPUT_DURATION (10), in seconds.
# Not part of CI. Reuses bench/run.sh's helpers (it sources them without
# running its main); needs wrk, curl and python3.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/run.sh
source <(sed '/^main "\$@"$/d' "$ROOT/bench/run.sh")
P99_DURATION=${BENCH_P99_DURATION:-5s}
THROUGHPUT_SECONDS=${BENCH_THROUGHPUT_DURATION:-10}
SECRET_FILE=$WORK/cluster.secret
declare -A NODE_PORT NODE_CPORT NODE_PID

json() { python3 -c "import json, sys; v = json.load(sys.stdin); print($1)"; }

now_ms() { date +%s%3N; }

get() {
  curl -fsS --max-time 2 "http://127.0.0.1:${NODE_PORT[$1]}$2" \
    -H "Authorization: Bearer $ADMIN_TOKEN"
}

post_on() {
  curl -sS --max-time "${3:-10}" -o /dev/null -w '%{http_code}' -X POST \
    "http://127.0.0.1:${NODE_PORT[$1]}$2" \
    -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' -d "$4"
}

start_node() {
  local id=$1 peers=$2
  mkdir -p "$WORK/node$id"
  SLUICEGATE_ADMIN_TOKEN=$ADMIN_TOKEN "$TARGET/release/sluicegate" serve \
    --listen "127.0.0.1:${NODE_PORT[$id]}" --data-dir "$WORK/node$id" --log-level warn \
    --node-id "$id" --cluster-listen "127.0.0.1:${NODE_CPORT[$id]}" \
    --cluster-peers "$peers" --cluster-secret-file "$SECRET_FILE" \
    >"$WORK/node$id.log" 2>&1 &
  NODE_PID[$id]=$!
  PIDS+=("$!")
}

start_cluster() {
  python3 -c 'import secrets; print(secrets.token_hex(32))' >"$SECRET_FILE"
  chmod 600 "$SECRET_FILE"
  local peers="" id
  for id in 1 2 3; do
    NODE_PORT[$id]=$(free_port)
    NODE_CPORT[$id]=$(free_port)
    peers+="${peers:+,}$id=127.0.0.1:${NODE_CPORT[$id]}"
  done
  for id in 1 2 3; do start_node "$id" "$peers"; done
  for id in 1 2 3; do wait_for_port "${NODE_PORT[$id]}" "node $id"; done
  LEADER=$(wait_leader 1 2 3)
  log "cluster formed; leader is node $LEADER"
}

# wait_leader IDS...: polls until one of them reports itself leader.
wait_leader() {
  local id role
  for _ in $(seq 1 600); do
    for id in "$@"; do
      role=$(get "$id" /api/cluster 2>/dev/null | json 'v["role"]' 2>/dev/null) || continue
      if [ "$role" = leader ]; then echo "$id"; return 0; fi
    done
    sleep 0.05
  done
  log "no leader among $*"
  exit 1
}

provision_cluster() {
  local body
  body="{\"name\":\"bench\",\"base_url\":\"http://127.0.0.1:$UPSTREAM_PORT/v1\",\
\"key\":\"sk-bench-upstream\",\"models\":[\"bench-model\"],\
\"settings\":{\"daily_token_limit\":1000000000000,\"daily_reset_timezone\":\"UTC\"}}"
  CHANNEL_ID=$(curl -fsS -X POST "http://127.0.0.1:${NODE_PORT[1]}/api/channels" \
    -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' -d "$body" \
    | json 'v["id"]')
  local token
  token=$(curl -fsS -X POST "http://127.0.0.1:${NODE_PORT[1]}/api/tokens" \
    -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
    -d '{"name":"bench"}')
  CLUSTER_KEY=$(echo "$token" | json 'v["key"]')
  local token_id
  token_id=$(echo "$token" | json 'v["id"]')
  for id in 2 3; do
    for _ in $(seq 1 200); do
      get "$id" "/api/tokens/$token_id" >/dev/null 2>&1 && break
      sleep 0.05
    done
  done
}

# wrk against node ID (or the single gateway with ID=single), no RESULT row.
wrk_raw() {
  local port=$1 key=$2 conc=$3 duration=$4
  BENCH_KEY=$key BENCH_STREAM=0 wrk -t "$THREADS" -c "$conc" -d "$duration" \
    -s "$ROOT/bench/post.lua" --latency "http://127.0.0.1:$port/v1/chat/completions"
}

# (b) p99 at c=32: drive() from run.sh against the single node and node 1,
# interleaved so drift hits both alike.
measure_latency() {
  local single_port=$GATEWAY_PORT single_key=$API_KEY
  for target in single cluster; do
    if [ $target = single ]; then GATEWAY_PORT=$single_port API_KEY=$single_key
    else GATEWAY_PORT=${NODE_PORT[1]} API_KEY=$CLUSTER_KEY; fi
    drive warmup sluicegate plain 32 "$WARMUP"
  done
  for _ in $(seq 1 "$P99_RUNS"); do
    GATEWAY_PORT=$single_port API_KEY=$single_key drive single sluicegate plain 32 "$P99_DURATION"
    GATEWAY_PORT=${NODE_PORT[1]} API_KEY=$CLUSTER_KEY drive cluster sluicegate plain 32 "$P99_DURATION"
  done
  GATEWAY_PORT=$single_port API_KEY=$single_key
}

# (a) load on nodes 1 and 2; node 3 only observes.
measure_throughput() {
  local samples=$WORK/throughput.tsv
  : >"$samples"
  wrk_raw "${NODE_PORT[1]}" "$CLUSTER_KEY" 32 "${THROUGHPUT_SECONDS}s" >"$WORK/wrk1.txt" &
  local w1=$!
  wrk_raw "${NODE_PORT[2]}" "$CLUSTER_KEY" 32 "${THROUGHPUT_SECONDS}s" >"$WORK/wrk2.txt" &
  local w2=$!
  while kill -0 "$w1" 2>/dev/null || kill -0 "$w2" 2>/dev/null; do
    local used applied
    used=$(get 3 "/api/channels/$CHANNEL_ID/usage" | json 'v["used"]') || used=""
    applied=$(get 3 /api/cluster | json '[m["applied_index"] for m in v["members"] if m["node_id"] == v["node_id"]][0]') || applied=""
    [ -n "$used" ] && printf '%s\t%s\t%s\n' "$(now_ms)" "$used" "$applied" >>"$samples"
    sleep 0.5
  done
  wait "$w1" "$w2" || true
  # Settle: how long until node 3 matches nodes 1 and 2 once load stops.
  local settled_ms="" start counts
  start=$(now_ms)
  for _ in $(seq 1 200); do
    counts=$(for id in 1 2 3; do get "$id" "/api/channels/$CHANNEL_ID/usage" | json 'v["used"]'; done | sort -u | wc -l)
    if [ "$counts" = 1 ]; then settled_ms=$(( $(now_ms) - start )); break; fi
    sleep 0.05
  done
  THROUGHPUT=$(python3 - "$samples" <<'EOF'
import sys
rows = [line.split("\t") for line in open(sys.argv[1]) if line.strip()]
rows = [(int(t), int(u), int(a) if a.strip() not in ("", "None") else None) for t, u, a in rows]
# Skip the first and last samples (wrk ramping up and down).
rows = rows[1:-1] if len(rows) > 4 else rows
if len(rows) < 2:
    print("not enough samples"); sys.exit()
(t0, u0, a0), (t1, u1, a1) = rows[0], rows[-1]
seconds = (t1 - t0) / 1000
tokens = (u1 - u0) / seconds
line = f"{tokens:,.0f} tokens/s committed = {tokens / 18:,.0f} counted requests/s (18 tokens each)"
if a0 is not None and a1 is not None:
    line += f"; {(a1 - a0) / seconds:,.1f} raft entries/s applied"
print(line)
EOF
)
  THROUGHPUT+="; node 3 matched nodes 1-2 ${settled_ms:-?} ms after the load stopped"
  THROUGHPUT_RPS=$(for f in "$WORK/wrk1.txt" "$WORK/wrk2.txt"; do grep '^RESULT' "$f"; done \
    | awk '{ sub("rps=", "", $2); total += $2 } END { printf "%.0f", total }')
}

# (c) kill -9 the leader; time to a new leader and to an accepted write.
measure_failover() {
  local old=$LEADER survivors=() id
  for id in 1 2 3; do [ "$id" != "$old" ] && survivors+=("$id"); done
  local t0 t_leader="" t_write="" new="" attempt=0 code
  kill -9 "${NODE_PID[$old]}"
  t0=$(now_ms)
  # First a new leader, polled every 50 ms...
  while [ -z "$t_leader" ] && [ $(( $(now_ms) - t0 )) -lt 30000 ]; do
    for id in "${survivors[@]}"; do
      if [ "$(get "$id" /api/cluster 2>/dev/null | json 'v["role"]' 2>/dev/null)" = leader ]; then
        new=$id; t_leader=$(now_ms); break
      fi
    done
    [ -z "$t_leader" ] && sleep 0.05
  done
  # ...then a config write on the other survivor (forwarded to the leader).
  local writer=${survivors[0]}
  [ "$writer" = "$new" ] && writer=${survivors[1]}
  while [ -z "$t_write" ] && [ $(( $(now_ms) - t0 )) -lt 30000 ]; do
    attempt=$((attempt + 1))
    code=$(post_on "$writer" /api/channels 5 \
      "{\"name\":\"failover-$attempt\",\"base_url\":\"http://127.0.0.1:$UPSTREAM_PORT/v1\",\"key\":\"sk-x\",\"models\":[\"failover-model\"]}" \
      2>/dev/null) || code=000
    if [ "$code" = 201 ]; then t_write=$(now_ms); else sleep 0.05; fi
  done
  local leader_ms=never write_ms=never
  [ -n "$t_leader" ] && leader_ms="$(( t_leader - t0 )) ms"
  [ -n "$t_write" ] && write_ms="$(( t_write - t0 )) ms"
  FAILOVER="leader node $old killed; new leader node ${new:-?} after $leader_ms; \
config write accepted on node $writer after $write_ms ($attempt attempts)"
}

main() {
  command -v wrk >/dev/null || install_tools
  build
  start_upstream
  start_gateway
  create_key
  start_cluster
  provision_cluster
  : >"$WORK/results.tsv"
  log "(b) p99 at concurrency 32, single vs clustered"
  measure_latency
  log "(a) replicated counting throughput for ${THROUGHPUT_SECONDS}s"
  measure_throughput
  log "(c) failover"
  measure_failover

  echo
  echo "Sluicegate cluster benchmark (3 nodes + fake upstream on 127.0.0.1, $(nproc) cores)"
  echo "(a) replicated counting: $THROUGHPUT"
  echo "    relay load meanwhile: $THROUGHPUT_RPS req/s over nodes 1-2 (c=32 each)"
  python3 - "$WORK/results.tsv" <<'EOF'
import statistics, sys
rows = [line.split("\t") for line in open(sys.argv[1]) if line.strip()]
def col(kind, index):
    return [float(row[index]) for row in rows if row[0] == kind]
single, cluster = col("single", 6), col("cluster", 6)
if single and cluster:
    s, c = statistics.median(single), statistics.median(cluster)
    print(f"(b) p99 at c=32 (median of {len(single)} runs): single {s:,.0f} us, "
          f"clustered {c:,.0f} us, added {c - s:+,.0f} us (target <= 50 us)")
    print(f"    rps: single {statistics.median(col('single', 4)):,.0f}, "
          f"clustered {statistics.median(col('cluster', 4)):,.0f}")
EOF
  echo "(c) failover: $FAILOVER (target < 3 s)"
}

main "$@"
