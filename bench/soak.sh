#!/usr/bin/env bash
# A bounded load soak of the release binary: SOAK_CONCURRENCY clients send
# mixed plain and streamed chat completions for SOAK_DURATION through six
# channels, three of them failing on purpose (500s, first-byte timeouts,
# streams cut mid-way). Samples the gateway's RSS every 5 s into rss.csv and
# ends with requests, errors by kind, p50/p99, the RSS figures and slope, and
# the count check (tokens counted == tokens reported + the gateway's own
# estimates for the cut streams), live and after a graceful restart.
#
#   bench/soak.sh
#
# Settings (env): SOAK_DURATION (5m), SOAK_CONCURRENCY (128), SOAK_OUT (a
# temporary directory, kept when set: rss.csv, gateway.log, data/).
# Not part of CI; the logic lives in examples/soak/. Exits non-zero when the
# counts are not exact.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
DURATION=${SOAK_DURATION:-5m}
CONCURRENCY=${SOAK_CONCURRENCY:-128}
if [ -n "${SOAK_OUT:-}" ]; then
  OUT=$SOAK_OUT
  mkdir -p "$OUT"
  rm -rf "$OUT/data" "$OUT/gateway.log"
else
  OUT=$(mktemp -d -t sluicegate-soak.XXXXXX)
  trap 'rm -rf "$OUT"' EXIT
fi

printf '== building the release binary and the soak driver\n' >&2
(cd "$ROOT" && cargo build --release --locked --bin sluicegate --example soak)

# 128 clients plus the gateway's upstream connections need more descriptors
# than the common default of 1024.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

"$TARGET/release/examples/soak" --binary "$TARGET/release/sluicegate" \
  --duration "$DURATION" --concurrency "$CONCURRENCY" --out "$OUT"
