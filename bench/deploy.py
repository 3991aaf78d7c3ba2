"""Deployment benchmark, single host: cold and warm `launcher deploy` against docker-compose.

    .venv/bin/python -m bench.deploy [--smoke] [--trials N]

Per trial, interleaved so every ratio compares like with like:
  cold     `launcher destroy --purge` (not timed), then `launcher deploy` until the model is AVAILABLE
           and the client wrote its first detections (images present, model prepared on the controller)
  warm     `launcher deploy` again with nothing changed (its summary's changed count must be 0)
  compose  `docker-compose up -d` of bench/compose/docker-compose.yml (the same two containers, model
           folder and config.json placed before the clock starts) until the model is AVAILABLE; the
           time to the client's first detections is recorded too
The deployment is isolated from anything else on the machine (its own container names, network and data
folders in a temp dir) and removed at the end. Before the trials, `launcher --help` is timed CLI_HELP_RUNS
times (the CLI's start-up: what every command pays before it does anything).
Targets: warm ≤ 15 s with 0 changed, cold ÷ compose ≤ 2.5, `launcher --help` ≤ 0.3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench.common import calibrate, conclude, machine_noise, median, spread, stop_on_sigterm, write_result
from bench.launch import BenchError, run_launcher
from bench.procstats import run_measured
from bench.taskprofile import latest_run, slowest_tasks, tasks_per_host
from launcher.paths import cache_dir
from launcher.runner.strategy import STRATEGY_ENV
from testbed.isolation import write_isolation
from testbed.paths import PROJECT_ROOT

NAME = "deploy"
MODEL = "person-detection"
DOUBLE = "ovms-launcher/ovms-double:dev"
COMPOSE_FILE = PROJECT_ROOT / "bench" / "compose" / "docker-compose.yml"
AVAILABLE_TIMEOUT_S = 180.0
CLIENT_UID = 5002
CLI_HELP_RUNS = 11


@dataclass(frozen=True)
class Site:
    """One isolated single-host deployment: launcher inventories and the compose project."""

    tag: str
    root: Path

    @property
    def inventories(self) -> list[str]:
        return ["-i", str(PROJECT_ROOT / "inventories" / "localhost"), "-i", str(self.root / "override")]

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def env(self) -> dict[str, str]:
        return {"OVMS_LAUNCHER_RUNS": str(self.runs)}

    @property
    def compose_data(self) -> Path:
        return self.root / "compose"

    @property
    def compose_project(self) -> str:
        return f"{self.tag}-compose".replace("-", "")


def _docker(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=300)


def make_site() -> Site:
    tag = f"ovms-bench-{uuid.uuid4().hex[:6]}"
    root = Path(tempfile.mkdtemp(prefix=f"{tag}-"))
    root.chmod(0o755)
    write_isolation(root / "override", tag, root / "launcher")
    return Site(tag, root)


def _copy_tree_readable(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst)
    for path in [dst, *dst.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def prepare_compose_data(site: Site) -> None:
    """What a compose user places by hand: the model version folder, config.json, profile and media."""
    data = site.compose_data
    shutil.rmtree(data, ignore_errors=True)
    version = cache_dir() / "models" / MODEL / "1"
    if not (version / "model.xml").is_file():
        raise BenchError(f"{version}/model.xml is missing: run `launcher models prepare` first")
    media = cache_dir() / "media" / "sample.mp4"
    if not media.is_file():
        raise BenchError(f"{media} is missing: run `launcher media sample` first")
    (data / "server" / "models" / MODEL).mkdir(parents=True)
    _copy_tree_readable(version, data / "server" / "models" / MODEL / "1")
    (data / "server" / "config").mkdir(parents=True)
    config = {"model_config_list": [{"config": {"name": MODEL, "base_path": f"/models/{MODEL}"}}]}
    (data / "server" / "config" / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    _copy_tree_readable(PROJECT_ROOT / "profiles" / MODEL, data / "client" / "profile")
    (data / "client" / "media").mkdir(parents=True)
    shutil.copy2(media, data / "client" / "media" / "sample.mp4")
    results = data / "client" / "results"
    results.mkdir(parents=True)
    os.chown(results, CLIENT_UID, CLIENT_UID)
    for path in data.rglob("*"):
        if path.is_dir():
            path.chmod(0o755)
        else:
            path.chmod(0o644)
    data.chmod(0o755)


def _compose(site: Site, *args: str) -> list[str]:
    return ["docker-compose", "--project-name", site.compose_project, "--file", str(COMPOSE_FILE), *args]


def _compose_env(site: Site) -> dict[str, str]:
    return {**os.environ, "OVMS_BENCH_DATA": str(site.compose_data), "OVMS_SERVER_IMAGE": DOUBLE}


def _container_ip(name: str) -> str | None:
    out = _docker("inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", name)
    ips = out.stdout.split()
    return ips[0] if out.returncode == 0 and ips else None


def _model_available(ip: str) -> bool:
    """KServe model readiness (REST): 200 once a version of the model is AVAILABLE."""
    try:
        return requests.get(f"http://{ip}:8000/v2/models/{MODEL}/ready", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def compose_trial(site: Site) -> dict[str, float]:
    """`docker-compose up -d`, then poll until AVAILABLE and until the first detections line."""
    env = _compose_env(site)
    subprocess.run(
        _compose(site, "down", "--volumes", "--remove-orphans"), env=env, capture_output=True, check=False
    )
    prepare_compose_data(site)
    server = f"{site.compose_project}_server_1"
    detections = site.compose_data / "client" / "results" / "detections.jsonl"
    start = time.monotonic()
    up = run_measured(_compose(site, "up", "--detach"), env=env)
    if up.returncode != 0:
        raise BenchError(f"docker-compose up failed (exit {up.returncode}):\n{up.stderr[-3000:]}")
    available = first = None
    deadline = start + AVAILABLE_TIMEOUT_S
    while time.monotonic() < deadline and (available is None or first is None):
        if available is None:
            ip = _container_ip(server)
            if ip and _model_available(ip):
                available = time.monotonic() - start
        if first is None and detections.exists() and detections.stat().st_size > 0:
            first = time.monotonic() - start
        time.sleep(0.1)
    if available is None or first is None:
        logs = _docker("logs", "--tail", "40", server).stdout
        raise BenchError(
            f"compose: model not AVAILABLE or no detections within {AVAILABLE_TIMEOUT_S:.0f}s\n{logs}"
        )
    subprocess.run(
        _compose(site, "down", "--volumes", "--remove-orphans"), env=env, capture_output=True, check=False
    )
    return {
        "available_s": round(available, 2),
        "first_detection_s": round(first, 2),
        "up_cpu_s": round(up.cpu_s, 2),
    }


def launcher_trial(site: Site, compare_linear: bool) -> dict[str, Any]:
    """Cold deploy from nothing (after destroy --purge), then a warm re-deploy; with compare_linear,
    one more warm re-deploy with Ansible's own `linear` strategy (what Mitogen is measured against)."""
    extra = ["-e", f"ovms_server_image={DOUBLE}", "--json"]
    run_launcher(["destroy", *site.inventories, "--purge", "--yes"], env=site.env)
    cold = run_launcher(["deploy", *site.inventories, *extra], env=site.env)
    cold_run = latest_run(site.runs, "deploy")
    warm = run_launcher(["deploy", *site.inventories, *extra], env=site.env)
    warm_run = latest_run(site.runs, "deploy")
    linear: dict[str, Any] = {}
    if compare_linear:
        plain = run_launcher(["deploy", *site.inventories, *extra], env={**site.env, STRATEGY_ENV: "linear"})
        linear = {"warm_linear_s": round(plain.measured.wall_s, 2), "warm_linear_changed": plain.changed,
                  "warm_linear_cpu_s": round(plain.measured.cpu_s, 2)}  # fmt: skip
    return {
        **linear,
        "cold_slowest_tasks": slowest_tasks(cold_run, scratch=site.root) if cold_run else [],
        "warm_slowest_tasks": slowest_tasks(warm_run, scratch=site.root) if warm_run else [],
        "cold_task_count": max(tasks_per_host(cold_run).values(), default=0) if cold_run else None,
        "warm_task_count": max(tasks_per_host(warm_run).values(), default=0) if warm_run else None,
        "cold_s": round(cold.measured.wall_s, 2),
        "cold_changed": cold.changed,
        "cold_cpu_s": round(cold.measured.cpu_s, 2),
        "cold_peak_rss_mib": round(cold.measured.peak_rss_mib, 1),
        "warm_s": round(warm.measured.wall_s, 2),
        "warm_changed": warm.changed,
        "warm_cpu_s": round(warm.measured.cpu_s, 2),
        "warm_peak_rss_mib": round(warm.measured.peak_rss_mib, 1),
    }


def cli_help_times(runs: int = CLI_HELP_RUNS) -> list[float]:
    """Wall seconds of `launcher --help`, `runs` times, each a fresh interpreter as a user's shell
    starts it; one untimed run first, so byte-code compilation and a cold page cache are not counted."""
    from bench.launch import LAUNCHER

    def once() -> float:
        started = time.perf_counter()
        done = subprocess.run([LAUNCHER, "--help"], capture_output=True, text=True, check=False,
                              timeout=60, cwd=PROJECT_ROOT)  # fmt: skip
        elapsed = time.perf_counter() - started
        if done.returncode != 0 or "Commands:" not in done.stdout:
            raise BenchError(f"`launcher --help` failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
        return elapsed

    once()
    return [round(once(), 4) for _ in range(runs)]


def cleanup(site: Site) -> None:
    run_launcher(["destroy", *site.inventories, "--purge", "--yes"], env=site.env, check=False)
    subprocess.run(_compose(site, "down", "--volumes", "--remove-orphans"), env=_compose_env(site),
                   capture_output=True, check=False)  # fmt: skip
    for name in _docker("ps", "-aq", "--filter", f"name={site.tag}").stdout.split():
        _docker("rm", "-f", name)
    _docker("network", "rm", site.tag)
    shutil.rmtree(site.root, ignore_errors=True)


def run(trials: int, smoke: bool) -> dict[str, Any]:
    if shutil.which("docker-compose") is None:
        raise BenchError(
            "docker-compose is not installed: run scripts/setup.sh (it installs Debian's docker-compose)"
        )
    site = make_site()
    rows: list[dict[str, Any]] = []
    calibration_before = calibrate()
    cli_help = cli_help_times()
    print(f"[deploy] launcher --help: {json.dumps(spread(cli_help))} s", flush=True)
    try:
        for trial in range(1, trials + 1):
            print(f"[deploy] trial {trial}/{trials}: launcher cold + warm …", flush=True)
            row = launcher_trial(site, compare_linear=not smoke)
            print(f"[deploy] trial {trial}/{trials}: docker-compose …", flush=True)
            row.update({f"compose_{k}": v for k, v in compose_trial(site).items()})
            row["cold_over_compose"] = round(row["cold_s"] / row["compose_available_s"], 3)
            rows.append(row)
            shown = {k: v for k, v in row.items() if not k.endswith("_tasks")}
            print(f"[deploy]   {json.dumps(shown)}", flush=True)
    finally:
        cleanup(site)
    noise = machine_noise(calibration_before, calibrate())
    ratios = {
        # first, so the deploy's own ratios are still the last lines printed
        "cli_help_s": round(median(cli_help), 3),
        "warm_redeploy_s": round(median([r["warm_s"] for r in rows]), 2),
        "warm_redeploy_changed": max(r["warm_changed"] for r in rows),
        # measured in the same trials: the speed-up of the Mitogen strategy over Ansible's linear
        **(
            {"warm_linear_over_mitogen": round(median([r["warm_linear_s"] / r["warm_s"] for r in rows]), 2)}
            if all("warm_linear_s" in r for r in rows)
            else {}
        ),
        "cold_over_compose": round(median([r["cold_over_compose"] for r in rows]), 3),
    }
    per_trial = {
        "cli_help_s": cli_help,  # per run of `launcher --help`
        "warm_redeploy_s": [r["warm_s"] for r in rows],
        "warm_redeploy_changed": [r["warm_changed"] for r in rows],
        "warm_linear_over_mitogen": [r["warm_linear_s"] / r["warm_s"] for r in rows if "warm_linear_s" in r],
        "cold_over_compose": [r["cold_over_compose"] for r in rows],
    }
    spreads = {key: spread(values) for key, values in per_trial.items() if key in ratios}
    # the slowest tasks are kept for the last trial only (the profile of a typical run)
    profile = {key: rows[-1][key] for key in ("cold_slowest_tasks", "warm_slowest_tasks")}
    for row in rows:
        row.pop("cold_slowest_tasks", None)
        row.pop("warm_slowest_tasks", None)
    raw = {
        "cli_help_runs_s": cli_help,
        "trials": rows,
        "profile_last_trial": profile,
        "median": {
            key: round(median([r[key] for r in rows]), 2)
            for key in (
                "cold_s",
                "warm_s",
                "compose_available_s",
                "compose_first_detection_s",
                "cold_cpu_s",
                "warm_cpu_s",
                "cold_peak_rss_mib",
                "warm_peak_rss_mib",
                "warm_linear_s",
                "warm_linear_cpu_s",
                "cold_task_count",
                "warm_task_count",
            )
            if all(key in r for r in rows)
        },
    }
    params = {
        "trials": trials,
        "cli_help_runs": CLI_HELP_RUNS,
        "site_tag": site.tag,
        "compose_project": site.compose_project,
        "server_image": DOUBLE,
        "model": MODEL,
        "strategy": os.environ.get("OVMS_LAUNCHER_STRATEGY", "mitogen_linear"),
        "compose": subprocess.run(
            ["docker-compose", "version", "--short"], capture_output=True, text=True, check=False
        ).stdout.strip(),
    }
    path = write_result(
        NAME, smoke=smoke, ratios=ratios, raw=raw, params=params, spreads=spreads, noise=noise
    )
    print(f"[deploy] result: {path}", flush=True)
    return {"ratios": ratios, "spreads": spreads, "raw": raw, "params": params, "path": str(path)}


def render(result: dict[str, Any], figdir: Path) -> str:
    """The chart (medians with every trial) and the markdown section of docs/benchmarks.md."""
    from bench.charts import bar_with_trials

    rows = result["raw"]["trials"]
    series = {
        "launcher cold": [r["cold_s"] for r in rows],
        "launcher warm": [r["warm_s"] for r in rows],
        **({"warm, linear": [r["warm_linear_s"] for r in rows]} if "warm_linear_s" in rows[0] else {}),
        "compose → AVAILABLE": [r["compose_available_s"] for r in rows],
        "compose → first detection": [r["compose_first_detection_s"] for r in rows],
    }
    png = figdir / "deploy-single-host.png"
    bar_with_trials(series, png, title="Single-host deploy (seconds; bar = median, dots = trials)", unit="s")
    med = result["raw"]["median"]
    ratios = result["ratios"]
    lines = [
        "| step | median s | controller CPU s | controller peak MiB | tasks on the host |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| `launcher deploy`, cold | {med['cold_s']} | {med['cold_cpu_s']} | {med['cold_peak_rss_mib']} "
        f"| {med.get('cold_task_count', '-')} |",
        f"| `launcher deploy`, warm (changed = {ratios['warm_redeploy_changed']}) | {med['warm_s']} | "
        f"{med['warm_cpu_s']} | {med['warm_peak_rss_mib']} | {med.get('warm_task_count', '-')} |",
        *(
            [
                f"| `launcher deploy`, warm, Ansible's `linear` strategy | {med['warm_linear_s']} | "
                f"{med['warm_linear_cpu_s']} | | |"
            ]
            if "warm_linear_s" in med
            else []
        ),
        f"| `docker-compose up -d` → model AVAILABLE | {med['compose_available_s']} | | |",
        f"| `docker-compose up -d` → first detections | {med['compose_first_detection_s']} | | |",
        "",
        f"`warm_redeploy_s` = **{ratios['warm_redeploy_s']}**, `warm_redeploy_changed` = "
        f"**{ratios['warm_redeploy_changed']}**, `cold_over_compose` = **{ratios['cold_over_compose']}** "
        f"(median of the per-trial ratios; {result['params']['trials']} trials).",
        *(
            [
                "",
                f"`cli_help_s` = **{ratios['cli_help_s']}**: wall seconds of `launcher --help` (median of "
                f"{len(result['raw']['cli_help_runs_s'])} runs, "
                f"{min(result['raw']['cli_help_runs_s'])}..{max(result['raw']['cli_help_runs_s'])}).",
            ]
            if "cli_help_s" in ratios
            else []
        ),
        "",
        f"![single-host deploy](benchmarks/{png.name})",
        "",
        "Slowest tasks of the last trial (seconds, start to result):",
        "",
        "| deploy | role | task | s |",
        "| --- | --- | --- | ---: |",
    ]
    for kind in ("cold", "warm"):
        for task in result["raw"].get("profile_last_trial", {}).get(f"{kind}_slowest_tasks", [])[:5]:
            lines.append(f"| {kind} | {task['role']} | {task['task']} | {task['seconds']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.deploy", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="one short trial, results to a scratch folder")
    parser.add_argument("--trials", type=int, default=None, help="trials (default 5, smoke 1)")
    args = parser.parse_args(argv)
    stop_on_sigterm()
    trials = args.trials or (1 if args.smoke else 5)
    try:
        result = run(trials, args.smoke)
    except BenchError as exc:
        print(f"[deploy] error: {exc}", file=sys.stderr)
        return 1
    return conclude(NAME, "deploy (single host)", result["ratios"], args.smoke, result["spreads"])


if __name__ == "__main__":
    sys.exit(main())
