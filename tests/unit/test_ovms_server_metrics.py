"""roles/ovms_server's ovms_metrics_summary: request rate, failures and inference time per model from
two reads of OVMS's /metrics, on text the double renders the way the real server does."""

from __future__ import annotations

import pytest

from ovms_double.metrics import ModelReporter, Registry, enabled_families
from testbed.plugins import load_plugin

filters = load_plugin("plugins/filter/ovms_server.py")


def _serve(reporter: ModelReporter, ok: int, failed: int, inference_us: int) -> None:
    for _ in range(ok):
        reporter.request("gRPC", "ModelInfer", ok=True)
        reporter.inference_time(inference_us)
    for _ in range(failed):
        reporter.request("gRPC", "ModelInfer", ok=False)
    reporter.request("gRPC", "ModelMetadata", ok=True)  # not an inference: not counted


def test_rate_failures_and_inference_time_over_the_interval():
    registry = Registry(enabled_families(True, ""))
    person, face = ModelReporter(registry, "person", 1), ModelReporter(registry, "face", 1)
    v2 = ModelReporter(registry, "person", 2)
    _serve(person, ok=100, failed=1, inference_us=20_000)
    _serve(face, ok=10, failed=0, inference_us=4_000)
    first = registry.render()
    _serve(person, ok=20, failed=2, inference_us=10_000)
    _serve(v2, ok=10, failed=0, inference_us=10_000)  # versions of one model add up
    second = registry.render()
    summary = filters.ovms_metrics_summary([first, second], 2.0)
    assert summary["person"] == {
        "requests": 130,
        "failures": 3,
        "rate": 15.0,
        "failures_in_interval": 2,
        "inference_ms": 10.0,  # the interval's inferences only
    }
    # nothing ran in the interval: rate 0, the mean over the server's life
    assert summary["face"] == {
        "requests": 10,
        "failures": 0,
        "rate": 0.0,
        "failures_in_interval": 0,
        "inference_ms": 4.0,
    }


def test_one_read_gives_totals_only():
    registry = Registry(enabled_families(True, ""))
    _serve(ModelReporter(registry, "person", 1), ok=4, failed=1, inference_us=8_000)
    row = filters.ovms_metrics_summary([registry.render()], 2.0)["person"]
    assert (row["requests"], row["failures"], row["rate"], row["inference_ms"]) == (4, 1, None, 8.0)


def test_families_left_out_by_metrics_list_give_none():
    registry = Registry(enabled_families(True, "ovms_requests_success"))
    _serve(ModelReporter(registry, "person", 1), ok=3, failed=0, inference_us=8_000)
    row = filters.ovms_metrics_summary([registry.render()], 0)["person"]
    assert (row["requests"], row["failures"], row["inference_ms"]) == (3, None, None)


@pytest.mark.parametrize("pages", [[], [""]])
def test_no_metrics_no_rows(pages):
    assert filters.ovms_metrics_summary(pages, 2.0) == {}
