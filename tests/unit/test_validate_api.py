"""`launcher validate` and the TFS API: a `tfs` profile against a server image of OVMS 2026.3 or later
is refused (exit 2, naming host, profile and image); an image whose release cannot be read warns."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from launcher.cli import main
from launcher.images.specs import OVMS_RELEASE_LABEL
from launcher.validate import validate
from launcher.validate.api import image_release
from ovms_double.release import Release
from testbed.paths import PROJECT_ROOT


@pytest.mark.parametrize(
    ("image", "release", "how"),
    [
        ("openvino/model_server:2026.4.1", "2026.4.1", "tag"),
        ("openvino/model_server:2025.0-gpu", "2025.0.0", "tag"),
        ("registry.local:5000/openvino/model_server:2026.2", "2026.2.0", "tag"),
        ("ovms-launcher/ovms-double:dev", "2026.4.1", "label"),
    ],
)
def test_the_release_comes_from_the_tag_else_the_label(image, release, how):
    labels = {OVMS_RELEASE_LABEL: "2026.4.1"} if how == "label" else {}
    found, said = image_release(image, lambda _ref: labels)
    assert (str(found), said) == (release, how)


@pytest.mark.parametrize(
    ("image", "why"),
    [
        ("openvino/model_server:latest", "its tag 'latest' names no release"),
        ("openvino/model_server@sha256:" + "a" * 64, "it is given by digest"),
        ("registry.local:5000/model_server", "it has no tag"),
    ],
)
def test_an_unreadable_release_says_why(image, why):
    assert image_release(image, lambda _ref: {}) == (None, why)


def _inventory(tmp_path: Path, image: str, api: str) -> tuple[Path, Path]:
    profiles = tmp_path / "profiles"
    shutil.copytree(PROJECT_ROOT / "profiles" / "person-detection", profiles / "old-client")
    profile = profiles / "old-client" / "profile.yaml"
    data = yaml.safe_load(profile.read_text())
    data["api"] = api
    data["name"] = "old-client"
    profile.write_text(yaml.safe_dump(data))
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(
        yaml.safe_dump(
            {
                "all": {
                    "children": {
                        "ovms_servers": {"hosts": {"localhost": None}},
                        "ovms_clients": {"hosts": {"localhost": None}},
                    },
                    "vars": {"ansible_connection": "local"},
                }
            }
        )
    )
    (inventory / "group_vars" / "all.yml").write_text(
        yaml.safe_dump(
            {
                "ovms_server_image": image,
                "ovms_server_models": [{"name": "person-detection"}],
                "ovms_client_profiles": [{"name": "old-client"}],
                "ovms_client_profiles_src": str(profiles),
            }
        )
    )
    return inventory, profile


def test_a_tfs_profile_against_a_2026_3_or_later_server_is_refused(tmp_path):
    inventory, profile = _inventory(tmp_path, "openvino/model_server:2026.4.1", "tfs")
    result = CliRunner().invoke(main, ["validate", "-i", str(inventory), "--json"])
    assert result.exit_code == 2, result.output
    report = json.loads(result.output.splitlines()[-1])
    [problem] = [p for p in report["problems"] if p["key"] == "api"]
    assert problem["file"] == str(profile)
    assert problem["hosts"] == ["localhost"]
    for words in ("'old-client'", "TensorFlow Serving", "openvino/model_server:2026.4.1", "OVMS 2026.4.1"):
        assert words in problem["message"]
    assert "api: kserve" in problem["fix"]


def test_a_tfs_profile_against_an_older_server_is_fine(tmp_path):
    inventory, _ = _inventory(tmp_path, "openvino/model_server:2026.2", "tfs")
    report = validate([inventory])
    assert report.ok, [p.render() for p in report.problems]
    assert report.warnings == []


def test_a_kserve_profile_is_fine_with_any_server(tmp_path):
    inventory, _ = _inventory(tmp_path, "openvino/model_server:latest", "kserve")
    report = validate([inventory])
    assert report.ok and report.warnings == []


def test_an_unreadable_release_warns_and_does_not_block(tmp_path):
    inventory, profile = _inventory(tmp_path, "openvino/model_server:latest", "tfs")
    report = validate([inventory])
    assert report.ok
    [warning] = report.warnings
    assert (warning.file, warning.key, warning.hosts) == (str(profile), "api", ("localhost",))
    assert "cannot be told" in warning.message and "'latest'" in warning.message
    result = CliRunner().invoke(main, ["validate", "-i", str(inventory)])
    assert result.exit_code == 0
    assert "cannot be told" in result.output


def test_tfs_removal_is_2026_3():
    assert Release.parse("2026.2.9").serves_tfs and not Release.parse("2026.3.0").serves_tfs
