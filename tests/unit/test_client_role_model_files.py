"""The ovms_client role's model files: the files a profile's stages read beside their models (a text
recogniser's characters), found in the controller cache (lookup ovms_client_model_files: regular files
of every prepared version, never a link), checked in the client's reading of a profile, copied to the
host's model-files folder (root, 0644 in 0755 folders), idempotently, and pruned once no profile reads
them; a file no prepared version has stops the host, naming profile, stage, model, file and the fix."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleLookupError

from client.__main__ import reported_outputs
from client.profile import OutputsSpec
from testbed.fake_engine import engine_env, fake_engine
from testbed.paths import PROJECT_ROOT
from testbed.playbook import run_playbook, task_results
from testbed.plugins import load_plugin

pytestmark = pytest.mark.models

# the client's check's `outputs` of a profile with the default results files
OUTPUTS = reported_outputs(OutputsSpec())

ROLE = PROJECT_ROOT / "roles" / "ovms_client"
ROLE_FQCN = "ovms.edge.ovms_client"


CLIENT = load_plugin("plugins/filter/ovms_client.py")
LOOKUP = load_plugin("plugins/lookup/ovms_client_model_files.py")

CHARS = "characters.txt"
NEED = {"profile": "price-label", "stage": "text-recognition", "model": "text-recognition", "file": CHARS}


def _cache(root: Path) -> Path:
    """text-recognition v1 and v3 with the characters; v2 with a link in their place; v4 a linked
    folder; `latest` no version; text-angle with no client file."""
    cache = root / "cache"
    for version, text in (("1", "a\nb"), ("3", "a\nb\nc")):
        (cache / "text-recognition" / version).mkdir(parents=True)
        (cache / "text-recognition" / version / CHARS).write_text(text, encoding="utf-8")
    (cache / "text-recognition" / "2").mkdir()
    secret = root / "secret.key"
    secret.write_text("never copied", encoding="utf-8")
    (cache / "text-recognition" / "2" / CHARS).symlink_to(secret)
    (cache / "text-recognition" / "4").symlink_to(cache / "text-recognition" / "1")
    (cache / "text-recognition" / "latest").mkdir()
    (cache / "text-recognition" / "latest" / CHARS).write_text("x", encoding="utf-8")
    (cache / "text-angle" / "1").mkdir(parents=True)
    (cache / "text-angle" / "1" / "model.onnx").write_bytes(b"onnx")
    return cache


def test_every_prepared_version_with_the_file_as_a_regular_file_is_found(tmp_path):
    cache = _cache(tmp_path)
    found = LOOKUP.model_files([NEED, {**NEED, "profile": "other"}], cache)
    assert found == [
        {
            "model": "text-recognition",
            "version": v,
            "file": CHARS,
            "src": str(cache / f"text-recognition/{v}/{CHARS}"),
        }
        for v in (1, 3)
    ]


def test_a_file_no_prepared_version_has_is_returned_missing_with_the_versions(tmp_path):
    cache = _cache(tmp_path)
    needs = [{**NEED, "model": "text-angle", "stage": "text-angle"}, {**NEED, "model": "face-mesh"}]
    assert LOOKUP.model_files(needs, cache) == [
        {**needs[0], "version": None, "versions": [1]},
        {**needs[1], "version": None, "versions": []},
    ]


@pytest.mark.parametrize(
    ("model", "name"), [("../text-recognition", CHARS), ("text-recognition", "../x"), ("", CHARS)]
)
def test_the_lookup_refuses_names_that_are_no_plain_names(tmp_path, model, name):
    with pytest.raises(AnsibleLookupError, match="unsafe"):
        LOOKUP.model_files([{**NEED, "model": model, "file": name}], _cache(tmp_path))


def test_the_lookup_runs_as_ansible_loads_it(tmp_path):
    from ansible.plugins.loader import lookup_loader

    lookup_loader.add_directory(str(PROJECT_ROOT / "plugins" / "lookup"))
    plugin = lookup_loader.get("ovms_client_model_files")
    found = plugin.run([[NEED]], variables={}, cache_dir=str(_cache(tmp_path)))
    assert [entry["version"] for entry in found] == [1, 3]


def _check(stages: Any) -> str:
    return (
        "INFO reading\n"
        + json.dumps({"name": "p", "devices": [], "stages": stages, "outputs": OUTPUTS})
        + "\n"
    )


def test_the_check_gives_the_stages_and_a_check_without_them_gives_none():
    stages = [
        {"name": "text-detection", "model": "text-detection", "version": 0, "model_files": []},
        {"name": "text-recognition", "model": "text-recognition", "version": 2, "model_files": [CHARS]},
        {"name": "barcode", "model": None, "version": 0, "model_files": []},
    ]
    assert CLIENT.ovms_client_checked(_check(stages), "p")["stages"] == stages
    assert (
        CLIENT.ovms_client_checked(json.dumps({"name": "p", "devices": [], "outputs": OUTPUTS}), "p")[
            "stages"
        ]
        == []
    )


@pytest.mark.parametrize(
    ("stage", "words"),
    [
        ({"name": "ocr", "model": "text-recognition", "model_files": ["../../etc/shadow"]}, "stage ocr"),
        ({"name": "ocr", "model": "text-recognition", "model_files": [".."]}, "stage ocr"),
        ({"name": "ocr", "model": "../cache", "model_files": [CHARS]}, "not a plain model name"),
        ({"name": "ocr", "model": None, "model_files": [CHARS]}, "not a plain model name"),
        ({"name": "ocr", "model": 3}, "model 3"),
        ({"model": "x"}, "a stage"),
    ],
)
def test_a_check_with_unsafe_stages_is_refused_naming_the_profile(stage, words):
    with pytest.raises(ValueError, match="profile p") as caught:
        CLIENT.ovms_client_checked(_check([stage]), "p")
    assert words in str(caught.value)


PREPARED = {
    "price-label": {
        "stages": [{"name": "text-recognition", "model": "text-recognition", "model_files": [CHARS]}]
    },
    "dropped": {"stages": [{"name": "ocr", "model": "ocr", "model_files": [CHARS]}]},
    "person-detection": {
        "stages": [{"name": "person-detection", "model": "person-detection", "model_files": []}]
    },
}


def test_the_needs_are_those_of_the_profiles_listed():
    profiles = [{"name": "price-label"}, {"name": "person-detection"}, {"name": "not-read-yet"}]
    assert CLIENT.ovms_client_model_needs(PREPARED, profiles) == [NEED]


def test_stale_model_files_are_the_topmost_paths_no_profile_reads(tmp_path):
    root = "/data/model-files"
    files = [{"model": "m", "version": 1, "file": CHARS}, {"model": "x", "version": None, "file": CHARS}]
    found = [
        {"path": f"{root}/{p}"}
        for p in (
            "m",
            "m/1",
            f"m/1/{CHARS}",
            "m/1/extra",
            "m/2",
            f"m/2/{CHARS}",
            "old",
            f"old/1/{CHARS}",
            "x",
        )
    ]
    assert CLIENT.ovms_client_model_file_dirs(files) == ["m", "m/1"]
    assert CLIENT.ovms_client_model_files_stale(found, root + "/", files) == [
        f"{root}/m/1/extra",
        f"{root}/m/2",
        f"{root}/old",
        f"{root}/x",
    ]


def test_profiles_whose_model_files_changed_are_recreated():
    def copy(model: str, changed: bool) -> dict:
        return {
            "ovms_client_model_file": {"model": model},
            "ansible_loop_var": "ovms_client_model_file",
            "changed": changed,
        }

    profiles = [{"name": "price-label"}, {"name": "person-detection"}]
    assert CLIENT.ovms_client_model_files_changed([copy("text-recognition", True)], PREPARED, profiles) == [
        "price-label"
    ]
    assert CLIENT.ovms_client_model_files_changed([copy("text-recognition", False)], PREPARED, profiles) == []
    assert CLIENT.ovms_client_model_files_changed([copy("ocr", True)], PREPARED, profiles) == []


# --- the task files, run by ansible-playbook on this machine (no container involved) --------------------


def _play(tmp_path: Path, prepared: dict, profiles: list[dict]) -> subprocess.CompletedProcess:
    """tasks/survey.yml, tasks/model_files.yml then tasks/model_files_prune.yml with this reading of the
    profiles (the survey asks a fake Docker engine, which lists no container)."""
    tasks = [
        {"name": f"Run {name}", "ansible.builtin.include_role": {"name": ROLE_FQCN, "tasks_from": name}}
        for name in ("survey.yml", "model_files.yml", "model_files_prune.yml")
    ]
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "vars": {
            "ovms_client_data_dir": str(tmp_path / "data"),
            "ovms_models_cache_dir": str(tmp_path / "cache"),
            "ovms_client_profiles": profiles,
            "ovms_client_prepared": prepared,
        },
        "tasks": tasks,
    }
    (tmp_path / "data" / "model-files").mkdir(parents=True, exist_ok=True)
    with fake_engine(tmp_path) as engine:
        return run_playbook(tmp_path, play, json_callback=True, extra_env=engine_env(engine))


def _changed(run: subprocess.CompletedProcess) -> dict[str, bool]:
    return {name: bool(result.get("changed")) for name, result in task_results(run).items()}


def _tree(root: Path) -> dict[str, str]:
    """Relative path -> mode and owner of everything under root."""
    found = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        found[str(path.relative_to(root))] = f"{st.st_mode & 0o7777:04o} {st.st_uid}:{st.st_gid}"
    return found


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="the role makes root-owned files: run as root")
def test_the_files_are_copied_once_kept_and_pruned(tmp_path):
    _cache(tmp_path)
    files = tmp_path / "data" / "model-files"
    profiles = [{"name": "price-label"}, {"name": "person-detection"}]
    (files / "old" / "1").mkdir(parents=True)
    (files / "old" / "1" / CHARS).write_text("stale", encoding="utf-8")

    first = _play(tmp_path, PREPARED, profiles)
    assert first.returncode == 0, first.stdout[-3000:]
    assert _tree(files) == {
        "text-recognition": "0755 0:0",
        "text-recognition/1": "0755 0:0",
        f"text-recognition/1/{CHARS}": "0644 0:0",
        "text-recognition/3": "0755 0:0",
        f"text-recognition/3/{CHARS}": "0644 0:0",
    }
    assert (files / "text-recognition" / "3" / CHARS).read_text(encoding="utf-8") == "a\nb\nc"
    assert _changed(first)["Copy the model files"]

    second = _play(tmp_path, PREPARED, profiles)
    assert second.returncode == 0, second.stdout[-3000:]
    assert not any(_changed(second).values()), _changed(second)

    gone = _play(tmp_path, PREPARED, [{"name": "person-detection"}])
    assert gone.returncode == 0, gone.stdout[-3000:]
    assert _tree(files) == {}


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="the role makes root-owned files: run as root")
def test_a_file_no_prepared_version_has_stops_before_copying_anything(tmp_path):
    _cache(tmp_path)
    prepared = {
        **PREPARED,
        "reader": {"stages": [{"name": "angle", "model": "text-angle", "model_files": ["labels.txt"]}]},
    }
    run = _play(tmp_path, prepared, [{"name": "price-label"}, {"name": "reader"}])
    assert run.returncode != 0
    report = json.loads(run.stdout)
    [failed] = [
        h["msg"]
        for play in report["plays"]
        for task in play["tasks"]
        for h in task["hosts"].values()
        if h.get("failed")
    ]
    for words in (
        "host localhost:",
        "profile reader, stage angle reads model file labels.txt of model text-angle",
        "(prepared versions: 1)",
        "no client container of this host was started or changed",
        "`launcher models prepare text-angle`",
    ):
        assert words in failed, failed
    assert _tree(tmp_path / "data" / "model-files") == {}
