#!/usr/bin/env bash
# The one test command: formatting, lints, then every test target.
# Needs the Rust toolchain and python3 (and crates.io / PyPI on a cold cache).
set -euo pipefail
cd "$(dirname "$0")"

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  # Same targets as `cargo test --all-targets`, one process per test.
  cargo nextest run --locked --all-targets --no-fail-fast
else
  cargo test --locked --all-targets --no-fail-fast
fi
# The real-client suite: official Python SDKs against the real binary, in a
# virtualenv it creates from PyPI (needs python3 and pip).
tests/clients/run.sh
