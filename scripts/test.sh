#!/usr/bin/env bash
# Runs the whole test suite: installs what it needs, builds debug and release (failing on any
# compiler warning in this project's code), runs the Swift tests, then the end-to-end tests
# against the real server binary on 127.0.0.1. Exits non-zero when anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
python="$(bash scripts/install-deps.sh --test | tail -n 1)"
# The real-client harness lives beside the repository (shared/realclients): Node's WebSocket
# package and Chromium from Debian, and the official socket.io client bundle from PyPI.
shared="${SHARED_DIR:-$(cd .. && pwd)/shared}"
[ -d "$shared/realclients" ] || { echo "test: $shared/realclients not found (set SHARED_DIR)" >&2; exit 1; }
bash "$shared/realclients/install-deps.sh" --node --browser
export SHARED_DIR="$shared"
export RC_BUNDLE="$(bash "$shared/realclients/fetch-client.sh" v4)"
export PATH="/opt/swift/usr/bin:$PATH"
# The Redis tests start their own redis-server (installed above): missing, they fail rather than skip.
export SOCKETIO_REQUIRE_REDIS=1
logs=.build/test-logs
mkdir -p "$logs"

check_warnings() {
  # Warnings in this package's own sources fail the build (dependencies are not ours to fix).
  if grep -E "^$(pwd)/(Sources|Tests)/.*: warning:" "$1"; then
    echo "test: compiler warnings in $2 build" >&2
    exit 1
  fi
}

step() {
  # step NAME LOG COMMAND...: runs COMMAND into LOG; on failure prints the log's tail and exits.
  local name="$1" log="$2"
  shift 2
  echo "== $name"
  if ! "$@" >"$log" 2>&1; then
    tail -n 80 "$log"
    echo "test: $name failed" >&2
    exit 1
  fi
}

step "swift format lint" "$logs/lint.log" swift format lint --strict --recursive Sources Tests Package.swift
step "swift build (debug, with tests)" "$logs/debug.log" swift build --build-tests
check_warnings "$logs/debug.log" debug
step "swift build (release)" "$logs/release.log" bash scripts/build-release.sh --product socketio-server
check_warnings "$logs/release.log" release
# The micro-benchmarks live behind SOCKETIO_BENCHMARKS: build them (and run the quickest one) so
# they cannot rot unnoticed, plus the hostile-JSON guard: a 1 MB object of 110 000 keys must parse
# within its bound in this release build (a quadratic parser takes seconds; the benchmark reports
# "over the bound").
step "micro-benchmarks (build + quick runs + JSON bound)" "$logs/microbench.log" \
  bash scripts/microbench.sh --filter 'Engine.IO decode message.*' --filter 'Socket.IO decode event .1 MB.*'
grep -q "Engine.IO decode message" "$logs/microbench.log" || { echo "test: micro-benchmark did not run" >&2; exit 1; }
grep -q "1 MB object of 110 000 keys" "$logs/microbench.log" || { echo "test: JSON bound did not run" >&2; exit 1; }
if grep -q "over the bound" "$logs/microbench.log"; then
  grep "over the bound" "$logs/microbench.log" >&2
  echo "test: hostile JSON parse exceeded its bound" >&2
  exit 1
fi
step "swift test" "$logs/test.log" swift test --skip-build
grep -E "✘|Test run with" "$logs/test.log" | tail -n 20

echo "== end-to-end (real server on 127.0.0.1)"
export SOCKETIO_SERVER_BIN="$(pwd)/.build/debug/socketio-server"
cd Tests/e2e
"$python" -m pytest -q -p no:cacheprovider -rfE "$@"
