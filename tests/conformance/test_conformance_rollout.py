"""Rolling out a model version while clients stream: the real server loads the new version before it
retires the old one (ModelManager::reloadModelWithVersions: start, reload, then retire), and a new
version that fails to load leaves the old one serving."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conformance_support import PERSON, PERSON_INPUT, server_client, wait_until
from double_harness import copy_model

pytestmark = [pytest.mark.rewrites_config, pytest.mark.slow]

PERSON_FRAME = {PERSON_INPUT: np.zeros((1, 300, 300, 3), np.uint8)}


class Streamer:
    """Back-to-back ModelInfer calls for the latest version (0) on a thread, counting failures."""

    def __init__(self, server: object) -> None:
        self.client = server_client(server)
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.client.predict(PERSON_FRAME, PERSON, 0, timeout=10)
                self.ok += 1
            except Exception as exc:  # every failure counts, whatever its kind
                self.failures.append(f"{type(exc).__name__}: {exc}")

    def __enter__(self) -> Streamer:
        self._thread.start()
        wait_until("the first answers", lambda: self.ok >= 3)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


def _status(client, name: str) -> dict[int, str]:
    return {v: s["state"] for v, s in client.get_model_status(name).items()}


def test_new_version_takes_over_without_a_failed_request(ovms_double, make_repository, prepared_models):
    repo = make_repository([PERSON])
    server = ovms_double(repo)
    client = server_client(server)
    with Streamer(server) as stream:
        copy_model(prepared_models[PERSON], repo, PERSON, 2)
        wait_until(
            "version 2 served, 1 retired", lambda: _status(client, PERSON) == {1: "END", 2: "AVAILABLE"}
        )
        served = stream.ok
        wait_until("answers from version 2", lambda: stream.ok >= served + 3)
    assert stream.failures == [], stream.failures[:5]
    assert client.get_model_metadata(PERSON)["model_version"] == 2


def test_broken_new_version_leaves_the_old_one_serving(ovms_double, make_repository):
    repo = make_repository([PERSON])
    server = ovms_double(repo)
    client = server_client(server)
    with Streamer(server) as stream:
        broken = repo / PERSON / ".tmp-2"
        broken.mkdir()
        for name in ("model.xml", "model.bin"):
            (broken / name).write_text("not a model\n")
            (broken / name).chmod(0o644)
        broken.chmod(0o755)
        broken.rename(repo / PERSON / "2")
        wait_until("version 2 failed", lambda: client.get_model_status(PERSON, 2)[2]["error_code"] != "OK")
        served = stream.ok
        wait_until("answers after the failed load", lambda: stream.ok >= served + 3)
    assert stream.failures == [], stream.failures[:5]
    assert _status(client, PERSON) == {1: "AVAILABLE", 2: "LOADING"}
    assert client.get_model_metadata(PERSON)["model_version"] == 1
