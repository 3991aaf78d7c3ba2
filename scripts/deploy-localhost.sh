#!/usr/bin/env bash
# Set up this machine and run the main job: the single-system deploy on the localhost inventory.
#   scripts/setup.sh       Debian packages, Docker engine, .venv
#   images, model, media   built/prepared offline when no registry answers; cached on re-runs
#   launcher deploy        OVMS server + client on a private Docker network
# The real OVMS image cannot be pulled on machines without a registry: unless OVMS_SERVER_IMAGE names
# an image already loaded here (a real OVMS image from `docker load`), the deploy uses
# the project's OVMS test double, which runs the same model with real OpenVINO inference.
# Extra arguments go to `launcher deploy`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

launcher images build
launcher models prepare
launcher media sample

server_image=${OVMS_SERVER_IMAGE:-ovms-launcher/ovms-double:dev}
if [ "$server_image" = "ovms-launcher/ovms-double:dev" ]; then
  echo "[deploy] using the OVMS test double (set OVMS_SERVER_IMAGE to a loaded real OVMS image to use it)" >&2
fi
launcher deploy -i inventories/localhost -e "ovms_server_image=$server_image" "$@"

# ovms_client_data_dir of inventories/localhost (the role default)
results=/var/lib/ovms-launcher/client/results
cat <<EOM

Deployed. Where to look (the shipped profiles' file names; a profile's outputs may rename them):
  detections (JSON lines):  $results/<profile>-<n>/detections.jsonl
  stats (FPS, latency):     $results/<profile>-<n>/stats.jsonl
  annotated snapshots:      $results/<profile>-<n>/snapshots/*.jpg
  live status:              .venv/bin/launcher status
  stop it (keeps data):     .venv/bin/launcher destroy
EOM
