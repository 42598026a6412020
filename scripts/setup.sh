#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for nuggets: the system packages (compiler, OpenBLAS/LAPACKE for the
# native addon, python3 for node-gyp, Chromium for the test that renders the HTML report, bubblewrap to
# sandbox model-written code in HumanEval), then `npm ci`, which builds the addon and the CLI.
# Root runs apt-get directly (a fresh container has no sudo); any other user goes through sudo, and a
# user without sudo is told what to run as root instead of failing half-way.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(build-essential python3 libopenblas-dev liblapacke-dev chromium bubblewrap)

if [ "$(id -u)" = 0 ]; then
  as_root() { env DEBIAN_FRONTEND=noninteractive "$@"; }
elif command -v sudo >/dev/null 2>&1; then
  as_root() { sudo env DEBIAN_FRONTEND=noninteractive "$@"; }
else
  echo "scripts/setup.sh: installing system packages needs root, and this user is not root and has no sudo." >&2
  echo "As root, run: apt-get update && apt-get install -y ${PACKAGES[*]}" >&2
  echo "then run 'npm ci' here as this user." >&2
  exit 1
fi

as_root apt-get update
as_root apt-get install -y "${PACKAGES[@]}"
npm ci
