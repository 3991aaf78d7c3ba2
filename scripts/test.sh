#!/usr/bin/env bash
# Set up a new machine and run every check and test of ovms-launcher (this is what CI runs).
#   scripts/setup.sh      Debian packages, Docker engine, .venv
#   images, model, media  built/prepared offline when no registry answers; cached on re-runs
#   linters               ruff, yamllint, ansible-lint (production profile) when roles exist
#   pytest                unit (on two workers), then conformance (double in its container),
#                         integration, Molecule, end to end, multi-host, benchmark smoke runs
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

# --durations: the slowest tests show in every run (CI keeps the whole job under 60 minutes)
run_pytest() {
  local rc
  set +e
  pytest --durations=30 --durations-min=2 "$@"
  rc=$?
  set -e
  if [ "$rc" -eq 5 ]; then
    echo "pytest collected no test: that is a failure here" >&2
    return 1
  fi
  return "$rc"
}

if [ "$#" -gt 0 ]; then
  step "tests"
  run_pytest "$@"
  exit
fi
# The whole suite: the unit tests first, on two workers (pytest-xdist: they start no container and
# share no port; a file's tests stay on one worker, so its fixtures are built once), then everything
# else in one process (its suites share deployments and the multi-host harness per module or
# session). Both run, unless the first was interrupted or lost its workers (pytest's exit 2); the
# exit code is the first failure's.
step "unit tests (2 workers)"
rc=0
run_pytest -n 2 --dist loadfile tests/unit || rc=$?
if [ "$rc" -eq 2 ]; then
  exit 2
fi
step "tests"
run_pytest --ignore=tests/unit || { status=$?; [ "$rc" -ne 0 ] || rc=$status; }
exit "$rc"
