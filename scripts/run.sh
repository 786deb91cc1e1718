#!/usr/bin/env bash
# Builds (release) and runs socketio-server. Arguments go to the server; with none it serves on
# 0.0.0.0:3000. Idempotent: installs only what is missing, rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export PATH="/opt/swift/usr/bin:$PATH"
swift build -c release --product socketio-server >&2
exec .build/release/socketio-server "$@"
