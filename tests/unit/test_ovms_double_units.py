"""The OVMS double's pure parts: emulated release, metrics families and text, binary input framing."""

from __future__ import annotations

import struct

import pytest
from prometheus_client.parser import text_string_to_metric_families

from launcher.ovms_release import Release, ReleaseError
from ovms_double.binary import split_raw
from ovms_double.cli import build_parser
from ovms_double.metrics import (
    BUCKETS,
    DEFAULT_SET,
    MetricsListError,
    ModelReporter,
    Registry,
    enabled_families,
)
from ovms_double.status import Code, ServingError


def test_release_decides_the_apis_and_flags():
    old, current = Release.parse("2025.4"), Release.parse("2026.4.1")
    assert str(old) == "2025.4.0" and str(current) == "2026.4.1"
    assert old.serves_tfs and old.has_stateful_flags and not old.has_input_count_flag
    assert not current.serves_tfs and not current.has_stateful_flags and current.has_input_count_flag
    assert Release.parse("2026.3").serves_tfs is False
    with pytest.raises(ReleaseError, match=r"release=.latest."):
        Release.parse("latest")


def _flags(release: str) -> set[str]:
    return {a.dest for a in build_parser(Release.parse(release))._actions}


def test_command_line_follows_the_release():
    assert "disable_input_count_validation" in _flags("2026.4.1")
    assert "stateful" not in _flags("2026.4.1")
    assert {"stateful", "sequence_cleaner_poll_wait_minutes"} <= _flags("2025.0")
    assert "disable_input_count_validation" not in _flags("2026.3")


def test_metrics_sets_follow_metrics_list():
    assert enabled_families(False, "") == frozenset()
    assert enabled_families(True, "") == frozenset(DEFAULT_SET)
    assert enabled_families(True, " ovms_streams , ovms_infer_req_active") == {
        "ovms_streams",
        "ovms_infer_req_active",
    }
    for bad in ("ovms_no_such_metric", "ovms_streams,ovms_streams", "ovms_graph_request_latency_us"):
        with pytest.raises(MetricsListError, match="Metrics family name not supported"):
            enabled_families(True, bad)


def test_buckets_are_the_real_servers():
    assert len(BUCKETS) == 33
    assert BUCKETS[:6] == (10, 18, 32, 58, 104, 188) and BUCKETS[-1] == 1474755971


def test_metrics_text_is_prometheus_with_the_real_names_and_labels():
    registry = Registry(enabled_families(True, ""))
    reporter = ModelReporter(registry, "person-detection", 2)
    reporter.loaded(streams=2, nireq=4)
    reporter.request("gRPC", "ModelInfer", ok=True)
    reporter.request("gRPC", "ModelInfer", ok=False)
    reporter.request("gRPC", "ModelReady", ok=True)
    reporter.request_time("gRPC", 2412)
    reporter.inference_time(10)
    text = registry.render()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert set(families) == {
        "ovms_requests_success",
        "ovms_requests_fail",
        "ovms_streams",
        "ovms_current_requests",
        "ovms_request_time_us",
        "ovms_inference_time_us",
        "ovms_wait_for_infer_req_time_us",
    }
    assert "ovms_infer_req_active" not in text  # optional: only with --metrics_list
    assert [f.type for f in families.values()][:2] == ["counter", "counter"]
    success = {
        (s.labels["interface"], s.labels["method"], s.labels.get("version")): s.value
        for s in families["ovms_requests_success"].samples
    }
    assert success[("gRPC", "ModelInfer", "2")] == 1
    assert success[("gRPC", "ModelReady", None)] == 1  # the real ModelReady series carry no version
    assert success[("REST", "ModelInfer", "2")] == 0  # every series exists from the start
    assert 'ovms_requests_fail{api="KServe",interface="gRPC",method="ModelInfer",' in text
    assert 'ovms_streams{name="person-detection",version="2"} 2\n' in text
    lines = text.splitlines()
    count = lines.index('ovms_request_time_us_count{interface="gRPC",name="person-detection",version="2"} 1')
    assert (
        lines[count + 1]
        == 'ovms_request_time_us_sum{interface="gRPC",name="person-detection",version="2"} 2412'
    )
    # 2412 us: the first bucket holding it is le="3570"; buckets are cumulative
    assert (
        'ovms_request_time_us_bucket{interface="gRPC",name="person-detection",version="2",le="1983"} 0'
        in text
    )
    assert (
        'ovms_request_time_us_bucket{interface="gRPC",name="person-detection",version="2",le="3570"} 1'
        in text
    )
    assert (
        'ovms_inference_time_us_bucket{name="person-detection",version="2",le="10"} 1' in text
    )  # value <= le
    assert 'le="+Inf"} 1' in text


def test_older_releases_also_count_their_tfs_api():
    registry = Registry(enabled_families(True, ""), tfs=True)
    ModelReporter(registry, "m", 1).request("gRPC", "Predict", ok=True)
    labels = 'api="TensorFlowServing",interface="gRPC",method="Predict",name="m",version="1"'
    assert f"ovms_requests_success{{{labels}}} 1" in registry.render()


def _framed(*images: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(i)) + i for i in images)


def test_raw_binary_inputs_are_split_on_their_length_prefixes():
    assert split_raw(_framed(b"abc", b"", b"defg")) == [b"abc", b"", b"defg"]
    assert split_raw(b"") == []
    for broken in (_framed(b"abc")[:-1], _framed(b"abc") + b"\x01"):
        with pytest.raises(ServingError) as caught:
            split_raw(broken)
        assert caught.value.code is Code.INVALID_INPUT_FORMAT


def test_codes_missing_from_the_grpc_table_answer_unknown_error():
    error = ServingError(Code.IMAGE_PARSING_FAILED)
    assert error.code.grpc_code.name == "UNKNOWN"
    assert error.grpc_text == "Unknown error"
    assert error.text == "Image parsing failed"  # what REST answers, with HTTP 500
    assert ServingError(Code.UNSUPPORTED_LAYOUT).grpc_text.startswith("Received binary image input")
