#!/usr/bin/env bash
# The admin UI in a real browser: playwright-core (pinned in package.json,
# locked in package-lock.json) driving Debian's chromium against the real
# `sluicegate` binary and the fake upstream (`examples/fake_upstream.rs`).
#
# On a fresh Debian machine it installs what is missing:
#   - chromium from apt when /usr/bin/chromium is absent (as root, or via sudo);
#   - playwright-core with `npm ci` (never `npx playwright install`: the browser
#     is Debian's).
# Then it builds both binaries (debug, the same target dir as the rest of
# ./test.sh) and runs e2e.test.mjs with node's built-in test runner. The test
# starts the fake upstream and the gateway itself, each on 127.0.0.1:0 with the
# address read from its own announcement, with a temporary data dir and
# SLUICEGATE_ADMIN_TOKEN set, and stops both at the end.
# Screenshots go to <target>/ui-screenshots/. Exits with the test's status.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

chromium="${SLUICEGATE_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "tests/ui: installing Debian's chromium (apt-get)" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)

cargo build --locked --quiet --bin sluicegate --example fake_upstream
target_dir="$(cargo metadata --format-version 1 --no-deps |
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')"
export SLUICEGATE_BIN="$target_dir/debug/sluicegate"
export FAKE_UPSTREAM_BIN="$target_dir/debug/examples/fake_upstream"
export SLUICEGATE_CHROMIUM="$chromium"
export SLUICEGATE_UI_SCREENSHOTS="$target_dir/ui-screenshots"
export SLUICEGATE_UI_SOURCE="$root/ui/src"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export SLUICEGATE_UI_WORK="$work"

cd "$here"
node --test --test-concurrency=1 "$@" e2e.test.mjs
