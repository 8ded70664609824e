#!/usr/bin/env bash
# The one test command: formatting, lints, then every test target.
# Needs only the Rust toolchain (and the crates.io registry on a cold cache).
set -euo pipefail
cd "$(dirname "$0")"

# rust-toolchain.toml pins 1.95.0. On a machine whose only toolchain is a
# `stable` that is 1.95.0 but not installed under that name, link it rather
# than letting rustup try (and fail) to download it.
if command -v rustup >/dev/null 2>&1 && ! rustup toolchain list | grep -q '^1\.95\.0'; then
  if rustc +stable --version 2>/dev/null | grep -q '^rustc 1\.95\.0 '; then
    rustup toolchain link 1.95.0 "$(rustc +stable --print sysroot)"
  fi
fi

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  # Same targets as `cargo test --all-targets`, one process per test.
  cargo nextest run --locked --all-targets --no-fail-fast
else
  cargo test --locked --all-targets --no-fail-fast
fi
