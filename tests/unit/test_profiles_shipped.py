"""The shipped profiles say each setting once, and the ovms_client role reads a profile's output files
as the client does.

1. profile.env overrides profile.yaml, so a setting in both files hides every edit of the YAML: no
   shipped profile may set one in both. Variables map to profile keys through the client's own table
   (client/profile.py ENV_OVERRIDES).
2. The names of a client's results files, which verify.yml waits for and status.yml reads (a label of
   each container), are the client's own reading of the profile (`--check --json`, its `outputs`,
   env overrides applied), checked by the role's filter ovms_client_checked: these tests hold the
   reading to client/profile.py (OutputsSpec, FileName).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from client.__main__ import main as client_main
from client.envfile import parse_env_file
from client.profile import ENV_FILE, ENV_OVERRIDES, PROFILE_FILE, FileName, load_profile
from testbed.plugins import load_plugin

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "profiles"
SHIPPED = sorted(p.name for p in PROFILES.iterdir() if (p / PROFILE_FILE).is_file())
OUTPUT_KEYS = ("detections", "detections_file", "stats_file")


FILTERS = load_plugin(ROOT / "plugins" / "filter" / "ovms_client.py")


# --- 1. each setting said once ---------------------------------------------------------------------


def _sets(data: Any, target: str) -> bool:
    """Whether the YAML data sets the profile key an ENV_OVERRIDES target names (`a.b`, `inputs[*].loop`)."""
    nodes = [data]
    for part in target.split("."):
        key = part.removesuffix("[*]")
        nodes = [node[key] for node in nodes if isinstance(node, dict) and key in node]
        if part.endswith("[*]"):
            nodes = [item for node in nodes if isinstance(node, list) for item in node]
    return bool(nodes)


def duplicates(directory: Path) -> list[str]:
    """`VARIABLE (key)` of every profile.env setting whose key profile.yaml sets too."""
    env = directory / ENV_FILE
    if not env.exists():
        return []
    data = yaml.safe_load((directory / PROFILE_FILE).read_text(encoding="utf-8"))
    return [
        f"{variable} ({ENV_OVERRIDES[variable][0]})"
        for variable in parse_env_file(env)
        if variable in ENV_OVERRIDES and _sets(data, ENV_OVERRIDES[variable][0])
    ]


def test_profiles_are_shipped():
    assert {"person-detection", "face-detection"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_profile_sets_each_setting_in_one_file(name):
    found = duplicates(PROFILES / name)
    assert not found, (
        f"profiles/{name}: {', '.join(found)} set in both {PROFILE_FILE} and {ENV_FILE}; {ENV_FILE} wins, "
        f"so an edit of {PROFILE_FILE} changes nothing. Keep the value in {PROFILE_FILE} (docs/profiles.md)."
    )


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_profile_loads(name):
    loaded = load_profile(PROFILES / name, {})
    assert loaded.name == name


@pytest.mark.parametrize(
    ("yaml_change", "env", "found"),
    [
        ({"target_fps": 15}, "CLIENT_TARGET_FPS=15\n", ["CLIENT_TARGET_FPS (target_fps)"]),
        ({"pipeline": {"max_in_flight": 4}}, "CLIENT_MAX_IN_FLIGHT=4\n",
         ["CLIENT_MAX_IN_FLIGHT (pipeline.max_in_flight)"]),
        ({}, "CLIENT_INPUT_LOOP=false\n", ["CLIENT_INPUT_LOOP (inputs[*].loop)"]),
        ({"inputs": ["/media/a.mp4"]}, "CLIENT_INPUT_LOOP=false\n", []),
        ({"postprocess": {"type": "ssd"}}, "CLIENT_THRESHOLD=0.6\nCLIENT_LOG_LEVEL=DEBUG\n", []),
        ({}, "CLIENT_STREAMS=2\n", []),
    ],
)  # fmt: skip
def test_the_duplicate_check_maps_variables_to_keys(tmp_path, yaml_change, env, found):
    data = {
        "model": {"name": "m", "input": "x", "size": {"width": 8, "height": 8}, "dtype": "uint8"},
        "postprocess": {"type": "ssd", "threshold": 0.5},
        "inputs": [{"type": "video", "path": "/media/sample.mp4", "loop": True}],
        **yaml_change,
    }
    (tmp_path / PROFILE_FILE).write_text(yaml.safe_dump(data))
    (tmp_path / ENV_FILE).write_text(env)
    assert duplicates(tmp_path) == found


# --- 2. the role's output names are the client's own reading ---------------------------------------


def _checked(directory: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    """The role's reading of a profile: the client's `--check --json` (as the check container runs it),
    through the filter ovms_client_checked."""
    assert client_main(["--profile", str(directory), "--check", "--json"]) == 0
    return FILTERS.ovms_client_checked(capsys.readouterr().out, directory.name)


def test_the_role_s_name_rule_is_the_client_s():
    pattern = next(m.pattern for m in FileName.__metadata__[0].metadata if hasattr(m, "pattern"))
    assert FILTERS._FILE_NAME.pattern == pattern


def test_no_environment_variable_renames_or_switches_off_an_output():
    """docs/profiles.md says these three keys are set in profile.yaml only: right while no CLIENT_*
    variable targets them (the check would apply one: the names would still be right, the docs not)."""
    targets = {target for target, _ in ENV_OVERRIDES.values()}
    assert not targets & {f"outputs.{key}" for key in OUTPUT_KEYS}
    assert not {t for t in targets if t == "outputs" or t.startswith("outputs[")}


PERSON = yaml.safe_load((PROFILES / "person-detection" / PROFILE_FILE).read_text())


def _with_outputs(outputs: Any) -> dict:
    return {**PERSON, "outputs": outputs}


@pytest.mark.parametrize(
    "outputs",
    [
        {},
        {"detections_file": "people.jsonl", "stats_file": "pace.jsonl"},
        {"detections": False},
        {"detections": False, "stats_file": "quiet.jsonl"},
        {"detections": "off", "detections_file": "d.log"},
        {"detections": "yes"},
        {"detections": 0, "stats_file": "s_1-2.txt"},
        {"detections": "no", "detections_file": "unused.jsonl", "stats_interval_s": 1},
    ],
)
def test_the_role_waits_for_and_labels_the_files_the_client_writes(tmp_path, capsys, monkeypatch, outputs):
    folder = tmp_path / "cams"
    folder.mkdir()
    (folder / PROFILE_FILE).write_text(yaml.safe_dump(_with_outputs(outputs)))
    (folder / ENV_FILE).write_text("CLIENT_TARGET_FPS=3\nCLIENT_STATS_INTERVAL_S=1\n")
    monkeypatch.setenv("CLIENT_SNAPSHOT_INTERVAL_S", "0")
    client = load_profile(folder, {"CLIENT_SNAPSHOT_INTERVAL_S": "0"}).profile.outputs
    role = _checked(folder, capsys)["outputs"]
    assert role == {key: getattr(client, key) for key in OUTPUT_KEYS}
    prepared = {"cams": {"outputs": role, "devices": [], "groups": []}}
    first = client.detections_file if client.detections else client.stats_file
    assert FILTERS.ovms_client_verify_files([{"name": "cams", "instances": 2}], prepared) == [
        {"instance": "cams-1", "file": first},
        {"instance": "cams-2", "file": first},
    ]
    [spec, _second] = FILTERS.ovms_client_instance_specs(
        {}, [{"name": "cams", "instances": 2}], "c", "/d", prepared, []
    )
    assert spec["labels"]["ovms-launcher.stats-file"] == client.stats_file


@pytest.mark.parametrize("name", SHIPPED)
def test_the_check_reads_the_shipped_profiles_outputs_like_the_client(name, capsys):
    client = load_profile(PROFILES / name, {}).profile.outputs
    assert _checked(PROFILES / name, capsys)["outputs"] == {key: getattr(client, key) for key in OUTPUT_KEYS}


@pytest.mark.parametrize(
    "outputs",
    [
        None,
        [],
        {"detections_file": "d.jsonl", "stats_file": "s.jsonl"},
        {"detections": "yes", "detections_file": "d.jsonl", "stats_file": "s.jsonl"},
        {"detections": True, "detections_file": "d.jsonl", "stats_file": "../../etc/passwd"},
        {"detections": True, "detections_file": "d.jsonl", "stats_file": ".."},
        {"detections": True, "detections_file": "a/b.jsonl", "stats_file": "s.jsonl"},
        {"detections": True, "detections_file": "", "stats_file": "s.jsonl"},
        {"detections": True, "detections_file": "d.jsonl", "stats_file": 5},
    ],
)
def test_a_check_with_outputs_the_role_cannot_use_names_the_profile(outputs):
    reading = {"name": "cams", "devices": [], "stages": []}
    if outputs is not None:
        reading["outputs"] = outputs
    with pytest.raises(ValueError, match=r"^profile cams: the client's check gave (no )?outputs"):
        FILTERS.ovms_client_checked(json.dumps(reading), "cams")


def test_verify_stops_on_a_profile_this_run_did_not_read():
    with pytest.raises(ValueError, match=r"profile cams was not placed and read on this host in this run"):
        FILTERS.ovms_client_verify_files([{"name": "cams"}], {"cams": {"devices": []}})
    # nothing asked, nothing to wait for
    assert FILTERS.ovms_client_verify_files([], {}) == []


def test_a_dry_run_without_the_host_s_copy_labels_no_stats_file():
    [spec] = FILTERS.ovms_client_instance_specs({}, [{"name": "cams"}], "c", "/d", {"cams": {}}, [])
    assert "ovms-launcher.stats-file" not in spec["labels"]
    assert (
        spec["labels"]["ovms-launcher.profile"] == "cams" and spec["labels"]["ovms-launcher.instance"] == "1"
    )
