"""plugins/modules/ovms_client_stage.py: an untrusted profile archive or checkout is staged as
regular files and folders only; links, devices and escaping names are refused before anything is
written, and nothing outside the staging folder is ever touched."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from testbed.plugins import load_plugin

# registered: its dataclasses look their module up
stage_module = load_plugin("plugins/modules/ovms_client_stage.py", "ovms_client_stage", register=True)
Refused = stage_module.Refused

PROFILE = b"name: p\n"


def _tar(path: Path, *members: tarfile.TarInfo, data: dict[str, bytes] | None = None) -> Path:
    data = data or {}
    with tarfile.open(path, "w:gz") as archive:
        for info in members:
            body = data.get(info.name)
            if body is not None:
                info.size = len(body)
            archive.addfile(info, io.BytesIO(body) if body is not None else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, **extra: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o4777 if kind == tarfile.REGTYPE else 0o777  # setuid, world-writable: never kept
    for key, value in extra.items():
        setattr(info, key, value)
    return info


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file outside the profile that a malicious archive would like to reach."""
    path = tmp_path / "outside" / "secret.key"
    path.parent.mkdir()
    path.write_text("key")
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (lambda s: _member("notes.txt", tarfile.SYMTYPE, linkname=str(s)), "a symbolic link"),
        (lambda s: _member("notes.txt", tarfile.LNKTYPE, linkname=str(s)), "a hard link"),
        (lambda s: _member("tty", tarfile.CHRTYPE, devmajor=5, devminor=0), "a device"),
        (lambda s: _member("pipe", tarfile.FIFOTYPE), "a FIFO"),
        (lambda s: _member("../../outside/secret.key"), "a '..' part"),
        (lambda s: _member(str(s)), "an absolute name"),
    ],
    ids=["symlink", "hardlink", "device", "fifo", "dotdot", "absolute"],
)
def test_an_archive_with_anything_but_files_and_folders_is_refused(tmp_path, secret, member, reason):
    bad = member(secret)
    archive = _tar(
        tmp_path / "p.tar.gz",
        _member("profile.yaml"),
        bad,
        data={"profile.yaml": PROFILE, bad.name: b"x" if bad.isreg() else None},
    )
    dest = tmp_path / "staging"
    with pytest.raises(Refused, match=reason):
        stage_module.stage(str(archive), str(dest), group=os.getgid())
    assert not dest.exists()  # inspected before anything was written
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and secret.read_text() == "key"


def test_a_zip_with_a_symlink_is_refused(tmp_path, secret):
    archive = tmp_path / "p.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("profile.yaml", PROFILE)
        link = zipfile.ZipInfo("notes.txt")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        out.writestr(link, str(secret))
    with pytest.raises(Refused, match="a symbolic link"):
        stage_module.stage(str(archive), str(tmp_path / "staging"))
    assert not (tmp_path / "staging").exists()


def test_a_good_archive_is_written_with_our_modes_only(tmp_path):
    archive = _tar(
        tmp_path / "p.tar.gz",
        _member("./profile.yaml"),
        _member("media", tarfile.DIRTYPE),
        _member("media/cam.txt"),
        data={"./profile.yaml": PROFILE, "media/cam.txt": b"rtsp://user:pass@cam/1\n"},
    )
    dest = tmp_path / "staging"
    files = stage_module.stage(str(archive), str(dest), group=os.getgid())
    assert sorted(files) == ["media/cam.txt", "profile.yaml"]
    assert (dest / "profile.yaml").read_bytes() == PROFILE
    for path, mode in ((dest, 0o750), (dest / "media", 0o750), (dest / "media" / "cam.txt", 0o640)):
        info = path.lstat()
        assert stat.S_IMODE(info.st_mode) == mode, path  # not the archive's setuid 4777
        assert info.st_gid == os.getgid()


def test_a_checkout_is_staged_without_its_git_folder_and_refused_with_a_link(tmp_path, secret):
    checkout = tmp_path / "git"
    (checkout / ".git").mkdir(parents=True)
    (checkout / ".git" / "HEAD").write_text("ref")
    (checkout / "profile.yaml").write_bytes(PROFILE)
    files = stage_module.stage(str(checkout), str(tmp_path / "staged"), exclude={".git"})
    assert files == ["profile.yaml"] and not (tmp_path / "staged" / ".git").exists()
    (checkout / "sub").mkdir()
    (checkout / "sub" / "notes.txt").symlink_to(secret)
    with pytest.raises(Refused, match=r"'sub/notes\.txt': a symbolic link"):
        stage_module.stage(str(checkout), str(tmp_path / "again"), exclude={".git"})
    assert not (tmp_path / "again").exists()


@pytest.mark.parametrize(
    ("limit", "value", "words"), [("max_files", 1, "2 files"), ("max_bytes", 10, "bytes")]
)
def test_a_profile_too_big_is_refused(tmp_path, limit, value, words):
    archive = _tar(
        tmp_path / "p.tar.gz",
        _member("profile.yaml"),
        _member("profile.env"),
        data={"profile.yaml": PROFILE, "profile.env": b"CLIENT_STREAMS=1\n"},
    )
    with pytest.raises(Refused, match=words):
        stage_module.stage(str(archive), str(tmp_path / "staging"), **{limit: value})


def test_the_staging_folder_must_be_new(tmp_path):
    (tmp_path / "staging").mkdir()
    archive = _tar(tmp_path / "p.tar.gz", _member("profile.yaml"), data={"profile.yaml": PROFILE})
    with pytest.raises(Refused, match="must be new"):
        stage_module.stage(str(archive), str(tmp_path / "staging"))
