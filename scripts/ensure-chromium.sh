#!/bin/sh
# Installs Chromium for the browser test (test/web/verify-page.test.ts) if it is missing.
# Idempotent: does nothing when /usr/bin/chromium exists; does nothing (with a note) on a
# machine without apt-get. Needs root (CI images and dev containers run as root).
set -eu

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
  echo "chromium: present at $CHROMIUM"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium: $CHROMIUM is missing and apt-get is not available; install Chromium by hand" >&2
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "chromium: not root and no sudo; cannot install $CHROMIUM" >&2
    exit 1
  fi
fi

echo "chromium: installing with apt-get"
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium
"$CHROMIUM" --version
