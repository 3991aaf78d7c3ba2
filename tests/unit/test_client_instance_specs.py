"""The client containers of a host, every profile's instances in one task: filter
ovms_client_instance_specs (roles/ovms_client/tasks/main.yml) and the results folders the role's
folders task creates for them (ovms_client_results_dirs)."""

from __future__ import annotations

import pytest

from testbed.plugins import load_plugin

CLIENT = load_plugin("plugins/filter/ovms_client.py")
SERVICE = {
    "image": "ovms-launcher/client:dev",
    "role": "client",
    "mounts": [{"type": "bind", "source": "/data/secrets", "target": "/secrets", "read_only": True}],
    "labels": {"team": "store"},
    "recreate": "False",  # as a template may render it
}
PROFILES = [{"name": "people", "instances": 2}, {"name": "shelf"}]
PREPARED = {
    "people": {"changed": False, "devices": ["/dev/video0"], "groups": ["44"]},
    "shelf": {"changed": True, "devices": [], "groups": []},
}


def _specs(**changes):
    args = {"service": SERVICE, "profiles": PROFILES, "prepared": PREPARED, "renewed": [], **changes}
    return CLIENT.ovms_client_instance_specs(
        args["service"], args["profiles"], "ovms-client", "/data", args["prepared"], args["renewed"]
    )


def test_each_instance_gets_its_name_folders_devices_and_labels():
    specs = _specs()
    assert [s["name"] for s in specs] == [
        "ovms-client-people-1",
        "ovms-client-people-2",
        "ovms-client-shelf-1",
    ]
    first = specs[0]
    assert first["mounts"] == [
        {"type": "bind", "source": "/data/profiles/people", "target": "/profile", "read_only": True},
        SERVICE["mounts"][0],
        {"type": "bind", "source": "/data/results/people-1", "target": "/results"},
    ]
    assert specs[1]["mounts"][-1]["source"] == "/data/results/people-2"
    assert (first["devices"], first["groups"]) == (["/dev/video0"], ["44"])
    assert (specs[2]["devices"], specs[2]["groups"]) == ([], [])
    assert first["labels"] == {
        "team": "store",
        "ovms-launcher.profile": "people",
        "ovms-launcher.instance": "1",
    }
    assert first["image"] == SERVICE["image"]


def test_only_the_profiles_whose_copy_or_model_files_changed_are_recreated():
    assert [s["recreate"] for s in _specs()] == [False, False, True]
    assert [s["recreate"] for s in _specs(renewed=["people"])] == [True, True, True]
    everything = _specs(
        service={**SERVICE, "recreate": True},
        prepared={k: {**v, "changed": False} for k, v in PREPARED.items()},
    )
    assert [s["recreate"] for s in everything] == [True, True, True]


def test_a_profile_not_read_on_the_host_is_refused():
    with pytest.raises(ValueError, match="profile shelf was not placed and read"):
        _specs(prepared={"people": PREPARED["people"]})


def test_the_results_folders_are_the_instances_and_the_clients():
    assert CLIENT.ovms_client_results_dirs(PROFILES, 5002, 5002) == [
        {"name": f"results/{i}", "owner": 5002, "group": 5002, "mode": "0750"}
        for i in ("people-1", "people-2", "shelf-1")
    ]
    assert CLIENT.ovms_client_profile_dir("/data", "people") == "/data/profiles/people"
