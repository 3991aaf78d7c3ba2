"""`launcher validate` and cascaded stages: every stage's model must be served by the client's server
(and its pinned version), a stage run in the client needs none, and the profile's own stage rules (crops
from an earlier stage, a sane crop limit) come through; each problem exits 2 naming the profile, the
stage and the key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from launcher.cli import main
from launcher.validate import validate

pytestmark = pytest.mark.models

MESH_INPUT = {"name": "face-landmarks", "input": "input_1", "size": {"width": 192, "height": 192}}


def _stages(**mesh: Any) -> list[dict[str, Any]]:
    """face-detection on the frame, then a landmarks model on crops of its faces."""
    return [
        {
            "name": "faces",
            "model": {
                "name": "face-detection",
                "input": "input",
                "size": {"width": 128, "height": 128},
                "dtype": "float32",
                "mean": 127.5,
                "std": 127.5,
            },
            "postprocess": {"type": "blazeface", "anchors": "front"},
        },
        {
            "name": "mesh",
            "crops": {"from": "faces", "max_crops": 4, **mesh.pop("crops", {})},
            "model": {**MESH_INPUT, "dtype": "float32", "std": 255.0, **mesh.pop("model", {})},
            "postprocess": {"type": "raw"},
        },
    ]


def _site(tmp_path: Path, stages: list[dict[str, Any]], served: list[dict[str, Any]]) -> tuple[Path, Path]:
    """An inventory (server and client on localhost) running profile `face-mesh` of these stages."""
    folder = tmp_path / "profiles" / "face-mesh"
    folder.mkdir(parents=True)
    profile = folder / "profile.yaml"
    profile.write_text(
        yaml.safe_dump({"name": "face-mesh", "stages": stages, "inputs": ["/media/sample.mp4"]}),
        encoding="utf-8",
    )
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    hosts = {
        "all": {
            "children": {
                "ovms_servers": {"hosts": {"localhost": None}},
                "ovms_clients": {"hosts": {"localhost": None}},
            },
            "vars": {"ansible_connection": "local"},
        }
    }
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts), encoding="utf-8")
    group_vars = {
        "ovms_server_models": served,
        "ovms_client_profiles": [{"name": "face-mesh"}],
        "ovms_client_profiles_src": str(tmp_path / "profiles"),
    }
    (inventory / "group_vars" / "all.yml").write_text(yaml.safe_dump(group_vars), encoding="utf-8")
    return inventory, profile


# face-landmarks is placed by hand (`source: manual`): no manifest entry needed
BOTH = [{"name": "face-detection"}, {"name": "face-landmarks", "source": "manual"}]


def _refused(inventory: Path) -> list[dict[str, Any]]:
    """The problems of `launcher validate --json`, which must exit 2."""
    result = CliRunner().invoke(main, ["validate", "-i", str(inventory), "--json"])
    assert result.exit_code == 2, result.output
    return json.loads(result.output.splitlines()[-1])["problems"]


def test_a_cascade_whose_stage_models_are_served_is_valid(tmp_path):
    inventory, _ = _site(tmp_path, _stages(), BOTH)
    report = validate([inventory])
    assert report.ok, [p.render() for p in report.problems]
    [info] = report.profiles["localhost"]
    assert [(s.name, s.model, s.version, s.index, s.key) for s in info.stages] == [
        ("faces", "face-detection", 0, 0, "stages[0].model"),
        ("mesh", "face-landmarks", 0, 1, "stages[1].model"),
    ]
    assert (info.model, info.version) == ("face-detection", 0)  # stage 1's, as for one model


def test_a_stage_model_the_server_does_not_serve_exits_2_naming_profile_stage_and_key(tmp_path):
    inventory, profile = _site(tmp_path, _stages(), [{"name": "face-detection"}])
    [problem] = _refused(inventory)
    assert (problem["file"], problem["key"], problem["hosts"]) == (
        str(profile),
        "stages[1].model.name",
        ["localhost"],
    )
    for words in (
        "'face-mesh'",
        "stage 'mesh'",
        "'face-landmarks'",
        "not served by localhost",
        "face-detection",
    ):
        assert words in problem["message"], problem["message"]
    assert "add `- name: face-landmarks` to ovms_server_models of localhost" in problem["fix"]


def test_the_first_stage_is_checked_too(tmp_path):
    inventory, _ = _site(tmp_path, _stages(), [{"name": "face-landmarks", "source": "manual"}])
    [problem] = _refused(inventory)
    assert problem["key"] == "stages[0].model.name"
    assert "stage 'faces'" in problem["message"] and "'face-detection'" in problem["message"]


def test_a_pinned_stage_version_the_server_does_not_serve_exits_2(tmp_path):
    served = [
        {"name": "face-detection"},
        {"name": "face-landmarks", "source": "manual", "version_policy": {"specific": {"versions": [1]}}},
    ]
    inventory, profile = _site(tmp_path, _stages(model={"version": 2}), served)
    [problem] = _refused(inventory)
    assert (problem["file"], problem["key"]) == (str(profile), "stages[1].model.version")
    for words in ("version 2", "'face-landmarks'", "'face-mesh'", "stage 'mesh'", "[1]"):
        assert words in problem["message"], problem["message"]
    assert "version 0" in problem["fix"]
    inventory, _ = _site(tmp_path / "served", _stages(model={"version": 1}), served)
    assert validate([inventory]).ok


@pytest.mark.parametrize(
    ("crops", "key", "words"),
    [
        ({"from": "mesh"}, "stages[1].crops.from", ("takes crops from 'mesh'", "later stage")),
        ({"max_crops": 0}, "stages[1].crops.max_crops", ("greater than or equal to 1", "got 0")),
    ],
    ids=["crops-from-a-later-stage", "crop-limit-0"],
)
def test_a_stage_rule_of_the_profile_exits_2_naming_profile_stage_and_key(tmp_path, crops, key, words):
    inventory, profile = _site(tmp_path, _stages(crops=crops), BOTH)
    [problem] = _refused(inventory)
    assert (problem["file"], problem["key"], problem["hosts"]) == (str(profile), key, ["localhost"])
    for word in ("profile 'face-mesh'", "stage 'mesh'", *words):
        assert word in problem["message"], problem["message"]
    result = CliRunner().invoke(main, ["validate", "-i", str(inventory)])
    assert result.exit_code == 2
    assert f"{profile}: {key}" in result.output


def test_a_stage_without_a_model_needs_nothing_served(tmp_path):
    """A stage run in the client (barcode: no model) is skipped; the others are still checked."""
    stages = [*_stages(), {"name": "codes", "postprocess": {"type": "barcode"}}]
    inventory, _ = _site(tmp_path, stages, BOTH)
    report = validate([inventory])
    assert report.ok, [p.render() for p in report.problems]
    assert [s.model for s in report.profiles["localhost"][0].stages] == [
        "face-detection",
        "face-landmarks",
        None,
    ]
    inventory, _ = _site(tmp_path / "one", stages, [{"name": "face-detection"}])
    assert [p.key for p in validate([inventory]).problems] == ["stages[1].model.name"]


def _reader(files: str) -> list[dict[str, Any]]:
    """text-detection on the frame, the recogniser on crops, reading `files` beside its model."""
    model = {"input": "x", "layout": "NCHW", "dtype": "float32", "color": "bgr", "mean": 127.5, "std": 127.5}
    return [
        {
            "name": "boxes",
            "model": {**model, "name": "text-detection", "size": {"width": 640, "height": 480}},
            "postprocess": {"type": "db"},
        },
        {
            "name": "read",
            "crops": {"from": "boxes"},
            "model": {**model, "name": "text-recognition", "size": {"width": 320, "height": 48}},
            "postprocess": {"type": "ctc", "characters": {"model_file": files}},
        },
    ]


def test_a_model_file_the_manifest_writes_is_valid(tmp_path):
    served = [{"name": "text-detection"}, {"name": "text-recognition"}]
    inventory, _ = _site(tmp_path, _reader("characters.txt"), served)
    report = validate([inventory])
    assert report.ok, [p.render() for p in report.problems]
    assert report.profiles["localhost"][0].stages[1].model_files == ("characters.txt",)


def test_a_model_file_the_manifest_does_not_write_exits_2(tmp_path):
    served = [{"name": "text-detection"}, {"name": "text-recognition"}]
    inventory, profile = _site(tmp_path, _reader("charset.txt"), served)
    [problem] = _refused(inventory)
    assert (problem["file"], problem["key"]) == (str(profile), "stages[1].postprocess.characters.model_file")
    for words in ("'face-mesh'", "stage 'read'", "'charset.txt'", "characters.txt"):
        assert words in problem["message"], problem["message"]


def test_the_one_model_form_keeps_its_keys(tmp_path):
    """One model at the top level: one stage named after it, reported at `model.name` as before."""
    inventory, profile = _site(tmp_path, _stages(), [{"name": "face-landmarks", "source": "manual"}])
    data = yaml.safe_load(profile.read_text(encoding="utf-8"))
    first = data.pop("stages")[0]
    data.update(model=first["model"], postprocess=first["postprocess"])
    profile.write_text(yaml.safe_dump(data), encoding="utf-8")
    [problem] = _refused(inventory)
    assert problem["key"] == "model.name"
    assert problem["message"].startswith("model 'face-detection' of profile 'face-mesh' is not served")
