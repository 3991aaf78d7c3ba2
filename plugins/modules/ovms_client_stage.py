"""Stage a profile that came from someone else (a downloaded archive or a git checkout) as plain files."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ovms_client_stage
short_description: Stage an untrusted profile archive or checkout as regular files and folders only
description:
  - A profile fetched on the client host (a URL archive, a git checkout) is untrusted input. Before
    anything is written, every member is inspected; the source is refused, and nothing is written,
    when any member is something else than a regular file or a folder (a symbolic or hard link, a
    device, a FIFO), has an absolute name or a C(..) part, or when the source holds more than
    O(max_files) files or O(max_bytes) bytes.
  - The members are then written by this module, never by an unpacker, into the empty O(dest)
    (created), with this module's owner, group and modes (files O(file_mode), folders O(dir_mode)).
    Nothing of the archive's owners, modes or times is kept, and no link is ever followed
    (C(O_NOFOLLOW), C(O_EXCL)).
  - Works with the Python 3.11 of Debian 12 (whose C(tarfile) may lack extraction filters).
options:
  src:
    description: A tar archive (any compression Python reads), a zip archive, or a folder.
    type: path
    required: true
  dest:
    description: The staging folder; it must not exist (the caller empties it first).
    type: path
    required: true
  exclude:
    description: Top-level names left out (e.g. C(.git) of a checkout).
    type: list
    elements: str
    default: []
  group:
    description: Numeric group of every file and folder written (the owner is the module's user).
    type: int
  file_mode:
    description: Mode of files.
    type: raw
    default: "0640"
  dir_mode:
    description: Mode of folders.
    type: raw
    default: "0750"
  max_files:
    description: Most files a profile may hold.
    type: int
    default: 1000
  max_bytes:
    description: Most bytes all its files may hold together.
    type: int
    default: 67108864
author: ovms-launcher developers (@ovms-launcher)
"""

EXAMPLES = r"""
- name: Stage a downloaded profile archive as plain files
  ovms.edge.ovms_client_stage:
    src: /var/lib/ovms-launcher/client/work/profile.archive
    dest: /var/lib/ovms-launcher/client/work/staging
    group: 10001
    file_mode: "0640"
    dir_mode: "0750"

- name: Stage a git checkout without its .git folder
  ovms.edge.ovms_client_stage:
    src: /var/lib/ovms-launcher/client/work/git
    dest: /var/lib/ovms-launcher/client/work/staging
    exclude: [.git]
"""

RETURN = r"""
files:
  description: Relative names of the files written.
  type: list
  elements: str
  returned: success
"""

import os
import posixpath
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule


class Refused(Exception):
    """The source holds something that is not a plain profile."""


@dataclass(frozen=True)
class Member:
    name: str  # normalised relative POSIX name
    is_dir: bool
    size: int


def clean_name(raw: str) -> str:
    """A member's relative name, or Refused: no absolute names, no `..`, no empty names."""
    name = raw.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise Refused(f"{raw!r}: an absolute name")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts:
        raise Refused(f"{raw!r}: no name")
    if ".." in parts:
        raise Refused(f"{raw!r}: a '..' part leads out of the profile")
    return posixpath.join(*parts)


def tar_members(archive: tarfile.TarFile) -> Iterator[tuple[Member, tarfile.TarInfo]]:
    for info in archive.getmembers():
        name = clean_name(info.name)
        if info.isdir():
            yield Member(name, True, 0), info
        elif info.isreg():
            yield Member(name, False, info.size), info
        elif info.issym() or info.islnk():
            raise Refused(f"{info.name!r}: a {'symbolic' if info.issym() else 'hard'} link")
        else:
            kind = "device" if info.ischr() or info.isblk() else "FIFO" if info.isfifo() else "special file"
            raise Refused(f"{info.name!r}: a {kind}")


def zip_members(archive: zipfile.ZipFile) -> Iterator[tuple[Member, zipfile.ZipInfo]]:
    for info in archive.infolist():
        name = clean_name(info.filename)
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        if info.is_dir():
            yield Member(name, True, 0), info
        elif kind in (0, stat.S_IFREG):  # archivers that record no Unix mode store plain files
            yield Member(name, False, info.file_size), info
        else:
            what = "symbolic link" if kind == stat.S_IFLNK else "special file"
            raise Refused(f"{info.filename!r}: a {what}")


def tree_members(root: str, exclude: set[str]) -> Iterator[tuple[Member, str]]:
    """The files and folders under root, never following a link (a link anywhere is refused)."""
    for folder, dirs, files in os.walk(root, followlinks=False):
        relative = os.path.relpath(folder, root)
        if relative == ".":
            dirs[:] = [d for d in dirs if d not in exclude]
            files = [f for f in files if f not in exclude]
        for entry in sorted(dirs) + sorted(files):
            path = str(Path(folder) / entry)
            name = clean_name(entry if relative == "." else f"{relative}/{entry}")
            info = os.lstat(path)
            if stat.S_ISDIR(info.st_mode):
                yield Member(name, True, 0), path
            elif stat.S_ISREG(info.st_mode):
                if info.st_nlink > 1:
                    raise Refused(f"{name!r}: a hard link")
                yield Member(name, False, info.st_size), path
            elif stat.S_ISLNK(info.st_mode):
                raise Refused(f"{name!r}: a symbolic link")
            else:
                raise Refused(f"{name!r}: a special file")


def check(members: list[Member], max_files: int, max_bytes: int) -> None:
    files = [m for m in members if not m.is_dir]
    if len(files) > max_files:
        raise Refused(f"{len(files)} files, more than the {max_files} a profile may hold")
    total = sum(m.size for m in files)
    if total > max_bytes:
        raise Refused(f"{total} bytes, more than the {max_bytes} a profile may hold")
    seen: dict[str, bool] = {}
    for member in members:
        if member.name in seen and (seen[member.name] or not member.is_dir):
            raise Refused(f"{member.name!r}: listed twice")
        seen[member.name] = member.is_dir
    for member in members:  # a file name used as a folder by another member
        parent = posixpath.dirname(member.name)
        while parent:
            if seen.get(parent) is False:
                raise Refused(f"{member.name!r}: inside {parent!r}, which is a file")
            parent = posixpath.dirname(parent)


class Writer:
    """Creates folders and files under dest itself: no link followed, nothing overwritten."""

    def __init__(self, dest: str, group: int | None, file_mode: int, dir_mode: int) -> None:
        self.dest, self.group, self.file_mode, self.dir_mode = Path(dest), group, file_mode, dir_mode
        self.dest.mkdir(0o700)
        self._own(self.dest, dir_mode)

    def _own(self, path: Path, mode: int) -> None:
        if self.group is not None:
            os.lchown(path, -1, self.group)
        path.chmod(mode, follow_symlinks=False)

    def folder(self, name: str) -> None:
        path = self.dest / name
        parent = posixpath.dirname(name)
        if parent:
            self.folder(parent)
        try:
            path.mkdir(0o700)
        except FileExistsError:
            if not stat.S_ISDIR(path.lstat().st_mode):
                raise Refused(f"{name!r}: not a folder") from None
            return
        self._own(path, self.dir_mode)

    def file(self, name: str, chunks: Iterator[bytes]) -> None:
        parent = posixpath.dirname(name)
        if parent:
            self.folder(parent)
        path = self.dest / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
        self._own(path, self.file_mode)


def _read(handle: object) -> Iterator[bytes]:
    while True:
        chunk = handle.read(1 << 20)  # type: ignore[attr-defined]
        if not chunk:
            return
        yield chunk


def stage(
    src: str,
    dest: str,
    *,
    exclude: set[str] | None = None,
    group: int | None = None,
    file_mode: int = 0o640,
    dir_mode: int = 0o750,
    max_files: int = 1000,
    max_bytes: int = 64 << 20,
) -> list[str]:
    """Inspect every member of src, then write them into the new folder dest; returns file names.
    On any failure dest is removed again (it only ever holds what this function wrote)."""
    if os.path.lexists(dest):
        raise Refused(f"{dest} exists: the staging folder must be new")
    try:
        return _stage(src, dest, exclude or set(), group, file_mode, dir_mode, max_files, max_bytes)
    except BaseException:
        if Path(dest).is_dir() and not Path(dest).is_symlink():
            shutil.rmtree(dest)
        raise


Chunks = Callable[[Member, Any], Iterator[bytes]]  # one file's bytes, from its member and source entry


def _stage(
    src: str,
    dest: str,
    exclude: set[str],
    group: int | None,
    file_mode: int,
    dir_mode: int,
    max_files: int,
    max_bytes: int,
) -> list[str]:
    def write(members: Iterable[tuple[Member, Any]], chunks: Chunks) -> list[str]:
        """Check every member first, then write them in order; `chunks` yields one file's bytes."""
        kept = [(m, info) for m, info in members if m.name.split("/")[0] not in exclude]
        check([m for m, _info in kept], max_files, max_bytes)
        writer = Writer(dest, group, file_mode, dir_mode)
        for member, info in kept:
            if member.is_dir:
                writer.folder(member.name)
            else:
                writer.file(member.name, chunks(member, info))
        return [m.name for m, _info in kept if not m.is_dir]

    if Path(src).is_dir() and not Path(src).is_symlink():
        return write(tree_members(src, exclude), _tree_chunks)
    if zipfile.is_zipfile(src):
        with zipfile.ZipFile(src) as zipped:

            def zip_chunks(member: Member, info: zipfile.ZipInfo) -> Iterator[bytes]:
                with zipped.open(info) as handle:
                    yield from _limited(_read(handle), member)

            return write(zip_members(zipped), zip_chunks)
    try:
        tarred = tarfile.open(src)  # noqa: SIM115 (closed below)
    except (tarfile.TarError, OSError) as exc:
        raise Refused(f"not a tar or zip archive ({exc})") from None
    with tarred:

        def tar_chunks(member: Member, info: tarfile.TarInfo) -> Iterator[bytes]:
            handle = tarred.extractfile(info)
            if handle is None:  # a regular member always has data
                raise Refused(f"{member.name}: no data in the archive")
            yield from _limited(_read(handle), member)

        return write(tar_members(tarred), tar_chunks)


def _tree_chunks(member: Member, path: str) -> Iterator[bytes]:
    with open(path, "rb", opener=lambda p, f: os.open(p, f | os.O_NOFOLLOW)) as handle:
        yield from _read(handle)


def _limited(chunks: Iterator[bytes], member: Member) -> Iterator[bytes]:
    """A member's data, refused when it holds more than its header said (a lying archive)."""
    written = 0
    for chunk in chunks:
        written += len(chunk)
        if written > member.size:
            raise Refused(f"{member.name!r}: more data than its declared {member.size} bytes")
        yield chunk


def _mode(value: object) -> int:
    return int(str(value), 8) if not isinstance(value, int) else value


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "src": {"type": "path", "required": True},
            "dest": {"type": "path", "required": True},
            "exclude": {"type": "list", "elements": "str", "default": []},
            "group": {"type": "int"},
            "file_mode": {"type": "raw", "default": "0640"},
            "dir_mode": {"type": "raw", "default": "0750"},
            "max_files": {"type": "int", "default": 1000},
            "max_bytes": {"type": "int", "default": 64 << 20},
        },
        supports_check_mode=True,
    )
    p = module.params
    if module.check_mode:
        module.exit_json(changed=True, files=[])
    try:
        files = stage(
            p["src"],
            p["dest"],
            exclude=set(p["exclude"]),
            group=p["group"],
            file_mode=_mode(p["file_mode"]),
            dir_mode=_mode(p["dir_mode"]),
            max_files=p["max_files"],
            max_bytes=p["max_bytes"],
        )
    except Refused as exc:
        module.fail_json(msg=f"{p['src']}: refused, nothing was staged: {exc}")
    except OSError as exc:
        module.fail_json(msg=f"{p['src']}: could not stage into {p['dest']}: {exc}")
    module.exit_json(changed=True, files=files)


if __name__ == "__main__":
    main()
