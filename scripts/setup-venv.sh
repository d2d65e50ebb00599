#!/usr/bin/env bash
# Creates .venv (test oracles only) as a link to a cached venv keyed by the pinned requirements' hash.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
req="$here/scripts/requirements.txt"
cache="${LMTUNE_CACHE:-$HOME/.cache/lmtune}"
key=$(sha256sum "$req" | cut -c1-16)
venv="$cache/venv-$key"
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
  mkdir -p "$cache"
  rm -rf "$venv"
  py=$(command -v python3.11 || command -v python3)
  "$py" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip >/dev/null 2>&1 || true
  # torch first, alone and pinned to the CPU build on disk, so nothing can pull a CUDA build
  grep -qx 'torch==2.13.0' "$req" || { echo "setup-venv: $req must pin torch==2.13.0" >&2; exit 1; }
  "$venv/bin/pip" install -q torch==2.13.0
  "$venv/bin/pip" install -q -r "$req"
  touch "$venv/.complete"
fi
ln -sfn "$venv" "$here/.venv"
echo "venv: $here/.venv -> $venv"
