"""M1 of issue 21: the media a role ships to its hosts. The client's media folder ships only the
files its media.json lists (lookup ovms_media: relative names, real folders, regular files with one
link, sha256 checked), without following a link, as 0640 root:<client group> in 0750 folders; a bad
folder is refused on the controller before anything is created on the host, naming
ovms_client_media_dir and the fix; a host holding the same media.json is left alone. The camera ships
only the files its streams name, checked the same way. Hard links are refused in local profiles (the
client's loader, which `launcher validate` runs, and roles/ovms_client/tasks/profile.yml)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from client.errors import ClientError
from client.profile import load_profile
from launcher.errors import LauncherError
from launcher.media import write_manifest
from testbed.fake_engine import engine_env, fake_engine
from testbed.paths import PROJECT_ROOT
from testbed.playbook import run_playbook, task_results
from testbed.plugins import load_plugin

pytestmark = [pytest.mark.contract]

ROLE_FQCN = "ovms.edge.ovms_client"
CLIENT_GID = 5002
SECRET = "-----BEGIN PRIVATE KEY-----\nnot a real key\n-----END PRIVATE KEY-----\n"


LOOKUP = load_plugin("plugins/lookup/ovms_media.py")
FILTERS = load_plugin("plugins/filter/ovms_client.py")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _pki(root: Path) -> Path:
    """A fake CA key outside the media folder (the controller's certificates folder)."""
    key = root / "certs" / "ca" / "ca.key"
    key.parent.mkdir(parents=True)
    key.write_text(SECRET, encoding="utf-8")
    return key


def _media(root: Path) -> Path:
    """A media folder as `launcher media sample` makes it: a video, frames/, media.json."""
    media = root / "media"
    (media / "frames").mkdir(parents=True)
    (media / "sample.mp4").write_bytes(b"video" * 100)
    for n in range(2):
        (media / "frames" / f"frame_{n:04d}.jpg").write_bytes(b"jpeg%d" % n)
    write_manifest(media)
    return media


def _relist(media: Path, **extra: bytes | str) -> None:
    """Rewrite media.json with the files it lists plus `extra` names (their sha256 given or computed)."""
    record = json.loads((media / "media.json").read_text(encoding="utf-8"))
    for name, value in extra.items():
        record["files"][name] = value if isinstance(value, str) else _sha(value)
    (media / "media.json").write_text(json.dumps(record), encoding="utf-8")


def _refusal(media: Path, **kwargs) -> str:
    with pytest.raises(LOOKUP.MediaRefused) as raised:
        LOOKUP.media_files(str(media), manifest="media.json", **kwargs)
    return str(raised.value)


# --- the lookup, on the controller ------------------------------------------------------------------


def test_only_the_listed_files_are_shipped_the_manifest_last(tmp_path):
    media = _media(tmp_path)
    (media / "notes.txt").write_text("not listed", encoding="utf-8")
    (media / "ca.key").symlink_to(_pki(tmp_path))  # not listed: never looked at, never shipped
    got = LOOKUP.media_files(str(media), manifest="media.json")
    assert [f["name"] for f in got["files"]] == [
        "frames/frame_0000.jpg",
        "frames/frame_0001.jpg",
        "sample.mp4",
        "media.json",
    ]
    assert got["dirs"] == ["frames"]
    assert all(f["src"] == str(media.resolve() / f["name"]) for f in got["files"])
    assert got["manifest_sha256"] == _sha((media / "media.json").read_bytes())
    assert got["current"] is False


@pytest.mark.parametrize(
    ("plant", "words"),
    [
        ("symlink", "'ca.key' is a symbolic link, not a regular file"),
        ("hardlink", "'ca.key' is a hard link (2 names for one file)"),
        ("absolute", "is absolute"),
        ("dotdot", "has a '..' part"),
        ("linked-folder", "'keys/ca.key': 'keys' is a symbolic link, not a folder"),
        ("fifo", "'pipe' is a FIFO, not a regular file"),
        ("missing", "'gone.mp4' is listed but missing"),
        ("mismatch", "'sample.mp4' does not match its sha256 in media.json"),
    ],
)
def test_a_bad_listed_name_is_refused(tmp_path, plant, words):
    media = _media(tmp_path)
    key = _pki(tmp_path)
    data = key.read_bytes()
    if plant == "symlink":
        (media / "ca.key").symlink_to(key)
        _relist(media, **{"ca.key": data})
    elif plant == "hardlink":
        (media / "ca.key").hardlink_to(key)
        _relist(media, **{"ca.key": data})
    elif plant == "absolute":
        _relist(media, **{str(key): data})
    elif plant == "dotdot":
        _relist(media, **{"../certs/ca/ca.key": data})
    elif plant == "linked-folder":
        (media / "keys").symlink_to(key.parent)
        _relist(media, **{"keys/ca.key": data})
    elif plant == "fifo":
        os.mkfifo(media / "pipe")
        _relist(media, pipe=b"")
    elif plant == "missing":
        _relist(media, **{"gone.mp4": b""})
    else:
        (media / "sample.mp4").write_bytes(b"changed")
    assert words in _refusal(media)


def test_a_folder_without_media_json_is_refused(tmp_path):
    media = tmp_path / "home-op"
    media.mkdir()
    (media / "id_ed25519").write_text(SECRET, encoding="utf-8")
    assert "it has no media.json, the list of the files it ships" in _refusal(media)


def test_a_linked_or_hard_linked_manifest_is_refused(tmp_path):
    media = _media(tmp_path)
    elsewhere = tmp_path / "elsewhere.json"
    (media / "media.json").rename(elsewhere)
    (media / "media.json").symlink_to(elsewhere)
    assert "symbolic link" in _refusal(media)
    (media / "media.json").unlink()
    (media / "media.json").hardlink_to(elsewhere)
    assert "hard link" in _refusal(media)


def test_the_host_holding_the_same_manifest_is_current(tmp_path):
    media = _media(tmp_path)
    sha = _sha((media / "media.json").read_bytes())
    have = {"exists": True, "isreg": True, "checksum": sha, "mode": "0640", "gid": CLIENT_GID}
    assert LOOKUP.media_files(str(media), manifest="media.json", have=have, group=CLIENT_GID)["current"]
    # a copy made by an earlier deploy (0644 root:root) or another manifest is copied again
    for stale in ({"mode": "0644"}, {"gid": 0}, {"checksum": "0" * 64}, {"isreg": False}):
        got = LOOKUP.media_files(str(media), manifest="media.json", have={**have, **stale}, group=CLIENT_GID)
        assert not got["current"], stale
    # the names are checked even then
    (media / "frames" / "frame_0000.jpg").unlink()
    (media / "frames" / "frame_0000.jpg").hardlink_to(_pki(tmp_path))
    assert "hard link" in _refusal(media, have=have, group=CLIENT_GID)


def test_the_camera_ships_the_files_its_streams_name(tmp_path):
    media = _media(tmp_path)
    got = LOOKUP.media_files(str(media), names=["sample.mp4", "frames/frame_0001.jpg", "sample.mp4"])
    assert [f["name"] for f in got["files"]] == ["sample.mp4", "frames/frame_0001.jpg"]
    assert got["dirs"] == ["frames"]
    (media / "cam.mp4").hardlink_to(_pki(tmp_path))
    with pytest.raises(LOOKUP.MediaRefused, match=r"'cam\.mp4' is a hard link"):
        LOOKUP.media_files(str(media), names=["cam.mp4"])


def test_media_stale_lists_what_the_host_holds_beyond_the_list():
    media = {"dirs": ["frames"], "files": [{"name": "frames/a.jpg"}, {"name": "media.json"}]}
    root = "/data/media"
    found = [
        {"path": "/data/media/frames", "isdir": True},
        {"path": "/data/media/frames/a.jpg", "isreg": True},
        {"path": "/data/media/media.json", "isreg": True},
        {"path": "/data/media/ca.key", "isreg": True},
        {"path": "/data/media/old", "isdir": True},
        {"path": "/data/media/old/x.jpg", "isreg": True},
    ]
    assert FILTERS.ovms_media_stale(found, root, media) == ["/data/media/ca.key", "/data/media/old"]
    linked = [
        {"path": "/data/media/frames", "islnk": True},
        {"path": "/data/media/media.json", "isdir": True},
    ]
    assert FILTERS.ovms_media_stale(linked, root, media) == ["/data/media/frames", "/data/media/media.json"]


# --- `launcher media manifest`: the list of an operator's own media ----------------------------------


def test_media_manifest_lists_regular_files_and_refuses_links(tmp_path):
    from launcher.commands.media import media as media_group

    own = tmp_path / "own"
    (own / "clips").mkdir(parents=True)
    (own / "clips" / "a.mp4").write_bytes(b"a")
    result = CliRunner().invoke(media_group, ["manifest", str(own)])
    assert result.exit_code == 0, result.output
    record = json.loads((own / "media.json").read_text(encoding="utf-8"))
    assert record["files"] == {"clips/a.mp4": _sha(b"a")}
    assert LOOKUP.media_files(str(own), manifest="media.json")["files"][0]["name"] == "clips/a.mp4"
    (own / "clips" / "b.mp4").hardlink_to(_pki(tmp_path))
    with pytest.raises(LauncherError, match=r"'clips/b\.mp4' is a hard link"):
        write_manifest(own)
    (own / "clips" / "b.mp4").unlink()
    (own / "clips" / "b.mp4").symlink_to(tmp_path / "certs" / "ca" / "ca.key")
    with pytest.raises(LauncherError, match=r"'clips/b\.mp4' is a symbolic link"):
        write_manifest(own)


# --- hard links in a local profile: the client's loader (what `launcher validate` runs) -----------------


def _profile(root: Path) -> Path:
    profile = root / "profiles" / "person-detection"
    profile.parent.mkdir(parents=True)
    subprocess.run(
        ["cp", "-r", str(PROJECT_ROOT / "profiles" / "person-detection"), str(profile)], check=True
    )
    return profile


def test_the_loader_refuses_a_hard_link_in_a_local_profile(tmp_path):
    profile = _profile(tmp_path)
    load_profile(profile, environ={})  # the shipped profile loads
    (profile / "extra").mkdir()
    (profile / "extra" / "notes.txt").hardlink_to(_pki(tmp_path))
    with pytest.raises(ClientError) as raised:
        load_profile(profile, environ={})
    error = raised.value
    assert error.message.startswith("'extra/notes.txt': a hard link (2 names for one file)")
    assert error.file == str(profile / "extra" / "notes.txt")
    assert error.fix and "cp --remove-destination" in error.fix


def test_validate_refuses_a_hard_link_in_a_local_profile(tmp_path):
    """`launcher validate` on the shipped single-system inventory, its profile folder holding a hard
    link to a file outside it."""
    from launcher.validate import validate

    profile = _profile(tmp_path)
    inventory = PROJECT_ROOT / "inventories" / "localhost"
    extra = {"ovms_client_profiles_src": str(profile.parent)}
    assert validate([inventory], extra).ok
    (profile / "notes.txt").hardlink_to(_pki(tmp_path))
    report = validate([inventory], extra)
    assert [(p.file, p.message) for p in report.problems] == [
        (
            str(profile / "notes.txt"),
            "profile 'person-detection': 'notes.txt': a hard link (2 names for one file); a profile holds "
            "regular files and folders only, each file with one name: a hard link would ship the file it "
            "shares (a key of the controller, say) to the hosts, as a staged profile's would be refused",
        )
    ]


# --- the role's tasks, run by ansible-playbook on this machine (no container involved) --------------------


def _main_when(name: str) -> object:
    """The condition under which the role's tasks/main.yml includes task file `name` (None: always)."""
    main = yaml.safe_load(
        (PROJECT_ROOT / "roles" / "ovms_client" / "tasks" / "main.yml").read_text(encoding="utf-8")
    )
    for task in main:
        if name in (task.get("ansible.builtin.include_tasks"), task.get("ansible.builtin.import_tasks")):
            return task.get("when")
    raise AssertionError(f"roles/ovms_client/tasks/main.yml does not include {name}")


def _play(tmp_path: Path, tasks_from: list[str], variables: dict) -> subprocess.CompletedProcess:
    """The task files run as tasks/main.yml runs them: in this order, each under main.yml's condition."""
    tasks = []
    for name in tasks_from:
        task = {
            "name": f"Run {name}",
            "ansible.builtin.include_role": {"name": ROLE_FQCN, "tasks_from": name},
        }
        if (when := _main_when(name)) is not None:
            task["when"] = when
        tasks.append(task)
    play = {"hosts": "localhost", "gather_facts": False, "vars": variables, "tasks": tasks}
    # survey.yml asks the Docker engine for the client containers: a fake one answers (none)
    with fake_engine(tmp_path) as engine:
        return run_playbook(tmp_path, play, json_callback=True, extra_env=engine_env(engine))


def _failure(run: subprocess.CompletedProcess) -> str:
    assert run.returncode != 0, run.stdout[-3000:]
    return "\n".join(r.get("msg", "") for r in task_results(run).values() if r.get("failed"))


def _tree(root: Path) -> dict[str, str]:
    found = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        found[str(path.relative_to(root))] = f"{st.st_mode & 0o7777:04o} {st.st_uid}:{st.st_gid}"
    return found


root_only = pytest.mark.skipif(os.geteuid() != 0, reason="the role makes root-owned files: run as root")
MEDIA_TASKS = ["survey.yml", "media_check.yml", "media.yml"]


@pytest.mark.slow
@root_only
def test_the_role_ships_the_list_as_0640_root_client_group_once(tmp_path, request):
    media = _media(tmp_path)
    (media / "unlisted.txt").write_text("stays on the controller", encoding="utf-8")
    # a folder the client's user may pass through (pytest's own are 0700), as a host's data folder is
    data = Path(tempfile.mkdtemp(prefix="ovms-contract-media-")) / "data"
    request.addfinalizer(lambda: shutil.rmtree(data.parent))
    data.parent.chmod(0o755)
    (data / "media").mkdir(parents=True)  # tasks/main.yml "Create the client folders"
    (data / "media" / "ca.key").write_text(SECRET, encoding="utf-8")  # an earlier deploy's file
    variables = {"ovms_client_data_dir": str(data), "ovms_client_media_dir": str(media)}

    first = _play(tmp_path, MEDIA_TASKS, variables)
    assert first.returncode == 0, first.stdout[-3000:]
    group = f"0:{CLIENT_GID}"
    assert _tree(data / "media") == {
        "frames": f"0750 {group}",
        "frames/frame_0000.jpg": f"0640 {group}",
        "frames/frame_0001.jpg": f"0640 {group}",
        "media.json": f"0640 {group}",
        "sample.mp4": f"0640 {group}",
    }
    assert (data / "media" / "media.json").read_bytes() == (media / "media.json").read_bytes()

    second = _play(tmp_path, MEDIA_TASKS, variables)
    assert second.returncode == 0, second.stdout[-3000:]
    results = task_results(second)
    # the host's manifest is the controller's: main.yml does not even include media.yml
    assert results["Run media.yml"].get("skipped"), results["Run media.yml"]
    assert "Copy the sample media" not in results, results["Copy the sample media"]
    assert not any(r.get("changed") for r in results.values())

    # the client's user reads the media through its group
    probe = subprocess.run(
        ["setpriv", f"--reuid={CLIENT_GID}", f"--regid={CLIENT_GID}", "--clear-groups", "cat",
         str(data / "media" / "frames" / "frame_0001.jpg")],
        capture_output=True, check=False,
    )  # fmt: skip
    assert probe.returncode == 0 and probe.stdout == b"jpeg1", probe.stderr


@pytest.mark.slow
@root_only
@pytest.mark.parametrize("plant", ["hardlink", "no-manifest"])
def test_the_role_refuses_a_bad_media_folder_before_creating_anything(tmp_path, plant):
    media = _media(tmp_path)
    if plant == "hardlink":
        (media / "ca.key").hardlink_to(_pki(tmp_path))
        _relist(media, **{"ca.key": (media / "ca.key").read_bytes()})
    else:
        (media / "media.json").unlink()
    data = tmp_path / "data"
    run = _play(
        tmp_path, MEDIA_TASKS, {"ovms_client_data_dir": str(data), "ovms_client_media_dir": str(media)}
    )
    message = _failure(run)
    assert f"ovms_client_media_dir ({media}): " in message
    assert "nothing was copied" in message and f"launcher media manifest {media}" in message
    assert ("'ca.key' is a hard link" if plant == "hardlink" else "it has no media.json") in message
    assert not data.exists()


@pytest.mark.slow
@root_only
def test_the_role_refuses_a_hard_link_in_a_local_profile(tmp_path):
    profile = _profile(tmp_path)
    (profile / "notes.txt").hardlink_to(_pki(tmp_path))
    data = tmp_path / "data"
    run = _play(
        tmp_path,
        ["profile.yml"],
        {
            "ovms_client_data_dir": str(data),
            "ovms_client_profile": {"name": "person-detection", "path": str(profile)},
        },
    )
    message = _failure(run)
    assert (
        f"profile folder {profile} holds {profile}/notes.txt (a hard link, 2 names for one file)" in message
    )
    assert "cp --remove-destination" in message
    assert not data.exists()
