"""Controller benchmarks of a big fleet that need no hosts: `launcher validate` of a generated inventory.

    .venv/bin/python -m bench.fleet_controller [--smoke] [--trials N] [--sites 200] [--clients 4]

The inventory is bench/fleet_inventory.py's: SITES stores, each a site group with one server and
CLIENTS camera-client hosts (1,000 hosts for 200 sites). `validate_1000_hosts_s` is the median wall
time of `launcher validate -i INV --json` over the trials (target ≤ 1.5 s), with its CPU seconds beside
it: on a loaded machine the wall time follows the load, the CPU much less. The inventory's PKI is made
first with `launcher certs generate` (about 3 s for 1,000 leaves, not timed), so validate checks every
host's certificate as before a deploy and must pass (exit 0).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import calibrate, conclude, machine_noise, median, spread, stop_on_sigterm, write_result
from bench.fleet_inventory import generate_fleet
from bench.launch import BenchError, run_launcher

NAME = "fleet_controller"
KEY = "validate_1000_hosts_s"


def validate_once(inventory: Path, certs: Path) -> dict[str, Any]:
    """One `launcher validate --json` of the inventory: wall and CPU seconds, exit code, problems."""
    result = run_launcher(
        ["validate", "-i", str(inventory), "--json"], env={"OVMS_LAUNCHER_CERTS_DIR": str(certs)}, check=False
    )
    if result.measured.returncode != 0:
        raise BenchError(f"validate failed:\n{result.describe()}")
    report: dict[str, Any] = {}
    for line in reversed(result.measured.stdout.splitlines()):
        if line.startswith("{"):
            try:
                report = json.loads(line)
                break
            except json.JSONDecodeError:
                continue
    return {
        "seconds": round(result.measured.wall_s, 3),
        "cpu_s": round(result.measured.cpu_s, 3),
        "exit": result.measured.returncode,
        "sites": len(report.get("sites") or {}),
        "problems": len(report.get("problems") or []),
    }


def run(trials: int, smoke: bool, sites: int, clients: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="ovms-bench-fleet-controller-"))
    calibration_before = calibrate()
    try:
        inventory = generate_fleet(workdir / "inventory", sites=sites, clients_per_site=clients)
        hosts = sites * (clients + 1)
        certs = workdir / "certs"
        made = run_launcher(
            ["certs", "generate", "-i", str(inventory / "hosts.yml")],
            env={"OVMS_LAUNCHER_CERTS_DIR": str(certs)},
            check=False,
        )
        if made.measured.returncode != 0:
            raise BenchError(f"certs generate failed:\n{made.describe()}")
        rows = []
        for trial in range(1, trials + 1):
            row = {
                "trial": trial,
                "hosts": hosts,
                **validate_once(inventory / "hosts.yml", certs),
            }
            print(f"[fleet_controller] {json.dumps(row)}", flush=True)
            rows.append(row)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    noise = machine_noise(calibration_before, calibrate())
    seconds = [r["seconds"] for r in rows]
    ratios = {KEY: round(median(seconds), 3)}
    spreads = {KEY: spread(seconds)}
    raw = {"trials": rows, "median_cpu_s": round(median([r["cpu_s"] for r in rows]), 3)}
    params = {"sites": sites, "clients_per_site": clients, "hosts": hosts, "trials": trials}
    path = write_result(
        NAME, smoke=smoke, ratios=ratios, raw=raw, params=params, spreads=spreads, noise=noise
    )
    print(f"[fleet_controller] result: {path}", flush=True)
    return {"ratios": ratios, "spreads": spreads, "raw": raw, "params": params}


def render(result: dict[str, Any], figdir: Path) -> str:
    bounds = (result.get("spreads") or {}).get(KEY) or {}
    return (
        f"`launcher validate` of a generated inventory of {result['params']['hosts']} hosts in "
        f"{result['params']['sites']} sites (bench/fleet_inventory.py), {result['params']['trials']} trials: "
        f"`{KEY}` = **{result['ratios'].get(KEY)}** s (trials {bounds.get('min')}..{bounds.get('max')}; "
        f"target ≤ 1.5), CPU {result['raw'].get('median_cpu_s')} s (median)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fleet_controller", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--smoke", action="store_true", help="one trial, scratch results")
    parser.add_argument("--trials", type=int, default=None, help="trials (default 5, smoke 1)")
    parser.add_argument(
        "--sites", type=int, default=200, help="sites of the generated inventory (default 200)"
    )
    parser.add_argument("--clients", type=int, default=4, help="client hosts per site (default 4)")
    args = parser.parse_args(argv)
    stop_on_sigterm()
    trials = args.trials or (1 if args.smoke else 5)
    try:
        result = run(trials, args.smoke, args.sites, args.clients)
    except BenchError as exc:
        print(f"[fleet_controller] error: {exc}", file=sys.stderr)
        return 1
    return conclude(NAME, "controller (fleet, no hosts)", result["ratios"], args.smoke, result.get("spreads"))


if __name__ == "__main__":
    sys.exit(main())
