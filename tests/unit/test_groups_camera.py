"""The camera group in `launcher validate` and the ovms_camera role's rules, config and status: one
filter plugin (plugins/filter/ovms_camera.py) that the role asserts and the launcher
applies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from launcher.inventory import CAMERAS_GROUP, CLIENTS_GROUP, SERVERS_GROUP
from launcher.validate import common_role, validate

pytestmark = pytest.mark.sources

camera = common_role.role_filters("ovms_camera")
SECRET = "p@ss:w/rd"


def _write(tmp_path: Path, cameras: dict[str, Any], camera_vars: dict[str, Any] | None = None) -> Path:
    data = {
        "all": {
            "vars": {"ansible_connection": "local"},
            "children": {
                SERVERS_GROUP: {"hosts": {"localhost": None}},
                CLIENTS_GROUP: {"hosts": {"localhost": None}},
                CAMERAS_GROUP: {"hosts": cameras, "vars": camera_vars or {}},
            },
        }
    }
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_validate_accepts_camera_hosts(tmp_path: Path):
    media = tmp_path / "media"
    (media / "clips").mkdir(parents=True)
    (media / "clips" / "aisle3.mp4").write_bytes(b"not checked here")
    inventory = _write(
        tmp_path,
        {
            "localhost": None,
            "camera-2": {
                "ansible_host": "192.0.2.7",
                "ansible_connection": "ssh",
                "ovms_camera_bind_address": "0.0.0.0",
            },
        },
        {
            "ovms_camera_streams": [
                {"name": "aisle3", "file": "clips/aisle3.mp4", "fps": 10},
                {"name": "door"},
            ],
            "ovms_camera_media_dir": str(media),
            "ovms_camera_credentials": {"username": "viewer", "password": SECRET},
        },
    )
    report = validate([inventory])
    assert report.problems == [], [p.to_dict() for p in report.problems]


@pytest.mark.parametrize(
    ("variables", "key", "words"),
    [
        ({"ovms_camera_streams": [{"name": "aisle 3"}]}, "ovms_camera_streams[0].name", "no stream name"),
        (
            {"ovms_camera_streams": [{"name": "a"}, {"name": "a"}]},
            "ovms_camera_streams[1].name",
            "earlier stream",
        ),
        ({"ovms_camera_streams": [{"name": "a", "fps": 0}]}, "ovms_camera_streams[0].fps", "from 1 to 60"),
        ({"ovms_camera_streams": [{"name": "a", "fps": 61}]}, "ovms_camera_streams[0].fps", "from 1 to 60"),
        (
            {
                "ovms_camera_streams": [{"name": "a", "file": "../etc/passwd"}],
                "ovms_camera_media_dir": "/tmp",
            },
            "ovms_camera_streams[0].file",
            "leaves the media folder",
        ),
        (
            {"ovms_camera_streams": [{"name": "a", "file": "/srv/a.mp4"}], "ovms_camera_media_dir": "/tmp"},
            "ovms_camera_streams[0].file",
            "is absolute",
        ),
        (
            {"ovms_camera_streams": [{"name": "a", "file": "a.mp4"}]},
            "ovms_camera_streams[0].file",
            "needs ovms_camera_media_dir",
        ),
        (
            {"ovms_camera_streams": [{"name": "a", "nmae": "b"}]},
            "ovms_camera_streams[0].nmae",
            "did you mean name",
        ),
        ({"ovms_camera_port": 70000}, "ovms_camera_port", "65535"),
        ({"ovms_camera_bind_address": "localhost"}, "ovms_camera_bind_address", "not an IPv4 or IPv6"),
        (
            {"ovms_camera_credentials": {"username": "a:b", "password": SECRET}},
            "ovms_camera_credentials.username",
            "printable string without ':'",
        ),
        ({"ovms_camera_data_dir": "/var/lib"}, "ovms_camera_data_dir", "system folder"),
        ({"ovms_camera_data_dir": "camera"}, "ovms_camera_data_dir", "absolute"),
        ({"ovms_camera_container_name": "-x"}, "ovms_camera_container_name", "pattern"),
    ],
)
def test_validate_refuses_bad_camera_values(tmp_path: Path, variables: dict, key: str, words: str):
    report = validate([_write(tmp_path, {"localhost": None}, variables)])
    found = [p for p in report.problems if p.key.startswith(key)]
    assert found, [p.to_dict() for p in report.problems]
    assert words in found[0].message + found[0].fix, found[0].to_dict()
    assert found[0].file.endswith("hosts.yml")
    assert all(SECRET not in str(p.to_dict()) for p in report.problems)


def test_two_cameras_on_one_machine_clash(tmp_path: Path):
    inventory = _write(tmp_path, {"localhost": None, "camera-b": None})
    report = validate([inventory])
    keys = sorted(p.key for p in report.problems)
    assert keys == ["ovms_camera_container_name", "ovms_camera_port"], [p.to_dict() for p in report.problems]
    other = _write(
        tmp_path,
        {"localhost": None, "camera-b": {"ovms_camera_container_name": "cam-b", "ovms_camera_port": 8555}},
    )
    assert validate([other]).problems == []


def test_the_config_serves_the_sample_without_streams():
    assert camera.ovms_camera_config([], None) == {
        "port": 8554,
        "streams": [{"name": "sample", "file": None, "fps": 15}],
        "auth": None,
    }


def test_the_config_points_files_at_the_media_mount_and_carries_the_credentials():
    config = camera.ovms_camera_config(
        [{"name": "aisle3", "file": "clips/a.mp4", "fps": "10"}, {"name": "door"}],
        {"username": "viewer", "password": SECRET},
    )
    assert config["streams"] == [
        {"name": "aisle3", "file": "/media/clips/a.mp4", "fps": 10},
        {"name": "door", "file": None, "fps": 15},
    ]
    assert config["auth"] == {"username": "viewer", "password": SECRET}


def _info(host_ip: str, streams: str = "aisle3,door") -> dict[str, Any]:
    return {
        "exists": True,
        "container": {
            "Name": "/ovms-camera",
            "Config": {"Image": "ovms-launcher/camera-sim:dev", "Labels": {camera.STREAMS_LABEL: streams}},
            "HostConfig": {"PortBindings": {"8554/tcp": [{"HostIp": host_ip, "HostPort": "8555"}]}},
            "State": {
                "Status": "running",
                "Health": {"Status": "healthy"},
                "StartedAt": "2026-01-01T00:00:00Z",
            },
        },
    }


def test_the_status_row_lists_the_urls_without_credentials():
    row = camera.ovms_camera_status(_info("127.0.0.1"), "192.0.2.7")
    assert row == {
        "name": "ovms-camera",
        "state": "running",
        "health": "healthy",
        "image": "ovms-launcher/camera-sim:dev",
        "started_at": "2026-01-01T00:00:00Z",
        "streams": ["aisle3", "door"],
        "urls": ["rtsp://127.0.0.1:8555/aisle3", "rtsp://127.0.0.1:8555/door"],
    }
    assert (
        camera.ovms_camera_status(_info("0.0.0.0"), "192.0.2.7")["urls"][0] == "rtsp://192.0.2.7:8555/aisle3"
    )
    assert camera.ovms_camera_status(_info("::1"), "x")["urls"][0] == "rtsp://[::1]:8555/aisle3"
    assert camera.ovms_camera_status({"exists": False}, "x") is None
