#!/usr/bin/env bash
# The release build every script uses (run, bench, tests), so that they share one build
# directory: optimized, with Swift's dynamic exclusivity checks off. Those checks cost about a
# tenth of the CPU per message in the hot paths (most of it inside SwiftNIO's ByteBuffer); the
# debug build the tests run keeps them, so an exclusivity violation still traps there.
# Arguments go to `swift build` (e.g. --product socketio-server).
set -euo pipefail
cd "$(dirname "$0")/.."
exec swift build -c release -Xswiftc -enforce-exclusivity=unchecked "$@"
