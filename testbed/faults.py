"""Faults on a harness host while the clients stream, and what the reliability tests read around them:
container identities, byte prefixes of the result files, the clients' records after a fault, the
moment the service is back, and container memory.

Timestamps: every harness host is a container on this machine's kernel, so `time.time()` here, on
the hosts and inside their containers is one clock; the clients' record `ts` values compare directly
with the fault and return times measured here.
"""

from __future__ import annotations

import json
import shlex
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from testbed.harness import Host
from testbed.remote import json_lines, parse_json_lines

# --- containers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerState:
    """What identifies one run of a container: a restart changes started_at, a re-create the id."""

    name: str
    id: str
    running: bool
    started_at: str
    restart_count: int

    @classmethod
    def of(cls, host: Host, name: str) -> ContainerState:
        proc = host.ssh.run(["docker", "inspect", name], check=False)
        if proc.returncode != 0:
            raise AssertionError(f"{name} does not exist on {host.name}: {proc.stderr.strip()}")
        info = json.loads(proc.stdout)[0]
        state = info["State"]
        return cls(name, info["Id"], bool(state["Running"]), state["StartedAt"], int(info["RestartCount"]))

    def same_run(self, other: ContainerState) -> bool:
        mine = (self.id, self.started_at, self.restart_count)
        return mine == (other.id, other.started_at, other.restart_count)


def crash_container(host: Host, name: str) -> float:
    """SIGKILL to the container's main process, as the OOM killer or a crash would end it; returns the
    time just before. (`docker kill` is an operator's decision to Docker: it cancels the restart
    policy for that exit, so it does not test the policy.)"""
    pid = host.ssh.run(["docker", "inspect", "--format", "{{.State.Pid}}", name]).stdout.strip()
    if not pid.isdigit() or pid == "0":
        raise AssertionError(f"{name} on {host.name} has no running process (pid {pid!r})")
    started = time.time()
    host.ssh.run(["kill", "-KILL", pid])
    return started


def restart_engine(host: Host, timeout: float = 240) -> float:
    """`host-dockerd restart` (the host image's stand-in for `systemctl restart docker`): SIGTERM to
    dockerd, wait until it stopped its containers and exited, start it again with the same flags.
    Returns the time just before."""
    started = time.time()
    host.ssh.run(["host-dockerd", "restart"], timeout=timeout)
    return started


def live_restore(host: Host) -> bool:
    out = host.ssh.run(["docker", "info", "--format", "{{.LiveRestoreEnabled}}"]).stdout.strip()
    return out == "true"


# --- the service on the server host --------------------------------------------------------------

# Runs on the server host (python3 of the host image, no third-party modules): polls every 0.25 s
# until both containers run, OVMS answers on its internal address that every version of the model
# is AVAILABLE, and the TLS port accepts connections; prints one JSON line.
_SERVICE_POLL = r"""
import json, socket, subprocess, sys, time, urllib.request
server, proxy, model, rest_port, tls_host, tls_port, timeout = sys.argv[1:8]
deadline = time.time() + float(timeout)
last = ""
def check():
    fmt = "{{.State.Running}} {{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"
    proc = subprocess.run(["docker", "inspect", "--format", fmt, server, proxy],
                          capture_output=True, text=True, timeout=20)
    if proc.returncode != 0:
        return "docker inspect: " + (proc.stderr.strip() or proc.stdout.strip())[:200]
    rows = [line.split() for line in proc.stdout.splitlines() if line.strip()]
    if len(rows) != 2 or any(r[0] != "true" for r in rows):
        return "not running: " + proc.stdout.strip()
    states = None
    for ip in rows[0][1:]:
        try:
            with urllib.request.urlopen(f"http://{ip}:{rest_port}/v1/config", timeout=2) as reply:
                states = [v.get("state") for v in json.load(reply)[model]["model_version_status"]]
            break
        except Exception as exc:
            states = f"{ip}: {type(exc).__name__}: {exc}"
    if not isinstance(states, list) or not states or any(s != "AVAILABLE" for s in states):
        return f"model {model}: {states}"
    try:
        socket.create_connection((tls_host, int(tls_port)), timeout=2).close()
    except OSError as exc:
        return f"TLS port {tls_host}:{tls_port}: {exc}"
    return None
while True:
    try:
        last = check()
    except Exception as exc:
        last = f"{type(exc).__name__}: {exc}"
    if last is None:
        print(json.dumps({"up_at": time.time()}))
        break
    if time.time() > deadline:
        print(json.dumps({"up_at": None, "last": last}))
        break
    time.sleep(0.25)
"""


@dataclass(frozen=True)
class Service:
    """OVMS behind the mTLS proxy on the server host."""

    host: Host
    server: str
    proxy: str
    model: str
    rest_port: int
    tls_port: int

    def wait_up(self, timeout: float) -> tuple[float | None, str]:
        """(time it was first seen up, or None, and the last thing missing), polled on the host."""
        args = [self.server, self.proxy, self.model, str(self.rest_port), self.host.ip, str(self.tls_port),
                str(timeout)]  # fmt: skip
        proc = self.host.ssh.run(
            "python3 - " + shlex.join(args), stdin=_SERVICE_POLL, check=False, timeout=timeout + 60
        )
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            return None, f"poll failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-500:]}"
        result = json.loads(lines[-1])
        return result["up_at"], result.get("last", "")


# --- client result files -------------------------------------------------------------------------


@dataclass(frozen=True)
class FilePrefix:
    path: str
    size: int
    sha256: str


def capture_prefix(host: Host, path: str) -> FilePrefix:
    """The file's current size and the sha256 of exactly those bytes (one SSH command)."""
    quoted = shlex.quote(path)
    out = host.ssh.run(f"n=$(stat -c %s {quoted}) && echo $n && head -c $n {quoted} | sha256sum").stdout
    size, digest = out.split()[:2]
    return FilePrefix(path, int(size), digest)


def prefix_problem(host: Host, prefix: FilePrefix) -> str | None:
    """None when the file still starts with the captured bytes, else what changed."""
    quoted = shlex.quote(prefix.path)
    out = host.ssh.run(f"stat -c %s {quoted} && head -c {prefix.size} {quoted} | sha256sum", check=False)
    if out.returncode != 0:
        return f"{prefix.path} on {host.name} unreadable: {out.stderr.strip()}"
    size, digest = out.stdout.split()[:2]
    if int(size) < prefix.size:
        return f"{prefix.path} on {host.name} shrank from {prefix.size} to {size} bytes"
    if digest != prefix.sha256:
        return f"the first {prefix.size} bytes of {prefix.path} on {host.name} changed"
    return None


def read_records(host: Host, path: str, offset: int = 0) -> list[dict[str, Any]]:
    """The complete JSON lines of `path` from byte `offset` (a line being written is left out)."""
    proc = host.ssh.run(f"tail -c +{offset + 1} {shlex.quote(path)}", check=False, timeout=60)
    return parse_json_lines(proc.stdout)


def last_stats(host: Host, path: str) -> dict[str, Any] | None:
    records = json_lines(host, path, "3")
    return records[-1] if records else None


@dataclass
class StreamOutage:
    """One stream's records after a fault: the first frame it dropped and its first result after that."""

    stream: int
    first_drop_ts: float | None = None
    dropped: int = 0
    resumed_at: float | None = None  # capture time + latency of the first result after the drop


def outages(records: Sequence[dict[str, Any]], fault_ts: float, streams: int) -> dict[int, StreamOutage]:
    """Per stream: frames captured from `fault_ts` on, up to the first result after the first drop."""
    found = {s: StreamOutage(s) for s in range(streams)}
    for record in records:
        stream = found.get(int(record.get("stream", -1)))
        if stream is None or float(record["ts"]) < fault_ts or stream.resumed_at is not None:
            continue
        if record.get("status") == "dropped":
            stream.dropped += 1
            if stream.first_drop_ts is None:
                stream.first_drop_ts = float(record["ts"])
        elif record.get("status") == "ok" and stream.first_drop_ts is not None:
            stream.resumed_at = float(record["ts"]) + float(record.get("latency_ms", 0.0)) / 1000.0
    return found


# --- memory --------------------------------------------------------------------------------------

# Runs on a host (python3 of the host image): every `interval` seconds for `duration` seconds, the
# memory of each named container as `docker stats` counts it on cgroup v1 (usage without the
# inactive page cache, so appending to result files is not "growth"), read from the container's
# memory cgroup; one JSON line per sample.
_MEMORY_SAMPLER = r"""
import json, subprocess, sys, time
duration, interval, names = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
paths = {}
for name in names:
    pid = subprocess.run(["docker", "inspect", "--format", "{{.State.Pid}}", name],
                         capture_output=True, text=True, check=True).stdout.strip()
    with open(f"/proc/{pid}/cgroup") as f:
        rel = next(l.split(":", 2)[2].strip() for l in f if l.split(":")[1].split(",").count("memory"))
    paths[name] = "/sys/fs/cgroup/memory" + rel
end = time.time() + duration
while True:
    for name, path in paths.items():
        try:
            with open(path + "/memory.usage_in_bytes") as f:
                usage = int(f.read())
            with open(path + "/memory.stat") as f:
                stat = dict(l.split() for l in f)
            inactive = int(stat.get("total_inactive_file", 0))
            print(json.dumps({"t": time.time(), "name": name,
                              "bytes": usage - inactive if inactive < usage else usage,
                              "anon": int(stat.get("total_rss", 0))}), flush=True)
        except (OSError, ValueError) as exc:
            print(json.dumps({"t": time.time(), "name": name, "error": str(exc)}), flush=True)
    if time.time() >= end:
        break
    time.sleep(interval)
"""


@dataclass
class MemorySampler:
    """Memory of containers on several hosts, sampled on each host every `interval` seconds for
    `duration` seconds (one SSH command per host, in a background thread)."""

    targets: dict[str, tuple[Host, list[str]]]  # label -> (host, container names)
    duration: float
    interval: float = 1.0
    # (time, label, name, bytes): the cgroup's memory without inactive page cache
    samples: list[tuple[float, str, str, int]] = field(default_factory=list)
    # (time, label, name, bytes): anonymous memory only (a leak lives there; page cache and shared
    # memory zones are bounded by the kernel and the config)
    anon: list[tuple[float, str, str, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        for label, (host, names) in self.targets.items():
            thread = threading.Thread(target=self._run, args=(label, host, names), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _run(self, label: str, host: Host, names: list[str]) -> None:
        args = shlex.join([str(self.duration), str(self.interval), *names])
        try:
            proc = host.ssh.run(
                f"python3 - {args}", stdin=_MEMORY_SAMPLER, check=False, timeout=self.duration + 120
            )
        except Exception as exc:  # reported by the test with the samples
            with self._lock:
                self.errors.append(f"{label}: {type(exc).__name__}: {exc}")
            return
        with self._lock:
            if proc.returncode != 0:
                self.errors.append(f"{label}: exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
            for line in proc.stdout.splitlines():
                record = json.loads(line)
                if "error" in record:
                    self.errors.append(f"{label}/{record['name']}: {record['error']}")
                else:
                    self.samples.append((record["t"], label, record["name"], int(record["bytes"])))
                    self.anon.append((record["t"], label, record["name"], int(record["anon"])))

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=self.duration + 150)

    def window(self, label: str, name: str, start: float, end: float, *, anon: bool = False) -> list[int]:
        with self._lock:
            rows = self.anon if anon else self.samples
            return [b for t, lab, n, b in rows if lab == label and n == name and start <= t <= end]
