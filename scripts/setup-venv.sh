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
  # torch first, alone and pinned, so nothing can pull a CUDA build
  "$venv/bin/pip" install -q "$(grep -E '^torch==' "$req")"
  "$venv/bin/pip" install -q -r "$req"
  touch "$venv/.complete"
fi
ln -sfn "$venv" "$here/.venv"
echo "venv: $here/.venv -> $venv"
