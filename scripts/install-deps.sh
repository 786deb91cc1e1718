#!/usr/bin/env bash
# Installs what building, running and testing the server needs, idempotently, as root on Debian
# bookworm with the Swift 6 toolchain (the machines this project runs on):
#   - Debian packages: the system C libraries (OpenSSL, zlib) the TLS and deflate layers link,
#     and pkg-config to find them; the openssl CLI and util-linux (taskset, setpriv) that the
#     tests and the benchmark call;
#   - with --test: python3, python3-venv and redis-server (the cluster tests start their own) from
#     Debian, then a cached Python venv with the test
#     runner (pytest) and the python-socketio client from PyPI, and aiohttp for the
#     python-socketio peer of the benchmark.
# Prints the venv's python path last when --test is given.
set -euo pipefail

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

APT_PACKAGES=(libssl-dev zlib1g-dev pkg-config ca-certificates openssl util-linux)
# The test venv: Debian splits `python3 -m venv` (ensurepip) into python3-venv.
[ "$want_test" = 1 ] && APT_PACKAGES+=(python3 python3-venv redis-server)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${missing[@]}" >&2
fi

if ! command -v swift >/dev/null 2>&1; then
  for dir in /opt/swift/usr/bin /opt/swift/bin; do
    [ -x "$dir/swift" ] && export PATH="$dir:$PATH"
  done
fi
command -v swift >/dev/null 2>&1 || { echo "install-deps: the Swift 6 toolchain is not on PATH" >&2; exit 1; }

if [ "$want_test" = 1 ]; then
  cache="${XDG_CACHE_HOME:-$HOME/.cache}/swift-socketio-server"
  venv="$cache/venv"
  requirements="pytest==8.3.4 python-socketio==5.18.1 python-engineio==4.15.1 requests==2.34.2 websocket-client==1.9.2 websockets==13.1 aiohttp==3.14.5"
  stamp="$venv/.requirements"
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$requirements" ]; then
    echo "install-deps: creating test venv in $venv" >&2
    rm -rf "$venv"
    mkdir -p "$cache"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check $requirements >&2
    echo "$requirements" > "$stamp"
  fi
  echo "$venv/bin/python"
fi
