"""16 streams for 30 s, in-process (OpenVINO in the client) and against the OVMS double, without a stall.

Both call into OpenVINO's Python binding from many threads at once: the in-process baseline from the
client's request threads, the double from its gRPC threads and AsyncInferQueue callbacks. The
binding's first concurrent calls could deadlock the whole process (ovms_double/binding.py); each now
makes one inference from a single thread first. Every stream must keep delivering results all along.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest

from bench.inference import PLUGIN_CONFIG, _nireq_of
from bench.inference_clients import client_settings, start_container_client, start_inprocess_client
from bench.inference_setup import GRPC_PORT, Stack, find_inputs

pytestmark = [pytest.mark.docker, pytest.mark.slow]

STREAMS = 16
STREAM_FPS = 5.0  # 80 frames/s in all: concurrency without starving the 2-core machine
RUN_S = 30.0
MAX_GAP_S = 5.0


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    from launcher.media import ensure_sample_media
    from launcher.models import prepare_models

    prepare_models(names=["person-detection"])
    ensure_sample_media()
    with Stack(find_inputs(), PLUGIN_CONFIG) as running:
        running.start(with_proxy=False)
        yield running


@pytest.mark.parametrize("path", ["inprocess", "double"])
def test_sixteen_streams_for_30_s_without_a_stall(stack: Stack, path: str):
    nireq = _nireq_of(stack)
    settings = client_settings(STREAMS, STREAM_FPS, "pipelined", nireq + 1)
    if path == "inprocess":
        run = start_inprocess_client(stack, settings, RUN_S + 120, nireq)
    else:
        run = start_container_client(stack, f"{stack.double}:{GRPC_PORT}", False, settings, RUN_S + 120)
    try:
        run.wait_first_result(90)  # dumps every thread's stack into the failure on a stall
        started = time.time()
        time.sleep(RUN_S)
        stopped = time.time()
        assert run.stop() == 0, run.logs()[-4000:]
        records = run.records()
    finally:
        run.remove()
        stack.forget(run.container)
    for stream in range(STREAMS):
        times = sorted(r["ts"] for r in records if r["stream"] == stream and r["status"] == "ok")
        window = [t for t in times if started <= t <= stopped]
        assert window, f"stream {stream} delivered nothing in the {RUN_S:.0f} s"
        edges = [started, *window, stopped]
        gap = max(b - a for a, b in itertools.pairwise(edges))
        assert gap <= MAX_GAP_S, f"stream {stream} delivered nothing for {gap:.1f} s ({path})"
    assert all(r["status"] == "ok" for r in records), [r for r in records if r["status"] != "ok"][:3]
