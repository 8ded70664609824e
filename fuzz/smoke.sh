#!/usr/bin/env bash
# A short fuzzing smoke run of every target in fuzz/ (see README, "Fuzzing").
#
# Installs the pinned cargo-fuzz into target/tools if it is missing, builds
# every target once, then runs each for FUZZ_SECONDS (default 20) on a
# temporary copy of its committed seeds (fuzz/corpus/<target>/ stays seeds
# only). Fails if any target crashes, panics, times out on one input or
# leaks past the memory limit; the input is kept in fuzz/artifacts/<target>/.
# Prints the executions of each target.
#
# Usage: fuzz/smoke.sh [TARGET...]   (default: every target)
#
# Stable Rust is enough: with `--sanitizer none` cargo-fuzz passes no `-Z`
# flag (the sanitizers are what need nightly), so no RUSTC_BOOTSTRAP either.
# Panics, overflow checks and debug assertions are what catch bugs here.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
seconds="${FUZZ_SECONDS:-20}"
tools="$PWD/target/tools"
export PATH="$tools/bin:$PATH"

if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$tools"
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

# FUZZ_BUILD=dev builds without optimizations: a much shorter cold build
# (what CI uses, see test.sh) for fewer executions per second.
build=(--sanitizer none)
profile_dir=release
if [ "${FUZZ_BUILD:-release}" = dev ]; then
  build+=(--dev)
  profile_dir=debug
fi
# An explicit target dir, so the binaries are where we look for them even
# when CARGO_TARGET_DIR points elsewhere (it would move them).
fuzz_target="$PWD/fuzz/target"
build+=(--target-dir "$fuzz_target")
started=$SECONDS
cargo fuzz build "${build[@]}"
echo "fuzz: built ${#targets[@]} targets (${profile_dir}) in $((SECONDS - started)) s"
# The binaries are run directly: `cargo fuzz run` would check the build
# again before every target.
bin="$fuzz_target/$(rustc -vV | sed -n 's/^host: //p')/$profile_dir"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=()
passed=0
for target in "${targets[@]}"; do
  corpus="$scratch/$target"
  mkdir -p "$corpus" "fuzz/artifacts/$target"
  if [ -d "fuzz/corpus/$target" ]; then
    cp fuzz/corpus/"$target"/* "$corpus"/
  fi
  log="$scratch/$target.log"
  # -timeout: one input taking 10 s is a failure (runaway parsing).
  if "$bin/$target" "$corpus" -max_total_time="$seconds" -timeout=10 \
    -dict=fuzz/dict -artifact_prefix="fuzz/artifacts/$target/" \
    -print_final_stats=1 >"$log" 2>&1; then
    passed=$((passed + 1))
  else
    failed+=("$target")
    # The panic message and the input that caused it.
    grep -A 3 -e 'panicked at' -e '^==[0-9]*== ERROR' -e 'Test unit written' "$log" >&2 || tail -n 40 "$log" >&2
  fi
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  if [ ! -x "$bin/$target" ]; then
    echo "fuzz: $target: no binary at $bin/$target" >&2
  fi
  echo "fuzz: $target: ${runs:-?} executions in ${seconds} s"
done

echo "fuzz: ${passed} targets clean, ${#failed[@]} crashed, in $((SECONDS - started)) s"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: crashed: ${failed[*]}; reproduce with" >&2
  echo "  cargo fuzz run --sanitizer none TARGET fuzz/artifacts/TARGET/crash-..." >&2
  exit 1
fi
