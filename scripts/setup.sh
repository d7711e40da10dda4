#!/usr/bin/env bash
# Installs what litefs-ts needs on a Debian machine (as root), only what is missing:
# FUSE 2 (the binding loads libfuse.so.2), the sqlite3 CLI (tests and demo), Python 3, make and
# g++ (npm ci compiles the FUSE binding, vendor/litefs-fuse), openssl (the TLS tests make
# their certificates with it), and the npm dependencies.
# Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v fusermount >/dev/null 2>&1 || missing+=(fuse)
ldconfig -p 2>/dev/null | grep -q 'libfuse\.so\.2' || missing+=(libfuse2)
command -v sqlite3 >/dev/null 2>&1 || missing+=(sqlite3)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
[ -e /dev/fuse ] || { echo "setup: /dev/fuse is missing: this machine (or container) cannot mount FUSE filesystems" >&2; exit 1; }

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ] || [ ! -f vendor/litefs-fuse/build/Release/litefs_fuse.node ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
elif [ vendor/litefs-fuse/litefs-fuse.c -nt vendor/litefs-fuse/build/Release/litefs_fuse.node ]; then
  # The binding changed since it was compiled (a pull). Its install script (node-gyp-build)
  # keeps an existing build, so the old one goes first.
  echo "setup: rebuilding vendor/litefs-fuse"
  rm -rf vendor/litefs-fuse/build
  npm rebuild litefs-fuse --no-audit --no-fund
fi
npm run --silent build
