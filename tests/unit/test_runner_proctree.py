"""Finding and ending what a cancelled run leaves behind: descendants, their sessions, TERM then KILL."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from launcher.runner import proctree

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc (Linux)")

# A parent that starts a grandchild in a session of its own (as Ansible's workers do), reports the
# grandchild's pid, then waits.
SCRIPT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
print(child.pid, flush=True)
time.sleep(600)
"""


@pytest.fixture
def tree():
    parent = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True)
    grandchild = int(parent.stdout.readline())
    yield parent, grandchild
    for pid in (grandchild, parent.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
    parent.wait()


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_descendants_sessions_and_end(tree):
    parent, grandchild = tree
    found = proctree.descendants(os.getpid())
    pids = {pid for pid, _ in found}
    assert {parent.pid, grandchild} <= pids
    sessions = proctree.sessions({p for p in found if p[0] == grandchild})
    assert sessions == {grandchild}  # it leads its own session
    assert grandchild in {pid for pid, _ in proctree.in_sessions(sessions)}
    # the parent dies first: the grandchild is orphaned, yet its session still finds it
    parent.kill()
    parent.wait()
    survivors = proctree.in_sessions(sessions)
    assert grandchild in {pid for pid, _ in survivors}
    assert proctree.end(survivors) == [grandchild]
    for _ in range(100):
        if not _alive(grandchild):
            break
        threading.Event().wait(0.05)
    assert not _alive(grandchild)


def test_a_reused_pid_is_not_signalled(tree):
    parent, _ = tree
    start = next(s for pid, s in proctree.descendants(os.getpid()) if pid == parent.pid)
    assert proctree.end({(parent.pid, start + 1)}) == []
    assert parent.poll() is None
