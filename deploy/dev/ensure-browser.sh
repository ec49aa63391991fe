#!/usr/bin/env bash
# The dashboard's browser tests drive Debian's Chromium through Playwright (Playwright's own
# browser download does not work on a closed network). Install it, and a CJK font so that
# screenshots show Chinese instead of boxes, when they are missing.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-browser: install Debian's chromium and fonts-noto-cjk (needs root and apt-get)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends chromium fonts-noto-cjk fontconfig >/dev/null
fc-cache -f >/dev/null 2>&1 || true
command -v chromium >/dev/null
