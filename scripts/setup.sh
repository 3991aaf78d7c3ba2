#!/usr/bin/env bash
# Prepare this machine for ovms-launcher, idempotently:
#   system packages (Debian): debootstrap (offline base image), nginx + openssl (TLS tests), git,
#   docker-compose (the peer of the deployment benchmark, bench/deploy.py)
#   a Docker engine (scripts/ensure-docker.sh; an engine that already runs is left alone)
#   the Python 3.11 virtual environment .venv with the launcher and its test tools
# Re-running does only what is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

missing=()
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v git >/dev/null 2>&1 || missing+=(git)
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo -n"; else SUDO=""; fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# nginx's package starts a system service where an init system runs; tests start their own nginx
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemctl is-enabled nginx >/dev/null 2>&1 && { systemctl disable --now nginx >/dev/null 2>&1 || true; }
fi

bash scripts/ensure-docker.sh

PYTHON=${OVMS_PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      PYTHON=$candidate; break
    fi
  done
fi
[ -n "$PYTHON" ] || { log "error: Python 3.11 is required (set OVMS_PYTHON to its path)"; exit 1; }

stamp_of() { cat pyproject.toml | sha256sum | cut -d' ' -f1; }
if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
if [ "$(cat .venv/.ovms-stamp 2>/dev/null)" != "$(stamp_of)" ]; then
  log "installing the launcher and its test tools into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -U pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,bench]'
  stamp_of > .venv/.ovms-stamp
else
  log ".venv up to date"
fi
version=$(.venv/bin/launcher --version)
log "ready: $version"
