#!/usr/bin/env bash
# One benchmark session (release builds): socketio-server --profile bench and the python-socketio
# peer (aiohttp), each pinned to core 0 with taskset, driven by socketio-bench pinned to core 1,
# through connect, idle (10 000 connections), both again offering permessage-deflate, connect
# through long-polling then the upgrade, connect while 10 000 clients stay connected, echo,
# fanout (saturating, then half that rate) and polling. Prints a table with ratios; JSON results
# go to artifacts/bench/.
# Options: --quick (short runs, 2 000 idle clients), --only swift|python.
set -euo pipefail
cd "$(dirname "$0")/.."
python="$(bash scripts/install-deps.sh --test | tail -n 1)"
export PATH="/opt/swift/usr/bin:$PATH"
command -v taskset >/dev/null || { echo "bench: taskset (util-linux) is missing" >&2; exit 1; }
bash scripts/build-release.sh --product socketio-server >&2
bash scripts/build-release.sh --product socketio-bench >&2
# The build leaves dirty pages whose writeback would run during the first scenarios.
sync
exec "$python" scripts/bench/run_session.py --server .build/release/socketio-server \
  --bench .build/release/socketio-bench "$@"
