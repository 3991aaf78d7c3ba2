"""Thin, typed calls to the docker command line (the client every user already has)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from launcher.errors import ExternalError, LauncherError


def docker_bin() -> str:
    path = shutil.which("docker")
    if not path:
        raise LauncherError(
            "the docker command is not installed",
            fix="run scripts/ensure-docker.sh (installs and starts the engine) and retry",
        )
    return path


def run(args: list[str], *, check: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([docker_bin(), *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise ExternalError(
            f"`docker {' '.join(args[:3])}` failed: {proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc


def ensure_engine() -> str:
    """The engine's version; a clear error when no engine answers."""
    proc = run(["version", "--format", "{{.Server.Version}}"], check=False, timeout=30)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise ExternalError(
            f"no Docker engine answers: {proc.stderr.strip()[:300]}",
            fix="run scripts/ensure-docker.sh to install and start it",
        )
    return proc.stdout.strip()


def image_inspect(ref: str) -> dict | None:
    proc = run(["image", "inspect", "--", ref], check=False)  # "--": a ref is never read as an option
    if proc.returncode != 0:
        return None
    data = json.loads(proc.stdout)
    return data[0] if data else None


def image_id(ref: str) -> str | None:
    info = image_inspect(ref)
    return info["Id"] if info else None


def image_labels(ref: str) -> dict[str, str]:
    info = image_inspect(ref)
    if not info:
        return {}
    return (info.get("Config") or {}).get("Labels") or {}


def try_pull(ref: str, timeout: float = 120) -> tuple[bool, str]:
    """Pull an image; (False, reason) when the registry cannot be reached."""
    try:
        proc = run(["pull", "--quiet", ref], check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"no answer from the registry within {timeout:.0f}s"
    if proc.returncode == 0:
        return True, ""
    return False, (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1]


def stream(
    args: list[str], log_path: Path, on_line: Callable[[str], None] | None = None, env: dict | None = None
) -> int:
    """Run docker with its output appended to log_path, each line also passed to on_line."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {})}
    with log_path.open("a", encoding="utf-8") as log:
        log.write(f"$ docker {' '.join(args)}\n")
        proc = subprocess.Popen(
            [docker_bin(), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=full_env,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if on_line:
                on_line(line.rstrip("\n"))
        return proc.wait()
