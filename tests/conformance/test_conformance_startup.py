"""Start-up contract: flags, exit codes, start-up log lines, the container's user."""

from __future__ import annotations

import re

import dockerutil
import numpy as np
import ovmsclient
import pytest
import requests
from conformance_support import PERSON, PERSON_INPUT, write_config
from double_harness import IMAGE, local_mode
from ovmsclient.tfs_compat.base.errors import InvalidInputError

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
    client = ovmsclient.make_grpc_client(server.grpc_address)
    assert client.get_model_status(PERSON)[1]["state"] == "AVAILABLE"
    assert client.get_model_metadata(PERSON)["inputs"][PERSON_INPUT]["shape"] == [1, 300, 300, 3]


def test_metrics_endpoint_counts_requests(ovms_double, make_repository):
    server = ovms_double(make_repository([PERSON]), "--metrics_enable")
    client = ovmsclient.make_grpc_client(server.grpc_address)
    client.predict({PERSON_INPUT: np.zeros((1, 300, 300, 3), np.uint8)}, PERSON)
    with pytest.raises(InvalidInputError):
        client.predict({PERSON_INPUT: np.zeros((1, 300, 300, 3), np.float32)}, PERSON)
    text = requests.get(f"{server.rest_url}/metrics", timeout=5).text
    labels = f'interface="gRPC",method="Predict",name="{PERSON}",version="1"'
    assert re.search(rf"ovms_requests_success{{[^}}]*{labels}}} 1\b", text), text
    assert re.search(rf"ovms_requests_fail{{[^}}]*{labels}}} 1\b", text), text


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
