"""A profile's remote copy (`source: {type: url, sha256}`) on a real engine: fetched on the host from a
loopback HTTP server the test runs, validated by the client image (`--check`), swapped in with the
last good copy kept; a wrong sha256 fails the host and leaves the copy and the running client as
they were; an archive holding a link is refused the same way, and so is a profile reading a video
device the host lacks. A git source is checked out at its pinned
tag and refused when the tag does not resolve to the pinned commit or the source names a branch. Runs the
ovms_client role alone (single mode, names of its own)."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from launcher.content import content
from launcher.runner.strategy import strategy_envvars
from testbed.dockerutil import docker, engine_available, image_exists, inspect
from testbed.http import serve_folder

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PROFILE = Path(__file__).resolve().parents[2] / "profiles" / "person-detection"
PLAYBOOK = """
- name: Client
  hosts: all
  gather_facts: false
  roles:
    - role: ovms.edge.ovms_client
"""


def _archive(path: Path, note: str) -> str:
    """profile.yaml (+ profile.env) of the project's person-detection profile, and a marker file."""
    with tarfile.open(path, "w:gz") as tar:
        for item in sorted(PROFILE.iterdir()):
            tar.add(item, arcname=item.name)
        data = note.encode()
        info = tarfile.TarInfo("NOTE")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on 127.0.0.1 (stopped at teardown) and its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    with serve_folder(root) as base:
        yield root, base


@pytest.fixture
def names() -> Iterator[dict[str, str]]:
    if not engine_available() or not image_exists("ovms-launcher/client:dev"):
        pytest.skip("needs the Docker engine and ovms-launcher/client:dev")
    ident = uuid.uuid4().hex[:8]
    names = {"prefix": f"ovms-ps-{ident}", "network": f"ovms-ps-{ident}"}
    try:
        yield names
    finally:
        found = docker("ps", "-aq", "--filter", f"name={names['prefix']}-", check=False).stdout.split()
        if found:
            docker("rm", "-f", *found, check=False)
        docker("network", "rm", names["network"], check=False)


def _run(tmp_path: Path, names: dict, url: str, sha: str) -> subprocess.CompletedProcess:
    return _run_source(tmp_path, names, {"type": "url", "url": url, "sha256": sha})


def _run_source(tmp_path: Path, names: dict, source: dict) -> subprocess.CompletedProcess:
    """Run the client role with one profile `cams` from `source`."""
    inventory = tmp_path / "hosts.yml"
    variables = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "ovms_client_data_dir": str(tmp_path / "client"),
        "ovms_client_network": names["network"],
        "ovms_client_container_prefix": names["prefix"],
        "ovms_client_media_dir": "",
        "ovms_client_restart_policy": "no",
        "ovms_client_profiles": [{"name": "cams", "source": source}],
    }
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"ps-host": variables}}}))
    playbook = tmp_path / "client.yml"
    playbook.write_text(PLAYBOOK)
    # the launcher's strategy, as a deploy runs the role
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(content().collections_path), "ANSIBLE_NOCOLOR": "1",
           **strategy_envvars()}  # fmt: skip
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), str(playbook)],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip


def _outcome(output: str, task: str) -> str:
    """ok / changed / skipping / fatal of the first task whose name starts with `task`."""
    lines = output.splitlines()
    header = f"TASK [ovms.edge.ovms_client : {task}"
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    return next(line.split(":")[0] for line in lines[start + 1 :] if line.split(":")[0] in OUTCOMES)


OUTCOMES = {"ok", "changed", "skipping", "fatal"}


def test_url_profile_is_verified_validated_and_swapped(tmp_path, served, names):
    www, base = served
    profiles = tmp_path / "client" / "profiles"
    container = f"{names['prefix']}-cams-1"

    sha1 = _archive(www / "v1.tar.gz", "one")
    first = _run(tmp_path, names, f"{base}/v1.tar.gz", sha1)
    assert first.returncode == 0, first.stdout[-4000:]
    assert (profiles / "cams" / "NOTE").read_text() == "one"
    assert (profiles / "cams" / "profile.yaml").is_file()
    started = inspect(container)
    assert any(m["Source"] == str(profiles / "cams") for m in started["Mounts"])

    # the same source again: nothing downloaded, validated or swapped (the client itself may have
    # exited meanwhile: no server runs in this test)
    again = _run(tmp_path, names, f"{base}/v1.tar.gz", sha1)
    assert again.returncode == 0, again.stdout[-4000:]
    assert _outcome(again.stdout, "Download the profile archive") == "ok"
    assert _outcome(again.stdout, "Empty the staging folder") == "skipping"
    assert _outcome(again.stdout, "Swap in the new copy") == "skipping"
    assert inspect(container)["Id"] == started["Id"]

    # a wrong checksum: this host fails clearly; the copy and the running client are untouched
    _archive(www / "v2.tar.gz", "two")
    wrong = _run(tmp_path, names, f"{base}/v2.tar.gz", "0" * 64)
    assert wrong.returncode != 0
    assert "checksum" in wrong.stdout.lower(), wrong.stdout[-4000:]
    assert (profiles / "cams" / "NOTE").read_text() == "one"
    assert inspect(container)["Id"] == started["Id"]

    # an archive whose profile is invalid: refused by the client's own validation, copy untouched
    bad = www / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        data = b"name: [unclosed\n"
        info = tarfile.TarInfo("profile.yaml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    refused = _run(tmp_path, names, f"{base}/bad.tar.gz", hashlib.sha256(bad.read_bytes()).hexdigest())
    assert refused.returncode != 0
    assert "not a valid profile" in refused.stdout, refused.stdout[-4000:]
    assert (profiles / "cams" / "NOTE").read_text() == "one"
    assert inspect(container)["Id"] == started["Id"]

    # an archive whose profile reads a video device this host lacks: refused before the swap, with
    # the message a local copy gets (host, profile, device), copy and client untouched
    usb = www / "usb.tar.gz"
    with tarfile.open(usb, "w:gz") as tar:
        data = yaml.safe_load((PROFILE / "profile.yaml").read_text())
        data["inputs"] = ["/dev/video87"]
        text = yaml.safe_dump(data).encode()
        info = tarfile.TarInfo("profile.yaml")
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
    assert not Path("/dev/video87").exists()
    lacking = _run(tmp_path, names, f"{base}/usb.tar.gz", hashlib.sha256(usb.read_bytes()).hexdigest())
    assert lacking.returncode != 0
    assert "host ps-host: profile cams reads video device /dev/video87" in lacking.stdout, lacking.stdout[
        -4000:
    ]
    assert (profiles / "cams" / "NOTE").read_text() == "one"
    assert inspect(container)["Id"] == started["Id"]

    # the right checksum of a new archive: swapped in, the last good copy kept, the client recreated
    sha2 = hashlib.sha256((www / "v2.tar.gz").read_bytes()).hexdigest()
    swapped = _run(tmp_path, names, f"{base}/v2.tar.gz", sha2)
    assert swapped.returncode == 0, swapped.stdout[-4000:]
    assert (profiles / "cams" / "NOTE").read_text() == "two"
    assert (profiles / ".previous" / "cams" / "NOTE").read_text() == "one"
    assert inspect(container)["Id"] != started["Id"]
    # the copy is plain files the client's group may read, not the world (it may hold credentials)
    assert oct((profiles / "cams" / "profile.yaml").stat().st_mode & 0o777) == "0o640"
    assert oct((profiles / "cams").stat().st_mode & 0o777) == "0o750"


def test_an_archive_holding_a_link_is_refused_and_nothing_escapes(tmp_path, served, names):
    www, base = served
    profiles = tmp_path / "client" / "profiles"
    sha1 = _archive(www / "v1.tar.gz", "one")
    assert _run(tmp_path, names, f"{base}/v1.tar.gz", sha1).returncode == 0
    secret = tmp_path / "secret"
    secret.write_text("key")
    secret.chmod(0o600)

    evil = www / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        for item in sorted(PROFILE.iterdir()):
            tar.add(item, arcname=item.name)
        link = tarfile.TarInfo("NOTE")
        link.type = tarfile.SYMTYPE
        link.linkname = str(secret)
        tar.addfile(link)
    refused = _run(tmp_path, names, f"{base}/evil.tar.gz", hashlib.sha256(evil.read_bytes()).hexdigest())
    assert refused.returncode != 0
    assert "refused, nothing was staged" in refused.stdout, refused.stdout[-4000:]
    assert "link" in refused.stdout
    assert (profiles / "cams" / "NOTE").read_text() == "one"
    assert not (profiles / ".work" / "cams" / "staging").exists()
    assert oct(secret.stat().st_mode & 0o777) == "0o600" and secret.read_text() == "key"


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    command = ["git", "-C", str(repo), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout.strip()


def test_git_profile_is_checked_out_at_its_pinned_ref(tmp_path, names):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    for item in PROFILE.iterdir():
        (repo / item.name).write_bytes(item.read_bytes())
    (repo / "NOTE").write_text("v1")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "v1")
    _git(repo, "tag", "v1")
    (repo / "NOTE").write_text("unreleased")
    _git(repo, "commit", "-q", "-am", "later")

    tagged = _git(repo, "rev-parse", "v1^{commit}")
    later = _git(repo, "rev-parse", "HEAD")

    source = {"type": "git", "repo": f"file://{repo}", "version": "v1", "commit": tagged}
    first = _run_source(tmp_path, names, source)
    assert first.returncode == 0, first.stdout[-4000:]
    profiles = tmp_path / "client" / "profiles"
    assert (profiles / "cams" / "NOTE").read_text() == "v1"  # the tag, not the branch head
    assert not (profiles / "cams" / ".git").exists()
    again = _run_source(tmp_path, names, source)
    assert again.returncode == 0 and _outcome(again.stdout, "Swap in the new copy") == "skipping"

    # the tag no longer resolves to the reviewed commit: refused, the copy stays
    moved = _run_source(tmp_path, names, {**source, "commit": later})
    assert moved.returncode != 0 and "the ref moved" in moved.stdout, moved.stdout[-4000:]
    assert (profiles / "cams" / "NOTE").read_text() == "v1"
    # a branch without a pinned commit, or a repo git would read as an option: refused before any git
    branch = _run_source(tmp_path, names, {"type": "git", "repo": f"file://{repo}", "version": "master"})
    assert branch.returncode != 0 and "does not pin the profile" in branch.stdout, branch.stdout[-4000:]
    option = _run_source(tmp_path, names, {**source, "repo": f"--upload-pack=touch {tmp_path}/pwned"})
    assert option.returncode != 0 and "git would read it as an option" in option.stdout, option.stdout[-4000:]
    assert not (tmp_path / "pwned").exists()
    assert (profiles / "cams" / "NOTE").read_text() == "v1"
