"""Docker helpers for tests: every object they create carries the test label and is removed by its test."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

TEST_LABEL = "ovms-launcher.test=1"


class DockerError(RuntimeError):
    pass


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise DockerError(f"docker {' '.join(args[:4])} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def engine_available() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return docker("version", "--format", "{{.Server.Version}}", check=False, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def image_exists(ref: str) -> bool:
    return docker("image", "inspect", ref, check=False).returncode == 0


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_network(prefix: str = "ovms-test") -> str:
    name = unique_name(prefix)
    docker("network", "create", "--label", TEST_LABEL, name)
    return name


def remove_network(name: str) -> None:
    docker("network", "rm", name, check=False)


def remove_container(name: str) -> None:
    docker("rm", "-f", "-v", name, check=False)


def inspect(name: str) -> dict:
    return json.loads(docker("inspect", name).stdout)[0]


def container_ip(name: str, network: str) -> str:
    return inspect(name)["NetworkSettings"]["Networks"][network]["IPAddress"]


def container_running(name: str) -> bool:
    proc = docker("inspect", "--format", "{{.State.Running}}", name, check=False)
    return proc.stdout.strip() == "true"


def exit_code(name: str) -> int | None:
    state = inspect(name)["State"]
    return None if state["Running"] else int(state["ExitCode"])


def logs(name: str) -> str:
    proc = docker("logs", name, check=False)
    return proc.stdout + proc.stderr


@contextlib.contextmanager
def readable_tmpdir(prefix: str) -> Iterator[Path]:
    """A temporary folder the containers' non-root users can traverse and read (pytest's tmp folders
    are private to root), removed at the end."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
