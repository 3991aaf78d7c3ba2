#!/usr/bin/env bash
# Prepare this machine for ovms-launcher, idempotently:
#   system packages (Debian): debootstrap (offline base image), nginx + openssl (TLS tests), git,
#   docker-compose (the peer of the deployment benchmark, bench/deploy.py)
#   a Docker engine (scripts/ensure-docker.sh; an engine that already runs is left alone)
#   the virtual environment .venv with the launcher and its test tools, on a Python from 3.11 to 3.13
#   (OVMS_PYTHON names one; else the first that runs of python3.13, python3.12, python3.11, python3 on
#   PATH, then pyenv's versions, then Debian's /usr/bin/python3.X)
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
# Debian's Python creates virtual environments only with python3-venv (ensurepip)
if [ -x /usr/bin/python3 ] && ! /usr/bin/python3 -c 'import ensurepip' >/dev/null 2>&1; then
  missing+=(python3-venv)
fi
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

# the controller's supported range: pyproject.toml's requires-python (ansible-core 2.19's controller range)
in_range() { "$1" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' >/dev/null 2>&1; }
PYTHON=${OVMS_PYTHON:-}
if [ -n "$PYTHON" ]; then
  in_range "$PYTHON" || { log "error: OVMS_PYTHON=$PYTHON is not a Python from 3.11 to 3.13"; exit 1; }
else
  candidates=()
  for name in python3.13 python3.12 python3.11 python3; do
    command -v "$name" >/dev/null 2>&1 && candidates+=("$(command -v "$name")")
  done
  pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
  for minor in 13 12 11; do
    for found in "$pyenv_root"/versions/3."$minor".*/bin/python3."$minor" /usr/bin/python3."$minor"; do
      [ -x "$found" ] && candidates+=("$found")
    done
  done
  # a pyenv shim of a version that is not selected exits non-zero: in_range skips it
  for candidate in "${candidates[@]}"; do
    if in_range "$candidate"; then PYTHON=$candidate; break; fi
  done
fi
[ -n "$PYTHON" ] || { log "error: Python 3.11, 3.12 or 3.13 is required (set OVMS_PYTHON to its path)"; exit 1; }

if [ -x .venv/bin/python ] && ! in_range .venv/bin/python; then
  log "recreating .venv: its $(.venv/bin/python --version 2>&1) is outside 3.11 to 3.13"
  rm -rf .venv
fi

stamp_of() { cat pyproject.toml setup.py | sha256sum | cut -d' ' -f1; }
if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $("$PYTHON" --version 2>&1) ($PYTHON)"
  "$PYTHON" -m venv .venv
else
  log ".venv runs $(.venv/bin/python --version 2>&1)"
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
