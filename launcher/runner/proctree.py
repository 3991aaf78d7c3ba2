"""Processes a cancelled run leaves behind, found and ended through /proc (Linux controllers).

ansible-runner cancels by SIGKILL to ansible-playbook's process group, but Ansible's workers call
setsid(), so a task's module and the commands it started survive in their own sessions. The launcher
notes its own descendants (and their sessions) when it tells the runner to cancel, and ends the
ones the run created once the runner has stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from pathlib import Path

PROC = Path("/proc")

# (pid, start time in clock ticks): a pid reused by an unrelated process is not mistaken for ours
ProcessId = tuple[int, int]


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(parent pid, session id, start time) of a live process, or None."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # the command name is in parentheses and may hold spaces: split after the last ")"
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return int(fields[1]), int(fields[3]), int(fields[19])
    except (IndexError, ValueError):
        return None


def _table() -> dict[int, tuple[int, int, int]]:
    table: dict[int, tuple[int, int, int]] = {}
    if not PROC.is_dir():
        return table
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            info = _stat(int(entry.name))
            if info is not None:
                table[int(entry.name)] = info
    return table


def session_of(pid: int) -> int | None:
    info = _stat(pid)
    return info[1] if info else None


def in_sessions(sessions: set[int]) -> set[ProcessId]:
    """Every live process of these sessions (a setsid() worker's module and the commands it runs)."""
    return {(pid, info[2]) for pid, info in _table().items() if info[1] in sessions}


def descendants(root: int) -> set[ProcessId]:
    """Every live process below `root` (children, their children, ...)."""
    children: dict[int, list[ProcessId]] = {}
    for pid, (ppid, _sid, start) in _table().items():
        children.setdefault(ppid, []).append((pid, start))
    found: set[ProcessId] = set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child[0])
    return found


def sessions(processes: set[ProcessId]) -> set[int]:
    table = _table()
    return {table[pid][1] for pid, start in processes if pid in table and table[pid][2] == start}


def _alive(proc: ProcessId) -> bool:
    """Still running (a zombie only waits for its parent to reap it) and not a reused pid."""
    try:
        text = (PROC / str(proc[0]) / "stat").read_text()
    except OSError:
        return False
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return fields[0] != "Z" and int(fields[19]) == proc[1]
    except (IndexError, ValueError):
        return False


def end(processes: set[ProcessId], grace_checks: int = 20) -> list[int]:
    """SIGTERM the processes still alive, then SIGKILL the ones that stay; return the pids signalled."""
    signalled: list[int] = []
    for proc in sorted(processes):
        if _alive(proc):
            try:
                os.kill(proc[0], signal.SIGTERM)
                signalled.append(proc[0])
            except OSError:
                continue
    pause = threading.Event()
    for _ in range(grace_checks):
        if not any(_alive(p) for p in processes):
            break
        pause.wait(0.05)
    for proc in processes:
        if _alive(proc):
            with contextlib.suppress(OSError):
                os.kill(proc[0], signal.SIGKILL)
    return signalled
