"""Module ovms_client_survey (roles/ovms_client/tasks/survey.yml): one call to a client host for the
media manifest, this deployment's client containers and the model files, in place of a stat, a
container list and a find. Run as the role runs it, against a fake Docker engine (testbed.fake_engine);
the manifest and the model files are compared with what ansible.builtin.stat and ansible.builtin.find
report of the same files (the role's filters and lookup read those fields)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import yaml

from testbed.fake_engine import engine_env, fake_engine, run_docker_module, run_module
from testbed.paths import PROJECT_ROOT
from testbed.playbook import run_playbook, task_results
from testbed.plugins import load_plugin

pytestmark = [pytest.mark.contract, pytest.mark.slow]

TASKS = PROJECT_ROOT / "roles" / "ovms_client" / "tasks" / "survey.yml"
SURVEY = "ovms.edge.ovms_client_survey"
FILTERS = load_plugin("plugins/filter/ovms_client.py")
STAT_KEYS = ("exists", "isreg", "islnk", "mode", "uid", "gid", "checksum")


def _container(name: str) -> dict:
    return {"Names": [f"/{name}"], "Labels": {"ovms-launcher.role": "client"}, "State": "exited"}


def _survey(tmp_path: Path, data: Path | str, containers: list[dict], **changed: object) -> tuple[dict, list]:
    [task] = [t for t in yaml.safe_load(TASKS.read_text(encoding="utf-8")) if SURVEY in t]
    args = {**task[SURVEY], "data_dir": str(data), "prefix": "ovms-client", "media": True}
    args["labels"] = ["ovms-launcher.managed=true", "ovms-launcher.role=client"]
    return run_docker_module(tmp_path, SURVEY, {**args, **changed}, containers)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A client data folder: a media manifest (0640) and model files with a hidden file and a link."""
    root = tmp_path / "data"
    (root / "media").mkdir(parents=True)
    manifest = root / "media" / "media.json"
    manifest.write_text('{"files": []}\n', encoding="utf-8")
    manifest.chmod(0o640)
    files = root / "model-files" / "price" / "1"
    files.mkdir(parents=True)
    (files / "labels.txt").write_text("a\nb\n", encoding="utf-8")
    (files / ".hidden").write_text("x", encoding="utf-8")
    (root / "model-files" / "elsewhere").symlink_to(tmp_path)
    return root


def test_the_survey_reports_what_stat_find_and_the_container_list_would(tmp_path, data):
    containers = [
        _container("ovms-client-shop-1"),
        _container("ovms-client-shop-2"),
        _container("other-shop-1"),
    ]
    got, queries = _survey(tmp_path, data, containers)
    assert not got.get("failed") and not got["changed"], got
    # the manifest: as ansible.builtin.stat (follow false, sha256) reports it
    manifest = data / "media" / "media.json"
    stat = run_module(
        "ansible.builtin.stat", {"path": str(manifest), "follow": False, "checksum_algorithm": "sha256"}
    )
    assert {k: got["media_manifest"][k] for k in STAT_KEYS} == {k: stat["stat"][k] for k in STAT_KEYS}
    assert got["media_manifest"]["checksum"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert got["media_manifest"]["mode"] == "0640"
    # the model files: as ansible.builtin.find (recurse, hidden, any type, no link followed) lists them
    find = run_module(
        "ansible.builtin.find",
        {
            "paths": str(data / "model-files"),
            "recurse": True,
            "hidden": True,
            "file_type": "any",
            "follow": False,
        },
    )
    assert sorted(f["path"] for f in got["model_files"]) == sorted(f["path"] for f in find["files"])
    kinds = {Path(f["path"]).name: (f["isdir"], f["isreg"], f["islnk"]) for f in got["model_files"]}
    assert kinds == {
        "price": (True, False, False),
        "1": (True, False, False),
        "labels.txt": (False, True, False),
        ".hidden": (False, True, False),
        "elsewhere": (False, False, True),  # a link, not followed
    }
    # this deployment's client containers, asked with both labels, stopped ones too
    assert got["containers"] == ["ovms-client-shop-1", "ovms-client-shop-2"]
    [query] = queries
    assert (
        "all=1" in query
        and "ovms-launcher.managed%3Dtrue" in query
        and "ovms-launcher.role%3Dclient" in query
    )


def test_a_link_or_a_fifo_in_place_of_the_manifest_is_never_opened(tmp_path, data):
    manifest = data / "media" / "media.json"
    manifest.unlink()
    os.mkfifo(manifest)
    got, _ = _survey(tmp_path, data, [])
    assert got["media_manifest"]["exists"] and not got["media_manifest"]["isreg"], got
    assert "checksum" not in got["media_manifest"]
    manifest.unlink()
    manifest.symlink_to(data / "model-files" / "price" / "1" / "labels.txt")
    got, _ = _survey(tmp_path, data, [])
    assert got["media_manifest"]["islnk"] and "checksum" not in got["media_manifest"], got


def test_a_new_host_holds_nothing(tmp_path):
    got, _ = _survey(tmp_path, tmp_path / "absent", [])
    assert not got.get("failed"), got
    assert got["media_manifest"] == {"exists": False} and got["model_files"] == [] and got["containers"] == []
    # no media for this host: the manifest is not looked at
    got, _ = _survey(tmp_path, tmp_path / "absent", [], media=False)
    assert got["media_manifest"] == {}


def test_a_data_folder_given_with_a_trailing_slash_gives_the_paths_the_role_s_filter_reads(tmp_path, data):
    """model_files_prune.yml gives the filter `ovms_client_data_dir ~ '/model-files'` as the root: the
    survey's paths start with that very string, so a file placed in this run is never taken for stale."""
    got, _ = _survey(tmp_path, f"{data}/", [])
    root = f"{data}//model-files"
    assert got["model_files"] and all(f["path"].startswith(f"{root}/") for f in got["model_files"])
    placed = [{"model": "price", "version": 1, "file": "labels.txt"}]
    stale = FILTERS.ovms_client_model_files_stale(got["model_files"], root, placed)
    assert stale == [f"{root}/elsewhere", f"{root}/price/1/.hidden"]


def test_the_role_s_survey_and_status_ask_for_this_deployment_s_client_containers(tmp_path):
    """survey.yml and status.yml as the role runs them (its variables templated): the engine is asked
    with the role's labels, and only the containers named <ovms_client_container_prefix>-… are kept."""
    containers = [
        _container("shop-client-cams-1"),
        _container("shop-client-cams-2"),
        _container("ovms-client-x-1"),
    ]
    include = {"name": "ovms.edge.ovms_client"}
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "vars": {
            "ovms_client_data_dir": str(tmp_path / "data"),
            "ovms_client_container_prefix": "shop-client",
        },
        "tasks": [
            {"name": "Survey", "ansible.builtin.include_role": {**include, "tasks_from": "survey.yml"}},
            {"name": "Status", "ansible.builtin.include_role": {**include, "tasks_from": "status.yml"}},
        ],
    }
    with fake_engine(tmp_path, containers) as engine:
        run = run_playbook(tmp_path, play, json_callback=True, extra_env=engine_env(engine))
    assert run.returncode == 0, run.stdout[-3000:]
    results = task_results(run)
    survey = results["Survey this host (media manifest, client containers, model files)"]
    assert survey["containers"] == ["shop-client-cams-1", "shop-client-cams-2"]
    status = results["List this host's client containers and read the latest stats line of each"]
    assert [c["Names"] for c in status["containers"]] == [["/shop-client-cams-1"], ["/shop-client-cams-2"]]
    assert len(engine.queries) == 2
    for query in engine.queries:
        assert "ovms-launcher.managed%3Dtrue" in query and "ovms-launcher.role%3Dclient" in query, query
