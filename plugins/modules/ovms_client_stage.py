"""Stage a profile that came from someone else (a downloaded archive or a git checkout) as plain files."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ovms_client_stage
short_description: Download and stage an untrusted profile archive or checkout as plain files and folders
description:
  - A profile fetched on the client host (a URL archive, a git checkout) is untrusted input. Before
    anything is written, every member is inspected; the source is refused, and nothing is written,
    when any member is something else than a regular file or a folder (a symbolic or hard link, a
    device, a FIFO, a sparse file), has an absolute name, a C(..) part or a name longer than 1024
    characters (a part longer than 255 bytes), or when the source holds more than O(max_files) files,
    O(max_bytes) bytes or O(max_members) entries.
  - A tar archive's headers are read by this module, 512 bytes at a time, before Python's C(tarfile)
    parses them; an extended header (a GNU long name or long link, a pax header) of more than 4096
    bytes, two of a kind in a row, or a pax header of a sparse file or with a global size, is refused
    without being read. C(tarfile) then reads only the part of the archive this walk checked, never
    more than 64 KiB at once; a zip archive is read the same way (a central directory of more than
    1 MiB is refused unread). The memory used is bounded whatever the archive claims, and every value
    shown in a message is cut to 200 characters.
  - The members are then written by this module, never by an unpacker, into the empty O(dest)
    (created), with this module's owner, group and modes (files O(file_mode), folders O(dir_mode)).
    Nothing of the archive's owners, modes or times is kept, and no link is ever followed
    (C(O_NOFOLLOW), C(O_EXCL)).
  - With O(url), the archive is first downloaded into O(src), streamed, and refused as soon as it
    sends more than O(max_download_bytes) bytes (before its checksum is computed on more); its sha256
    must be O(sha256), else nothing is kept. An O(src) that already holds that sha256 is not
    downloaded again. The whole download (name lookup, connection, redirects, headers, every byte)
    must end within O(deadline) seconds (a server that sends a byte now and then is cut off then), and
    nothing is kept. Without O(dest) the module only downloads.
  - Works with the Python 3.11 of Debian 12 (whose C(tarfile) may lack extraction filters).
options:
  src:
    description:
      - A tar archive (gzip, bzip2, xz or none), a zip archive, or a folder.
      - With O(url), where the download goes.
    type: path
    required: true
  dest:
    description:
      - The staging folder; it must not exist (the caller empties it first).
      - Required unless O(url) is set.
    type: path
  url:
    description: An http(s) URL to download O(src) from (certificates verified, redirects followed).
    type: str
  sha256:
    description: The sha256 (64 hex digits) the download must have; required with O(url).
    type: str
  max_download_bytes:
    description: Most bytes the download may send; more is refused while streaming and nothing is kept.
    type: int
    default: 67108864
  timeout:
    description: Seconds the download may wait for the server at a time.
    type: int
    default: 60
  deadline:
    description: Seconds the whole download may take, however the server paces what it sends; more is
      refused and nothing is kept.
    type: int
    default: 600
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
  max_members:
    description: Most entries a source may hold (files, folders, and a tar archive's extended headers).
    type: int
    default: 10000
author: ovms-launcher developers (@ovms-launcher)
"""

EXAMPLES = r"""
- name: Download a profile archive, checking its size and sha256 on the way
  ovms.edge.ovms_client_stage:
    url: https://profiles.example.com/person-detection-1.2.tar.gz
    sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    src: /var/lib/ovms-launcher/client/work/profile.archive

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
  description: Relative names of the files written (empty when only downloading).
  type: list
  elements: str
  returned: success
downloaded:
  description: Whether O(src) was downloaded by this run (false when it already held O(sha256)).
  type: bool
  returned: when O(url) is set
"""

import hashlib
import os
import posixpath
import re
import shutil
import signal
import stat
import tarfile
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

MAX_NAME = 1024  # characters of a member's name
MAX_PART = 255  # bytes of one part of it (NAME_MAX)
MAX_HEADER = 4096  # bytes of one extended header: a GNU long name or long link, a pax header
CHUNK = 64 << 10  # the most bytes read at once from an archive, by this module or by tarfile/zipfile
MAX_ZIP_DIRECTORY = 1 << 20  # bytes of a zip archive's central directory (read whole by zipfile)
MAX_SHOWN = 200  # characters of a value shown in a message
MAX_MESSAGE = 2000  # characters of a whole message
BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
PAX_TYPES = {b"x", b"X", b"g"}  # extended (X: Solaris's) and global pax headers
GNU_LONG = {b"L", b"K"}  # GNU long name, long link name
# tarfile skips no data after these types (links, devices, folders, FIFOs), whatever their size says
NO_DATA = {b"1", b"2", b"3", b"4", b"5", b"6"}
PAX_RECORD = re.compile(rb"(\d+) ([^=]+)=")  # tarfile's own reading of a pax record


class Refused(Exception):
    """The source holds something that is not a plain profile."""


class Late(Refused):
    """The download did not end within its deadline."""


@dataclass(frozen=True)
class Member:
    name: str  # normalised relative POSIX name
    is_dir: bool
    size: int


def shown(value: object) -> str:
    """repr(value) for a message, cut to MAX_SHOWN characters (an archive's names are untrusted)."""
    text = repr(value)
    if len(text) <= MAX_SHOWN:
        return text
    size = f"{len(value)} characters" if isinstance(value, str) else f"{len(text)} characters shown"
    return f"{text[:MAX_SHOWN]}... ({size})"


def cut(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else f"{message[:MAX_MESSAGE]}... (cut)"


def clean_name(raw: str) -> str:
    """A member's relative name, or Refused: no absolute names, no `..`, no empty or overlong names."""
    if len(raw) > MAX_NAME:
        raise Refused(f"{shown(raw)}: a name longer than {MAX_NAME} characters")
    name = raw.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise Refused(f"{shown(raw)}: an absolute name")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts:
        raise Refused(f"{shown(raw)}: no name")
    if ".." in parts:
        raise Refused(f"{shown(raw)}: a '..' part leads out of the profile")
    if any(len(p.encode("utf-8", "surrogateescape")) > MAX_PART for p in parts):
        raise Refused(f"{shown(raw)}: a part of the name longer than {MAX_PART} bytes")
    return posixpath.join(*parts)


# --- tar: the headers walked before tarfile reads them ---------------------------------------------


def _number(field: bytes, offset: int) -> int:
    """A numeric header field as tarfile reads it (octal, or base-256 when its first byte says so)."""
    if field[:1] in (b"\x80", b"\xff"):
        value = int.from_bytes(field[1:], "big")
        if field[:1] == b"\xff":
            value -= 256 ** (len(field) - 1)
    else:
        text = field.split(b"\0", 1)[0].strip()
        try:
            value = int(text or b"0", 8)
        except ValueError:
            raise Refused(f"not a tar or zip archive (a damaged header at byte {offset})") from None
    if value < 0:
        raise Refused(f"a negative number in the header at byte {offset}")
    return value


def _checksum_ok(block: bytes, offset: int) -> bool:
    wanted = _number(block[148:156], offset)
    unsigned = 256 + sum(block[:148]) + sum(block[156:])
    signed = 256 + sum(b - 256 if b > 127 else b for b in block[:148] + block[156:])
    return wanted in (unsigned, signed)


def _blocks(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _read_exactly(stream: BinaryIO, size: int, offset: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise Refused(f"the archive is cut short after byte {offset}")
    return data


def _skip(stream: BinaryIO, size: int, offset: int) -> None:
    while size:
        step = min(size, CHUNK)
        _read_exactly(stream, step, offset)
        size -= step
        offset += step


def _pax_records(body: bytes, offset: int) -> dict[str, bytes]:
    """The records of a pax header (at most MAX_HEADER bytes), read as tarfile reads them."""
    records: dict[str, bytes] = {}
    pos = 0
    while match := PAX_RECORD.match(body, pos):
        length = int(match.group(1))
        if length <= 0:
            raise Refused(f"a damaged pax header at byte {offset}")
        key = match.group(2).decode("utf-8", "replace")
        records[key] = body[match.end(2) + 1 : match.start(1) + length - 1]
        pos += length
    return records


def scan_tar(stream: BinaryIO, max_members: int, max_bytes: int) -> int:
    """Walk a (decompressed) tar stream's headers without tarfile, refusing an extended header above
    MAX_HEADER bytes before reading it, sparse files, more than max_members headers and more than
    max_bytes of member data; returns the offset where the archive ends (tarfile reads no further)."""
    offset = headers = data = 0
    chain: set[bytes] = set()  # the extended headers read since the last member
    size_override: int | None = None
    while True:
        block = stream.read(BLOCK)
        if not block or block == ZERO_BLOCK:
            if chain:
                raise Refused(f"the archive ends after an extended header at byte {offset}")
            return offset + len(block)
        if len(block) != BLOCK:
            raise Refused(f"the archive is cut short after byte {offset}")
        if not _checksum_ok(block, offset):
            raise Refused(f"not a tar or zip archive (a damaged header at byte {offset})")
        headers += 1
        if headers > max_members:
            raise Refused(
                f"more than {max_members} entries (extended headers counted): more than a profile holds"
            )
        kind, size = block[156:157], _number(block[124:136], offset)
        start, offset = offset, offset + BLOCK
        if kind in PAX_TYPES or kind in GNU_LONG:
            same = b"x" if kind == b"X" else kind
            if same in chain:
                raise Refused(f"two extended headers of type {kind.decode()!r} in a row at byte {start}")
            chain.add(same)
            if size > MAX_HEADER:
                raise Refused(
                    f"an extended header (type {kind.decode()!r}) of {size} bytes at byte {start},"
                    f" more than the {MAX_HEADER} a profile's names need"
                )
            body = _read_exactly(stream, _blocks(size), offset)[:size]
            offset += _blocks(size)
            if kind in PAX_TYPES:
                records = _pax_records(body, start)
                if any(key.startswith("GNU.sparse") for key in records):
                    raise Refused(f"a sparse file (pax header at byte {start})")
                if "size" in records:
                    if kind == b"g":
                        raise Refused(f"a global pax header setting the size of every member at byte {start}")
                    try:
                        size_override = int(records["size"])
                    except ValueError:
                        raise Refused(f"a damaged pax size at byte {start}") from None
            continue
        if kind == b"S":
            raise Refused(f"a sparse file (header at byte {start})")
        if size_override is not None:
            size = size_override
        chain.clear()
        size_override = None
        if kind in NO_DATA or (kind == b"\0" and block[:100].split(b"\0", 1)[0].endswith(b"/")):
            continue  # an old-style folder (a plain file named ".../") has no data for tarfile either
        data += size
        if data > max_bytes:
            raise Refused(f"more than the {max_bytes} bytes a profile may hold")
        _skip(stream, _blocks(size), offset)
        offset += _blocks(size)


class Window:
    """A seekable stream as tarfile or zipfile reads it: never more than `largest` bytes at once
    (refused before reading), never past `end` (read as the end of the data)."""

    def __init__(self, raw: BinaryIO, end: int, largest: int = CHUNK) -> None:
        self.raw, self.end, self.largest = raw, end, largest

    def tell(self) -> int:
        return self.raw.tell()

    def seekable(self) -> bool:
        return True

    def seek(self, position: int, whence: int = os.SEEK_SET) -> int:
        target = {os.SEEK_SET: 0, os.SEEK_CUR: self.tell(), os.SEEK_END: self.end}[whence] + position
        return self.raw.seek(max(0, min(target, self.end)))

    def read(self, size: int | None = -1) -> bytes:
        left = self.end - self.tell()
        wanted = left if size is None or size < 0 else min(size, left)
        if wanted > self.largest:
            raise Refused(f"the archive asks to read {wanted} bytes at once, more than {self.largest}")
        return self.raw.read(wanted) if wanted > 0 else b""


def _decompression_errors() -> tuple[type[Exception], ...]:
    errors: list[type[Exception]] = [OSError, EOFError, ValueError, zlib.error]
    try:
        import lzma
    except ImportError:  # a Python built without it reads no .xz
        return tuple(errors)
    return (*errors, lzma.LZMAError)


DECOMPRESSION_ERRORS = _decompression_errors()


def _decompressed(path: str) -> BinaryIO:
    """The archive's bytes, decompressed while read (gzip, bzip2, xz or none, told by its first bytes)."""
    with Path(path).open("rb") as probe:
        magic = probe.read(6)
    if magic.startswith(b"\x1f\x8b"):
        import gzip  # only the decompressor an archive needs

        return gzip.open(path, "rb")  # type: ignore[return-value]
    if magic.startswith(b"BZh"):
        import bz2

        return bz2.open(path, "rb")  # type: ignore[return-value]
    if magic.startswith(b"\xfd7zXZ\x00"):
        import lzma

        return lzma.open(path, "rb")  # type: ignore[return-value]
    return Path(path).open("rb")  # the caller closes it


def tar_members(archive: tarfile.TarFile) -> Iterator[tuple[Member, tarfile.TarInfo]]:
    for info in archive:  # one header at a time (getmembers() would read them all first)
        name = clean_name(info.name)
        if info.isdir():
            yield Member(name, True, 0), info
        elif info.type in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE) and not info.sparse:
            yield Member(name, False, info.size), info
        elif info.issym() or info.islnk():
            raise Refused(f"{shown(info.name)}: a {'symbolic' if info.issym() else 'hard'} link")
        else:
            kind = (
                "device"
                if info.ischr() or info.isblk()
                else "FIFO"
                if info.isfifo()
                else "sparse file"
                if info.issparse()
                else "special file"
            )
            raise Refused(f"{shown(info.name)}: a {kind}")


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
            raise Refused(f"{shown(info.filename)}: a {what}")


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
                    raise Refused(f"{shown(name)}: a hard link")
                yield Member(name, False, info.st_size), path
            elif stat.S_ISLNK(info.st_mode):
                raise Refused(f"{shown(name)}: a symbolic link")
            else:
                raise Refused(f"{shown(name)}: a special file")


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
            raise Refused(f"{shown(member.name)}: listed twice")
        seen[member.name] = member.is_dir
    for member in members:  # a file name used as a folder by another member
        parent = posixpath.dirname(member.name)
        while parent:
            if seen.get(parent) is False:
                raise Refused(f"{shown(member.name)}: inside {shown(parent)}, which is a file")
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
                raise Refused(f"{shown(name)}: not a folder") from None
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
        chunk = handle.read(CHUNK)  # type: ignore[attr-defined]
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
    max_members: int = 10_000,
) -> list[str]:
    """Inspect every member of src, then write them into the new folder dest; returns file names.
    On any failure dest is removed again (it only ever holds what this function wrote)."""
    if os.path.lexists(dest):
        raise Refused(f"{dest} exists: the staging folder must be new")
    limits = Limits(max_files, max_bytes, max_members)
    try:
        return _stage(src, dest, exclude or set(), group, file_mode, dir_mode, limits)
    except BaseException:
        if Path(dest).is_dir() and not Path(dest).is_symlink():
            shutil.rmtree(dest)
        raise


@dataclass(frozen=True)
class Limits:
    files: int
    bytes: int
    members: int


Chunks = Callable[[Member, Any], Iterator[bytes]]  # one file's bytes, from its member and source entry


def _stage(
    src: str, dest: str, exclude: set[str], group: int | None, file_mode: int, dir_mode: int, limits: Limits
) -> list[str]:
    def write(members: Iterable[tuple[Member, Any]], chunks: Chunks) -> list[str]:
        """Check every member first, then write them in order; `chunks` yields one file's bytes."""
        kept = []
        for count, (member, info) in enumerate(members, 1):
            if count > limits.members:
                raise Refused(f"more than {limits.members} entries, more than a profile may hold")
            if member.name.split("/")[0] not in exclude:
                kept.append((member, info))
        check([m for m, _info in kept], limits.files, limits.bytes)
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
        with Path(src).open("rb") as raw:
            window = Window(raw, os.fstat(raw.fileno()).st_size, max(CHUNK, MAX_ZIP_DIRECTORY))
            try:
                zipped = zipfile.ZipFile(window)  # type: ignore[arg-type]
            except (zipfile.BadZipFile, OSError, ValueError) as exc:
                raise Refused(f"not a readable zip archive ({shown(str(exc))})") from None
            with zipped:

                def zip_chunks(member: Member, info: zipfile.ZipInfo) -> Iterator[bytes]:
                    with zipped.open(info) as handle:
                        yield from _limited(_read(handle), member)

                try:
                    return write(zip_members(zipped), zip_chunks)
                except (zipfile.BadZipFile, EOFError, ValueError) as exc:
                    raise Refused(f"a damaged zip archive ({shown(str(exc))})") from None
    try:
        with _decompressed(src) as stream:
            end = scan_tar(stream, limits.members, limits.bytes)
    except DECOMPRESSION_ERRORS as exc:
        raise Refused(f"not a readable tar or zip archive ({shown(str(exc))})") from None
    try:
        # only the part scan_tar checked, never more than CHUNK bytes at a time
        with _decompressed(src) as stream, tarfile.open(fileobj=Window(stream, end), mode="r:") as tarred:

            def tar_chunks(member: Member, info: tarfile.TarInfo) -> Iterator[bytes]:
                handle = tarred.extractfile(info)
                if handle is None:  # a regular member always has data
                    raise Refused(f"{shown(member.name)}: no data in the archive")
                yield from _limited(_read(handle), member)

            return write(tar_members(tarred), tar_chunks)
    except (tarfile.TarError, EOFError) as exc:
        raise Refused(f"not a readable tar archive ({shown(str(exc))})") from None


def _tree_chunks(member: Member, path: str) -> Iterator[bytes]:
    with open(path, "rb", opener=lambda p, f: os.open(p, f | os.O_NOFOLLOW)) as handle:
        yield from _read(handle)


def _limited(chunks: Iterator[bytes], member: Member) -> Iterator[bytes]:
    """A member's data, refused when it holds more than its header said (a lying archive)."""
    written = 0
    for chunk in chunks:
        written += len(chunk)
        if written > member.size:
            raise Refused(f"{shown(member.name)}: more data than its declared {member.size} bytes")
        yield chunk


# --- the download --------------------------------------------------------------------------------


def _sha256_of(path: str, max_bytes: int) -> str | None:
    """The sha256 of the regular file at path (not followed when a link), or None when there is none
    or it holds more than max_bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            return None
        digest = hashlib.sha256()
        for chunk in _read(handle):
            digest.update(chunk)
    return digest.hexdigest()


def download(
    url: str, dest: str, sha256: str, *, max_bytes: int = 64 << 20, timeout: int = 60, deadline: float = 600
) -> bool:
    """Download url into dest, streamed: refused as soon as it sends more than max_bytes (the checksum
    is never computed on more), when it does not end within `deadline` seconds, and unless its sha256
    is `sha256`; nothing is kept then. dest is replaced at once (a new file renamed over it). False
    when dest already holds that sha256."""
    wanted = sha256.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", wanted):
        raise Refused(f"sha256 {shown(sha256)} is not 64 hexadecimal digits")
    if not re.match(r"(?i)https?://", url):
        raise Refused(f"{shown(url)}: only http:// and https:// URLs are downloaded")
    if deadline <= 0:
        raise Refused(f"deadline {deadline!r}: the seconds a download may take must be more than 0")
    if _sha256_of(dest, max_bytes) == wanted:
        return False
    fd, partial = tempfile.mkstemp(prefix=".download-", dir=Path(dest).parent)
    try:
        with os.fdopen(fd, "wb") as out, _Alarm(url, deadline):
            digest = _fetch(url, out, max_bytes, timeout, deadline)
        if digest != wanted:
            raise Refused(
                f"{shown(url)}: its sha256 checksum is {digest}, not the pinned {wanted}: nothing was kept"
            )
        Path(partial).replace(dest)
    finally:
        if os.path.lexists(partial):
            Path(partial).unlink()
    return True


def _late(url: str, seconds: float) -> Late:
    return Late(
        f"{shown(url)}: the download did not end within its deadline of {seconds:g} s: nothing was kept"
    )


class _Alarm:
    """Interrupts whatever the download waits for (a name lookup, the headers, a read) once `seconds`
    have passed: SIGALRM, whose handler raises Late (the module runs in its own process, in its main
    thread); a timer set before is set again after. Elsewhere (another thread) the read loop's own
    checks bound the download."""

    def __init__(self, url: str, seconds: float) -> None:
        self.url, self.seconds = url, seconds
        self.armed = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
        self.previous: Any = None
        self.before = (0.0, 0.0)
        self.start = 0.0

    def _ring(self, signum: int, frame: object) -> None:
        raise _late(self.url, self.seconds)

    def __enter__(self) -> None:
        if self.armed:
            self.start = time.monotonic()
            self.previous = signal.signal(signal.SIGALRM, self._ring)
            self.before = signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc: object) -> None:
        if self.armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)
            delay, interval = self.before
            if delay > 0:
                left = delay - (time.monotonic() - self.start)
                signal.setitimer(signal.ITIMER_REAL, max(left, 0.001), interval)


def _fetch(url: str, out: BinaryIO, max_bytes: int, timeout: int, deadline: float) -> str:
    """Stream url into out within deadline seconds; returns the sha256 of what it sent (at most
    max_bytes, or Refused)."""
    end = time.monotonic() + deadline
    too_big = f"{shown(url)} sends more than the {max_bytes} bytes an archive may hold (max_download_bytes)"
    try:
        wait = max(min(timeout, end - time.monotonic()), 0.001)
        response = open_url(url, timeout=wait, follow_redirects="safe", validate_certs=True)
    except Refused:
        raise
    except Exception as exc:  # HTTP, TLS, DNS, timeout: each refuses
        raise Refused(f"{shown(url)}: could not download ({shown(str(exc))})") from None
    with response:
        length = response.headers.get("Content-Length", "")
        if length.strip().isdigit() and int(length) > max_bytes:
            raise Refused(f"{too_big}: it announces {int(length)}")
        digest, received = hashlib.sha256(), 0
        while True:
            if time.monotonic() >= end:
                raise _late(url, deadline)
            try:
                # read1: what has come, up to a chunk (read would wait for a whole chunk, however slow)
                chunk = getattr(response, "read1", response.read)(CHUNK)
            except Refused:
                raise
            except Exception as exc:
                raise Refused(f"{shown(url)}: the download broke off ({shown(str(exc))})") from None
            if not chunk:
                return digest.hexdigest()
            received += len(chunk)
            if received > max_bytes:
                raise Refused(too_big)
            digest.update(chunk)
            out.write(chunk)


def _mode(value: object) -> int:
    return int(str(value), 8) if not isinstance(value, int) else value


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "src": {"type": "path", "required": True},
            "dest": {"type": "path"},
            "url": {"type": "str"},
            "sha256": {"type": "str"},
            "max_download_bytes": {"type": "int", "default": 64 << 20},
            "timeout": {"type": "int", "default": 60},
            "deadline": {"type": "int", "default": 600},
            "exclude": {"type": "list", "elements": "str", "default": []},
            "group": {"type": "int"},
            "file_mode": {"type": "raw", "default": "0640"},
            "dir_mode": {"type": "raw", "default": "0750"},
            "max_files": {"type": "int", "default": 1000},
            "max_bytes": {"type": "int", "default": 64 << 20},
            "max_members": {"type": "int", "default": 10_000},
        },
        required_together=[("url", "sha256")],
        required_one_of=[("dest", "url")],
        supports_check_mode=True,
    )
    p = module.params
    result: dict[str, Any] = {"changed": False, "files": []}
    if p["url"]:
        if module.check_mode:
            fresh = _sha256_of(p["src"], p["max_download_bytes"]) == p["sha256"].strip().lower()
            module.exit_json(changed=not fresh, downloaded=False, files=[])
        try:
            result["downloaded"] = download(
                p["url"],
                p["src"],
                p["sha256"],
                max_bytes=p["max_download_bytes"],
                timeout=p["timeout"],
                deadline=p["deadline"],
            )
        except Refused as exc:
            module.fail_json(msg=cut(f"not downloaded: {exc}"), downloaded=False)
        except OSError as exc:
            module.fail_json(msg=cut(f"could not download into {p['src']}: {exc}"), downloaded=False)
        result["changed"] = result["downloaded"]
    if p["dest"]:
        if module.check_mode:
            module.exit_json(changed=True, files=[])
        try:
            result["files"] = stage(
                p["src"],
                p["dest"],
                exclude=set(p["exclude"]),
                group=p["group"],
                file_mode=_mode(p["file_mode"]),
                dir_mode=_mode(p["dir_mode"]),
                max_files=p["max_files"],
                max_bytes=p["max_bytes"],
                max_members=p["max_members"],
            )
        except Refused as exc:
            module.fail_json(msg=cut(f"{p['src']}: refused, nothing was staged: {exc}"))
        except OSError as exc:
            module.fail_json(msg=cut(f"{p['src']}: could not stage into {p['dest']}: {exc}"))
        result["changed"] = True
    module.exit_json(**result)


if __name__ == "__main__":
    main()
