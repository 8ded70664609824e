#!/usr/bin/env bash
# The real-client suite: the official `openai` and `anthropic` Python SDKs
# against the real `sluicegate` binary and the fake upstream binary
# (`examples/fake_upstream.rs`, which serves tests/it/support/upstream/).
#
# Needs python3 (with venv + pip) and the Rust toolchain. It creates a
# virtualenv from PyPI (pinned in requirements.txt; reinstalled only when
# that file changes), builds both binaries, and runs pytest. conftest.py
# starts the fake upstream and the gateway on free 127.0.0.1 ports (each
# binds :0 and announces its address) with a temporary data dir, creates
# channels and keys over the admin API, and stops both at the end.
# Exits with pytest's status.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

venv="${SLUICEGATE_CLIENTS_VENV:-$root/target/clients-venv}"
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$here/requirements.txt" "$stamp"; then
  rm -rf "$venv"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    # No ensurepip (Debian without python3-venv): bootstrap virtualenv from PyPI.
    rm -rf "$venv"
    tools="$(dirname "$venv")/clients-virtualenv"
    python3 -m pip install --quiet --disable-pip-version-check --target "$tools" virtualenv==21.15.11
    PYTHONPATH="$tools" python3 -m virtualenv --quiet "$venv"
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$stamp"
fi

cargo build --locked --quiet --bin sluicegate --example fake_upstream
target_dir="$(cargo metadata --format-version 1 --no-deps | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
export SLUICEGATE_BIN="$target_dir/debug/sluicegate"
export FAKE_UPSTREAM_BIN="$target_dir/debug/examples/fake_upstream"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export SLUICEGATE_CLIENTS_WORK="$work"

cd "$here"
"$venv/bin/python" -m pytest -p no:cacheprovider -q "$@"
