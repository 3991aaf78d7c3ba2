"""Issue 21, L2: staging an untrusted profile (plugins/modules/ovms_client_stage.py) is bounded whatever
the source claims. A tar archive's headers are walked before tarfile parses them (an extended header
above 4 KiB is refused unread), members are counted and their names and bytes bounded, messages are
cut; a zip's central directory is bounded the same way; a URL download streams with a byte cap and is
refused before its checksum is computed on more; a git source is checked out without its submodules.
The archives are crafted byte by byte; memory is measured in a subprocess (ru_maxrss)."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from testbed.paths import PROJECT_ROOT
from testbed.playbook import run_playbook
from testbed.plugins import load_plugin

pytestmark = [pytest.mark.contract]

MODULE = PROJECT_ROOT / "plugins" / "modules" / "ovms_client_stage.py"
# registered: its dataclasses look their module up
stage_module = load_plugin(MODULE, "ovms_client_stage_contract", register=True)
Refused = stage_module.Refused

BIN = Path(sys.executable).parent
COLLECTIONS = PROJECT_ROOT / ".ansible" / "collections"
MiB = 1 << 20
BOMB = 256 * MiB  # the review's long-name header: 1 GiB of memory and a 268 MB message before
MEMORY_BOUND = 32 * MiB  # what staging any of these archives may add to the process's peak
MESSAGE_BOUND = 600  # characters of a refusal's message


def _header(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0) -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode = kind, size, 0o644
    return info.tobuf(tarfile.USTAR_FORMAT)


def _padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


def _pax(records: dict[str, str], kind: bytes = tarfile.XHDTYPE) -> bytes:
    """A pax header (x: the next member's, g: global) holding `records`: its header and padded data."""
    body = b""
    for key, value in records.items():
        rest = f" {key}={value}\n"
        length = len(rest) + len(str(len(rest)))
        if len(str(length)) + len(rest) != length:
            length += 1
        body += f"{length}{rest}".encode()
    return _header("././@PaxHeader", kind, len(body)) + _padded(body)


def _bomb(path: Path, kind: bytes, size: int = BOMB) -> Path:
    """A small .tar.gz whose first header is an extended header of `size` bytes (a GNU long name, or
    a pax header holding one path record), then one empty file."""
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) as out:
        out.write(_header("././@LongLink", kind, size))
        if kind == tarfile.XHDTYPE:
            prefix = f"{size} path=".encode()
            out.write(prefix)
            left = size - len(prefix) - 1
        else:
            left = size
        chunk = b"a" * MiB
        while left:
            step = min(left, len(chunk))
            out.write(chunk[:step])
            left -= step
        if kind == tarfile.XHDTYPE:
            out.write(b"\n")
        out.write(bytes(-size % 512))
        out.write(_header("profile.yaml") + bytes(1024))
    return path


def _measured(*call: str) -> dict:
    """Run stage_module.<call[0]>(*call[1:]) in a fresh Python; its outcome, the peak memory it added
    (ru_maxrss after minus before) and its duration."""
    script = textwrap.dedent(
        """
        import importlib.util, json, resource, sys, time
        spec = importlib.util.spec_from_file_location("stage", sys.argv[1])
        module = importlib.util.module_from_spec(spec)
        sys.modules["stage"] = module
        spec.loader.exec_module(module)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.monotonic()
        try:
            getattr(module, sys.argv[2])(*sys.argv[3:])
            outcome, message = "staged", ""
        except module.Refused as exc:
            outcome, message = "refused", str(exc)
        except Exception as exc:
            outcome, message = type(exc).__name__, str(exc)
        seconds = time.monotonic() - start
        added = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
        print(json.dumps({"outcome": outcome, "length": len(message), "message": message[:2000],
                          "added": added, "seconds": seconds}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(MODULE), *call],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- tar ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE], ids=["gnu-longname", "pax"])
def test_a_long_header_bomb_is_refused_unread_with_a_short_message(tmp_path, kind):
    archive = _bomb(tmp_path / "bomb.tar.gz", kind)
    assert archive.stat().st_size < 2 * MiB
    result = _measured("stage", str(archive), str(tmp_path / "staging"))
    assert result["outcome"] == "refused", result
    assert f"extended header (type {kind.decode()!r}) of {BOMB} bytes" in result["message"]
    assert result["length"] < MESSAGE_BOUND, result["message"][:MESSAGE_BOUND]
    assert result["added"] < MEMORY_BOUND, f"{result['added'] / MiB:.0f} MiB"
    assert result["seconds"] < 5, result
    assert not (tmp_path / "staging").exists()


def test_tarfile_itself_never_reads_more_than_a_chunk_at_once(tmp_path):
    """The second fence: were a header to slip past the walk, tarfile's own read of it is refused."""
    archive = _bomb(tmp_path / "bomb.tar.gz", tarfile.GNUTYPE_LONGNAME, 4 * MiB)
    with gzip.open(archive, "rb") as stream:
        window = stage_module.Window(stream, end=8 * MiB)
        with pytest.raises(Refused, match=r"read 4194304 bytes at once, more than 65536"):
            tarfile.open(fileobj=window, mode="r:").close()
    with gzip.open(archive, "rb") as stream:
        window = stage_module.Window(stream, end=100)
        assert window.read(512) == bytes(_header("././@LongLink", tarfile.GNUTYPE_LONGNAME, 4 * MiB)[:100])
        assert window.read(512) == b""


def test_two_hundred_thousand_empty_members_are_refused_at_the_cap(tmp_path):
    archive = tmp_path / "many.tar.gz"
    one = _header("profile.yaml")
    with archive.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) as out:
        for _ in range(200):
            out.write(one * 1000)
        out.write(bytes(1024))
    result = _measured("stage", str(archive), str(tmp_path / "staging"))
    assert result["outcome"] == "refused", result
    assert "more than 10000 entries" in result["message"]
    assert result["added"] < MEMORY_BOUND, f"{result['added'] / MiB:.0f} MiB"
    assert result["seconds"] < 5, result


def test_the_member_cap_is_an_option(tmp_path):
    archive = tmp_path / "five.tar"
    archive.write_bytes(b"".join(_header(f"f{i}") for i in range(5)) + bytes(1024))
    assert len(stage_module.stage(str(archive), str(tmp_path / "ok"), max_members=5)) == 5
    with pytest.raises(Refused, match="more than 4 entries"):
        stage_module.stage(str(archive), str(tmp_path / "refused"), max_members=4)
    assert not (tmp_path / "refused").exists()


def test_member_data_beyond_the_byte_cap_is_refused_before_it_is_read(tmp_path):
    """The walk adds every member's declared size and stops at max_bytes, without decompressing on."""
    archive = tmp_path / "big.tar.gz"
    with archive.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) as out:
        out.write(_header("a.bin", size=40 * MiB))
        for _ in range(40):
            out.write(bytes(MiB))
        out.write(_header("b.bin", size=40 * MiB) + bytes(1024))  # cut short: never read that far
    with pytest.raises(Refused, match="more than the 67108864 bytes"):
        stage_module.stage(str(archive), str(tmp_path / "staging"))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (lambda: _pax({"path": "p" * 5000}), r"extended header \(type 'x'\) of 50\d\d bytes"),
        (lambda: _pax({"path": "a/" * 600 + "profile.yaml"}), "a name longer than 1024 characters"),
        (lambda: _pax({"path": "d" * 300 + "/profile.yaml"}), "a part of the name longer than 255 bytes"),
        (lambda: _pax({"path": "x"}) + _pax({"path": "y"}), "two extended headers of type 'x' in a row"),
        (lambda: _pax({"GNU.sparse.major": "1", "GNU.sparse.minor": "0"}), "a sparse file"),
        (lambda: _header("sparse", b"S", 0), "a sparse file"),
        (lambda: _pax({"size": "999999"}, tarfile.XGLTYPE), "a global pax header setting the size"),
    ],
    ids=["pax-5k", "long-name", "long-part", "two-pax", "pax-sparse", "gnu-sparse", "global-size"],
)
def test_odd_headers_are_refused_with_a_message_of_bounded_length(tmp_path, body, reason):
    archive = tmp_path / "odd.tar"
    archive.write_bytes(body() + _header("profile.yaml") + bytes(1024))
    with pytest.raises(Refused, match=reason) as caught:
        stage_module.stage(str(archive), str(tmp_path / "staging"))
    assert len(str(caught.value)) < MESSAGE_BOUND, str(caught.value)
    assert not (tmp_path / "staging").exists()


def test_the_walk_reads_the_headers_tarfile_reads(tmp_path):
    """An old-style folder (type NUL, name ending in "/") carries no data for tarfile, whatever its size
    field says: the walk must check the next block as a header too, not skip it as that folder's data
    (here a 5000-byte long name, whose body is dressed up as a plain member for a walk that skipped)."""
    folder = tarfile.TarInfo("d/")
    folder.type, folder.size = tarfile.AREGTYPE, 512
    body = _header("x", size=4608) + b"n" * (5000 - 512)  # x spans the rest of the 10 blocks
    archive = tmp_path / "old.tar"
    archive.write_bytes(
        folder.tobuf(tarfile.USTAR_FORMAT)
        + _header("././@LongLink", tarfile.GNUTYPE_LONGNAME, 5000)
        + _padded(body)
        + _header("profile.yaml")
        + bytes(1024)
    )
    with pytest.raises(Refused, match=r"extended header \(type 'L'\) of 5000 bytes at byte 512"):
        stage_module.stage(str(archive), str(tmp_path / "staging"))


def test_long_names_a_profile_may_use_still_stage_in_gnu_and_pax_archives(tmp_path):
    name = "media/" + "n" * 200 + "/" + "c" * 150 + ".txt"  # more than ustar's 100 + 155 characters
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        archive = tmp_path / f"long-{fmt}.tar.gz"
        with tarfile.open(archive, "w:gz", format=fmt) as tar:
            for member, data in (("profile.yaml", b"name: p\n"), (name, b"rtsp://cam/1\n")):
                info = tarfile.TarInfo(member)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        dest = tmp_path / f"staged-{fmt}"
        assert sorted(stage_module.stage(str(archive), str(dest))) == sorted([name, "profile.yaml"])
        assert (dest / name).read_bytes() == b"rtsp://cam/1\n"


def test_a_name_shown_in_a_message_is_cut(tmp_path):
    name = "dir/" * 224 + "link"  # 900 characters
    archive = tmp_path / "link.tar"
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        link = tarfile.TarInfo(name)
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
        tar.addfile(link)
    with pytest.raises(Refused, match="a symbolic link") as caught:
        stage_module.stage(str(archive), str(tmp_path / "staging"))
    assert len(str(caught.value)) < 300 and "(900 characters)" in str(caught.value)


# --- zip ------------------------------------------------------------------------------------------


def test_a_zip_with_a_huge_central_directory_is_refused_unread(tmp_path):
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for i in range(30_000):
            out.writestr(f"{i:08d}", b"")
    result = _measured("stage", str(archive), str(tmp_path / "staging"))
    assert result["outcome"] == "refused", result
    assert "bytes at once" in result["message"] and result["length"] < MESSAGE_BOUND
    assert result["added"] < MEMORY_BOUND, f"{result['added'] / MiB:.0f} MiB"


def test_a_zip_is_held_to_the_member_cap_and_name_bounds(tmp_path):
    archive = tmp_path / "cap.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for i in range(11):
            out.writestr(f"f{i}", b"")
    with pytest.raises(Refused, match="more than 10 entries"):
        stage_module.stage(str(archive), str(tmp_path / "staging"), max_members=10)
    named = tmp_path / "named.zip"
    with zipfile.ZipFile(named, "w") as out:
        out.writestr("x" * 2000, b"")
    with pytest.raises(Refused, match="longer than 1024") as caught:
        stage_module.stage(str(named), str(tmp_path / "staging"))
    assert len(str(caught.value)) < 300


# --- the download ---------------------------------------------------------------------------------


class _Site:
    """A loopback HTTP server: /announced says a Content-Length above the cap, /endless streams 8 MiB
    without one, /ok is a small archive; it counts the requests and the bytes it managed to send."""

    def __init__(self, ok: bytes) -> None:
        self.ok, self.requests, self.sent = ok, 0, 0
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the end of the body is the end of the connection

            def log_message(self, *args: object) -> None:
                return

            def do_GET(self) -> None:
                site.requests += 1
                self.send_response(200)
                if self.path == "/ok":
                    self.send_header("Content-Length", str(len(site.ok)))
                    self.end_headers()
                    self.wfile.write(site.ok)
                    return
                if self.path == "/announced":
                    self.send_header("Content-Length", str(8 * MiB))
                self.end_headers()
                try:
                    for _ in range(128):
                        self.wfile.write(bytes(64 << 10))
                        site.sent += 64 << 10
                except OSError:
                    return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> _Site:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[_Site]:
    archive = tmp_path / "p.tar"
    archive.write_bytes(_header("profile.yaml", size=8) + _padded(b"name: p\n") + bytes(1024))
    with _Site(archive.read_bytes()) as served:
        yield served


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize(
    ("path", "words"),
    [("/endless", "sends more than the 1048576 bytes"), ("/announced", "it announces 8388608")],
)
def test_a_download_above_the_cap_is_refused_while_streaming_and_nothing_is_kept(tmp_path, site, path, words):
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(Refused, match=words):
        stage_module.download(site.url + path, str(work / "profile.archive"), "0" * 64, max_bytes=MiB)
    assert _leftovers(work) == []
    assert site.sent < 8 * MiB  # the client hung up: the rest was never read, nor hashed


def test_a_download_is_checked_kept_and_not_repeated(tmp_path, site):
    work = tmp_path / "work"
    work.mkdir()
    dest = work / "profile.archive"
    digest = hashlib.sha256(site.ok).hexdigest()
    with pytest.raises(Refused, match=r"sha256 checksum is .* not the pinned 0{64}: nothing was kept"):
        stage_module.download(f"{site.url}/ok", str(dest), "0" * 64)
    assert _leftovers(work) == []
    assert stage_module.download(f"{site.url}/ok", str(dest), digest.upper()) is True
    assert dest.read_bytes() == site.ok and _leftovers(work) == ["profile.archive"]
    requests = site.requests
    assert stage_module.download(f"{site.url}/ok", str(dest), digest) is False
    assert site.requests == requests  # the file already held the pinned sha256
    with pytest.raises(Refused, match="only http:// and https://"):
        stage_module.download("file:///etc/shadow", str(dest), digest)


def test_the_module_downloads_with_its_byte_cap_option_then_stages(tmp_path, site):
    """Through Ansible (argument spec, fail_json): the download mode, its cap and the staging."""
    work = tmp_path / "work"
    work.mkdir()
    digest = hashlib.sha256(site.ok).hexdigest()

    def run(args: dict) -> dict:
        env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "ANSIBLE_NOCOLOR": "1"}
        env["ANSIBLE_LOAD_CALLBACK_PLUGINS"], env["ANSIBLE_STDOUT_CALLBACK"] = "1", "json"
        proc = subprocess.run(
            [str(BIN / "ansible"), "localhost", "-c", "local", "-m", "ovms.edge.ovms_client_stage",
             "-e", f"ansible_python_interpreter={sys.executable}", "-a", json.dumps(args)],
            capture_output=True, text=True, env=env, timeout=120, check=False, cwd=tmp_path,
        )  # fmt: skip
        return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]

    refused = run(
        {"url": f"{site.url}/endless", "sha256": digest, "src": str(work / "a"), "max_download_bytes": 4096}
    )
    assert refused.get("failed") and "sends more than the 4096 bytes" in refused["msg"], refused
    done = run(
        {"url": f"{site.url}/ok", "sha256": digest, "src": str(work / "a"), "dest": str(work / "staging")}
    )
    assert not done.get("failed") and done["downloaded"] and done["files"] == ["profile.yaml"], done
    assert (work / "staging" / "profile.yaml").read_bytes() == b"name: p\n"


# --- git ------------------------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env.update(GIT_COMMITTER_EMAIL="t@t", **_FILE_SUBMODULES)
    command = ["git", "-C", str(repo), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout.strip()


# git refuses file:// submodules by default since 2.38.1; allowed here so a checkout that follows
# submodules would fetch this one (what it would do with an https:// or ssh:// one, as root)
_FILE_SUBMODULES = {
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "protocol.file.allow",
    "GIT_CONFIG_VALUE_0": "always",
}


def test_a_git_source_is_checked_out_and_staged_without_its_submodules(tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir()
    _git(secret, "init", "-q")
    (secret / "id_rsa").write_text("a key the profile's author wants root to fetch\n")
    _git(secret, "add", "-A")
    _git(secret, "commit", "-q", "-m", "secret")
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "profile.yaml").write_text("name: p\n")
    _git(repo, "submodule", "add", "-q", f"file://{secret}", "vendor")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "profile with a submodule")
    commit = _git(repo, "rev-parse", "HEAD")

    # the role's own task, as written in remote_profile.yml, run by ansible-playbook
    tasks = yaml.safe_load(
        (PROJECT_ROOT / "roles" / "ovms_client" / "tasks" / "remote_profile.yml").read_text()
    )
    (checkout_task,) = [t for t in tasks if "ansible.builtin.git" in t]
    assert checkout_task["ansible.builtin.git"].get("recursive") is False
    work = tmp_path / "work"
    play = [
        {
            "name": "Checkout",
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {
                "ovms_client_profile": {"name": "p"},
                "ovms_client_profile_source": {"type": "git", "repo": f"file://{repo}", "version": commit},
                "ovms_client_profile_work": str(work),
            },
            "tasks": [checkout_task],
        }
    ]
    proc = run_playbook(tmp_path, play, extra_env=_FILE_SUBMODULES, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert not (work / "git" / "vendor" / "id_rsa").exists()

    files = stage_module.stage(str(work / "git"), str(work / "staging"), exclude={".git"})
    assert "profile.yaml" in files and not any(f.startswith("vendor/") for f in files), files
    assert not (work / "staging" / "vendor" / "id_rsa").exists()
