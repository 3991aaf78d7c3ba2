"""The shipped profiles say each setting once, and the ovms_client role reads a profile's output files
as the client does.

1. profile.env overrides profile.yaml, so a setting in both files hides every edit of the YAML: no
   shipped profile may set one in both. Variables map to profile keys through the client's own table
   (client/profile.py ENV_OVERRIDES).
2. The role's filter ovms_client_outputs (plugins/filter/ovms_client.py), which
   verify.yml and status.yml use to find a client's results, gives the names the client itself writes
   to (client/profile.py: OutputsSpec, FileName, env overrides). It runs in Ansible without the client
   package, so these tests hold it to the client's code.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from client.envfile import parse_env_file
from client.errors import ClientError
from client.profile import ENV_FILE, ENV_OVERRIDES, PROFILE_FILE, FileName, OutputsSpec, load_profile
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


# --- 2. the role's output names follow the client ----------------------------------------------------


def test_the_role_s_defaults_and_name_rule_are_the_client_s():
    defaults = OutputsSpec()
    assert {key: getattr(defaults, key) for key in OUTPUT_KEYS} == FILTERS.OUTPUT_DEFAULTS
    pattern = next(m.pattern for m in FileName.__metadata__[0].metadata if hasattr(m, "pattern"))
    assert FILTERS._FILE_NAME.pattern == pattern


def test_no_environment_variable_renames_or_switches_off_an_output():
    """The filter reads profile.yaml only: right while no CLIENT_* variable targets these keys. If one
    is added, ovms_client_outputs must take the env file and ovms_client_env too."""
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
def test_the_filter_names_the_files_the_client_writes(tmp_path, outputs):
    data = _with_outputs(outputs)
    (tmp_path / PROFILE_FILE).write_text(yaml.safe_dump(data))
    # env settings (file and process) never change the names
    (tmp_path / ENV_FILE).write_text("CLIENT_TARGET_FPS=3\nCLIENT_STATS_INTERVAL_S=1\n")
    client = load_profile(tmp_path, {"CLIENT_SNAPSHOT_INTERVAL_S": "0"}).profile.outputs
    role = FILTERS.ovms_client_outputs((tmp_path / PROFILE_FILE).read_text())
    assert {key: role[key] for key in OUTPUT_KEYS} == {key: getattr(client, key) for key in OUTPUT_KEYS}
    assert role["first_results"] == (client.detections_file if client.detections else client.stats_file)


@pytest.mark.parametrize("name", SHIPPED)
def test_the_filter_reads_the_shipped_profiles_like_the_client(name):
    client = load_profile(PROFILES / name, {}).profile.outputs
    role = FILTERS.ovms_client_outputs((PROFILES / name / PROFILE_FILE).read_text())
    assert {key: role[key] for key in OUTPUT_KEYS} == {key: getattr(client, key) for key in OUTPUT_KEYS}


@pytest.mark.parametrize(
    "outputs",
    [
        {"stats_file": "../../etc/passwd"},
        {"stats_file": ".."},
        {"detections_file": "a/b.jsonl"},
        {"detections_file": ""},
        {"detections": "maybe"},
        {"detections": 2},
        {"stats_file": 5},
    ],
)
def test_a_value_the_client_refuses_never_names_a_file(tmp_path, outputs):
    (tmp_path / PROFILE_FILE).write_text(yaml.safe_dump(_with_outputs(outputs)))
    if outputs != {"stats_file": ".."}:  # '..' passes the client's pattern; it fails when opened
        with pytest.raises(ClientError):
            load_profile(tmp_path, {})
    role = FILTERS.ovms_client_outputs((tmp_path / PROFILE_FILE).read_text())
    assert {key: role[key] for key in OUTPUT_KEYS} == FILTERS.OUTPUT_DEFAULTS


@pytest.mark.parametrize(
    "text", [None, "", "name: [unclosed\n", "- a list\n", "outputs: [1]\n", "outputs:\n"]
)
def test_an_unreadable_profile_gives_the_defaults(text):
    role = FILTERS.ovms_client_outputs(text)
    assert {key: role[key] for key in OUTPUT_KEYS} == FILTERS.OUTPUT_DEFAULTS
    assert role["first_results"] == "detections.jsonl"


def _slurp(loop_var: str, item: object, text: str | None, **extra: object) -> dict:
    result: dict = {"ansible_loop_var": loop_var, loop_var: item, **extra}
    if text is not None:
        result["content"] = base64.b64encode(text.encode()).decode()
    return result


def test_verify_waits_for_each_instance_s_first_results():
    copies = [
        _slurp(
            "ovms_client_verify_profile",
            {"name": "cams", "instances": 2},
            "outputs: {detections_file: d.jsonl}",
        ),
        _slurp("ovms_client_verify_profile", {"name": "quiet"}, "outputs: {detections: false}"),
        {"skipped": True, "ansible_loop_var": "ovms_client_verify_profile"},
    ]
    assert FILTERS.ovms_client_verify_files(copies) == [
        {"instance": "cams-1", "file": "d.jsonl"},
        {"instance": "cams-2", "file": "d.jsonl"},
        {"instance": "quiet-1", "file": "stats.jsonl"},
    ]
    # verify skipped (ovms_client_results_timeout 0): nothing to wait for
    assert FILTERS.ovms_client_verify_files([{"skipped": True}]) == []


def test_verify_stops_on_a_profile_copy_it_cannot_read():
    missing = _slurp(
        "ovms_client_verify_profile", {"name": "cams"}, None, failed=True, msg="file not found: /x"
    )
    with pytest.raises(ValueError, match=r"profile cams: .*could not be read \(file not found: /x\)"):
        FILTERS.ovms_client_verify_files([missing])


def test_status_reads_each_client_s_stats_file():
    def labels(profile: str, instance: str) -> dict:
        return {
            "ovms-launcher.profile": profile,
            "ovms-launcher.instance": instance,
            "ovms-launcher.role": "client",
        }

    copies = [
        _slurp("ovms_client_status_labels", labels("cams", "1"), "outputs: {stats_file: pace.jsonl}"),
        _slurp("ovms_client_status_labels", labels("cams", "2"), "outputs: {stats_file: pace.jsonl}"),
        _slurp("ovms_client_status_labels", labels("quiet", "1"), "outputs: {detections: false}"),
        # a copy gone meanwhile: the default name, status never fails
        _slurp("ovms_client_status_labels", labels("gone", "1"), None, failed=True, msg="file not found"),
    ]
    assert FILTERS.ovms_client_status_files(copies) == {
        "cams-1": "pace.jsonl",
        "cams-2": "pace.jsonl",
        "quiet-1": "stats.jsonl",
        "gone-1": "stats.jsonl",
    }
