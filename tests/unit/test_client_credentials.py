"""Camera credentials (OVMS_CAMERA_CREDENTIALS): the file's checks never show a value, the most
specific entry wins, and the credentials go into the URL percent-encoded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from client.credentials import load_camera_credentials
from client.errors import ClientError

pytestmark = pytest.mark.sources

SECRET = "p@ss:w/rd"


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "cameras.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def entry(match: str, username: str = "op", password: str = SECRET) -> dict:
    return {"match": match, "username": username, "password": password}


def test_the_most_specific_entry_wins(tmp_path):
    credentials = load_camera_credentials(
        write(
            tmp_path,
            {
                "cameras": [
                    entry("camera-1", "host"),
                    entry("camera-1:8554", "hostport"),
                    entry("rtsp://camera-1:8554/store", "store"),
                    entry("rtsp://camera-1:8554/store/aisle3", "aisle3"),
                    entry("https://cam.example/live/", "https"),
                    entry("[fd00::5]:554", "v6"),
                ]
            },
        )
    )

    def user(url: str) -> str | None:
        found = credentials.find(url)
        return found.username if found else None

    assert user("rtsp://camera-1:8554/store/aisle3") == "aisle3"
    assert user("rtsp://camera-1:8554/store/aisle3/sub?x=1") == "aisle3"
    assert user("rtsp://camera-1:8554/store/aisle30") == "store"  # a prefix ends at a path segment
    assert user("rtsp://CAMERA-1:8554/other") == "hostport"
    assert user("rtsps://camera-1:8554/store/aisle3") == "hostport"  # another scheme: not the URL entry
    assert user("rtsp://camera-1/store") == "host"  # port 554
    assert user("http://camera-1:8080/video.mjpg") == "host"
    assert user("https://cam.example:443/live/index.m3u8") == "https"
    assert user("https://cam.example/other") is None
    assert user("rtsp://[fd00::5]/x") == "v6"
    assert user("rtsp://camera-2/x") is None
    # a URL with credentials of its own keeps them
    assert user("rtsp://admin:pw@camera-1:8554/store/aisle3") is None


def test_credentials_are_inserted_percent_encoded(tmp_path):
    credentials = load_camera_credentials(write(tmp_path, {"cameras": [entry("camera-1", "o:p")]}))
    url, found = credentials.apply("rtsp://camera-1:8554/aisle3")
    assert url == "rtsp://o%3Ap:p%40ss%3Aw%2Frd@camera-1:8554/aisle3"
    assert found is not None and SECRET not in repr(found)
    assert credentials.apply("rtsp://camera-2/x") == ("rtsp://camera-2/x", None)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("{not json", "not valid JSON (line 1, column 2"),
        ([], "expected a mapping with the single key 'cameras'"),
        ({"cameras": {}}, "expected a mapping with the single key 'cameras'"),
        ({"cameras": [], "extra": 1}, "expected a mapping with the single key 'cameras'"),
        ({"cameras": ["camera-1"]}, "cameras[0]: expected a mapping with match, username and password"),
        ({"cameras": [{**entry("c"), "token": SECRET}]}, "cameras[0]: unknown key(s) token"),
        ({"cameras": [entry("c", password="")]}, "cameras[0].password: expected a non-empty string"),
        ({"cameras": [entry("c", password=SECRET + "\n")]}, "cameras[0].password: expected a non-empty"),
        ({"cameras": [entry("c", username=None)]}, "cameras[0].username: expected a non-empty string"),
        ({"cameras": [entry(f"rtsp://op:{SECRET}@c/x")]}, "cameras[0].match: the match is not an rtsp://"),
        ({"cameras": [entry("ftp://c/x")]}, "cameras[0].match: the match 'ftp://c/x' is not an rtsp://"),
        ({"cameras": [entry("fd00::5")]}, "cameras[0].match: the match 'fd00::5' is not"),
    ],
)
def test_a_bad_file_is_a_clear_error_naming_the_file_never_a_value(tmp_path, data, expected):
    path = write(tmp_path, data)
    with pytest.raises(ClientError) as info:
        load_camera_credentials(path)
    message = info.value.render()
    assert message.startswith(f"{path}: ") and expected in message
    assert "p@ss" not in message and "w/rd" not in message


def test_a_missing_or_unreadable_file_is_named(tmp_path):
    with pytest.raises(ClientError, match=r"cameras.json: OVMS_CAMERA_CREDENTIALS: .* does not exist"):
        load_camera_credentials(tmp_path / "cameras.json")
    folder = tmp_path / "folder.json"
    folder.mkdir()
    with pytest.raises(ClientError, match=r"folder.json: OVMS_CAMERA_CREDENTIALS: cannot read"):
        load_camera_credentials(folder)
