#!/usr/bin/env bash
# Install Debian's headless-capable Chromium for tests/report/test_report_browser.py.
# Idempotent: returns at once when chromium is already on PATH.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq -o DPkg::Lock::Timeout=300 chromium fonts-dejavu-core >/dev/null
command -v chromium >/dev/null 2>&1
