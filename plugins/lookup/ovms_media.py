"""Lookup ovms_media: the files of a controller media folder that a role may ship to its hosts, checked
on the controller before anything is copied."""

from __future__ import annotations

DOCUMENTATION = r"""
name: ovms_media
short_description: The files a media folder ships to the hosts, checked on the controller
description:
  - "Lists the files of the controller folder given as the term that a role copies to its hosts: only
    the files its media recipe lists, never anything else in the folder."
  - "With O(manifest) (the client's media, made by C(launcher media sample) or C(launcher media
    manifest)): the names of the C(files) mapping of that JSON file ({name: sha256}), each file's
    sha256 checked, and the manifest itself, listed last (a copy that stops half-way leaves the
    host's manifest unmatched, so the next run copies again). With O(names) instead (the camera's
    stream files): those names."
  - "Links are never followed inside the folder: every listed name must be relative, without C(.) or
    C(..) parts, its folders real folders and itself a regular file with one link (lstat: a symbolic
    link, a hard link, a FIFO or a device is refused), so no name ships a file from elsewhere on the
    controller (a key of the PKI, say). Any problem fails the lookup with a message naming O(variable)
    and the fix; nothing is returned, so nothing is copied."
  - "Every file read is hashed from the very descriptor that was checked (opened without following a
    link, the same inode as the one checked): its sha1 (C(sha1) in RV(_raw.files)) is what the copy
    passes as M(ansible.builtin.copy)'s C(checksum), so a file swapped for a link (or rewritten) after
    the check fails the copy on the host instead of shipping what the link names."
  - "With O(have), the result of M(ansible.builtin.stat) (C(checksum_algorithm=sha256)) of the host's
    copy of the manifest: when it is the same file, 0640 and of group O(group), RV(_raw.current) is
    true and the files are not read (the names are checked still)."
options:
  _terms:
    description: The controller media folder (one absolute path). The folder itself may be reached through
      a link; nothing inside it is.
    required: true
  variable:
    description: The variable that names the folder, for the messages.
    type: str
    default: media folder
  manifest:
    description: "The manifest's name in the folder (JSON, C({\"files\": {name: sha256}})). Exclusive with
      O(names)."
    type: str
  names:
    description: The names to ship (relative to the folder) when there is no manifest.
    type: list
    elements: str
  fix:
    description: How to remake the folder, appended to every message.
    type: str
    default: ""
  have:
    description: M(ansible.builtin.stat)'s result for the host's copy of the manifest (its C(stat)).
    type: dict
    default: {}
  group:
    description: The group (gid) the host's copies belong to, for RV(_raw.current).
    type: int
    default: 0
"""

EXAMPLES = r"""
- name: Check the client's media folder
  ansible.builtin.set_fact:
    media: >-
      {{ lookup('ovms.edge.ovms_media', ovms_client_media_dir, manifest='media.json',
                variable='ovms_client_media_dir', have=host_manifest.stat, group=5002) }}

- name: Copy what it lists, the copy refused unless it is what was checked
  ansible.builtin.copy:
    src: "{{ item.src }}"
    dest: "/srv/media/{{ item.name }}"
    mode: "0640"
    checksum: "{{ item.sha1 }}"
    local_follow: false
  loop: "{{ media.files }}"
  when: not media.current
"""

RETURN = r"""
_raw:
  description: One mapping.
  type: list
  elements: dict
  contains:
    root:
      description: The folder, its links resolved.
      type: str
    dirs:
      description: The folders the files are in, relative, parents first.
      type: list
      elements: str
    files:
      description: "{name, src, sha1}: the name relative to the folder, the absolute controller path and
        the sha1 of the content checked (read from the descriptor checked: give it to
        M(ansible.builtin.copy) as C(checksum)); the manifest (when there is one) last. Without
        C(sha1) when RV(_raw.current) is true (nothing is read then, nothing is to be copied)."
      type: list
      elements: dict
    manifest_sha256:
      description: The sha256 of the manifest (empty without one).
      type: str
    current:
      description: Whether the host holds this very manifest already (see O(have)).
      type: bool
"""

import hashlib
import json
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

MANIFEST_LIMIT = 4 * 1024 * 1024  # bytes of a manifest read at most
_SHA256 = re.compile(r"^[0-9a-f]{64}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class MediaRefused(Exception):
    """A media folder that cannot be shipped; the message names the entry and the reason."""


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "no regular file")


def name_problem(name: Any) -> str | None:
    """Why `name` is no safe relative name of a file in the folder (None when it is)."""
    if not isinstance(name, str) or not name:
        return f"{name!r} is no file name"
    if name.startswith("/"):
        return f"{name!r} is absolute: names are relative to the folder"
    if _CONTROL.search(name) or "\\" in name:
        return f"{name!r} holds a control character or a backslash"
    parts = name.split("/")
    if ".." in parts:
        return f"{name!r} has a '..' part: it would leave the folder"
    if any(part in ("", ".") for part in parts):
        return f"{name!r} has an empty or '.' part"
    return None


def _regular(root: str, name: str) -> os.stat_result:
    """lstat of root/name after checking every folder on the way is a real folder: a regular file with
    one link, or MediaRefused."""
    problem = name_problem(name)
    if problem:
        raise MediaRefused(problem)
    parts = name.split("/")
    path = Path(root)
    for depth, part in enumerate(parts):
        path = path / part
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            raise MediaRefused(f"{name!r} is listed but missing") from None
        except OSError as exc:
            raise MediaRefused(f"{name!r} cannot be read ({exc.strerror})") from None
        if depth < len(parts) - 1:
            if not stat.S_ISDIR(info.st_mode):
                where = "/".join(parts[: depth + 1])
                raise MediaRefused(f"{name!r}: {where!r} is {_kind(info.st_mode)}, not a folder")
            continue
        if not stat.S_ISREG(info.st_mode):
            raise MediaRefused(f"{name!r} is {_kind(info.st_mode)}, not a regular file")
        if info.st_nlink > 1:
            raise MediaRefused(
                f"{name!r} is a hard link ({info.st_nlink} names for one file): it may be a file from "
                "elsewhere on the controller"
            )
        return info
    raise MediaRefused(f"{name!r} is no file name")  # pragma: no cover - parts is never empty


def _open(root: str, name: str) -> tuple[int, os.stat_result]:
    """A descriptor of root/name, checked as `_regular` does, opened without following a link or
    blocking, and the same file as the one checked (fstat)."""
    info = _regular(root, name)
    try:
        fd = os.open(Path(root) / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise MediaRefused(f"{name!r} cannot be opened ({exc.strerror})") from None
    opened = os.fstat(fd)
    if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino) or not stat.S_ISREG(opened.st_mode):
        os.close(fd)
        raise MediaRefused(f"{name!r} changed while it was checked")
    return fd, opened


def _digests(root: str, name: str) -> tuple[str, str]:
    """The sha256 and the sha1 of root/name, both read from the one descriptor `_open` checked (the
    sha1 is what ansible.builtin.copy checks the host's copy against)."""
    fd = _open(root, name)[0]
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1()  # what ansible.builtin.copy checks its copy against (binds it to this content)
    with os.fdopen(fd, "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            sha256.update(block)
            sha1.update(block)
    return sha256.hexdigest(), sha1.hexdigest()


def read_manifest(root: str, name: str) -> tuple[bytes, dict[str, str]]:
    """The manifest's bytes and its {name: sha256}, or MediaRefused."""
    try:
        fd, info = _open(root, name)
    except MediaRefused as exc:
        if "listed but missing" in str(exc):
            raise MediaRefused(f"it has no {name}, the list of the files it ships") from None
        raise MediaRefused(f"its manifest {exc}") from None
    if info.st_size > MANIFEST_LIMIT:
        os.close(fd)
        raise MediaRefused(f"its manifest {name!r} is larger than {MANIFEST_LIMIT} bytes")
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(MANIFEST_LIMIT + 1)
    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MediaRefused(f"its manifest {name!r} is no JSON ({exc})") from None
    files = record.get("files") if isinstance(record, dict) else None
    if not isinstance(files, dict) or not files:
        raise MediaRefused(f"its manifest {name!r} lists no files (a mapping `files`: {{name: sha256}})")
    for listed, digest in files.items():
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise MediaRefused(f"its manifest {name!r} gives {listed!r} no sha256 (64 lowercase hex digits)")
        if listed == name:
            raise MediaRefused(f"its manifest {name!r} lists itself")
    return data, files


def _dirs(names: Iterable[str]) -> list[str]:
    found = {"/".join(name.split("/")[:depth]) for name in names for depth in range(1, name.count("/") + 1)}
    return sorted(found, key=lambda d: (d.count("/"), d))


def _current(manifest_sha256: str, have: dict, group: int) -> bool:
    return bool(
        have.get("exists")
        and have.get("isreg")
        and have.get("checksum") == manifest_sha256
        and str(have.get("mode")) == "0640"
        and str(have.get("gid")) == str(group)
    )


def media_files(
    folder: str,
    *,
    manifest: str | None = None,
    names: list[str] | None = None,
    have: dict | None = None,
    group: int = 0,
) -> dict:
    """The lookup's result (see RETURN), or MediaRefused."""
    if (manifest is None) == (names is None):
        raise MediaRefused("give either a manifest or names")
    if not Path(folder).is_absolute():
        raise MediaRefused("is not an absolute path")
    if not Path(folder).is_dir():
        raise MediaRefused("is not a folder on the controller")
    root = str(Path(folder).resolve())
    manifest_sha256 = ""
    current = False
    sha1s: dict[str, str] = {}
    if manifest is not None:
        problem = name_problem(manifest)
        if problem or "/" in manifest:
            raise MediaRefused(f"manifest name: {problem or repr(manifest) + ' is not a plain file name'}")
        data, hashes = read_manifest(root, manifest)
        manifest_sha256 = hashlib.sha256(data).hexdigest()
        current = _current(manifest_sha256, have or {}, group)
        listed = sorted(hashes)
        for name in listed:
            _regular(root, name)
        if not current:
            for name in listed:
                digest, sha1s[name] = _digests(root, name)
                if digest != hashes[name]:
                    raise MediaRefused(
                        f"{name!r} does not match its sha256 in {manifest} (recorded {hashes[name][:12]}…, "
                        f"found {digest[:12]}…)"
                    )
            sha1s[manifest] = hashlib.sha1(data).hexdigest()  # the bytes read and checked above
        listed.append(manifest)
    else:
        listed = []
        for name in names or []:
            _regular(root, name)
            if name not in listed:
                listed.append(name)
                sha1s[name] = _digests(root, name)[1]
    return {
        "root": root,
        "dirs": _dirs(listed),
        "files": [
            {"name": name, "src": str(Path(root) / name), **({"sha1": sha1s[name]} if name in sha1s else {})}
            for name in listed
        ],
        "manifest_sha256": manifest_sha256,
        "current": current,
    }


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: dict | None = None, **kwargs: Any) -> list[dict]:
        self.set_options(var_options=variables, direct=kwargs)
        variable = self.get_option("variable")
        fix = self.get_option("fix")
        if len(terms) != 1 or not isinstance(terms[0], str):
            raise AnsibleLookupError(f"ovms_media: give one folder, the value of {variable} (got {terms!r})")
        try:
            result = media_files(
                terms[0],
                manifest=self.get_option("manifest"),
                names=self.get_option("names"),
                have=self.get_option("have"),
                group=self.get_option("group"),
            )
        except MediaRefused as exc:
            raise AnsibleLookupError(
                f"{variable} ({terms[0]}): {exc}; nothing was copied. {fix}".rstrip()
            ) from None
        return [result]
