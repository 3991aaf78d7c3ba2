#!/bin/sh
# Starts the host's own Docker engine (host-dockerd, with the address ranges the harness gives it),
# then sshd in the foreground. Environment (set by the harness):
#   HOST_AUTHORIZED_KEY   the public key root accepts
#   HOST_DOCKERD_BIP      docker0 address, e.g. 10.201.1.1/24
#   HOST_DOCKERD_POOL     default address pool, e.g. base=10.202.1.0/24,size=28
set -eu
: "${HOST_AUTHORIZED_KEY:?the harness must pass the public key}"
: "${HOST_DOCKERD_BIP:?the harness must pass the docker0 address}"
: "${HOST_DOCKERD_POOL:?the harness must pass the default address pool}"

umask 077
printf '%s\n' "$HOST_AUTHORIZED_KEY" > /root/.ssh/authorized_keys
umask 022
ssh-keygen -A >/dev/null

mkdir -p /etc/ovms-test-host
printf 'HOST_DOCKERD_BIP=%s\nHOST_DOCKERD_POOL=%s\n' "$HOST_DOCKERD_BIP" "$HOST_DOCKERD_POOL" \
    > /etc/ovms-test-host/dockerd.env
host-dockerd start

exec /usr/sbin/sshd -D -e
