#!/usr/bin/env bash
# One command per benchmark, from a clean checkout (docs/benchmarks.md):
#   bash bench/run.sh inference|deploy|fleet|fleet_controller|all [--smoke] [options of python -m bench.<name>]
# Sets the machine up like scripts/test.sh (packages, Docker engine, .venv, images, model, media),
# then runs the benchmark. A full run writes bench/results/<name>.json, bench/results/latest.json and
# docs/benchmarks.md with its charts; --smoke writes to a scratch folder only. Ratios are printed last.
# Run it on a quiet machine: the figures are ratios measured in one run, but a busy machine still skews them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() { echo "usage: bash bench/run.sh inference|deploy|fleet|fleet_controller|all [--smoke] [options]" >&2; exit 2; }
[ $# -ge 1 ] || usage
what=$1; shift
case "$what" in
  inference|deploy|fleet|fleet_controller) names=("$what") ;;
  all) names=(inference deploy fleet fleet_controller) ;;
  *) usage ;;
esac

bash scripts/setup.sh
.venv/bin/launcher images build
.venv/bin/launcher models prepare
.venv/bin/launcher media sample

status=0
for name in "${names[@]}"; do
  echo "[bench] $name" >&2
  .venv/bin/python -m "bench.$name" "$@" || status=$?
done
exit "$status"
