"""Client runs of the inference benchmark and the CPU time they cost.

Every run is our client image (`ovms-launcher/client:dev`) on the stack's private network, so the
three configurations share the same Python, libraries, container runtime and CPU accounting:
(b)/(c) run the client as deployed, dialling the double or the proxy; (a) runs
`bench.inference_inprocess` in the same image with OpenVINO added read-only (the `openvino` package
of this interpreter, the same wheel the double's image installs) and the model mounted. Each run
writes detections.jsonl to its own results folder. CPU time comes from the kernel: each container's
cgroup CPU counter, and /proc/stat for the whole machine (to show how busy it was).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.inference_setup import (
    CLIENT_IMAGE,
    PREFIX,
    PROFILE_DIR,
    BenchError,
    Stack,
    docker,
    label_flags,
    unique,
)
from testbed.paths import PROJECT_ROOT

# --- CPU counters ----------------------------------------------------------------------------------
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cgroup_cpu_file(container_id: str) -> tuple[Path, str] | None:
    """The file holding a container's total CPU time and its format ('ns' or 'cpu.stat')."""
    root = Path("/sys/fs/cgroup")
    v1 = [
        root / "cpuacct" / "docker" / container_id / "cpuacct.usage",
        root / "cpu,cpuacct" / "docker" / container_id / "cpuacct.usage",
        root / "cpuacct" / "system.slice" / f"docker-{container_id}.scope" / "cpuacct.usage",
        root / "cpu,cpuacct" / "system.slice" / f"docker-{container_id}.scope" / "cpuacct.usage",
    ]
    v2 = [
        root / "system.slice" / f"docker-{container_id}.scope" / "cpu.stat",
        root / "docker" / container_id / "cpu.stat",
    ]
    for path in v1:
        if path.is_file():
            return path, "ns"
    for path in v2:
        if path.is_file():
            return path, "cpu.stat"
    return None


def _read_cgroup(path: Path, kind: str) -> float:
    text = path.read_text()
    if kind == "ns":
        return int(text.strip()) / 1e9
    for line in text.splitlines():
        if line.startswith("usage_usec"):
            return int(line.split()[1]) / 1e6
    raise BenchError(f"{path}: no usage_usec line")


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all cores), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / _CLOCK_TICKS


@dataclass
class CpuMeter:
    """Reads the CPU seconds of some containers (cgroup counters) and of the whole machine."""

    containers: dict[str, tuple[Path, str]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    def add_container(self, name: str) -> None:
        container_id = docker("inspect", "--format", "{{.Id}}", name).stdout.strip()
        found = cgroup_cpu_file(container_id)
        if found is None:
            self.missing.append(name)
        else:
            self.containers[name] = found

    def read(self) -> dict[str, float]:
        values = {name: _read_cgroup(path, kind) for name, (path, kind) in self.containers.items()}
        values["machine"] = machine_busy_s()
        return values


# --- client runs -----------------------------------------------------------------------------------
@dataclass
class ClientRun:
    """One run of the client container; its results folder is removed with it."""

    results: Path
    meter: CpuMeter
    container: str

    def alive(self) -> bool:
        state = docker("inspect", "--format", "{{.State.Running}}", self.container, check=False)
        return state.stdout.strip() == "true"

    def logs(self) -> str:
        proc = docker("logs", self.container, check=False)
        return proc.stdout + proc.stderr

    def wait_first_result(self, timeout: float) -> None:
        path = self.results / "detections.jsonl"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists() and '"status":"ok"' in path.read_text(errors="replace"):
                return
            if not self.alive():
                raise BenchError(f"the client exited before its first result:\n{self.logs()[-3000:]}")
            time.sleep(0.1)
        docker("kill", "--signal", "USR1", self.container, check=False)  # the client dumps its stacks
        time.sleep(1)
        raise BenchError(f"no result from the client within {timeout:.0f}s:\n{self.logs()[-6000:]}")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (the client finishes in-flight frames and flushes its files), then wait."""
        docker("kill", "--signal", "TERM", self.container, check=False)
        out = docker("wait", self.container, check=False, timeout=timeout + 30)
        return int(out.stdout.strip() or 1)

    def _pid(self) -> int:
        out = docker("inspect", "--format", "{{.State.Pid}}", self.container).stdout.strip()
        if not out.isdigit() or out == "0":
            raise BenchError(f"{self.container} is not running")
        return int(out)

    def net_bytes(self) -> tuple[int, int]:
        """(received, sent) bytes of the container's eth0 so far, from its network namespace."""
        for line in Path(f"/proc/{self._pid()}/net/dev").read_text().splitlines():
            name, _, counters = line.partition(":")
            if name.strip() == "eth0":
                fields = counters.split()
                return int(fields[0]), int(fields[8])
        raise BenchError(f"{self.container} has no eth0")

    def shape(self, rate: str) -> None:
        """Limit what the container sends to `rate` (Linux tc, token bucket filter, in its network
        namespace): a store's uplink between the cameras and a remote server."""
        command = ["nsenter", "-t", str(self._pid()), "-n", "tc", "qdisc", "add", "dev", "eth0", "root",
                   "tbf", "rate", rate, "burst", "32kbit", "latency", "400ms"]  # fmt: skip
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BenchError(
                f"cannot shape {self.container}'s link to {rate} ({proc.stderr.strip()}): the link "
                "benchmark needs root and Linux tc (iproute2) with the tbf qdisc"
            )

    def records(self) -> list[dict[str, Any]]:
        path = self.results / "detections.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]

    def remove(self) -> None:
        docker("rm", "-f", "-v", self.container, check=False)
        shutil.rmtree(self.results, ignore_errors=True)


def client_settings(
    streams: int, target_fps: float, mode: str, max_in_flight: int, encoding: str = "raw"
) -> dict[str, str]:
    """The CLIENT_* environment of a run (the same for every configuration but the encoding)."""
    return {
        "CLIENT_ENCODING": encoding,
        "CLIENT_STREAMS": str(streams),
        "CLIENT_TARGET_FPS": str(target_fps),
        "CLIENT_MODE": mode,
        "CLIENT_MAX_IN_FLIGHT": str(max_in_flight),
        "CLIENT_STATS_INTERVAL_S": "5",
        "CLIENT_SNAPSHOT_INTERVAL_S": "0",
        "CLIENT_LOG_LEVEL": "WARNING",
    }


OV_DIR = "/opt/bench-openvino"


def _results_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-results-"))
    path.chmod(0o777)
    return path


def _run_client(
    stack: Stack, env: Mapping[str, str], mounts: list[str], command: list[str], entrypoint: list[str]
) -> ClientRun:
    results = _results_dir()
    name = unique("client")
    mounts = [
        "-v", f"{PROFILE_DIR}:/profile:ro", "-v", f"{stack.inputs.media_dir}:/media:ro",
        "-v", f"{results}:/results", *mounts,
    ]  # fmt: skip
    env = {**env, "CLIENT_INPUT": "/media/sample.mp4", "OVMS_RESULTS_DIR": "/results"}
    env_flags = [flag for key, value in env.items() for flag in ("-e", f"{key}={value}")]
    stack.track(name)
    docker(
        "run", "-d", "--name", name, *label_flags(), "--network", stack.network,
        "--read-only", "--tmpfs", "/tmp", *mounts, *env_flags, *entrypoint, CLIENT_IMAGE, *command,
    )  # fmt: skip
    return ClientRun(results, CpuMeter(), name)


def start_container_client(
    stack: Stack, address: str, tls: bool, settings: Mapping[str, str], duration_s: float
) -> ClientRun:
    """(b)/(c): the client as deployed, dialling `address` (the double, or the proxy with mTLS)."""
    env = {**settings, "OVMS_ADDRESS": address}
    mounts: list[str] = []
    if tls:
        assert stack.client_tls_dir is not None
        mounts += ["-v", f"{stack.client_tls_dir}:/tls:ro"]
        env |= {
            "OVMS_TLS_CA": "/tls/ca-bundle.pem",
            "OVMS_TLS_CERT": "/tls/client.pem",
            "OVMS_TLS_KEY": "/tls/client.key",
        }
    return _run_client(stack, env, mounts, ["--profile", "/profile", "--duration", f"{duration_s:.0f}"], [])


def openvino_package() -> Path:
    """This interpreter's `openvino` package, mounted into the client image for configuration (a)."""
    import openvino

    return Path(openvino.__file__).resolve().parent


def openvino_version() -> str:
    import openvino

    return openvino.__version__


def start_inprocess_client(
    stack: Stack, settings: Mapping[str, str], duration_s: float, nireq: int
) -> ClientRun:
    """(a): `python -m bench.inference_inprocess` in the client image, OpenVINO in the same process."""
    env = {
        **settings,
        "PYTHONPATH": f"/opt/ovms-client:{OV_DIR}",
        "BENCH_OV_MODEL_DIR": "/model",
        "BENCH_OV_PLUGIN_CONFIG": json.dumps(dict(stack.plugin_config)),
        "BENCH_OV_NIREQ": str(nireq),
    }
    mounts = [
        "-v", f"{openvino_package()}:{OV_DIR}/openvino:ro",
        "-v", f"{PROJECT_ROOT / 'bench'}:/opt/ovms-client/bench:ro",
        # the double's guard against the OpenVINO binding's start-up deadlock (ovms_double/binding.py)
        "-v", f"{PROJECT_ROOT / 'ovms_double'}:/opt/ovms-client/ovms_double:ro",
        "-v", f"{stack.model_copy}:/model:ro",
    ]  # fmt: skip
    command = ["-m", "bench.inference_inprocess", "--profile", "/profile", "--duration", f"{duration_s:.0f}"]
    return _run_client(stack, env, mounts, command, ["--entrypoint", "/opt/venv/bin/python"])


def cpu_delta(before: Mapping[str, float], after: Mapping[str, float], keys: Sequence[str]) -> float:
    return sum(after[k] - before[k] for k in keys)
