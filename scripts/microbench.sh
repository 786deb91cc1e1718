#!/usr/bin/env bash
# Runs the micro-benchmarks (Tests/Benchmarks, ordo-one/benchmark with its malloc interposer) in a
# release build of their own (.build-bench), so the normal build never fetches the harness.
# Arguments go to `swift package benchmark` (e.g. --filter 'Socket.IO.*', --format markdown).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh >/dev/null
export PATH="/opt/swift/usr/bin:$PATH"
export SOCKETIO_BENCHMARKS=1
exec swift package --scratch-path .build-bench --allow-writing-to-package-directory benchmark \
  --no-progress "$@"
