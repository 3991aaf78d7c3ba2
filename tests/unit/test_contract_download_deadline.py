"""Issue 21 (review): ovms_client_stage's download has an overall deadline. `timeout` bounds one wait
for the server; a server that drips a byte now and then (in its body or in its headers) never trips
it, and would hold the deploy for as long as it likes. The whole download must end within `deadline`
seconds, else it is refused and nothing is kept. A loopback server drips; each case takes about the
one-second deadline."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.plugins import load_plugin

pytestmark = [pytest.mark.contract]

# registered: its dataclasses look their module up
stage_module = load_plugin(
    "plugins/modules/ovms_client_stage.py", "ovms_client_stage_deadline", register=True
)

DRIP = 0.05  # seconds between two bytes: far below any `timeout`
BODY = "HTTP/1.0 200 OK\r\nContent-Length: 100000\r\n\r\n"


class _Dripper:
    """A loopback server sending its answer one byte at a time, DRIP seconds apart: its headers at
    once and then its body (`body`), or its headers too (`headers`)."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/profile.tar"
        self.stop = threading.Event()

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                if self.where == "body":
                    conn.sendall(BODY.encode())
                    answer = bytes(100_000)
                else:
                    answer = (BODY + "x" * 100_000).encode()
                for byte in answer:
                    if self.stop.wait(DRIP):
                        return
                    conn.sendall(bytes([byte]))
            except OSError:
                return

    def __enter__(self) -> _Dripper:
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.listener.close()


@pytest.fixture(params=["body", "headers"])
def dripper(request: pytest.FixtureRequest) -> Iterator[_Dripper]:
    with _Dripper(request.param) as served:
        yield served


def _download(url: str, work: Path) -> tuple[float, str]:
    began = time.monotonic()
    with pytest.raises(stage_module.Refused) as refused:
        stage_module.download(url, str(work / "profile.archive"), "0" * 64, timeout=30, deadline=1)
    return time.monotonic() - began, str(refused.value)


def test_a_dripping_server_is_cut_off_at_the_deadline_and_nothing_is_kept(tmp_path, dripper):
    took, message = _download(dripper.url, tmp_path)
    assert 0.9 < took < 2.5, took
    late = "the download did not end within its deadline of 1 s: nothing was kept"
    assert message == f"{dripper.url!r}: {late}"
    assert list(tmp_path.iterdir()) == []


def test_the_deadline_holds_off_the_main_thread_too(tmp_path):
    """No SIGALRM outside the main thread: the read loop's own checks cut a dripping body off."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = _download(served.url, tmp_path)
        except BaseException as exc:  # reported by the assertion below
            outcome["error"] = exc

    with _Dripper("body") as served:
        worker = threading.Thread(target=run)
        worker.start()
        worker.join(10)
    assert "error" not in outcome, outcome
    took, message = outcome["result"]  # type: ignore[misc]
    assert 0.9 < took < 2.5, took
    assert "did not end within its deadline of 1 s" in message
    assert list(tmp_path.iterdir()) == []


def test_a_deadline_of_zero_is_refused():
    with pytest.raises(stage_module.Refused, match="must be more than 0"):
        stage_module.download("http://127.0.0.1:9/x", "/nonexistent/x", "0" * 64, deadline=0)
