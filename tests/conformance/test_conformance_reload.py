"""Live reconfiguration: config.json content changes, the reload endpoint, version directories."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import requests
from conformance_support import (
    FACE,
    FACE_INPUT,
    PERSON,
    PERSON_INPUT,
    NotFound,
    config_states,
    model_entry,
    server_client,
    wait_until,
    write_config,
)
from double_harness import copy_model

pytestmark = [pytest.mark.rewrites_config, pytest.mark.slow]

PERSON_FRAME = {PERSON_INPUT: np.zeros((1, 300, 300, 3), np.uint8)}
FACE_FRAME = {FACE_INPUT: np.zeros((1, 128, 128, 3), np.float32)}


def _status(client, name: str) -> dict[int, str]:
    return {v: s["state"] for v, s in client.get_model_status(name).items()}


def _reload(server) -> requests.Response:
    return requests.post(f"{server.rest_url}/v1/config/reload", timeout=60)


def test_content_change_adds_then_removes_a_model_without_restart(ovms_double, make_repository):
    repo = make_repository([PERSON])
    server = ovms_double(repo)
    client = server_client(server)
    with pytest.raises(NotFound):
        client.get_model_status(FACE)

    write_config(repo, [model_entry(PERSON, PERSON), model_entry(FACE, FACE)])
    wait_until("face-detection AVAILABLE", lambda: _status(client, FACE) == {1: "AVAILABLE"})
    assert client.predict(FACE_FRAME, FACE)["classificators"].shape == (1, 896, 1)

    write_config(repo, [model_entry(FACE, FACE)])
    wait_until("person-detection retired", lambda: _status(client, PERSON) == {1: "END"})
    with pytest.raises(NotFound):
        client.predict(PERSON_FRAME, PERSON)
    assert _status(client, FACE) == {1: "AVAILABLE"}
    assert server.alive()
    assert server.logs().count("Started gRPC server on port") == 1, "the server restarted"


def test_reload_endpoint_answers_201_then_200(ovms_double, make_repository):
    repo = make_repository([PERSON])
    # polling disabled: only the endpoint reloads; flags in --flag=value form
    server = ovms_double(repo, "--file_system_poll_wait_seconds=0", "--log_level=DEBUG")
    write_config(repo, [model_entry(PERSON, PERSON), model_entry(FACE, FACE)])
    first = _reload(server)
    assert first.status_code == 201, first.text
    assert first.json()[FACE]["model_version_status"][0]["state"] == "AVAILABLE"
    second = _reload(server)
    assert second.status_code == 200, second.text
    assert set(second.json()) == {PERSON, FACE}


def test_bad_config_on_reload_keeps_the_old_one_serving(ovms_double, make_repository):
    repo = make_repository([PERSON])
    server = ovms_double(repo)
    client = server_client(server)
    bad_documents = [
        '{"model_config_list": [ {"config": ',  # not JSON
        '{"model_config_list": [], "unknown_key": 1}',  # schema: additionalProperties false
        '{"model_config_list": [{"config": {"name": "x"}}]}',  # schema: base_path required
        '{"model_config_list": [{"config": {"name": "x", "base_path": "x", '
        '"model_version_policy": {"all": {}, "latest": {"num_versions": 1}}}}]}',  # two policies
    ]
    for document in bad_documents:
        write_config(repo, [], raw=document)
        response = _reload(server)
        assert response.status_code >= 400, (document, response.status_code, response.text)
        assert _status(client, PERSON) == {1: "AVAILABLE"}
        assert client.predict(PERSON_FRAME, PERSON)["detection_boxes:0"].shape == (1, 100, 4)
    write_config(repo, [model_entry(PERSON, PERSON), model_entry(FACE, FACE)])
    wait_until("the next good config applied", lambda: _status(client, FACE) == {1: "AVAILABLE"})


def test_new_version_directory_is_picked_up_live(ovms_double, make_repository, prepared_models):
    repo = make_repository([PERSON])
    server = ovms_double(repo)
    client = server_client(server)
    copy_model(prepared_models[PERSON], repo, PERSON, 2)
    # default policy: latest, num_versions 1
    wait_until("version 2 served, 1 retired", lambda: _status(client, PERSON) == {1: "END", 2: "AVAILABLE"})
    assert client.get_model_metadata(PERSON)["model_version"] == 2
    assert client.predict(PERSON_FRAME, PERSON, 2)["num_detections:0"].shape == (1,)
    with pytest.raises(NotFound):
        client.predict(PERSON_FRAME, PERSON, 1)

    shutil.rmtree(repo / PERSON / "2")
    wait_until("version 1 back", lambda: _status(client, PERSON) == {1: "AVAILABLE", 2: "END"})
    assert client.get_model_metadata(PERSON)["model_version"] == 1


def test_version_policies(ovms_double, make_repository, prepared_models):
    repo = make_repository([])
    copy_model(prepared_models[PERSON], repo, PERSON, 2)
    write_config(repo, [model_entry(PERSON, PERSON, model_version_policy={"all": {}})])
    server = ovms_double(repo)
    client = server_client(server)
    assert _status(client, PERSON) == {1: "AVAILABLE", 2: "AVAILABLE"}
    write_config(repo, [model_entry(PERSON, PERSON, model_version_policy={"specific": {"versions": [1]}})])
    wait_until("only version 1", lambda: _status(client, PERSON) == {1: "AVAILABLE", 2: "END"})


def test_missing_base_path_skips_that_model_only(ovms_double, make_repository):
    repo = make_repository([])
    write_config(
        repo,
        [
            model_entry(PERSON, PERSON),
            model_entry("ghost", "/nonexistent/ghost"),
            model_entry("cloud", "s3://bucket/cloud"),
        ],
    )
    server = ovms_double(repo)
    client = server_client(server)
    assert _status(client, PERSON) == {1: "AVAILABLE"}
    for skipped in ("ghost", "cloud"):
        with pytest.raises(NotFound):
            client.get_model_status(skipped)
        assert skipped not in config_states(server.rest_url)
    assert "cloud storage base_path s3://bucket/cloud is not supported by the double" in server.logs()


def test_relative_base_path_escape_is_rejected(ovms_double, make_repository):
    repo = make_repository([])
    write_config(repo, [model_entry(PERSON, PERSON), model_entry("escape", "../person-detection")])
    server = ovms_double(repo)
    states = config_states(server.rest_url)
    assert states[PERSON] == {"1": "AVAILABLE"}
    assert "escape" not in states


def test_server_stop_and_start(ovms_double, make_repository):
    repo = make_repository([PERSON])
    server = ovms_double(repo)
    client = server_client(server)
    server.stop()
    # a stopped container's address refuses or drops the call: either way the client cannot reach it
    with pytest.raises((ConnectionError, TimeoutError)):
        client.get_model_status(PERSON, timeout=3)
    server.start()  # returns when REST says ready; gRPC clients reconnect after their backoff
    wait_until("gRPC answers again", lambda: _status(client, PERSON) == {1: "AVAILABLE"})


def test_broken_model_fails_alone_and_recovers_when_fixed(ovms_double, make_repository, prepared_models):
    repo = make_repository([])
    broken = repo / "broken" / "1"
    broken.mkdir(parents=True)
    for path in (broken.parent, broken):
        path.chmod(0o755)
    for name in ("model.xml", "model.bin"):
        (broken / name).write_text("not a model\n")
        (broken / name).chmod(0o644)
    write_config(repo, [model_entry(PERSON, PERSON), model_entry("broken", "broken")])
    server = ovms_double(repo)
    client = server_client(server)
    assert client.get_model_status("broken") == {
        1: {"state": "LOADING", "error_code": "UNKNOWN", "error_message": "UNKNOWN"}
    }
    assert requests.get(f"{server.rest_url}/v2/health/ready", timeout=5).status_code == 200
    with pytest.raises(NotFound):
        client.predict(FACE_FRAME, "broken")
    assert _status(client, PERSON) == {1: "AVAILABLE"}

    for name in ("model.bin", "model.xml"):  # fixed in place: the changed files are loaded again
        staged = broken / f".{name}.new"
        shutil.copyfile(prepared_models[FACE] / name, staged)
        staged.chmod(0o644)
        staged.replace(broken / name)
    wait_until("the fixed model loaded", lambda: _status(client, "broken") == {1: "AVAILABLE"})
    assert client.predict(FACE_FRAME, "broken")["regressors"].shape == (1, 896, 16)


def test_layout_setting_changes_the_served_input(ovms_double, make_repository):
    repo = make_repository([])
    write_config(repo, [model_entry(FACE, FACE, layout="NCHW:NHWC", nireq=2)])
    server = ovms_double(repo)
    client = server_client(server)
    assert client.get_model_metadata(FACE)["inputs"][FACE_INPUT]["shape"] == [1, 3, 128, 128]
    outputs = client.predict({FACE_INPUT: np.zeros((1, 3, 128, 128), np.float32)}, FACE)
    assert outputs["classificators"].shape == (1, 896, 1)
    write_config(repo, [model_entry(FACE, FACE)])  # settings changed: the version is reloaded
    wait_until(
        "NHWC input again",
        lambda: client.get_model_metadata(FACE)["inputs"][FACE_INPUT]["shape"] == [1, 128, 128, 3],
    )
