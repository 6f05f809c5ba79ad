#!/usr/bin/env bash
# Installs Debian packages, refreshing apt's lists only when the first try fails (a fresh
# machine may have none). Through sudo unless already root.
#   bash scripts/apt-install.sh [apt-get install options] PACKAGE...
set -euo pipefail
SUDO=$(command -v sudo || true)
[ "$(id -u)" = 0 ] && SUDO=""
$SUDO apt-get install -y "$@" >/dev/null 2>&1 \
  || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y "$@" >/dev/null; }
