#!/bin/sh
# Start nginx in the foreground as the image's non-root user; its state goes to /tmp (tmpfs).
set -eu
mkdir -p /tmp/nginx
if [ "${1:-}" = "nginx" ]; then shift; fi
exec nginx -e stderr -g 'daemon off;' "$@"
