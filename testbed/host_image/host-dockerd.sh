#!/bin/sh
# The host's own Docker engine, started with the address ranges the harness gave the container.
# There is no init system in a test host: the entrypoint starts the engine with `host-dockerd start`,
# and a fault test restarts it the way `systemctl restart docker` would with `host-dockerd restart`
# (SIGTERM, wait until it has stopped its containers and exited, start it again with the same flags).
#   host-dockerd start|stop|restart
# The flags come from /etc/ovms-test-host/dockerd.env, written by the entrypoint (an SSH session does
# not see the container's environment).
set -eu
ENV_FILE=/etc/ovms-test-host/dockerd.env
PID_FILE=/var/run/docker.pid
LOG=/var/log/dockerd.log
STOP_TIMEOUT_S=90

running_pid() {
    if [ -s "$PID_FILE" ]; then
        pid=$(cat "$PID_FILE")
        if kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
    fi
}

start() {
    if [ -n "$(running_pid)" ]; then echo "dockerd already runs (pid $(running_pid))"; return 0; fi
    # shellcheck disable=SC1090
    . "$ENV_FILE"
    : "${HOST_DOCKERD_BIP:?missing in $ENV_FILE}"
    : "${HOST_DOCKERD_POOL:?missing in $ENV_FILE}"
    # an engine left over from a previous start of this container
    rm -f "$PID_FILE" /var/run/docker/containerd/containerd.pid
    echo "--- host-dockerd start $(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$LOG"
    # its own session, detached from the caller (an SSH command returns at once)
    setsid dockerd --bip "$HOST_DOCKERD_BIP" --default-address-pool "$HOST_DOCKERD_POOL" \
        >>"$LOG" 2>&1 </dev/null &
}

stop() {
    pid=$(running_pid)
    if [ -z "$pid" ]; then echo "dockerd is not running"; return 0; fi
    echo "--- host-dockerd stop $(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$LOG"
    kill -TERM "$pid"
    waited=0
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$waited" -ge $((STOP_TIMEOUT_S * 10)) ]; then
            echo "dockerd (pid $pid) still runs ${STOP_TIMEOUT_S}s after SIGTERM" >&2
            return 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    restart) stop && start ;;
    *) echo "usage: host-dockerd start|stop|restart" >&2; exit 2 ;;
esac
