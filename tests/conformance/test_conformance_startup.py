"""Start-up contract: flags, exit codes, start-up log lines, the container's user."""

from __future__ import annotations

import re

import numpy as np
import pytest
import requests
from conformance_support import PERSON, PERSON_INPUT, TFS_RELEASE, server_client, write_config
from double_harness import IMAGE, local_mode
from tritonclient.utils import InferenceServerException

from testbed import dockerutil

pytestmark = pytest.mark.own_server

EX_USAGE = 64


def test_banner_and_startup_log_lines(ovms_double, make_repository):
    server = ovms_double(make_repository([PERSON]))
    logs = server.logs()
    assert "OVMS TEST DOUBLE — not OpenVINO Model Server" in logs
    port = server.grpc_address.rsplit(":", 1)[1]
    rest_port = server.rest_url.rsplit(":", 1)[1]
    assert f"Started gRPC server on port {port}" in logs
    assert f"Started REST server at 0.0.0.0:{rest_port}" in logs


@pytest.mark.parametrize(
    "flags",
    [["--bogus"], ["--port", "9000", "--rest_port", "9000"], ["--log_level", "LOUD"], ["--model_name", "x"]],
    ids=["unknown-flag", "same-ports", "bad-log-level", "config-and-model-name"],
)
def test_bad_command_line_exits_64(ovms_double, make_repository, flags):
    server = ovms_double(make_repository([PERSON]), *flags, wait_ready=False)
    assert server.wait_exit() == EX_USAGE


@pytest.mark.parametrize(
    "document",
    ['{"model_config_list": [ ', '{"model_config_list": [], "bogus": true}', '{"models": []}'],
    ids=["not-json", "unknown-key", "no-model-config-list"],
)
def test_invalid_config_at_start_exits_nonzero(ovms_double, make_repository, document):
    repo = make_repository([])
    write_config(repo, [], raw=document)
    server = ovms_double(repo, wait_ready=False)
    assert server.wait_exit() != 0
    assert "Configuration file is not" in server.logs()


def test_single_model_mode(ovms_double, make_repository):
    repo = make_repository([])
    model_path = f"{ovms_double.models_dir_seen_by_server(repo)}/{PERSON}"
    args = ("--model_name", PERSON, "--model_path", model_path, "--nireq=2", "--shape", "(1,300,300,3)")
    server = ovms_double(repo, *args, use_config=False)
    client = server_client(server)
    assert client.get_model_status(PERSON)[1]["state"] == "AVAILABLE"
    assert client.get_model_metadata(PERSON)["inputs"][PERSON_INPUT]["shape"] == [1, 300, 300, 3]


def test_metrics_endpoint_counts_requests(ovms_double, make_repository):
    server = ovms_double(make_repository([PERSON]), "--metrics_enable")
    client = server_client(server)
    client.predict({PERSON_INPUT: np.zeros((1, 300, 300, 3), np.uint8)}, PERSON)
    with pytest.raises(InferenceServerException, match="Invalid input precision"):
        client.predict({PERSON_INPUT: np.zeros((1, 300, 300, 3), np.float32)}, PERSON)
    with pytest.raises(Exception, match="Mediapipe graph definition"):  # an unknown model counts nothing
        client.predict({PERSON_INPUT: np.zeros((1, 300, 300, 3), np.uint8)}, "no-such-model")
    text = requests.get(f"{server.rest_url}/metrics", timeout=5).text
    labels = f'api="KServe",interface="gRPC",method="ModelInfer",name="{PERSON}",version="1"'
    assert re.search(rf"ovms_requests_success{{{labels}}} 1\n", text), text
    assert re.search(rf"ovms_requests_fail{{{labels}}} 1\n", text), text
    assert "no-such-model" not in text
    timing = f'interface="gRPC",name="{PERSON}",version="1"'
    assert f"ovms_request_time_us_count{{{timing}}} 1\n" in text  # successful requests only
    assert f'ovms_inference_time_us_count{{name="{PERSON}",version="1"}} 1\n' in text
    assert "ovms_infer_req_queue_size" not in text  # optional family, not in the default set


def test_metrics_list_picks_families_and_refuses_unknown_ones(ovms_double, make_repository):
    repo = make_repository([PERSON])
    server = ovms_double(repo, "--metrics_enable", "--metrics_list", "ovms_infer_req_queue_size,ovms_streams")
    text = requests.get(f"{server.rest_url}/metrics", timeout=5).text
    assert "# TYPE ovms_infer_req_queue_size gauge" in text and "# TYPE ovms_streams gauge" in text
    assert "ovms_requests_success" not in text
    bad = ovms_double(repo, "--metrics_enable", "--metrics_list", "ovms_no_such_metric", wait_ready=False)
    assert bad.wait_exit() == 1
    assert "Metrics family name not supported: ovms_no_such_metric" in bad.logs()
    assert "Invalid name in metrics_list" in bad.logs()
    unused = ovms_double(repo, "--metrics_list", "ovms_streams", wait_ready=False)
    assert unused.wait_exit() == EX_USAGE


def test_command_line_is_the_emulated_releases(ovms_double, make_repository):
    """--disable_input_count_validation came with 2026.4.0; the stateful flags left in 2026.3."""
    repo = make_repository([PERSON])
    ovms_double(repo, "--disable_input_count_validation")
    old = ovms_double(
        repo, "--disable_input_count_validation", wait_ready=False, env={"OVMS_DOUBLE_RELEASE": TFS_RELEASE}
    )
    assert old.wait_exit() == EX_USAGE
    assert ovms_double(repo, "--stateful", wait_ready=False).wait_exit() == EX_USAGE
    ovms_double(repo, "--stateful", env={"OVMS_DOUBLE_RELEASE": TFS_RELEASE})


@pytest.mark.docker
@pytest.mark.skipif(local_mode(), reason="checks the image")
def test_image_rejects_unknown_flag_with_64():
    name = dockerutil.unique_name("ovms-double-flags")
    try:
        proc = dockerutil.docker(
            "run", "--name", name, "--label", dockerutil.TEST_LABEL, IMAGE, "--bogus", check=False
        )
        assert proc.returncode == EX_USAGE, proc.stderr
    finally:
        dockerutil.remove_container(name)


@pytest.mark.docker
@pytest.mark.skipif(local_mode(), reason="checks the container")
def test_container_runs_as_uid_5000_read_only(ovms_double, make_repository):
    server = ovms_double(make_repository([PERSON]))
    info = dockerutil.inspect(server.container)
    assert info["Config"]["User"].split(":")[0] == "5000"
    assert info["HostConfig"]["ReadonlyRootfs"] is True
    assert dockerutil.docker("exec", server.container, "id", "-u").stdout.strip() == "5000"
    assert info["Config"]["Entrypoint"] == ["/ovms/bin/ovms"]
