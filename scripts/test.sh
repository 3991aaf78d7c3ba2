#!/usr/bin/env bash
# Set up a new machine and run every check and test of ovms-launcher (this is what CI runs).
#   scripts/setup.sh      Debian packages, Docker engine, .venv
#   images, model, media  built/prepared offline when no registry answers; cached on re-runs
#   linters               ruff, yamllint, ansible-lint (production profile) when roles exist
#   pytest                unit, conformance (double in its container), integration
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

step() { printf '\n==> %s\n' "$*" >&2; }

step "images"
launcher images build
step "models"
launcher models prepare
step "sample media"
launcher media sample

step "lint"
ruff check .
ruff format --check .
yamllint --strict .
if compgen -G "roles/*/tasks/main.yml" >/dev/null; then
  ansible-lint --profile production
fi

step "tests"
set +e
# --durations: the slowest tests show in every run (CI keeps the whole job under ~45 minutes)
pytest --durations=30 --durations-min=2 "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no test: that is a failure here" >&2
  exit 1
fi
exit "$rc"
