"""Controller cost of a command: wall time, CPU seconds of its whole process tree, peak memory.

CPU comes from `getrusage(RUSAGE_CHILDREN)` before and after (every descendant that was waited for,
which is all of ansible-playbook's workers); peak memory is the largest sum of the tree's resident
set sizes seen by a sampler every 0.2 s (psutil).
"""

from __future__ import annotations

import resource
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import psutil

SAMPLE_S = 0.2


@dataclass(frozen=True)
class Measured:
    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    cpu_s: float
    peak_rss_mib: float


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        members = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            continue
    return total


def run_measured(
    cmd: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None, timeout: float = 1200
) -> Measured:
    """Run `cmd` to completion (stdin closed, output captured) and measure it."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.Popen(
        list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True, env=dict(env) if env is not None else None, cwd=cwd,
    )  # fmt: skip
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        try:
            root = psutil.Process(proc.pid)
        except psutil.Error:
            return
        while not stop.is_set():
            peak = max(peak, _tree_rss(root))
            stop.wait(SAMPLE_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        raise
    finally:
        stop.set()
        sampler.join(timeout=5)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measured(proc.returncode, stdout, stderr, wall, cpu, peak / 1024 / 1024)
