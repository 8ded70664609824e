#!/usr/bin/env bash
# The one test command: formatting, lints, then every test target.
# Needs the Rust toolchain and python3 (and crates.io / PyPI on a cold cache).
set -euo pipefail
cd "$(dirname "$0")"

cargo fmt --all -- --check
# --all-features also lints and type-checks the optional `otel` feature.
cargo clippy --locked --all-targets --all-features -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  # Same targets as `cargo test --all-targets`, one process per test.
  cargo nextest run --locked --all-targets --no-fail-fast
else
  cargo test --locked --all-targets --no-fail-fast
fi
# Fuzzing smoke run (fuzz/, needs only stable Rust): every cargo-fuzz
# target on a copy of its seeds; unoptimized and short to keep CI quick.
FUZZ_SECONDS="${FUZZ_SECONDS:-10}" FUZZ_BUILD="${FUZZ_BUILD:-dev}" fuzz/smoke.sh
# Packaging (packaging/): lint the Dockerfile, the compose file and the
# systemd unit, then build and run the exact binary the Dockerfile builds.
SLUICEGATE_CHECK_DIST="${SLUICEGATE_CHECK_DIST:-1}" packaging/check.sh
# The real-client suite: official Python SDKs against the real binary, in a
# virtualenv it creates from PyPI (needs python3 and pip).
tests/clients/run.sh

# The admin UI (ui/, built into the committed assets/ui/ that the binary
# embeds). Needs node >= 20 with npm (and the npm registry on a cold cache).
# (a) Freshness: rebuild from the sources; the committed output must not change.
(cd ui && npm ci --no-audit --no-fund --loglevel=error && npm run build)
if [ -n "$(git status --porcelain -- assets/ui)" ]; then
  git status --short -- assets/ui >&2
  echo "assets/ui is stale: run npm run build in ui/ and commit" >&2
  exit 1
fi
# (b) The UI's own checks: every string in en, zh-CN and zh-TW.
(cd ui && npm test)
# (c) The UI in a real browser: playwright-core + Debian's chromium (installed
# with apt-get when missing) against the real binary and the fake upstream.
tests/ui/run.sh
