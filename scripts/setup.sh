#!/usr/bin/env bash
# Installs what the build needs and is missing: Debian packages (sudo when not root). Idempotent and quiet
# when everything is present. Usage: scripts/setup.sh        (system packages)
#                                    scripts/setup.sh --venv (also the Python test-oracle venv, .venv)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
pkgs="build-essential cmake pkg-config libopenblas-openmp-dev libcjson-dev libpcre2-dev libutf8proc-dev libyaml-dev"
pkgs="$pkgs chromium"  # headless rendering test of lmtune report (tests/interop/test_report_e2e.py)
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing Debian packages:$missing"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
if [ "${1:-}" = "--venv" ]; then
  bash "$here/scripts/setup-venv.sh"
fi
