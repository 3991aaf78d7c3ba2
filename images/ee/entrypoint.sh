#!/bin/sh
# The execution environment's entrypoint: OpenSSH refuses to run for a uid without a passwd entry,
# and ansible-runner's container mode runs the image as the calling user (docker --user UID), so
# that user is added to /etc/passwd (group-writable, group root) with HOME as its home.
set -eu
uid=$(id -u)
if ! getent passwd "$uid" >/dev/null 2>&1 && [ -w /etc/passwd ]; then
    echo "runner-$uid:x:$uid:$(id -g):execution environment user:${HOME:-/runner}:/bin/sh" >>/etc/passwd
fi
exec "$@"
