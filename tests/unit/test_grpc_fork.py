"""Importing `launcher` turns gRPC's fork handlers off (grpc/grpc#43055: with them on, a child forked
from a process holding gRPC channels can abort before exec), and keeps a value the user set."""

from __future__ import annotations

import os
import subprocess
import sys

CHILD = """
import os, sys
import launcher
import grpc, pexpect
from concurrent import futures
server = grpc.server(futures.ThreadPoolExecutor(2))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
channel = grpc.insecure_channel(f"127.0.0.1:{port}")
try:
    channel.unary_unary("/none/Method")(b"", timeout=2)
except grpc.RpcError:
    pass
failed = 0
for _ in range(20):
    child = pexpect.spawn("/bin/echo", ["forked"], timeout=10)
    out = child.read()
    child.close()
    failed += child.exitstatus != 0 or b"forked" not in out
print(os.environ["GRPC_ENABLE_FORK_SUPPORT"], failed)
"""


def _run(env: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_importing_launcher_turns_grpc_fork_support_off_and_children_run():
    env = {k: v for k, v in os.environ.items() if k != "GRPC_ENABLE_FORK_SUPPORT"}
    assert _run(env) == ["false", "0"]


def test_a_value_the_user_set_is_kept():
    assert _run({**os.environ, "GRPC_ENABLE_FORK_SUPPORT": "0"})[0] == "0"
