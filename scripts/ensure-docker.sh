#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine, without touching one that already runs.
#
#   - engine answers            -> says so and exits 0, nothing changed
#   - engine not installed      -> installs Debian's docker.io (apt), then starts it
#   - installed, not running    -> systemctl start docker when systemd runs, else dockerd in the
#                                  background (log: $OVMS_DOCKERD_LOG)
# Waits up to $OVMS_DOCKER_WAIT seconds (default 60) for `docker info` to answer.
set -euo pipefail

log() { printf '[ensure-docker] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

DOCKERD_LOG=${OVMS_DOCKERD_LOG:-/var/log/ovms-launcher-dockerd.log}
WAIT=${OVMS_DOCKER_WAIT:-60}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@";
  elif command -v sudo >/dev/null 2>&1; then sudo -n "$@" || die "needs root for: $* (run as root or allow sudo)";
  else die "needs root for: $* (run as root)"; fi
}

engine_answers() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

if engine_answers; then
  log "Docker engine already running ($(docker version --format '{{.Server.Version}}' 2>/dev/null)); nothing to do"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || die "no Docker engine and no apt-get: install Docker for your OS, then re-run"
  log "installing Docker engine from Debian's packages (docker.io)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io
fi

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  log "starting docker with systemd"
  as_root systemctl start docker
elif pgrep -x dockerd >/dev/null 2>&1; then
  log "dockerd is running but does not answer yet; waiting"
else
  log "no init system manages docker here: starting dockerd in the background (log: $DOCKERD_LOG)"
  as_root sh -c "nohup setsid dockerd >>'$DOCKERD_LOG' 2>&1 </dev/null &"
fi

for _ in $(seq 1 "$WAIT"); do
  if engine_answers; then
    log "Docker engine ready ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
    exit 0
  fi
  sleep 1
done
die "Docker engine did not answer within ${WAIT}s; see $DOCKERD_LOG"
