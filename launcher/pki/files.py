"""Writing PKI files safely: atomic replacement, explicit modes, no rewrite when nothing changed."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
PUBLIC_FILE_MODE = 0o644


def ensure_dir(path: Path, mode: int = PRIVATE_DIR_MODE) -> None:
    """Create `path` (and parents) and make sure it carries exactly `mode`."""
    path.mkdir(parents=True, exist_ok=True)
    if (path.stat().st_mode & 0o777) != mode:
        path.chmod(mode)


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Replace `path` with `data`; the file never exists with a wider mode than `mode`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_if_changed(path: Path, data: bytes, mode: int) -> bool:
    """Write `data` only when the file is missing or differs; fix the mode either way. True if written."""
    if path.is_file() and path.read_bytes() == data:
        if (path.stat().st_mode & 0o777) != mode:
            path.chmod(mode)
        return False
    write_atomic(path, data, mode)
    return True


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """Serialise launcher runs that change the same PKI directory (an exclusive flock on `.lock`)."""
    ensure_dir(root)
    with (root / ".lock").open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def exclusive(func: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[Any, P], R]:
    """Run `func(layout, ...)` holding the lock of `layout.root` (never nest two of these)."""

    @functools.wraps(func)
    def wrapper(layout: Any, *args: P.args, **kwargs: P.kwargs) -> R:
        with locked(layout.root):
            return func(layout, *args, **kwargs)

    return wrapper
