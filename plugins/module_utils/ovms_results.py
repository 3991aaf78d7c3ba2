"""How a client host's results files are read, once: the last lines of a file in a folder another user
writes to (a client container writes its results folder), without following a link, without blocking
and in bounded bytes, and which file of each client container status reads (module
ovms_client_status).

Pure Python (no Ansible import): the unit tests load it by its path.

Every part of a path below the trusted root is opened without following a symbolic link and without
blocking (a FIFO answers at once); the file must be a regular file (fstat of what was opened). A link, a
FIFO, a socket, a device or a folder is refused, so root never reads another file of the host, nor waits
on a writer that never comes. The client rotates its files (`<file>.1` is the newest rotated one): when
the file holds fewer than the lines asked for and was read whole (it was just rotated, or is missing for
the instant of a rotation), the rest comes from the end of `<file>.1`, opened by the same rules.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import PurePosixPath
from typing import Any

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class Refused(Exception):
    """The file cannot be read safely; the message says why."""


def _parts(path: str, root: str | None) -> tuple[str, list[str]]:
    """The trusted folder and the names below it, or Refused."""
    file = PurePosixPath(os.path.normpath(path))
    if not file.is_absolute():
        raise Refused("is not an absolute path")
    base = PurePosixPath(os.path.normpath(root)) if root else file.parent
    if base == file or base not in file.parents:
        raise Refused(f"is not inside {base}")
    return str(base), list(file.relative_to(base).parts)


def _open(path: str, root: str | None) -> int:
    """A descriptor of the regular file `path`, every part below `root` opened without following a
    link or blocking, or Refused."""
    base, names = _parts(path, root)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise Refused(f"cannot open {base} ({exc.strerror})") from None
    try:
        for index, name in enumerate(names):
            last = index == len(names) - 1
            try:
                child = os.open(name, flags | (0 if last else os.O_DIRECTORY), dir_fd=fd)
            except OSError as exc:
                if exc.errno == errno.ELOOP or (exc.errno == errno.ENOTDIR and _is_link(fd, name)):
                    raise Refused(f"{name!r} is a symbolic link") from None
                if exc.errno == errno.ENOENT:
                    raise Refused("does not exist") from None
                raise Refused(f"cannot open {name!r} ({exc.strerror})") from None
            os.close(fd)
            fd = child
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            what = next((kind for test, kind in _KINDS if test(mode)), "no regular file")
            raise Refused(f"is {what}, not a regular file")
        return fd
    except BaseException:
        os.close(fd)
        raise


def _is_link(fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(name, dir_fd=fd).st_mode)
    except OSError:
        return False


def read_tail(path: str, root: str | None = None, lines: int = 1, max_bytes: int = 65536) -> dict[str, Any]:
    """{stdout, stdout_lines, size, rotated} of the file, with the end of `<path>.1` when the file
    holds fewer than `lines` whole lines (see above), or Refused."""
    if lines < 1 or max_bytes < 1:
        raise Refused("lines and max_bytes must be at least 1")
    try:
        current = _read_end(path, root, max_bytes)
    except Refused as exc:
        if str(exc) != "does not exist":
            raise
        current = None  # the instant between a rotation's rename and the new file
    found = current.lines if current is not None else []
    older: list[str] = []
    if len(found) < lines and (current is None or current.whole):
        rotated = f"{path}.1"
        left = max_bytes - (current.size if current is not None else 0)
        try:
            older = _read_end(rotated, root, left).lines if left > 0 else []
        except Refused as exc:
            if str(exc) != "does not exist":
                raise Refused(f"{PurePosixPath(rotated).name}: {exc}") from None
            if current is None:
                raise
    kept = [*older, *found][-lines:]
    return {
        "stdout": "\n".join(kept),
        "stdout_lines": kept,
        "size": current.size if current is not None else 0,
        "rotated": len(kept) > len(found),
    }


class _End:
    """The whole lines at the end of a file, its size, and whether the file was read from its start."""

    def __init__(self, lines: list[str], size: int, whole: bool) -> None:
        self.lines = lines
        self.size = size
        self.whole = whole


def _read_end(path: str, root: str | None, max_bytes: int) -> _End:
    """The whole lines within the last `max_bytes` bytes of the file, or Refused."""
    fd = _open(path, root)
    try:
        size = os.fstat(fd).st_size
        start = max(0, size - max_bytes)
        os.lseek(fd, start, os.SEEK_SET)
        data = b""
        while len(data) < size - start:
            block = os.read(fd, size - start - len(data))
            if not block:
                break
            data += block
    except BlockingIOError:
        raise Refused("would block") from None
    finally:
        os.close(fd)
    if start > 0:  # the first line is cut by the window
        data = data.partition(b"\n")[2]
    whole = data.rpartition(b"\n")[0]  # what follows the last newline is still being written
    found = [line for line in whole.decode("utf-8", errors="replace").split("\n") if line.strip()]
    return _End(found, size, start == 0)


# The label of a client container that names its stats file (the client's own reading of its profile at
# deploy: roles/ovms_client, filter ovms_client_instance_specs), and those that name its profile and
# instance.
STATS_LABEL = "ovms-launcher.stats-file"
INSTANCE_LABELS = ("ovms-launcher.profile", "ovms-launcher.instance")


def instance_folder(profile: str, n: object) -> str:
    """<profile>-<n>: the results folder (and container name suffix) of instance n of a profile."""
    return f"{profile}-{n}"


def instance_name(labels: dict[str, Any]) -> str:
    """<profile>-<instance> of a client container, from its labels (its results folder's name)."""
    profile, instance = (labels.get(key) for key in INSTANCE_LABELS)
    return instance_folder(profile or "unknown", instance or "1")


def _one_name(value: str, what: str) -> str:
    """`value` when it names one entry of a folder (not a path, not '.' or '..'), or Refused."""
    if not value or "/" in value or "\0" in value or value in (".", ".."):
        raise Refused(f"{what} {value!r} is not a plain name")
    return value


def stats_path(results: str, labels: dict[str, Any]) -> tuple[str, str]:
    """(the stats file of a client container, results/<profile>-<instance>/<file>, and the folder above
    which read_tail may follow nothing: `results`, only root writes it), or Refused when the container
    names no stats file, or its labels would name anything but one file in one instance's folder."""
    name = labels.get(STATS_LABEL)
    if not isinstance(name, str) or not name:
        raise Refused(f"the container has no {STATS_LABEL} label (started before it existed: deploy again)")
    folder = _one_name(instance_name(labels), "the instance (labels " + ", ".join(INSTANCE_LABELS) + ")")
    return str(PurePosixPath(results) / folder / _one_name(name, f"the {STATS_LABEL} label")), results
