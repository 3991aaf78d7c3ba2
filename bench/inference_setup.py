"""The servers of the inference benchmark: the OVMS double, the mTLS proxy and its throw-away PKI.

Everything lives on one private labelled Docker network created for the run; containers are named
`ovms-bench-*` and labelled `ovms-launcher.test=1` + `ovms-launcher.bench=1`, and `Stack.close()`
removes exactly what this run created (also after Ctrl+C). The proxy's nginx site config is rendered
from the `ovms_tls_proxy` role's own template with the role's defaults, so the benchmark measures
the deployed configuration.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml

from launcher.paths import cache_dir
from launcher.pki import Kind, PkiLayout, generate
from launcher.pki.plan import client_spec, server_spec
from testbed.paths import PROJECT_ROOT

LABELS = ("ovms-launcher.test=1", "ovms-launcher.bench=1")
PREFIX = "ovms-bench"
DOUBLE_IMAGE = os.environ.get("OVMS_DOUBLE_IMAGE", "ovms-launcher/ovms-double:dev")
CLIENT_IMAGE = os.environ.get("OVMS_CLIENT_IMAGE", "ovms-launcher/client:dev")
PROXY_IMAGE = os.environ.get("OVMS_TLS_PROXY_IMAGE", "ovms-launcher/tls-proxy:dev")
MODEL = "person-detection"
PROFILE_DIR = PROJECT_ROOT / "profiles" / MODEL
ROLE_DIR = PROJECT_ROOT / "roles" / "ovms_tls_proxy"
# the PKI layout (the certificate file names the proxy's template reads)
COMMON_DEFAULTS = PROJECT_ROOT / "roles" / "ovms_common" / "defaults" / "main.yml"
GRPC_PORT = 9000
REST_PORT = 8000
TLS_PORT = 9443
PROXY_UID = 5001
CLIENT_UID = 5002
CLIENT_CERT_NAME = "bench-client"


class BenchError(RuntimeError):
    """A benchmark step failed (not a missed target)."""


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise BenchError(f"docker {' '.join(args[:3])} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def unique(kind: str) -> str:
    return f"{PREFIX}-{kind}-{uuid.uuid4().hex[:8]}"


def label_flags() -> list[str]:
    return [flag for label in LABELS for flag in ("--label", label)]


# --- inputs ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Inputs:
    model_dir: Path  # <cache>/models/person-detection/1
    media_dir: Path  # <cache>/media (sample.mp4, frames/)

    @property
    def video(self) -> Path:
        return self.media_dir / "sample.mp4"


def find_inputs() -> Inputs:
    """The prepared model and the sample media; a clear error naming the command when missing."""
    base = cache_dir()
    model_root = base / "models" / MODEL
    versions = sorted((p for p in model_root.glob("[0-9]*") if p.is_dir()), key=lambda p: int(p.name))
    if not versions or not any(versions[-1].glob("*.xml")):
        raise BenchError(f"{model_root}: no prepared model; run `launcher models prepare` first")
    media = base / "media"
    if not (media / "sample.mp4").is_file():
        raise BenchError(f"{media}/sample.mp4 is missing; run `launcher media sample` first")
    return Inputs(versions[-1], media)


# --- the stack: network, double, PKI, proxy --------------------------------------------------------
def _wait_http(url: str, timeout: float, alive: Callable[[], bool]) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not alive():
            raise BenchError(f"the container behind {url} exited")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                body = reply.read()
                return json.loads(body) if body else None
        except (OSError, ValueError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise BenchError(f"{url} did not answer within {timeout:.0f}s ({last})")


def _wait_tcp(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise BenchError(f"{host}:{port} did not accept connections within {timeout:.0f}s")


def render_proxy_config(upstream: str) -> tuple[str, dict[str, Any]]:
    """The role's nginx site template rendered with the role's defaults; returns (text, tuning)."""
    defaults = yaml.safe_load((ROLE_DIR / "defaults" / "main.yml").read_text())
    tuning = {
        key: value
        for key, value in defaults.items()
        if key.startswith("ovms_tls_") and not (isinstance(value, str) and "{{" in value)
    }
    variables = {
        **tuning,
        "ansible_managed": "rendered by bench/inference_setup.py from the ovms_tls_proxy role",
        "ovms_tls_upstream_host": upstream,
        "ovms_tls_upstream_grpc_port": GRPC_PORT,
        "ovms_tls_upstream_rest_port": REST_PORT,
        "ovms_tls_port": TLS_PORT,
        "ovms_tls_rest_port": 0,
        # the certificate file names the template reads (the PKI layout of roles/ovms_common)
        "ovms_common_pki_layout": yaml.safe_load(COMMON_DEFAULTS.read_text())["ovms_common_pki_layout"],
    }
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(ROLE_DIR / "templates")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # an nginx config, not HTML
    )
    env.filters["bool"] = lambda value: str(value).strip().lower() in ("1", "true", "yes", "on")
    text = env.get_template("ovms-proxy.conf.j2").render(**variables)
    shown = {k: v for k, v in tuning.items() if k in ("ovms_tls_keepalive", "ovms_tls_grpc_buffer_size")}
    return text, shown


def image_nginx_tuning() -> list[str]:
    """The performance directives of the tls-proxy image's own nginx.conf (workers, HTTP/2 buffers)."""
    wanted = ("worker_processes", "worker_connections", "http2_", "client_body_buffer_size")
    lines = (
        line.strip().rstrip(";")
        for line in (PROJECT_ROOT / "images/tls-proxy/nginx.conf").read_text().splitlines()
    )
    return [line for line in lines if line.startswith(wanted)]


def _share(path: Path, uid: int, mode: int) -> None:
    """Hand a file to a container user; without root, make it readable instead (throw-away PKI)."""
    try:
        os.chown(path, uid, uid)
        path.chmod(mode)
    except PermissionError:
        path.chmod(0o644 if not path.is_dir() else 0o755)


@dataclass
class Stack:
    """Network, OVMS double and mTLS proxy shared by every client run of the benchmark."""

    inputs: Inputs
    plugin_config: Mapping[str, str]
    nireq: int = 0
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix=f"{PREFIX}-")))
    network: str = ""
    double: str = ""
    proxy: str = ""
    client_tls_dir: Path | None = None
    proxy_tuning: dict[str, Any] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)  # every container name this run used
    _containers: list[str] = field(default_factory=list)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, with_proxy: bool = True) -> Stack:
        for image in (DOUBLE_IMAGE, CLIENT_IMAGE, *([PROXY_IMAGE] if with_proxy else [])):
            if docker("image", "inspect", image, check=False).returncode != 0:
                raise BenchError(f"image {image} is missing: run `launcher images build`")
        self.workdir.chmod(0o755)
        self.network = unique("net")
        docker("network", "create", *label_flags(), self.network)
        self._start_double()
        if with_proxy:
            self._start_proxy()
        return self

    def close(self) -> None:
        for name in reversed(self._containers):
            docker("rm", "-f", "-v", name, check=False, timeout=60)
        self._containers.clear()
        if self.network:
            docker("network", "rm", self.network, check=False, timeout=60)
            self.network = ""
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def running(self, name: str) -> bool:
        state = docker("inspect", "--format", "{{.State.Running}}", name, check=False).stdout.strip()
        return state == "true"

    def ip(self, name: str) -> str:
        out = docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", name).stdout
        return json.loads(out)[self.network]["IPAddress"]

    def track(self, name: str) -> None:
        self._containers.append(name)
        self.created.append(name)

    def forget(self, name: str) -> None:
        if name in self._containers:
            self._containers.remove(name)

    # -- the double -----------------------------------------------------------------------------
    def server_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "name": MODEL,
            "base_path": f"/models/{MODEL}",
            "plugin_config": dict(self.plugin_config),
        }
        if self.nireq:
            config["nireq"] = self.nireq
        return {"model_config_list": [{"config": config}]}

    @property
    def model_copy(self) -> Path:
        """The model version directory the double serves (world-readable copy in the workdir)."""
        return self.workdir / "models" / MODEL / self.inputs.model_dir.name

    def _start_double(self) -> None:
        repo = self.workdir / "models"
        target = self.model_copy
        shutil.copytree(self.inputs.model_dir, target)
        for path in [repo, *repo.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        (repo / "config.json").write_text(json.dumps(self.server_config(), indent=2) + "\n")
        (repo / "config.json").chmod(0o644)
        self.double = unique("double")
        self.track(self.double)
        docker(
            "run", "-d", "--name", self.double, *label_flags(), "--network", self.network,
            "--read-only", "--tmpfs", "/tmp", "-v", f"{repo}:/models:ro", DOUBLE_IMAGE,
            "--config_path", "/models/config.json", "--port", str(GRPC_PORT),
            "--rest_port", str(REST_PORT), "--file_system_poll_wait_seconds", "0", "--metrics_enable",
        )  # fmt: skip
        rest = f"http://{self.ip(self.double)}:{REST_PORT}"
        _wait_http(f"{rest}/v2/health/ready", 180, lambda: self.running(self.double))
        status = _wait_http(f"{rest}/v1/config", 30, lambda: self.running(self.double)) or {}
        states = [v.get("state") for v in status.get(MODEL, {}).get("model_version_status", [])]
        if "AVAILABLE" not in states:
            raise BenchError(f"the double did not load {MODEL}: {status}\n{self.logs(self.double)[-2000:]}")

    # -- PKI and proxy --------------------------------------------------------------------------
    def _start_proxy(self) -> None:
        self.proxy = unique("proxy")
        layout = PkiLayout(self.workdir / "pki")
        generate(layout, [server_spec(self.proxy, [], []), client_spec(CLIENT_CERT_NAME)])
        tls_dir = self._copy_files(layout.host_files(Kind.SERVER, self.proxy), "proxy-tls", PROXY_UID)
        self.client_tls_dir = self._copy_files(
            layout.host_files(Kind.CLIENT, CLIENT_CERT_NAME), "client-tls", CLIENT_UID
        )
        conf_dir = self.workdir / "proxy-conf"
        conf_dir.mkdir()
        text, self.proxy_tuning = render_proxy_config(self.double)
        (conf_dir / "ovms-proxy.conf").write_text(text)
        _share(conf_dir / "ovms-proxy.conf", PROXY_UID, 0o640)
        _share(conf_dir, PROXY_UID, 0o750)
        self.track(self.proxy)
        docker(
            "run", "-d", "--name", self.proxy, *label_flags(), "--network", self.network,
            "--user", f"{PROXY_UID}:{PROXY_UID}", "--read-only",
            "--tmpfs", "/tmp:rw,noexec,nosuid,size=64m", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges:true",
            "-v", f"{tls_dir}:/etc/ovms-tls:ro", "-v", f"{conf_dir}:/etc/nginx/conf.d:ro", PROXY_IMAGE,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not self.running(self.proxy):
                raise BenchError(f"the tls-proxy exited:\n{self.logs(self.proxy)[-2000:]}")
            try:
                _wait_tcp(self.ip(self.proxy), TLS_PORT, 1)
                return
            except BenchError:
                continue
        raise BenchError(f"the tls-proxy did not listen on {TLS_PORT}:\n{self.logs(self.proxy)[-2000:]}")

    def _copy_files(self, files: Mapping[str, Path], folder: str, uid: int) -> Path:
        target = self.workdir / folder
        target.mkdir()
        for name, source in files.items():
            shutil.copyfile(source, target / name)
            _share(target / name, uid, 0o600 if name.endswith(".key") else 0o644)
        _share(target, uid, 0o750)
        return target

    def logs(self, name: str) -> str:
        proc = docker("logs", name, check=False)
        return proc.stdout + proc.stderr
