"""Ansible module ovms_tail: the last lines of a result file in a folder another user writes to, read
without following a link, without blocking and in bounded time (the status of roles/ovms_client)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ovms_tail
short_description: Read the last lines of a file another user may have replaced, safely
description:
  - Reads the last O(lines) lines of O(path) from at most its last O(max_bytes) bytes, where everything
    below O(root) may belong to another user (a client container writes its results folder).
  - Every part of O(path) below O(root) is opened without following a symbolic link, and without
    blocking (a FIFO answers at once); the file must be a regular file (fstat of what was opened).
    A link, a FIFO, a socket, a device or a folder is refused, so root never reads another file of the
    host, nor waits on a writer that never comes.
  - The read is bounded in bytes (O(max_bytes)) and in time (O(timeout) seconds).
  - The client rotates its files (C(<path>.1) is the newest rotated one). When O(path) holds fewer than
    O(lines) whole lines (it was just rotated, or is missing for the instant of a rotation) and was
    read whole, the rest comes from the end of C(<path>.1), opened by the same rules, within what is
    left of O(max_bytes).
  - A missing file (and no C(<path>.1)) or a refused one fails the task with a message naming the path;
    changes nothing and runs in check mode.
options:
  path:
    description: The file.
    type: path
    required: true
  root:
    description: The folder above which links may be followed (a folder only root writes); O(path) must be
      inside it. Default the folder of O(path).
    type: path
  lines:
    description: How many of the last lines to return.
    type: int
    default: 1
  max_bytes:
    description: The most bytes read from the end of the file.
    type: int
    default: 65536
  timeout:
    description: Seconds the read may take at most.
    type: int
    default: 10
author: ovms-launcher developers (@ovms-launcher)
"""

EXAMPLES = r"""
- name: Read the latest stats line of a client
  ovms.edge.ovms_tail:
    path: /var/lib/ovms-launcher/client/results/person-detection-1/stats.jsonl
    root: /var/lib/ovms-launcher/client/results
  register: stats
  failed_when: false
"""

RETURN = r"""
stdout:
  description: The last lines, joined with newlines (no trailing newline); only whole lines, so a line
    still being written, or cut by O(max_bytes), is left out.
  type: str
  returned: success
  sample: '{"fps": 14.9}'
stdout_lines:
  description: The same lines as a list.
  type: list
  elements: str
  returned: success
size:
  description: The file's size in bytes (0 when only C(<path>.1) was found).
  type: int
  returned: success
rotated:
  description: Whether some of the lines came from C(<path>.1).
  type: bool
  returned: success
"""

import errno
import os
import signal
import stat
from pathlib import PurePosixPath
from typing import Any

from ansible.module_utils.basic import AnsibleModule

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class Refused(Exception):
    """The file cannot be read safely; the message says why."""


class _TimedOut(Exception):
    pass


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
    holds fewer than `lines` whole lines (see DOCUMENTATION), or Refused."""
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


def _alarm(signum: int, frame: Any) -> None:
    raise _TimedOut()


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "root": {"type": "path"},
            "lines": {"type": "int", "default": 1},
            "max_bytes": {"type": "int", "default": 65536},
            "timeout": {"type": "int", "default": 10},
        },
        supports_check_mode=True,
    )
    p = module.params
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(max(1, p["timeout"]))
    try:
        result = read_tail(p["path"], p["root"], p["lines"], p["max_bytes"])
    except Refused as exc:
        signal.alarm(0)
        module.fail_json(msg=f"{p['path']}: refused: {exc}", stdout="", stdout_lines=[])
    except _TimedOut:
        module.fail_json(msg=f"{p['path']}: not read within {p['timeout']} s", stdout="", stdout_lines=[])
    signal.alarm(0)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
