"""A Docker engine's API as the collection's own Docker modules ask it (the version, then the container
list), on a socket of the test's own, and a module run as a role runs it (ansible's own module runner,
connection local): the collection's Docker modules' results without a Docker engine."""

from __future__ import annotations

import http.server
import json
import os
import socketserver
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from launcher.content import content
from testbed.paths import PROJECT_ROOT


class FakeEngine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """The engine's answers to `/version`, `/_ping` and `/containers/json` (always `containers`, the
    query strings kept in `queries`), on the Unix socket `path`."""

    daemon_threads = True

    def __init__(self, path: Path, containers: list[dict]) -> None:
        self.containers = containers
        self.queries: list[str] = []
        super().__init__(str(path), Handler)


class Handler(http.server.BaseHTTPRequestHandler):
    server: FakeEngine

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path.endswith("/containers/json"):
            self.server.queries.append(url.query)
            body: object = self.server.containers
        elif url.path.endswith("/version"):
            body = {"ApiVersion": "1.43", "MinAPIVersion": "1.12", "Version": "24.0.0", "Os": "linux"}
        elif url.path.endswith("/_ping"):
            body = "OK"
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode() if not isinstance(body, str) else body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json" if not isinstance(body, str) else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def address_string(self) -> str:
        return "test"

    def log_message(self, format: str, *args: object) -> None:
        del format, args


@contextmanager
def fake_engine(tmp_path: Path, containers: list[dict[str, Any]] | None = None) -> Iterator[FakeEngine]:
    """A FakeEngine listing `containers` (none by default) on a socket in `tmp_path`, for the duration;
    `engine_env(engine)` points a run's Docker modules at it."""
    socket = tmp_path / "engine.sock"
    engine = FakeEngine(socket, list(containers or []))
    threading.Thread(target=engine.serve_forever, daemon=True).start()
    try:
        yield engine
    finally:
        engine.shutdown()
        engine.server_close()
        socket.unlink(missing_ok=True)


def engine_env(engine: FakeEngine) -> dict[str, str]:
    """The environment that makes community.docker's clients (and the collection's modules) ask `engine`."""
    return {"DOCKER_HOST": f"unix://{engine.server_address}"}


def run_module(module: str, args: dict[str, Any]) -> dict[str, Any]:
    """`module` run with `args` on this machine as a role runs it (ansible's own module runner,
    connection local, the collection and ansible.cfg of this checkout): its JSON result."""
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(PROJECT_ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(content().collections_path),
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "json",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    }
    run = subprocess.run(
        [str(Path(sys.executable).parent / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}", "-m", module, "-a", json.dumps(args)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    return json.loads(run.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]


def run_docker_module(
    tmp_path: Path, module: str, args: dict[str, Any], containers: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[str]]:
    """`module` run with `args` (run_module) against a FakeEngine listing `containers`: its JSON result,
    and the query strings of the container lists the engine answered."""
    with fake_engine(tmp_path, containers) as engine:
        result = run_module(module, {**args, "docker_host": engine_env(engine)["DOCKER_HOST"]})
    return result, engine.queries
