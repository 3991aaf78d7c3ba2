"""Issue 21, the review's media check-then-use race: lookup ovms_media checks a media file on the
controller (lstat, one link, sha256), but ansible.builtin.copy re-opens `src` by its path later and
follows links, so a file swapped for a symbolic link in between would ship whatever the link names (a
key of the PKI). The lookup now hashes the very descriptor it checked (sha1 beside sha256) and the copy
tasks of the client (roles/ovms_client/tasks/media.yml) and the camera (roles/ovms_camera/tasks/main.yml)
pass it as `checksum`: the swapped file fails the copy on the host and nothing of it is left there.

The role tasks run by ansible-playbook on this machine (connection local, no container), the swap made
by a task between the check and the copy, as an attacker who writes the media folder would."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import yaml

from launcher.media import write_manifest
from testbed.fake_engine import engine_env, fake_engine
from testbed.paths import PROJECT_ROOT
from testbed.playbook import run_playbook, task_results
from testbed.plugins import load_plugin

pytestmark = [pytest.mark.contract]

SECRET = "-----BEGIN PRIVATE KEY-----\nnot a real key, swapped in\n-----END PRIVATE KEY-----\n"
GID = 5002
CAMERA_TASKS = PROJECT_ROOT / "roles" / "ovms_camera" / "tasks" / "main.yml"
MISMATCH = "Copied file does not match the expected checksum"


LOOKUP = load_plugin("plugins/lookup/ovms_media.py")


def _folders(root: Path) -> tuple[Path, Path, Path]:
    """A media folder (a video, a frame, media.json), a fake CA key beside it, a host data folder."""
    media = root / "media"
    (media / "frames").mkdir(parents=True)
    (media / "a.mp4").write_bytes(b"decoy video\n")
    (media / "frames" / "b.jpg").write_bytes(b"jpeg")
    write_manifest(media)
    key = root / "certs" / "ca" / "ca.key"
    key.parent.mkdir(parents=True)
    key.write_text(SECRET, encoding="utf-8")
    data = root / "data"
    (data / "media").mkdir(parents=True)  # the role's "Create the ... folders" made it
    return media, key, data


def _swap(media: Path, key: Path) -> list[dict]:
    """The tasks of the attacker: a.mp4, checked already, replaced by a link to the key."""
    return [
        {"name": "Swap a.mp4 out", "ansible.builtin.file": {"path": str(media / "a.mp4"), "state": "absent"}},
        {
            "name": "Swap a link to the key in",
            "ansible.builtin.file": {"path": str(media / "a.mp4"), "src": str(key), "state": "link"},
        },
    ]


def _include(role: str, tasks_from: str) -> dict:
    include = {"name": role, "tasks_from": tasks_from}
    return {"name": f"Run {tasks_from}", "ansible.builtin.include_role": include}


def _run(tmp_path: Path, tasks: list[dict], variables: dict) -> tuple[int, dict[str, dict]]:
    play = {"hosts": "localhost", "gather_facts": False, "vars": variables, "tasks": tasks}
    # the client role's survey.yml asks the Docker engine for its containers: a fake one answers (none)
    with fake_engine(tmp_path) as engine:
        run = run_playbook(tmp_path, play, json_callback=True, extra_env=engine_env(engine))
    return run.returncode, task_results(run)


def _item_messages(result: dict) -> str:
    return "\n".join(
        str(item.get("msg", "")) for item in result.get("results", [result]) if item.get("failed")
    )


def _holds_secret(data: Path) -> list[str]:
    return [
        str(path)
        for path in data.rglob("*")
        if path.is_file() and not path.is_symlink() and SECRET.encode() in path.read_bytes()
    ]


def test_the_lookup_gives_the_sha1_of_what_it_checked(tmp_path):
    media, _key, _data = _folders(tmp_path)
    got = LOOKUP.media_files(str(media), manifest="media.json")
    sha1 = {f["name"]: f["sha1"] for f in got["files"]}
    assert sha1 == {
        name: hashlib.sha1((media / name).read_bytes()).hexdigest()
        for name in ("a.mp4", "frames/b.jpg", "media.json")
    }
    named = LOOKUP.media_files(str(media), names=["frames/b.jpg"])
    assert named["files"] == [
        {
            "name": "frames/b.jpg",
            "src": str(media.resolve() / "frames" / "b.jpg"),
            "sha1": hashlib.sha1(b"jpeg").hexdigest(),
        }
    ]
    # the host holds this very manifest: nothing is read, so no sha1 (the copy is skipped)
    have = {
        "exists": True,
        "isreg": True,
        "checksum": got["manifest_sha256"],
        "mode": "0640",
        "gid": GID,
    }
    current = LOOKUP.media_files(str(media), manifest="media.json", have=have, group=GID)
    assert current["current"] and not any("sha1" in f for f in current["files"])


root_only = pytest.mark.skipif(os.geteuid() != 0, reason="the role makes root-owned files: run as root")


@pytest.mark.slow
@root_only
def test_the_client_refuses_a_media_file_swapped_for_a_link_after_the_check(tmp_path):
    media, key, data = _folders(tmp_path)
    role = "ovms.edge.ovms_client"
    tasks = [
        _include(role, "survey.yml"),
        _include(role, "media_check.yml"),
        *_swap(media, key),
        _include(role, "media.yml"),
    ]
    rc, results = _run(
        tmp_path, tasks, {"ovms_client_data_dir": str(data), "ovms_client_media_dir": str(media)}
    )
    assert rc != 0, results
    assert MISMATCH in _item_messages(results["Copy the sample media"]), results["Copy the sample media"]
    assert _holds_secret(data) == []
    # the manifest is not copied after a failed file: the next run copies again
    assert "Copy the media's manifest" not in results
    assert not (data / "media" / "media.json").exists()


def _camera_task(name: str) -> dict:
    tasks = yaml.safe_load(CAMERA_TASKS.read_text(encoding="utf-8"))
    found = [task for task in tasks if task.get("name") == name]
    assert len(found) == 1, f"{CAMERA_TASKS} has no task {name!r}"
    return found[0]


@pytest.mark.slow
@root_only
def test_the_camera_refuses_a_media_file_swapped_for_a_link_after_the_check(tmp_path):
    """The camera role's own two tasks (its main.yml needs docker for the rest): its check of the
    stream files and its copy, the swap in between."""
    media, key, data = _folders(tmp_path)
    tasks = [
        _camera_task("Check the camera's media files on the controller"),
        _camera_task("Create the camera's media folders"),
        *_swap(media, key),
        _camera_task("Copy the camera's media"),
    ]
    variables = {
        "ovms_camera_media_dir": str(media),
        "ovms_camera_data_dir": str(data),
        "ovms_camera_gid": GID,
        "ovms_camera_streams": [{"name": "cam", "file": "a.mp4"}, {"name": "cam2", "file": "frames/b.jpg"}],
    }
    rc, results = _run(tmp_path, tasks, variables)
    assert rc != 0, results
    copy = results["Copy the camera's media"]
    assert MISMATCH in _item_messages(copy), copy
    assert _holds_secret(data) == []
    # the file that was not swapped is shipped, from what was checked
    assert (data / "media" / "frames" / "b.jpg").read_bytes() == b"jpeg"
