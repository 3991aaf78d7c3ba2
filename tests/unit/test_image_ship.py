"""Images to hosts without a registry (prechecks_images_ship, the play "Images from the controller" of
playbooks/deploy.yml): the manifest `launcher images save` writes (project images and any local image
reference) and the controller's checks of it (links, owners, modes, sizes, the host's free space), which
images a host needs (its roles' own precheck lists, once per host), and the host's side in the module's
functions (receive, verify, load and ID check with the Docker client mocked; a damaged archive, links, a
foreign staging folder); one check-mode `ansible-playbook` run works out the needs of four hosts for real
and sends nothing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from launcher.images import archive
from launcher.images.specs import IMAGES
from launcher.inventory import load_groups
from testbed.paths import PROJECT_ROOT
from testbed.playbook import run_playbook, task_results
from testbed.plugins import load_plugin

pytestmark = pytest.mark.fleet

action = load_plugin("plugins/action/ovms_image_ship.py")
module = load_plugin("plugins/modules/ovms_image_ship.py")

GROUPS = load_groups()
SHA = "ab" * 32
ID = "sha256:" + "cd" * 32
SHIP_TASK = "Ship the images this host lacks from the controller's archives"
DEPLOY = yaml.safe_load((PROJECT_ROOT / "playbooks/deploy.yml").read_text(encoding="utf-8"))
SHIP_PLAY = next(play for play in DEPLOY if play["name"] == "Images from the controller")


def _entry(name: str, body: bytes = b"", **extra: Any) -> dict[str, Any]:
    return {"name": name, "tag": f"ovms-launcher/{name}:dev", "id": ID, "file": f"{name}.tar",
            "sha256": hashlib.sha256(body).hexdigest() if body else SHA, **extra}  # fmt: skip


def _manifest(folder: Path, entries: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "images.json").write_text(json.dumps({"images": entries}), encoding="utf-8")
    return folder


# -- the manifest ----------------------------------------------------------------------------------
def test_save_writes_sha256_id_and_size_and_keeps_the_test_beds_keys(tmp_path: Path, monkeypatch):
    """`launcher images save`: each entry has what the test bed reads (name, tag, id, file, sha256) and
    the archive's size; an unchanged archive is kept (and gains its size)."""
    from launcher.images import docker_cli

    saved = []

    def fake_run(args: list[str], **_kw: Any) -> None:
        saved.append(args[-1])
        Path(args[2]).write_bytes(b"archive of " + args[-1].encode())

    monkeypatch.setattr(docker_cli, "image_id", lambda tag: ID)
    monkeypatch.setattr(docker_cli, "run", fake_run)
    spec = IMAGES["client"]
    archive.save([spec], tmp_path, lambda _m: None)
    entry = json.loads((tmp_path / "images.json").read_text())["images"][0]
    body = (tmp_path / "client.tar").read_bytes()
    assert entry == {"name": "client", "tag": spec.tag, "id": ID, "file": "client.tar",
                     "sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}  # fmt: skip
    # the controller's reading of it (the action plugin) accepts it
    assert action.read_manifest(str(tmp_path)) == [entry]
    # an older manifest without sizes: kept, the size added, nothing saved again
    del entry["size"]
    _manifest(tmp_path, [entry])
    archive.save([spec], tmp_path, lambda _m: None)
    assert saved == [spec.tag]
    assert json.loads((tmp_path / "images.json").read_text())["images"][0]["size"] == len(body)


def test_saving_some_images_keeps_the_other_archives_of_the_folder_listed(tmp_path: Path, monkeypatch):
    from launcher.images import docker_cli

    monkeypatch.setattr(docker_cli, "image_id", lambda tag: ID)
    monkeypatch.setattr(docker_cli, "run", lambda args, **_kw: Path(args[2]).write_bytes(args[-1].encode()))
    archive.save([IMAGES["client"]], tmp_path, lambda _m: None)
    archive.save([IMAGES["tls-proxy"]], tmp_path, lambda _m: None)
    names = [e["name"] for e in json.loads((tmp_path / "images.json").read_text())["images"]]
    assert names == ["tls-proxy", "client"]
    (tmp_path / "client.tar").unlink()  # an archive gone from the folder is no longer listed
    archive.save([IMAGES["tls-proxy"]], tmp_path, lambda _m: None)
    assert [e["name"] for e in json.loads((tmp_path / "images.json").read_text())["images"]] == ["tls-proxy"]


def test_save_writes_any_local_image_reference_under_a_safe_file_name(tmp_path: Path, monkeypatch):
    """`launcher images save DIR --image REF`: the real server image (no project image) is saved, listed
    with tag = REF, under a plain file name the controller accepts; a reference that could be an option
    to docker is refused."""
    from launcher.errors import LauncherError
    from launcher.images import docker_cli

    ref = "openvino/model_server:2026.4.1"
    seen: list[str] = []

    def fake_run(args: list[str], **_kw: Any) -> None:
        seen.append(args[-1])
        Path(args[2]).write_bytes(b"archive of " + args[-1].encode())

    monkeypatch.setattr(docker_cli, "image_id", lambda tag: ID if tag == ref else None)
    monkeypatch.setattr(docker_cli, "run", fake_run)
    archive.save([], tmp_path, lambda _m: None, [ref, ref])
    entries = action.read_manifest(str(tmp_path))
    assert seen == [ref] and len(entries) == 1
    entry = entries[0]
    assert entry["tag"] == ref and entry["name"] == ref and entry["id"] == ID
    assert entry["file"] == archive.reference_archive_name(ref)
    assert "/" not in entry["file"] and entry["file"].startswith("openvino_model_server_2026.4.1-")
    assert archive.reference_archive_name("a/b:c") != archive.reference_archive_name("a_b:c")
    # a deploy ships it: the plan finds the server's image in the manifest
    assert action.plan([ref], entries)[1] == []
    for bad in ("--output=/etc/x", "a b", ""):
        with pytest.raises(LauncherError, match="not an image reference"):
            archive.save([], tmp_path, lambda _m: None, [bad])
    with pytest.raises(LauncherError, match="pull or load"):
        archive.save([], tmp_path, lambda _m: None, ["other/image:1"])


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ({"file": "../client.tar"}, "images[0].file"),
        ({"file": "sub/client.tar"}, "images[0].file"),
        ({"sha256": "xyz"}, "images[0].sha256"),
        ({"id": "cd" * 32}, "images[0].id"),
        ({"tag": ""}, "images[0].tag"),
    ],
)
def test_a_malformed_manifest_entry_is_refused_naming_the_key(tmp_path: Path, entry: dict, words: str):
    _manifest(tmp_path, [{**_entry("client"), **entry}])
    with pytest.raises(action.ManifestError, match=r"images\.json") as error:
        action.read_manifest(str(tmp_path))
    assert words in str(error.value)
    assert "launcher images save DIR" in str(error.value)


def test_no_manifest_or_a_linked_one_is_refused(tmp_path: Path):
    with pytest.raises(action.ManifestError, match=r"no image manifest.*launcher images save"):
        action.read_manifest(str(tmp_path))
    real = _manifest(tmp_path / "real", [_entry("client")]) / "images.json"
    (tmp_path / "images.json").symlink_to(real)
    with pytest.raises(action.ManifestError, match="links are never followed"):
        action.read_manifest(str(tmp_path))


def test_the_controllers_archive_must_be_a_regular_file_of_the_manifests_size(tmp_path: Path):
    entry = _entry("client", size=5)
    assert "is missing" in action.archive_problem(str(tmp_path), entry)
    (tmp_path / "elsewhere.tar").write_bytes(b"12345")
    (tmp_path / "client.tar").symlink_to(tmp_path / "elsewhere.tar")
    assert "links are never followed" in action.archive_problem(str(tmp_path), entry)
    (tmp_path / "client.tar").unlink()
    (tmp_path / "client.tar").write_bytes(b"123456")
    assert "has 6 bytes, the manifest images.json says 5" in action.archive_problem(str(tmp_path), entry)
    (tmp_path / "client.tar").write_bytes(b"12345")
    assert action.archive_problem(str(tmp_path), entry) == ""


# -- which images a host needs -----------------------------------------------------------------------
def test_roles_of_a_host_are_the_union_of_its_groups_roles_each_once():
    roles = {"servers": ["ovms_server", "ovms_monitoring"], "clients": ["ovms_client", "ovms_monitoring"]}
    groups = {GROUPS["servers"]: ["a"], GROUPS["clients"]: ["a", "b"]}
    assert action.roles_of_host("a", groups, GROUPS, roles) == [
        "ovms_server",
        "ovms_monitoring",
        "ovms_client",
    ]
    assert action.roles_of_host("b", groups, GROUPS, roles) == ["ovms_client", "ovms_monitoring"]
    assert action.roles_of_host("c", groups, GROUPS, roles) == []


def test_the_first_play_ships_for_the_roles_each_prechecks_play_checks():
    """deploy.yml's first play (one task, skipped when the setting is off) lists for each group the
    roles whose precheck the Prechecks plays import on its hosts; the needs come from each of those
    role's tasks/precheck.yml (prechecks_role_images of its import of role prechecks)."""
    assert len(SHIP_PLAY["tasks"]) == 1
    names = [play["name"] for play in DEPLOY]
    # after the remote mode plan (its ovms_common_tls fact says which hosts run the proxy), before
    # every precheck
    assert names.index("Remote mode plan") < names.index(SHIP_PLAY["name"])
    assert names.index(SHIP_PLAY["name"]) < min(i for i, n in enumerate(names) if n.startswith("Prechecks"))
    task = SHIP_PLAY["tasks"][0]
    assert task["when"] == "prechecks_images_ship | default(false) | bool"
    listed = task["ovms.edge.ovms_image_ship"]["roles"]
    assert set(listed) == set(GROUPS)
    prechecked: dict[str, set[str]] = {key: set() for key in GROUPS}
    for play in DEPLOY:
        if not str(play.get("name", "")).startswith("Prechecks"):
            continue
        for task_ in play["tasks"]:
            role = task_["ansible.builtin.import_role"]["name"]
            for key in GROUPS:
                if "{{ ovms_groups." + key + " }}" in play["hosts"]:
                    prechecked[key].add(role)
    assert {k: set(v) for k, v in listed.items()} == prechecked
    roles = {action.role_folder(r) for names in listed.values() for r in names}
    for role in sorted(roles):
        tasks = yaml.safe_load((PROJECT_ROOT / "roles" / role / "tasks/precheck.yml").read_text())
        assert action.precheck_images(tasks), (
            f"roles/{role}/tasks/precheck.yml passes no prechecks_role_images"
        )


def test_precheck_images_keeps_the_conditions_of_the_task_and_its_blocks():
    tasks = [
        {"block": [{"ansible.builtin.import_role": {"name": "ovms.edge.prechecks", "tasks_from": "check"},
                    "vars": {"prechecks_role_images": [{"image": "x"}]}, "when": "b"}],
         "when": ["a"]},
        {"ansible.builtin.import_role": {"name": "other"},
         "vars": {"prechecks_role_images": [{"image": "y"}]}},
    ]  # fmt: skip
    assert action.precheck_images(tasks) == [([{"image": "x"}], ("a", "b"))]


def test_plan_sends_each_needed_image_of_the_manifest_once_and_lists_the_others():
    manifest = [_entry("client"), _entry("tls-proxy")]
    needed = ["ovms-launcher/client:dev", "openvino/model_server:2026.4.1", "ovms-launcher/client:dev"]
    entries, absent = action.plan(needed, manifest)
    assert [e["file"] for e in entries] == ["client.tar"]
    assert absent == ["openvino/model_server:2026.4.1"]


def test_a_host_lacks_an_image_whose_tag_has_another_id():
    entries = [_entry("client"), _entry("tls-proxy"), _entry("monitoring")]
    status = [
        {"tag": "ovms-launcher/client:dev", "present_id": ID, "staged": False},
        {"tag": "ovms-launcher/tls-proxy:dev", "present_id": "sha256:" + "00" * 32, "staged": False},
        {"tag": "ovms-launcher/monitoring:dev", "present_id": None, "staged": True},
    ]
    lacking = action.missing_entries(entries, status)
    assert [(e["file"], e["staged"]) for e in lacking] == [("tls-proxy.tar", False), ("monitoring.tar", True)]


# -- the host's side: staging and refusals -------------------------------------------------------------
def test_staging_is_created_0700_with_its_marker_and_never_chmodded(tmp_path: Path):
    staging = tmp_path / "lib" / "image-staging"
    assert module.ensure_staging(str(staging), create=False) is False
    assert not staging.exists()  # inspect creates nothing
    assert module.ensure_staging(str(staging)) is True
    assert staging.stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in staging.iterdir()) == [module.MARKER]
    staging.chmod(0o755)  # an existing folder that is not 0700 is refused, left as it is
    with pytest.raises(module.Refused, match=r"mode 0755.*nothing in it was changed"):
        module.ensure_staging(str(staging))
    assert staging.stat().st_mode & 0o777 == 0o755


def test_only_a_folder_the_module_created_is_removed(tmp_path: Path):
    mine = tmp_path / "mine"
    module.ensure_staging(str(mine))
    module.remove_if_empty(str(mine))
    assert not mine.exists()
    theirs = tmp_path / "theirs"  # an existing 0700 folder of this user: used, never removed
    theirs.mkdir(mode=0o700)
    assert module.ensure_staging(str(theirs)) is True
    module.remove_if_empty(str(theirs))
    assert theirs.is_dir()


def test_a_linked_or_foreign_staging_folder_is_refused(tmp_path: Path):
    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(module.Refused, match=r"is a link or not a folder.*prechecks_images_staging_dir"):
        module.ensure_staging(str(tmp_path / "link"))
    if os.geteuid() == 0:
        os.chown(tmp_path / "real", 4321, -1)
        with pytest.raises(module.Refused, match="owner uid 4321"):
            module.ensure_staging(str(tmp_path / "real"))


def test_a_staged_link_is_never_followed(tmp_path: Path):
    (tmp_path / "target").write_bytes(b"x")
    (tmp_path / "client.tar").symlink_to(tmp_path / "target")
    with pytest.raises(module.Refused, match="is a link"):
        module.staged_ok(str(tmp_path / "client.tar"), hashlib.sha256(b"x").hexdigest())
    assert module.open_regular(str(tmp_path / "absent.tar")) is None


def test_a_damaged_archive_is_removed_and_refused_naming_the_archive_and_the_fix(tmp_path: Path):
    body = b"the archive as saved"
    entry = _entry("client", body)
    staged = tmp_path / "client.tar"
    staged.write_bytes(b"the archive as saved, bytes flipped")
    with pytest.raises(module.Refused) as error:
        module.verified_fd(str(staged), entry)
    message = str(error.value)
    assert "archive client.tar (image ovms-launcher/client:dev)" in message
    assert "nothing was loaded" in message
    assert "launcher images save DIR" in message
    assert not staged.exists()


def test_an_intact_staged_archive_is_verified_and_read_from_its_start(tmp_path: Path):
    body = b"the archive as saved"
    staged = tmp_path / "client.tar"
    staged.write_bytes(body)
    assert module.staged_ok(str(staged), hashlib.sha256(body).hexdigest())
    fd = module.verified_fd(str(staged), _entry("client", body))
    try:
        assert os.read(fd, 100) == body
    finally:
        os.close(fd)


def test_receive_copies_into_a_new_0600_file_hashing_it_and_removes_the_transfer(tmp_path: Path):
    body = b"archive"
    src = tmp_path / "tmp" / "client.tar"
    src.parent.mkdir()
    src.write_bytes(body)
    dest = tmp_path / "staging" / "client.tar"
    dest.parent.mkdir(mode=0o700)
    (dest.parent / "old").write_bytes(b"old")
    dest.symlink_to(dest.parent / "old")  # replaced, never written through
    fd = module.receive(str(src), str(dest), _entry("client", body))
    try:
        assert os.read(fd, 100) == body  # the descriptor loaded is the copy just hashed
        info = os.fstat(fd)
        assert info.st_nlink == 1 and info.st_uid == os.geteuid() and info.st_mode & 0o777 == 0o600
    finally:
        os.close(fd)
    assert not src.exists()
    assert dest.read_bytes() == body and not dest.is_symlink()
    assert (dest.parent / "old").read_bytes() == b"old"


def test_receive_refuses_a_damaged_transfer_and_keeps_nothing(tmp_path: Path):
    src = tmp_path / "client.tar"
    src.write_bytes(b"flipped")
    dest = tmp_path / "staging.tar"
    with pytest.raises(module.Refused, match="nothing was loaded"):
        module.receive(str(src), str(dest), _entry("client", b"archive"))
    assert not dest.exists() and not src.exists()


def test_a_staged_archive_with_a_second_name_is_refused(tmp_path: Path):
    body = b"archive"
    (tmp_path / "client.tar").write_bytes(body)
    os.link(tmp_path / "client.tar", tmp_path / "other")
    with pytest.raises(module.Refused, match="has 2 names"):
        module.verified_fd(str(tmp_path / "client.tar"), _entry("client", body))


# -- the host's side: module.load() with the Docker client mocked ---------------------------------------
class FakeDocker:
    """What module.load() asks of AnsibleDockerClient: find_image, the load endpoint, untagging."""

    def __init__(self, ids: dict[str, str], loads_as: str | None = None, fail: bool = False) -> None:
        self.ids = ids  # tag -> image ID the engine has
        self.loads_as = loads_as  # the ID a load gives its tag (None: the manifest's)
        self.fail = fail
        self.loaded: list[bytes] = []
        self.deleted: list[str] = []
        self._pending = ""

    def find_image(self, repository: str, version: str) -> dict[str, str] | None:
        tag = f"{repository}:{version}"
        return {"Id": self.ids[tag]} if tag in self.ids else None

    def _url(self, path: str, *args: str) -> str:
        return path.format(*args)

    def _post(self, url: str, data: Any, stream: bool) -> Any:
        assert url == "/images/load" and stream
        self.loaded.append(data.read())
        return url

    def _stream_helper(self, res: Any, decode: bool) -> list[dict[str, str]]:
        if self.fail:
            return [{"error": "no space left on device"}]
        return [{"stream": "Loaded image: x\n"}]

    def _delete(self, url: str) -> str:
        self.deleted.append(url.removeprefix("/images/"))
        self.ids.pop(url.removeprefix("/images/"), None)
        return url

    def _raise_for_status(self, res: Any) -> None:
        return None


def _loads(client: FakeDocker, entry: dict[str, Any], body: bytes) -> None:
    """The load stores the tag's new ID, as the engine does."""
    original = client._post

    def post(url: str, data: Any, stream: bool) -> Any:
        assert data.read() == body
        data.seek(0)
        client.ids[entry["tag"]] = client.loads_as or entry["id"]
        return original(url, data, stream)

    client._post = post  # type: ignore[method-assign]


@pytest.fixture
def tags(monkeypatch: pytest.MonkeyPatch) -> None:
    """community.docker's parse_repository_tag, when the collection is not importable here."""
    if not hasattr(module, "parse_repository_tag"):
        monkeypatch.setattr(module, "parse_repository_tag", lambda t: tuple(t.rsplit(":", 1)), raising=False)


def _host(tmp_path: Path, body: bytes, name: str = "client") -> tuple[dict[str, Any], Path, Path]:
    entry = _entry(name, body)
    src = tmp_path / "ansible-tmp" / entry["file"]
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(body)
    return entry, src, tmp_path / "staging"


def test_load_receives_verifies_loads_and_checks_the_id(tmp_path: Path, tags: None):
    body = b"the client archive"
    entry, src, staging = _host(tmp_path, body)
    client = FakeDocker({})
    _loads(client, entry, body)
    done = module.load(client, str(staging), entry, str(src))
    assert done["tag"] == entry["tag"] and done["id"] == ID
    assert client.loaded == [body]
    assert not src.exists() and not staging.exists()  # the copy and the folder it created are gone


def test_an_id_mismatch_untags_what_was_loaded_and_refuses(tmp_path: Path, tags: None):
    body = b"the client archive"
    entry, src, staging = _host(tmp_path, body)
    client = FakeDocker({}, loads_as="sha256:" + "ee" * 32)
    _loads(client, entry, body)
    with pytest.raises(module.Refused, match=r"has ID sha256:e+.*the tag was removed again.*images save DIR"):
        module.load(client, str(staging), entry, str(src))
    assert client.deleted == [entry["tag"]]
    assert entry["tag"] not in client.ids
    assert not (staging / entry["file"]).exists()


def test_a_verified_staged_archive_is_loaded_without_a_transfer(tmp_path: Path, tags: None):
    body = b"the client archive"
    entry, _src, staging = _host(tmp_path, body)
    module.ensure_staging(str(staging))
    (staging / entry["file"]).write_bytes(body)
    (staging / entry["file"]).chmod(0o600)
    client = FakeDocker({})
    _loads(client, entry, body)
    found = module.inspect(client, str(staging), [entry], str(tmp_path))
    assert found["images"] == [{"tag": entry["tag"], "present_id": None, "staged": True}]
    assert isinstance(found["free"]["staging"], int) and isinstance(found["free"]["tmp"], int)
    assert module.load(client, str(staging), entry, None)["id"] == ID
    assert client.loaded == [body] and not staging.exists()


def test_one_image_failing_leaves_the_others_to_load(tmp_path: Path, tags: None):
    """The action calls load once per image: a damaged archive is refused, the next one loads."""
    good, bad = b"camera archive", b"client archive"
    bad_entry, bad_src, staging = _host(tmp_path, bad)
    bad_src.write_bytes(b"client archive, damaged")
    good_entry, good_src, _staging = _host(tmp_path, good, "camera-sim")
    client = FakeDocker({})
    _loads(client, good_entry, good)
    with pytest.raises(module.Refused, match=r"client\.tar"):
        module.load(client, str(staging), bad_entry, str(bad_src))
    assert client.loaded == []
    assert module.load(client, str(staging), good_entry, str(good_src))["tag"] == good_entry["tag"]
    assert client.loaded == [good]


def test_a_failed_docker_load_is_refused_and_the_verified_copy_stays_staged(tmp_path: Path, tags: None):
    body = b"the client archive"
    entry, src, staging = _host(tmp_path, body)
    with pytest.raises(module.Refused, match="no space left"):
        module.load(FakeDocker({}, fail=True), str(staging), entry, str(src))
    assert module.staged_ok(str(staging / entry["file"]), entry["sha256"])  # the next run loads it


# -- the controller's checks: owners and modes, room on the host ----------------------------------------
def test_a_group_writable_folder_manifest_or_archive_is_refused(tmp_path: Path):
    folder = _manifest(tmp_path / "archives", [_entry("client", size=5)])
    (folder / "client.tar").write_bytes(b"12345")
    (folder / "client.tar").chmod(0o644)
    assert action.read_manifest(str(folder))
    (folder / "images.json").chmod(0o664)
    with pytest.raises(action.ManifestError, match=r"images\.json is writable by its group or others.*go-w"):
        action.read_manifest(str(folder))
    (folder / "images.json").chmod(0o644)
    folder.chmod(0o777)
    with pytest.raises(action.ManifestError, match="writable by its group or others"):
        action.read_manifest(str(folder))
    folder.chmod(0o755)
    (folder / "client.tar").chmod(0o666)
    assert "writable by its group or others" in action.archive_problem(str(folder), _entry("client", size=5))


def test_an_archive_the_host_has_no_room_for_is_refused_naming_the_setting():
    entry = _entry("client")
    assert action.room_problem(entry, 100, {"staging": 200, "tmp": 100}) == ""
    message = action.room_problem(entry, 100, {"staging": 199, "tmp": 1000})
    assert "needs 200 bytes free" in message and "prechecks_images_staging_dir" in message
    assert "ansible_remote_tmp" in action.room_problem(entry, 100, {"staging": 1000, "tmp": 99})
    assert action.room_problem(entry, 100, {}) == ""  # nothing reported: not refused here


def test_role_folder_takes_only_this_collections_roles():
    assert action.role_folder("ovms.edge.ovms_server") == "ovms_server"
    assert action.role_folder("ovms_server") == "ovms_server"
    with pytest.raises(Exception, match=r"not a role of ovms\.edge"):
        action.role_folder("other.coll.role")


# -- the task, for real (check mode: nothing is sent) -------------------------------------------------
def _ship_play(**extra: Any) -> dict[str, Any]:
    return {
        "name": "ship",
        "hosts": "all",
        "gather_facts": False,
        "vars_files": [str(PROJECT_ROOT / "playbooks/vars/groups.yml")],
        "check_mode": True,
        "tasks": SHIP_PLAY["tasks"],
        **extra,
    }


def test_check_mode_reports_what_each_host_needs_and_would_receive(tmp_path: Path):
    """Four hosts on the local connection: each needs the images of its groups' roles, named by their
    preckecks (templated with the roles' defaults and the inventory), an image two roles run once;
    check mode sends nothing and lists each image it would ship; an image the folder has no archive of
    is left to the role prechecks; with the setting off the task is skipped."""
    names = ("ovms-double", "local-access", "client", "camera-sim", "tls-proxy", "monitoring")
    # image IDs no engine has: every host lacks every image
    folder = _manifest(tmp_path / "archives", [_entry(n) for n in names])
    local = {"ansible_connection": "local"}
    inventory = {
        "all": {
            "vars": {
                "prechecks_images_ship": True,
                "prechecks_images_archive_dir": str(folder),
                "prechecks_images_staging_dir": str(tmp_path / "staging"),
            },
            "children": {
                GROUPS["servers"]: {
                    "hosts": {
                        "both": {**local, "ovms_server_image": "ovms-launcher/ovms-double:dev"},
                        "server-real": {**local, "ovms_server_image": "openvino/model_server:2026.4.1"},
                    }
                },
                GROUPS["clients"]: {
                    "hosts": {
                        "both": local,
                        "client": {**local, "prechecks_images": [{"image": "ovms-launcher/monitoring:dev"}]},
                    }
                },
                GROUPS["cameras"]: {"hosts": {"camera": local}},
                GROUPS["monitoring"]: {"hosts": {}},
            },
        }
    }
    done = run_playbook(tmp_path, _ship_play(), inventory, json_callback=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    report = json.loads(done.stdout)
    results = {host: res for play in report["plays"] for task in play["tasks"]
               for host, res in task["hosts"].items()}  # fmt: skip
    tag = "ovms-launcher/{}:dev".format
    needs = {host: sorted(res["needed"]) for host, res in results.items()}
    assert all(len(res["needed"]) == len(set(res["needed"])) for res in results.values())
    # both serves the client host "client" over mTLS (the first server): its proxy too
    assert needs["both"] == sorted(tag(n) for n in ("ovms-double", "local-access", "tls-proxy", "client"))
    assert sorted(i["item"] for i in results["both"]["results"]) == needs["both"]
    assert results["both"]["changed"] is True
    assert needs["server-real"] == ["openvino/model_server:2026.4.1", tag("local-access")]
    assert results["server-real"]["not_in_archive"] == ["openvino/model_server:2026.4.1"]
    assert needs["client"] == [tag("client"), tag("monitoring")]
    assert needs["camera"] == [tag("camera-sim")]
    assert all(r["shipped"] == [] and r["loaded"] == [] for r in results.values())
    assert not (tmp_path / "staging").exists()

    inventory["all"]["vars"]["prechecks_images_ship"] = False
    done = run_playbook(tmp_path, _ship_play(), inventory, json_callback=True)
    assert done.returncode == 0, done.stdout[-3000:]
    assert task_results(done)[SHIP_TASK].get("skipped") is True


def test_shipping_without_an_archive_folder_fails_naming_the_setting(tmp_path: Path):
    inventory = {"all": {"hosts": {"client": {"ansible_connection": "local"}},
                         "vars": {"prechecks_images_ship": True}}}  # fmt: skip
    inventory["all"]["children"] = {GROUPS["clients"]: {"hosts": {"client": {}}}}
    done = run_playbook(tmp_path, _ship_play(), inventory, json_callback=True)
    assert done.returncode != 0
    result = task_results(done)[SHIP_TASK]
    assert "prechecks_images_archive_dir is empty" in result["msg"]
    assert "launcher images save DIR" in result["msg"]


def test_a_host_with_every_image_does_nothing(tmp_path: Path):
    """Not in check mode: the client image of this machine's engine, listed with its own ID, is there:
    the task changes nothing, sends nothing and creates no staging folder."""
    from launcher.images import docker_cli

    tag = IMAGES["client"].tag
    image = docker_cli.image_id(tag) if shutil.which("docker") else None
    if not image:
        pytest.skip(f"{tag} is not on this machine's engine")
    folder = _manifest(tmp_path / "archives", [{**_entry("client"), "id": image}])
    inventory = {
        "all": {
            "vars": {
                "prechecks_images_ship": True,
                "prechecks_images_archive_dir": str(folder),
                "prechecks_images_staging_dir": str(tmp_path / "staging"),
            },
            "children": {GROUPS["clients"]: {"hosts": {"client": {"ansible_connection": "local"}}}},
        }
    }
    done = run_playbook(tmp_path, _ship_play(check_mode=False), inventory, json_callback=True)
    assert done.returncode == 0, done.stdout[-3000:]
    result = task_results(done)[SHIP_TASK]
    assert result["changed"] is False and result["missing"] == [] and result["shipped"] == []
    assert result["msg"] == "every image is on the host"
    assert not (tmp_path / "staging").exists()


@pytest.mark.parametrize("staging", ["/opt", "/", "relative/staging"])
def test_a_system_staging_folder_is_refused_before_the_host_is_touched(tmp_path: Path, staging: str):
    """Under a plain ansible-playbook or AWX run the play imports no role: the task applies role
    prechecks' rules itself (ovms_common's data_dir rule), before any call of the module."""
    folder = _manifest(tmp_path / "archives", [_entry("client")])
    inventory = {
        "all": {
            "vars": {
                "prechecks_images_ship": True,
                "prechecks_images_archive_dir": str(folder),
                "prechecks_images_staging_dir": staging,
            },
            "children": {GROUPS["clients"]: {"hosts": {"client": {"ansible_connection": "local"}}}},
        }
    }
    done = run_playbook(tmp_path, _ship_play(check_mode=False), inventory, json_callback=True)
    assert done.returncode != 0
    result = task_results(done)[SHIP_TASK]
    assert "prechecks_images_staging_dir" in result["msg"] and "nothing was done on the host" in result["msg"]
    assert "needed" not in result  # refused before the manifest and the host


def test_the_save_command_takes_image_references(tmp_path: Path, monkeypatch):
    """`launcher images save DIR --image REF`: only the references when no NAMES are given."""
    from click.testing import CliRunner

    from launcher.commands import images as command
    from launcher.images import docker_cli

    calls: list[tuple[list[str], tuple[str, ...]]] = []
    monkeypatch.setattr(docker_cli, "ensure_engine", lambda: "27.0")

    def save(specs: list[Any], folder: Path, say: Any, refs: tuple[str, ...] = ()) -> None:
        calls.append(([spec.name for spec in specs], tuple(refs)))

    monkeypatch.setattr(archive, "save", save)
    ref = "openvino/model_server:2026.4.1"
    runner = CliRunner()
    assert runner.invoke(command.images, ["save", str(tmp_path), "--image", ref]).exit_code == 0
    assert runner.invoke(command.images, ["save", str(tmp_path), "client", "--image", ref]).exit_code == 0
    assert calls == [([], (ref,)), (["client"], (ref,))]


def test_ee_mounts_the_inventorys_archive_folder_read_only(tmp_path: Path):
    """`launcher deploy --ee`: prechecks_images_archive_dir of the inventory is mounted at its own path."""
    from types import SimpleNamespace

    from launcher.runner import isolation

    host = SimpleNamespace(name="h", vars={"prechecks_images_archive_dir": str(tmp_path)})
    mounts = isolation._inventory_path_mounts(SimpleNamespace(hosts={"h": host}, source_label="inv"))  # type: ignore[arg-type]
    assert [(m.source, m.target, m.read_only) for m in mounts] == [(tmp_path, str(tmp_path), True)]
