"""Starts the OVMS server double for a test: in its container (default) or as a local subprocess.

Used by the `ovms_double` fixture in tests/conftest.py. The container runs like the real server's
would: read-only root, tmpfs /tmp, uid 5000, the test's model repository bind-mounted read-only at
/models (the test rewrites config.json from the host side), on a labelled private network.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from testbed import dockerutil

IMAGE = os.environ.get("OVMS_DOUBLE_IMAGE", "ovms-launcher/ovms-double:dev")
GRPC_PORT = 9000
REST_PORT = 8000
ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 120.0


def local_mode() -> bool:
    return os.environ.get("OVMS_DOUBLE_LOCAL") == "1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_repository_dir() -> Path:
    """A temp dir the container's uid 5000 can read (pytest's tmp_path is mode 0700)."""
    path = Path(tempfile.mkdtemp(prefix="ovms-double-repo-"))
    path.chmod(0o755)
    return path


def copy_model(src_version_dir: Path, repo: Path, name: str, version: int = 1) -> Path:
    """Copy a prepared model version into repo/<name>/<version>, world-readable."""
    target = repo / name / str(version)
    tmp = repo / name / f".tmp-{version}"
    shutil.copytree(src_version_dir, tmp)
    for path in [tmp, *tmp.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    (repo / name).chmod(0o755)
    tmp.rename(target)  # a version directory appears whole, never half-copied
    return target


@dataclass
class DoubleServer:
    """A running double: addresses for clients plus stop()/start() for fault tests."""

    repo: Path
    args: list[str]
    grpc_address: str = ""
    rest_url: str = ""
    container: str | None = None
    network: str | None = None
    _proc: subprocess.Popen | None = None
    _log_path: Path | None = None
    _ports: tuple[int, int] = (0, 0)
    _removed: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    use_config: bool = True

    @property
    def config_path(self) -> Path:
        return self.repo / "config.json"

    # -- lifecycle -------------------------------------------------------------------------------
    def launch(self, wait_ready: bool = True) -> DoubleServer:
        if local_mode():
            self._launch_local()
        else:
            self._launch_container()
        if wait_ready:
            self.wait_ready()
        return self

    def _server_args(self, grpc_port: int, rest_port: int, config: str) -> list[str]:
        ports = ["--port", str(grpc_port), "--rest_port", str(rest_port)]
        if not self.use_config:
            return [*ports, *self.args]
        return ["--config_path", config, *ports, *self.args]

    def _launch_local(self) -> None:
        if self._ports == (0, 0):
            self._ports = (free_port(), free_port())
        grpc_port, rest_port = self._ports
        self._log_path = self._log_path or Path(tempfile.mkstemp(prefix="ovms-double-", suffix=".log")[1])
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **self.extra_env}
        log = self._log_path.open("ab")
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ovms_double",
                *self._server_args(grpc_port, rest_port, str(self.config_path)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tempfile.gettempdir(),
        )
        log.close()
        self.grpc_address = f"127.0.0.1:{grpc_port}"
        self.rest_url = f"http://127.0.0.1:{rest_port}"

    def _launch_container(self) -> None:
        if self.container is None:
            self.network = dockerutil.create_network("ovms-double-net")
            self.container = dockerutil.unique_name("ovms-double")
            env = [arg for key, value in self.extra_env.items() for arg in ("--env", f"{key}={value}")]
            dockerutil.docker(
                "create",
                "--name",
                self.container,
                "--label",
                dockerutil.TEST_LABEL,
                "--network",
                self.network,
                "--read-only",
                "--tmpfs",
                "/tmp",
                "-v",
                f"{self.repo}:/models:ro",
                *env,
                IMAGE,
                *self._server_args(GRPC_PORT, REST_PORT, "/models/config.json"),
            )
        dockerutil.docker("start", self.container)
        ip = dockerutil.container_ip(self.container, self.network)
        self.grpc_address = f"{ip}:{GRPC_PORT}"
        self.rest_url = f"http://{ip}:{REST_PORT}"

    def alive(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return self.container is not None and dockerutil.container_running(self.container)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"the OVMS double exited during start:\n{self.logs()[-4000:]}")
            try:
                if requests.get(f"{self.rest_url}/v2/health/ready", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the OVMS double was not ready within {timeout:.0f}s:\n{self.logs()[-4000:]}")

    def wait_exit(self, timeout: float = 60) -> int:
        """Exit code of a server expected to stop by itself (bad flags or config)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                return self._proc.returncode
            if self.container is not None:
                code = dockerutil.exit_code(self.container)
                if code is not None:
                    return code
            time.sleep(0.2)
        raise RuntimeError(f"the OVMS double still runs after {timeout:.0f}s")

    def stop(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
        elif self.container is not None:
            dockerutil.docker("stop", "-t", "10", self.container, check=False)

    def start(self, wait_ready: bool = True) -> None:
        self.launch(wait_ready=wait_ready)

    def logs(self) -> str:
        if self._log_path is not None and self._log_path.exists():
            return self._log_path.read_text(errors="replace")
        if self.container is not None:
            return dockerutil.logs(self.container)
        return ""

    def remove(self) -> None:
        if self._removed:
            return
        self._removed = True
        self.stop()
        if self.container is not None:
            dockerutil.remove_container(self.container)
        if self.network is not None:
            dockerutil.remove_network(self.network)
        if self._log_path is not None:
            self._log_path.unlink(missing_ok=True)


class DoubleFactory:
    """What the `ovms_double` fixture yields: call it to start a double; all are removed at teardown."""

    def __init__(self) -> None:
        self.servers: list[DoubleServer] = []
        self.repos: list[Path] = []

    def __call__(
        self,
        repo: Path,
        *args: str,
        wait_ready: bool = True,
        env: dict[str, str] | None = None,
        use_config: bool = True,
    ) -> DoubleServer:
        """Start a double on `repo` (holding config.json); extra server flags in args.

        With use_config=False no --config_path is passed (single-model mode: give --model_name and
        --model_path under `models_dir_seen_by_server(repo)`)."""
        if not local_mode() and not dockerutil.image_exists(IMAGE):
            raise RuntimeError(f"{IMAGE} is missing: build it with `launcher images build ovms-double`")
        server = DoubleServer(repo=repo, args=list(args), extra_env=env or {}, use_config=use_config)
        self.servers.append(server)
        return server.launch(wait_ready=wait_ready)

    @staticmethod
    def models_dir_seen_by_server(repo: Path) -> str:
        return str(repo) if local_mode() else "/models"

    def new_repository(self) -> Path:
        repo = make_repository_dir()
        self.repos.append(repo)
        return repo

    def close(self) -> None:
        for server in self.servers:
            server.remove()
        for repo in self.repos:
            shutil.rmtree(repo, ignore_errors=True)
