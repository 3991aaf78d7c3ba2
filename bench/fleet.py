"""Deployment benchmark, fleet: `launcher deploy` to 1, 2, 4 and 8 hosts of the multi-host harness.

    .venv/bin/python -m bench.fleet [--smoke] [--sizes 1,2,4,8] [--trials N]

The hosts are the [remote] test harness's (testbed/): Docker-in-Docker machines with their own
engines, reached over SSH, images loaded the air-gapped way before the clock starts. A fleet of N:
  N = 1   the OVMS server and one client on host1 (single-system mode)
  N ≥ 2   the server behind its mTLS proxy on host1, one client on each of host2 … hostN
Each trial is a cold deploy (`launcher destroy --purge` before it, not timed), sizes interleaved
within a trial. Reported per size: wall time, the controller's CPU seconds and peak memory of the
launcher's process tree. Target: 8 hosts ÷ 1 host ≤ 2.0.

With the execution environment (default in a full run; `--ee IMAGE`, `--no-ee`): each trial also
deploys the largest fleet with `launcher deploy --ee IMAGE` (cold, like the plain one, right after
it): `ee_over_plain_deploy` = EE seconds ÷ plain seconds of the same size and trial. Target ≤ 1.3.

Drift report: after each trial's cold deploy of the largest fleet, a warm re-deploy of it (nothing to
change) and `launcher diff` of it are timed: `diff_over_warm_redeploy` = diff seconds ÷ warm re-deploy
seconds of the same trial (target ≤ 1.5; skipped, with a note, while the launcher has no `diff`).
Without hosts, bench/fleet_controller.py times `launcher validate` of a generated 1,000-host, 200-site
inventory (`validate_1000_hosts_s`, target ≤ 1.5 s); a full run here runs it too (`--no-validate`: not).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import calibrate, conclude, machine_noise, median, spread, stop_on_sigterm, write_result
from bench.launch import BenchError, run_launcher
from bench.taskprofile import latest_run, slowest_tasks, tasks_per_host
from launcher.inventory import CLIENTS_GROUP, SERVERS_GROUP
from launcher.media import MARKER_NAME as MEDIA_MANIFEST
from launcher.media import write_manifest
from launcher.paths import cache_dir
from testbed import remote
from testbed.harness import Harness

NAME = "fleet"
MODEL = PROFILE = "person-detection"
DOUBLE = "ovms-launcher/ovms-double:dev"
BENCH_SUBNET_ENV = "OVMS_BENCH_FLEET_SUBNET"
DEFAULT_SUBNET = "10.199.0.0/24"
EE_IMAGE = "ovms-launcher/ee:dev"
EE_KEY = "ee_over_plain_deploy"
DIFF_KEY = "diff_over_warm_redeploy"


def layout(size: int) -> dict[str, list[str]]:
    if size == 1:
        return {SERVERS_GROUP: ["host1"], CLIENTS_GROUP: ["host1"]}
    return {SERVERS_GROUP: ["host1"], CLIENTS_GROUP: [f"host{i}" for i in range(2, size + 1)]}


@dataclass
class Fleet:
    """A started harness plus this benchmark's folders (certificates and runs per size)."""

    harness: Harness
    workdir: Path

    def env(self, size: int) -> dict[str, str]:
        return {
            "OVMS_LAUNCHER_CERTS_DIR": str(self.workdir / f"certs-{size}"),
            "OVMS_LAUNCHER_RUNS": str(self.workdir / f"runs-{size}"),
        }

    def inventory(self, size: int) -> Path:
        media = self.workdir / "media"
        if not (media / MEDIA_MANIFEST).is_file():
            media.mkdir(exist_ok=True)
            shutil.copy2(cache_dir() / "media" / "sample.mp4", media / "sample.mp4")
            write_manifest(media)  # the client role ships only the files media.json lists
        return self.harness.inventory(
            self.workdir / f"hosts-{size}.yml", layout(size), group_vars=remote.group_vars(media)
        )


def load_images(harness: Harness, sizes: Sequence[int], archive_dir: Path) -> None:
    """Every host the sizes use gets the images its roles need (host1 also the client's, for N = 1)."""
    largest = max(sizes)
    clients = [f"host{i}" for i in range(2, largest + 1)] + (["host1"] if 1 in sizes else [])
    harness.load_images(archive_dir, {SERVERS_GROUP: ["host1"], CLIENTS_GROUP: clients})


def deploy_once(fleet: Fleet, size: int, ee: str | None = None) -> dict[str, Any]:
    """A cold deploy of `size` hosts: destroy --purge (not timed), then deploy (timed); with `ee`, the
    deploy runs inside that execution environment image (`--ee`)."""
    inventory = str(fleet.inventory(size))
    env = fleet.env(size)
    if size > 1 and not (fleet.workdir / f"certs-{size}" / "ca").exists():
        run_launcher(["certs", "generate", "-i", inventory], env=env)
    run_launcher(["destroy", "-i", inventory, "--purge", "--yes"], env=env)
    in_ee = ["--ee", ee] if ee else []
    deploy = run_launcher(
        ["deploy", "-i", inventory, "-e", f"ovms_server_image={DOUBLE}", "--json", *in_ee], env=env
    )
    run = latest_run(fleet.workdir / f"runs-{size}", "deploy")
    hosts = {h["host"]: h.get("status") for h in deploy.summary.get("hosts", [])}
    if len(hosts) != size or any(status != "ok" for status in hosts.values()):
        raise BenchError(f"fleet of {size}: not every host deployed: {hosts}\n{deploy.describe()}")
    return {
        "size": size,
        **({"ee": True} if ee else {}),
        "seconds": round(deploy.measured.wall_s, 2),
        "cpu_s": round(deploy.measured.cpu_s, 2),
        "peak_rss_mib": round(deploy.measured.peak_rss_mib, 1),
        "changed": deploy.changed,
        "tasks_per_host": max(tasks_per_host(run).values(), default=0) if run else None,
        "slowest_tasks": slowest_tasks(run, top=5) if run else [],
    }


def has_diff() -> bool:
    """Whether this launcher has `launcher diff` (the drift report)."""
    return run_launcher(["diff", "--help"], check=False).measured.returncode == 0


def warm_and_diff(fleet: Fleet, size: int) -> dict[str, Any]:
    """On a deployed fleet of `size`: a warm re-deploy (timed), then `launcher diff` (timed; exit 0 is
    nothing to change, 3 something, anything else a failure)."""
    inventory = str(fleet.inventory(size))
    env = fleet.env(size)
    image = ["-e", f"ovms_server_image={DOUBLE}"]
    warm = run_launcher(["deploy", "-i", inventory, *image, "--json"], env=env)
    row: dict[str, Any] = {
        "size": size,
        "kind": "warm_diff",
        "warm_s": round(warm.measured.wall_s, 2),
        "warm_cpu_s": round(warm.measured.cpu_s, 2),
        "warm_changed": warm.changed,
    }
    diff = run_launcher(["diff", "-i", inventory, *image, "--json"], env=env, check=False)
    if diff.measured.returncode not in (0, 3):
        raise BenchError(f"fleet of {size}: launcher diff failed:\n{diff.describe()}")
    row.update(diff_s=round(diff.measured.wall_s, 2), diff_cpu_s=round(diff.measured.cpu_s, 2),
               diff_exit=diff.measured.returncode)  # fmt: skip
    return row


def measure(
    harness: Harness,
    workdir: Path,
    sizes: Sequence[int],
    trials: int,
    ee: str | None = None,
    drift: bool = True,
) -> list[dict[str, Any]]:
    """trials times sizes cold deploys on a started harness with the images loaded; the rows measured.
    With `ee` (an execution environment image), each trial also deploys the largest size inside it;
    with `drift` (and a launcher that has `diff`), each trial also times a warm re-deploy and `launcher
    diff` of the largest size (warm_and_diff)."""
    fleet = Fleet(harness, workdir)
    rows: list[dict[str, Any]] = []
    diff = drift and has_diff()
    if drift and not diff:
        print("[fleet] this launcher has no `diff`: diff_over_warm_redeploy not measured", flush=True)
    try:
        for trial in range(1, trials + 1):
            for size in sizes:
                print(f"[fleet] trial {trial}/{trials}: {size} host(s) …", flush=True)
                row = {"trial": trial, **deploy_once(fleet, size)}
                rows.append(row)
                shown = {k: v for k, v in row.items() if k != "slowest_tasks"}
                print(f"[fleet]   {json.dumps(shown)}", flush=True)
            if diff:
                size = max(sizes)
                print(f"[fleet] trial {trial}/{trials}: {size} host(s) warm re-deploy and diff …", flush=True)
                row = {"trial": trial, **warm_and_diff(fleet, size)}
                rows.append(row)
                print(f"[fleet]   {json.dumps(row)}", flush=True)
            if ee:
                size = max(sizes)
                print(f"[fleet] trial {trial}/{trials}: {size} host(s) in the EE {ee} …", flush=True)
                row = {"trial": trial, **deploy_once(fleet, size, ee)}
                rows.append(row)
                shown = {k: v for k, v in row.items() if k != "slowest_tasks"}
                print(f"[fleet]   {json.dumps(shown)}", flush=True)
    finally:
        for size in sizes:
            if (workdir / f"hosts-{size}.yml").exists():
                inventory = str(workdir / f"hosts-{size}.yml")
                run_launcher(
                    ["destroy", "-i", inventory, "--purge", "--yes"], env=fleet.env(size), check=False
                )
    return rows


def cpu_slope(points: Sequence[tuple[int, float]]) -> float:
    """Least-squares slope of (hosts, controller CPU seconds): the CPU each added host costs."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var


def summarise(
    rows: list[dict[str, Any]], sizes: Sequence[int]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(ratios, their spreads over the trials, raw figures)."""
    ee_rows = [r for r in rows if r.get("ee")]
    diff_rows = [r for r in rows if r.get("kind") == "warm_diff"]
    rows = [r for r in rows if not r.get("ee") and r.get("kind") != "warm_diff"]
    per_size = {
        str(size): {
            key: round(median([r[key] for r in rows if r["size"] == size]), 2)
            for key in ("seconds", "cpu_s", "peak_rss_mib", "tasks_per_host")
            if all(r.get(key) is not None for r in rows if r["size"] == size)
        }
        for size in sizes
    }
    largest = max(sizes)
    per_trial = []
    for trial in sorted({r["trial"] for r in rows}):
        by_size = {r["size"]: r["seconds"] for r in rows if r["trial"] == trial}
        if 1 in by_size and largest in by_size:
            per_trial.append(by_size[largest] / by_size[1])
    ratio = round(median(per_trial), 3) if per_trial else None
    # controller CPU-seconds per added host: the least-squares slope of CPU over the sizes, per trial
    slopes = []
    for trial in sorted({r["trial"] for r in rows}):
        points = [(r["size"], r["cpu_s"]) for r in rows if r["trial"] == trial]
        if len({size for size, _ in points}) >= 2:
            slopes.append(cpu_slope(points))
    ratios = {f"fleet{largest}_over_fleet1": ratio}
    spreads = {f"fleet{largest}_over_fleet1": spread(per_trial)}
    if slopes:
        ratios["controller_cpu_s_per_host"] = round(median(slopes), 2)
        spreads["controller_cpu_s_per_host"] = spread(slopes)
    ee_ratios = []
    for ee_row in ee_rows:
        plain = [r for r in rows if r["trial"] == ee_row["trial"] and r["size"] == ee_row["size"]]
        if plain:
            ee_ratios.append(ee_row["seconds"] / plain[0]["seconds"])
    if ee_ratios:
        ratios[EE_KEY] = round(median(ee_ratios), 3)
        spreads[EE_KEY] = spread(ee_ratios)
    diff_ratios = [r["diff_s"] / r["warm_s"] for r in diff_rows if r.get("warm_s")]
    if diff_ratios:
        ratios[DIFF_KEY] = round(median(diff_ratios), 3)
        spreads[DIFF_KEY] = spread(diff_ratios)
    last = max(r["trial"] for r in rows)
    profile = {str(r["size"]): r["slowest_tasks"] for r in rows if r["trial"] == last}
    for row in (*rows, *ee_rows):
        row.pop("slowest_tasks", None)
    raw = {"per_size_median": per_size, "trials": rows, "profile_last_trial": profile}
    if diff_rows:
        raw["warm_diff"] = {
            "size": diff_rows[0]["size"],
            "median_warm_s": round(median([r["warm_s"] for r in diff_rows]), 2),
            "median_diff_s": round(median([r["diff_s"] for r in diff_rows]), 2),
            "trials": diff_rows,
        }
    if ee_rows:
        raw["ee"] = {
            "size": ee_rows[0]["size"],
            "median_seconds": round(median([r["seconds"] for r in ee_rows]), 2),
            "median_cpu_s": round(median([r["cpu_s"] for r in ee_rows]), 2),
            "trials": ee_rows,
        }
    return ratios, spreads, raw


def run(
    sizes: Sequence[int], trials: int, smoke: bool, ee: str | None = None, validate: bool = False
) -> dict[str, Any]:
    if ee:
        # the execution environment is not in the default image build (seconds when up to date)
        run_launcher(["images", "build", "ee"], timeout=1800)
    workdir = Path(tempfile.mkdtemp(prefix="ovms-bench-fleet-"))
    subnet = os.environ.get(BENCH_SUBNET_ENV, DEFAULT_SUBNET)
    harness = Harness(max(sizes), subnet=subnet)
    calibration_before = calibrate()
    try:
        print(f"[fleet] starting {max(sizes)} harness hosts on {subnet} …", flush=True)
        harness.start()
        print("[fleet] loading images onto the hosts (air-gapped path) …", flush=True)
        load_images(harness, sizes, cache_dir() / "multihost" / "images")
        rows = measure(harness, workdir, sizes, trials, ee)
    finally:
        harness.close()
        shutil.rmtree(workdir, ignore_errors=True)
    noise = machine_noise(calibration_before, calibrate())
    ratios, spreads, raw = summarise(rows, sizes)
    if validate:
        from bench.fleet_controller import KEY as VALIDATE_KEY
        from bench.fleet_controller import run as run_validate

        checked = run_validate(trials=3, smoke=True, sites=200, clients=4)  # its own scratch result
        ratios[VALIDATE_KEY] = checked["ratios"][VALIDATE_KEY]
        spreads[VALIDATE_KEY] = checked["spreads"][VALIDATE_KEY]
        raw["validate"] = {**checked["raw"], **checked["params"]}
    params = {"sizes": list(sizes), "trials": trials, "server_image": DOUBLE, "model": MODEL,
              "strategy": os.environ.get("OVMS_LAUNCHER_STRATEGY", "mitogen_linear"),
              "ee_image": ee}  # fmt: skip
    path = write_result(
        NAME, smoke=smoke, ratios=ratios, raw=raw, params=params, spreads=spreads, noise=noise
    )
    print(f"[fleet] result: {path}", flush=True)
    return {"ratios": ratios, "spreads": spreads, "raw": raw, "params": params}


def render(result: dict[str, Any], figdir: Path) -> str:
    from bench.charts import lines as line_chart

    sizes = result["params"]["sizes"]
    per = result["raw"]["per_size_median"]
    png = figdir / "deploy-fleet.png"
    line_chart(
        sizes,
        {"deploy wall time (s)": [per[str(s)]["seconds"] for s in sizes],
         "controller CPU (s)": [per[str(s)]["cpu_s"] for s in sizes]},
        png, title="Fleet deploy (median of trials)", xlabel="hosts", ylabel="seconds",
    )  # fmt: skip
    key = f"fleet{max(sizes)}_over_fleet1"
    rows = [
        "| hosts | median s | controller CPU s | controller peak MiB | tasks on the busiest host |",
        "| ---: | ---: | ---: | ---: | ---: |",
        *[
            f"| {s} | {per[str(s)]['seconds']} | {per[str(s)]['cpu_s']} | {per[str(s)]['peak_rss_mib']} "
            f"| {per[str(s)].get('tasks_per_host', '-')} |"
            for s in sizes
        ],
        "",
        f"`{key}` = **{result['ratios'].get(key)}** (median of the per-trial ratios; "
        f"{result['params']['trials']} trials); `controller_cpu_s_per_host` = "
        f"**{result['ratios'].get('controller_cpu_s_per_host')}** (the controller's CPU-seconds per added "
        "host: least-squares slope over the sizes, median of the trials).",
        "",
        f"![fleet deploy](benchmarks/{png.name})",
        "",
        "Slowest tasks of the last trial, largest fleet:",
        "",
        "| host | role | task | s |",
        "| --- | --- | --- | ---: |",
    ]
    for task in result["raw"].get("profile_last_trial", {}).get(str(max(sizes)), []):
        rows.append(f"| {task['host']} | {task['role']} | {task['task']} | {task['seconds']} |")
    warm_diff = result["raw"].get("warm_diff")
    if warm_diff:
        bounds = (result.get("spreads") or {}).get(DIFF_KEY) or {}
        rows += [
            "",
            f"Drift report, {warm_diff['size']} hosts deployed: `launcher diff` median "
            f"{warm_diff['median_diff_s']} s against a warm re-deploy's {warm_diff['median_warm_s']} s: "
            f"`{DIFF_KEY}` = **{result['ratios'].get(DIFF_KEY)}** "
            f"(trials {bounds.get('min')}..{bounds.get('max')}; target ≤ 1.5).",
        ]
    checked = result["raw"].get("validate")
    if checked:
        bounds = (result.get("spreads") or {}).get("validate_1000_hosts_s") or {}
        rows += [
            "",
            f"`launcher validate` of a generated inventory of {checked['hosts']} hosts in "
            f"{checked['sites']} sites (bench/fleet_inventory.py): `validate_1000_hosts_s` = "
            f"**{result['ratios'].get('validate_1000_hosts_s')}** s (trials {bounds.get('min')}.."
            f"{bounds.get('max')}; CPU {checked['median_cpu_s']} s; target ≤ 1.5).",
        ]
    ee = result["raw"].get("ee")
    if ee:
        bounds = (result.get("spreads") or {}).get(EE_KEY) or {}
        low, high = bounds.get("min"), bounds.get("max")
        rows += [
            "",
            f"In the execution environment (`launcher deploy --ee {result['params'].get('ee_image')}`, "
            f"docs/ee.md), {ee['size']} hosts: median {ee['median_seconds']} s (the launcher's own CPU "
            f"{ee['median_cpu_s']} s: Ansible's, in the container, is not counted); "
            f"`{EE_KEY}` = **{result['ratios'].get(EE_KEY)}** "
            f"(trials {low}..{high}; target ≤ 1.3).",
        ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="1 and 2 hosts, one trial, scratch results")
    parser.add_argument("--sizes", default=None, help="comma-separated fleet sizes (default 1,2,4,8)")
    parser.add_argument("--trials", type=int, default=None, help="trials per size (default 3, smoke 1)")
    parser.add_argument(
        "--ee", default=None, metavar="IMAGE",
        help=f"also deploy the largest fleet inside this execution environment (default {EE_IMAGE}; "
        "not with --smoke unless given)",
    )  # fmt: skip
    parser.add_argument("--no-ee", action="store_true", help="no execution environment trial")
    parser.add_argument(
        "--no-validate", action="store_true",
        help="no `launcher validate` of a generated 1,000-host inventory (run by default, not with --smoke)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    stop_on_sigterm()
    sizes = sorted({int(s) for s in (args.sizes or ("1,2" if args.smoke else "1,2,4,8")).split(",")})
    if sizes[0] != 1:
        parser.error("--sizes must include 1 (the ratio's denominator)")
    trials = args.trials or (1 if args.smoke else 3)
    try:
        ee = None if args.no_ee else (args.ee or (None if args.smoke else EE_IMAGE))
        result = run(sizes, trials, args.smoke, ee, validate=not (args.smoke or args.no_validate))
    except BenchError as exc:
        print(f"[fleet] error: {exc}", file=sys.stderr)
        return 1
    return conclude(NAME, "deploy (fleet)", result["ratios"], args.smoke, result.get("spreads"))


if __name__ == "__main__":
    sys.exit(main())
