"""The ovms_client role's filters for cameras: the client's own reading of a profile (its devices),
the device list a container is given (action ovms_client_devices), and the camera credentials file and
its checks."""

from __future__ import annotations

import json

import pytest

from client.__main__ import reported_outputs
from client.profile import OutputsSpec
from launcher.validate import rules
from testbed.plugins import load_plugin

pytestmark = pytest.mark.sources

# the client's check's `outputs` of a profile with the default results files
OUTPUTS = reported_outputs(OutputsSpec())

CLIENT = load_plugin("plugins/filter/ovms_client.py")
DEVICES = load_plugin("plugins/action/ovms_client_devices.py")

SECRET = "p@ss:w/rd"


def test_the_check_output_is_the_last_json_line():
    output = (
        "2026 INFO client: something\n"
        + json.dumps({"name": "p", "devices": ["/dev/video0"], "outputs": OUTPUTS})
        + "\n"
    )
    assert CLIENT.ovms_client_checked(output, "p")["devices"] == ["/dev/video0"]


@pytest.mark.parametrize(
    "output",
    ["error: profile.yaml: streams: required\n", "", '{"name": "p", "devices": ["/etc/shadow"]}'],
)
def test_a_check_without_a_usable_result_names_the_profile(output):
    with pytest.raises(ValueError, match="profile p:"):
        CLIENT.ovms_client_checked(output, "p")


def _stat(exists=True, chr_=True, gid=44):
    return {"exists": True, "ischr": chr_, "gid": gid} if exists else {"exists": False}


def test_exactly_the_profile_devices_and_their_groups_are_passed():
    found = DEVICES.sort_devices(
        {"/dev/video0": _stat(), "/dev/video2": _stat(gid=44), "/dev/video4": _stat(gid=993)}
    )
    assert found == {
        "devices": [
            "/dev/video0:/dev/video0:rw",
            "/dev/video2:/dev/video2:rw",
            "/dev/video4:/dev/video4:rw",
        ],
        "groups": ["44", "993"],
        "missing": [],
        "root_group": [],
    }


def test_a_missing_device_or_a_regular_file_is_missing():
    found = DEVICES.sort_devices({"/dev/video0": _stat(exists=False), "/dev/video1": _stat(chr_=False)})
    assert found["devices"] == [] and found["missing"] == ["/dev/video0", "/dev/video1"]


def test_no_profile_device_gives_no_device():
    assert DEVICES.sort_devices({}) == {"devices": [], "groups": [], "missing": [], "root_group": []}


def test_a_device_of_root_s_group_is_not_passed():
    found = DEVICES.sort_devices({"/dev/video0": _stat(gid=0), "/dev/video1": _stat()})
    assert found["root_group"] == ["/dev/video0"] and found["devices"] == ["/dev/video1:/dev/video1:rw"]
    assert found["groups"] == ["44"]


def test_the_credentials_file_lists_every_camera():
    creds = {
        "rtsp://camera-1:8554/aisle3": {"username": "op", "password": SECRET},
        "camera-2": {"username": "u", "password": "x"},
    }
    data = json.loads(CLIENT.ovms_client_credentials_json(creds))
    assert data == {
        "cameras": [
            {"match": "camera-2", "password": "x", "username": "u"},
            {"match": "rtsp://camera-1:8554/aisle3", "password": SECRET, "username": "op"},
        ]
    }
    assert json.loads(CLIENT.ovms_client_credentials_json({})) == {"cameras": []}


@pytest.mark.parametrize(
    "creds",
    [
        {"rtsp://op:" + SECRET + "@camera-1/x": {"username": "op", "password": SECRET}},
        {"camera-1": {"username": "op", "password": SECRET, "extra": SECRET}},
        {"camera-1": {"username": "op", "password": SECRET + "\n"}},
        {"camera-1": {"username": "", "password": SECRET}},
        {"camera-1": SECRET},
        {"-camera": {"username": "op", "password": SECRET}},
    ],
)
def test_bad_credentials_are_refused_without_showing_a_value(creds):
    findings = rules.run("ovms_client_camera_credentials", creds, {})
    assert findings and all(SECRET not in message for _, message in findings)


@pytest.mark.parametrize(
    "match",
    [
        "rtsp://camera-1:8554/aisle3",
        "camera-1:8554",
        "camera-1",
        "10.0.0.5",
        "https://cam.example/stream.mjpg",
        "[fd00::5]:554",
    ],
)
def test_good_credentials_pass(match):
    assert (
        rules.run("ovms_client_camera_credentials", {match: {"username": "op", "password": SECRET}}, {}) == []
    )


def test_status_keeps_the_source_counters():
    line = {
        "fps": 15.0,
        "reconnects": 2,
        "stalls": 1,
        "drops": 1,
        "sources": [{"stream": 0, "state": "reading", "input": "rtsp://camera-1:8554/aisle3"}],
    }
    (entry,) = CLIENT.ovms_client_stats([{"name": "p-1", "stdout": json.dumps(line)}])
    assert entry["reconnects"] == 2 and entry["stalls"] == 1 and entry["drops"] == 1
    assert entry["sources"][0]["state"] == "reading"


@pytest.mark.parametrize(
    "match",
    [
        "rtsp://camera-1:8554/aisle3",
        "rtsps://camera-1/x",
        "http://cam/stream.mjpg",
        "camera-1",
        "camera-1:8554",
        "10.0.0.5",
        "[fd00::5]:554",
        "rtsp://op:pw@camera-1/x",
        "op@camera-1",
        "-camera",
        "ftp://camera-1/x",
        "camera 1",
        "",
        "rtsp://cam:99999/x",
        "rtsp://cam:abc/x",
        "rtsp://:8554/x",
        "rtsp://[zz]/x",
        "rtsp://a:1:2/x",
        "cam:99999",
        "cam:",
        "fd00::5",
        "[fd00::5",
    ],
)
def test_a_camera_match_the_role_accepts_the_client_accepts(match):
    """The role checks the inventory's keys (and the launcher with it); the client parses them from the
    file the role writes, shared by every client of the host: a key the role let through that the
    client refused would stop them all at start."""
    from client.credentials import _parse_match

    role_accepts = (
        rules.run("ovms_client_camera_credentials", {match: {"username": "u", "password": "p"}}, {}) == []
    )
    if role_accepts:
        assert _parse_match(match) is not None, match
    good = ("rtsp://camera-1:8554/aisle3", "camera-1", "camera-1:8554", "10.0.0.5", "[fd00::5]:554")
    assert role_accepts == (match in good or match in ("rtsps://camera-1/x", "http://cam/stream.mjpg")), match
