"""Ansible module ovms_image_ship: the host's side of shipping image archives from the controller
(playbooks/deploy.yml's play "Images from the controller"; the action plugin of the same name sends
the archives)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ovms_image_ship
short_description: Ship the controller's image archives to a host that lacks the images, verified
description:
  - Run as the one task of playbooks/deploy.yml's play "Images from the controller" (after the remote
    mode plan, before the prechecks; with C(prechecks_images_ship) true). The action plugin first checks
    its settings with role prechecks' rules (the staging folder's C(data_dir) rule), then reads the
    manifest C(images.json) of the controller's archive folder (written by C(launcher images save DIR)),
    works out the images this host's roles run (each role's C(tasks/precheck.yml) names them) and
    asks the host which of them it lacks (its engine has no image of that tag with the manifest's
    image ID).
  - Each missing archive is sent once, when the host's staging filesystem has twice its size free,
    and copied into a new file of a staging folder on the host (created 0700 by the module, owned by
    the user the module runs as, root; an existing folder that is not such a folder is refused, never
    chmodded), hashed while copied, unless a copy with the manifest's sha256 is already staged (a run
    that stopped half-way resumes there); a sha256 mismatch removes the copy and fails the host, naming
    the archive, with nothing loaded; the verified copy is loaded from the descriptor that was hashed
    and the loaded image's ID must equal the manifest's (else its tag is removed again). The staged
    copy is removed after a good load, the folder when the module created it and it is empty.
  - Links are never followed, on the controller (the manifest and the archives must be regular
    files of the folder, the folder, manifest and archives the Ansible user's and writable by no one
    else) and on the host (the staging folder and its files).
  - Check mode sends nothing and reports what would be shipped.
options:
  roles:
    description:
      - Required. The roles each of the launcher's groups runs (role key of C(ovms_groups),
        playbooks/vars/groups.yml, -> role names); the host's groups choose them.
    type: dict
  archive_dir:
    description:
      - The controller's folder written by C(launcher images save DIR) (images.json, archives).
      - Default, the variable C(prechecks_images_archive_dir) (role prechecks).
    type: path
  staging_dir:
    description:
      - Folder on the host the archives are received in (created 0700).
      - Default, the variable C(prechecks_images_staging_dir) (role prechecks).
    type: path
  images:
    description:
      - Images this host needs besides its roles' ones.
      - Default, the images of the variable C(prechecks_images) (role prechecks).
    type: list
    elements: str
  op:
    description: Internal (the action plugin's calls on the host).
    type: str
    choices: [inspect, load]
  entries:
    description: Internal, the manifest entries the host works on.
    type: list
    elements: dict
    default: []
  src:
    description: Internal, the archive as transferred into Ansible's temporary folder.
    type: str
extends_documentation_fragment:
  - community.docker.docker.api_documentation
author: ovms-launcher developers (@ovms-launcher)
"""

EXAMPLES = r"""
- name: Ship the images this host lacks from the controller's archives
  ovms.edge.ovms_image_ship:
    roles: {servers: [ovms_server], clients: [ovms_client]}
  when: prechecks_images_ship | default(false) | bool
"""

RETURN = r"""
needed:
  description: The images this host's roles run (and O(images)).
  type: list
  returned: always
missing:
  description: The needed images of the manifest the host lacked (tag and file).
  type: list
  returned: always
shipped:
  description: The archives sent to the host (not the ones found verified in staging).
  type: list
  returned: always
loaded:
  description: The images loaded (tags).
  type: list
  returned: always
not_in_archive:
  description: Needed images the archive folder has no archive of (the role prechecks pull them or stop).
  type: list
  returned: always
free:
  description:
    - Free bytes the host reported, C(staging) (the staging folder's filesystem) and C(tmp) (Ansible's
      remote tmp); an archive is sent only when C(staging) is at least twice and C(tmp) at least its size.
  type: dict
  returned: when the host was asked
"""

import contextlib
import errno
import hashlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

try:
    from ansible_collections.community.docker.plugins.module_utils._api.errors import DockerException
    from ansible_collections.community.docker.plugins.module_utils._api.utils.utils import (
        parse_repository_tag,
    )
    from ansible_collections.community.docker.plugins.module_utils.common_api import (
        AnsibleDockerClient,
        RequestException,
    )
except ImportError:  # pragma: no cover (unit tests load the pure functions without community.docker)
    AnsibleDockerClient = None
    DockerException = RequestException = Exception

CHUNK = 1 << 20
FIX_SAVE = "write the archives again with `launcher images save DIR`"


class Refused(Exception):
    """What the host refuses: a link or a foreign folder in the staging path, a damaged archive."""


def sha256_fd(fd: int) -> str:
    """sha256 of an open file, read from its start."""
    digest = hashlib.sha256()
    os.lseek(fd, 0, os.SEEK_SET)
    while True:
        block = os.read(fd, CHUNK)
        if not block:
            return digest.hexdigest()
        digest.update(block)


MARKER = ".ovms-image-staging"


def ensure_staging(path: str, create: bool = True) -> bool:
    """The staging folder as it must be: a real folder (not a link), owned by this user (root), mode
    0700; nothing is ever chmodded. Created (parents 0755) with a marker file when missing and
    `create` (only a folder holding nothing but that marker is ever removed); returns whether it exists."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        if not create:
            return False
        Path(path).parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        Path(path).mkdir(0o700)
        os.close(
            os.open(str(Path(path, MARKER)), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        )
        info = os.lstat(path)
    fix = "remove it, or set prechecks_images_staging_dir to a folder of its own (it is created 0700)"
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise Refused(
            f"the image staging folder {path} (prechecks_images_staging_dir) is a link or not a folder: "
            f"links are never followed; {fix}"
        )
    if info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) != 0o700:
        raise Refused(
            f"the image staging folder {path} (prechecks_images_staging_dir) exists with owner uid "
            f"{info.st_uid} and mode {stat.S_IMODE(info.st_mode):04o}, not as a folder of this deploy's "
            f"(owner uid {os.geteuid()}, mode 0700): nothing in it was changed; {fix}"
        )
    return True


def free_bytes(path: str) -> int | None:
    """Free bytes (for this user) of the filesystem of `path`, or of its nearest existing parent."""
    here = Path(path)
    while True:
        try:
            found = os.statvfs(here)
            return found.f_bavail * found.f_frsize
        except FileNotFoundError:
            if here == here.parent:
                return None
            here = here.parent
        except OSError:
            return None


def open_regular(path: str, own: bool = False) -> int | None:
    """A read descriptor of the regular file at `path` (never through a link); None when absent.
    A link or anything but a regular file is refused; with `own`, a file of another owner or with
    another name (hard link) too."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Refused(f"{path} is a link: links are never followed; remove it") from exc
        raise
    info = os.fstat(fd)
    problem = ""
    if not stat.S_ISREG(info.st_mode):
        problem = "is not a regular file"
    elif own and (info.st_uid != os.geteuid() or info.st_nlink != 1):
        problem = f"belongs to uid {info.st_uid} or has {info.st_nlink} names (a file of this deploy has one)"
    if problem:
        os.close(fd)
        raise Refused(f"{path} {problem}; remove it")
    return fd


def staged_ok(path: str, sha256: str) -> bool:
    """Whether a verified copy (the manifest's sha256) is already staged at `path`."""
    fd = open_regular(path, own=True)
    if fd is None:
        return False
    try:
        return sha256_fd(fd) == sha256
    finally:
        os.close(fd)


def mismatch_message(entry: Mapping[str, Any], actual: str, host_path: str) -> str:
    return (
        f"archive {entry['file']} (image {entry['tag']}) has sha256 {actual} on this host, but the "
        f"manifest images.json says {entry['sha256']}: the archive is damaged or was changed, so it was "
        f"removed ({host_path}) and nothing was loaded. Fix: write the archives again with `launcher "
        "images save DIR` (or copy an intact archive into the folder) and re-run the deploy"
    )


def receive(src: str, dest: str, entry: Mapping[str, Any]) -> int:
    """Copy the transferred archive into a new file of the staging folder (created 0600 by this user,
    O_EXCL|O_NOFOLLOW: whatever was staged at `dest` is unlinked first, never written through), hashing
    it while copying (one read); the transferred file is removed. Returns a descriptor of the staged copy
    at its start when its sha256 is the manifest's; a mismatch removes it and refuses."""
    source = open_regular(src)
    if source is None:
        raise Refused(f"the transferred archive {src} is missing on the host")
    Path(dest).unlink(missing_ok=True)  # a link there is removed, never followed
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(dest, flags, 0o600)
    digest = hashlib.sha256()
    try:
        os.fchmod(fd, 0o600)
        while block := os.read(source, CHUNK):
            digest.update(block)
            view = memoryview(block)
            while view:
                view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        Path(dest).unlink()
        raise
    finally:
        os.close(source)
        with contextlib.suppress(OSError):
            Path(src).unlink()
    if digest.hexdigest() != entry["sha256"]:
        os.close(fd)
        Path(dest).unlink()
        raise Refused(mismatch_message(entry, digest.hexdigest(), dest))
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def verified_fd(path: str, entry: Mapping[str, Any]) -> int:
    """A descriptor of the staged archive (this user's, one name) whose sha256 is the manifest's, read
    from this descriptor, which is then loaded; a mismatch removes it and refuses."""
    fd = open_regular(path, own=True)
    if fd is None:
        raise Refused(f"archive {entry['file']} is not in the staging folder ({path})")
    actual = sha256_fd(fd)
    if actual != entry["sha256"]:
        os.close(fd)
        Path(path).unlink()
        raise Refused(mismatch_message(entry, actual, path))
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def remove_if_empty(folder: str) -> None:
    """Remove the staging folder when it holds nothing but the marker this module created it with
    (a folder it did not create is never removed)."""
    try:
        if [p.name for p in Path(folder).iterdir()] != [MARKER]:
            return
        Path(folder, MARKER).unlink()
        Path(folder).rmdir()
    except OSError:
        return


def image_id(client: Any, tag: str) -> str | None:
    repository, version = parse_repository_tag(tag)
    found = client.find_image(repository, version or "latest")
    return found.get("Id") if found else None


def load_stream(client: Any, fd: int) -> list[str]:
    """docker load of the open archive (as community.docker.docker_image_load does); the engine's
    output lines, an error line raised."""
    lines: list[str] = []
    with os.fdopen(os.dup(fd), "rb") as archive:
        res = client._post(client._url("/images/load"), data=archive, stream=True)
        for line in client._stream_helper(res, decode=True):
            if line.get("error") or line.get("errorDetail"):
                raise Refused(f"docker load failed: {line.get('error') or line.get('errorDetail')}")
            text = line.get("stream") or line.get("status") or ""
            lines += text.splitlines()
    return lines


def inspect(client: Any, staging: str, entries: list[Mapping[str, Any]], tmp: str) -> dict[str, Any]:
    """For each entry: the ID the host has for its tag, and whether a verified copy is staged; the free
    bytes of the staging folder's filesystem and of `tmp` (Ansible's remote tmp). Changes nothing."""
    exists = ensure_staging(staging, create=False)
    images = [
        {
            "tag": e["tag"],
            "present_id": image_id(client, e["tag"]),
            "staged": exists and staged_ok(str(Path(staging, e["file"])), e["sha256"]),
        }
        for e in entries
    ]
    return {"images": images, "free": {"staging": free_bytes(staging), "tmp": free_bytes(tmp)}}


def untag(client: Any, tag: str) -> bool:
    """Remove the tag a wrong load left (the image goes when nothing else uses it); whether it went."""
    try:
        client._raise_for_status(client._delete(client._url("/images/{0}", tag)))
    except Exception:  # an image in use stays; the message says so
        return False
    return True


def load(client: Any, staging: str, entry: Mapping[str, Any], src: str | None) -> dict[str, Any]:
    """Receive (when `src`) and verify, or verify the staged copy, then load and check one archive; the
    staged copy removed after."""
    ensure_staging(staging)
    path = str(Path(staging, entry["file"]))
    fd = receive(src, path, entry) if src else verified_fd(path, entry)
    try:
        output = load_stream(client, fd)
    finally:
        os.close(fd)
    loaded = image_id(client, entry["tag"])
    Path(path).unlink()
    if loaded != entry["id"]:
        gone = untag(client, entry["tag"])
        raise Refused(
            f"after loading archive {entry['file']}, image {entry['tag']} has ID {loaded}, but the manifest "
            f"images.json says {entry['id']}: "
            + (
                "the tag was removed again"
                if gone
                else f"the tag could not be removed (remove it: docker image rm {entry['tag']})"
            )
            + ". Fix: write the archives again with `launcher images save DIR` and re-run the deploy"
        )
    remove_if_empty(staging)
    return {"tag": entry["tag"], "id": loaded, "output": output[-5:]}


def _safe_name(entry: Mapping[str, Any]) -> bool:
    name = str(entry.get("file") or "")
    return bool(name) and "/" not in name and name not in (".", "..") and not name.startswith(".")


def main() -> None:  # pragma: no cover (run by Ansible on the host)
    client = AnsibleDockerClient(
        argument_spec=dict(
            op=dict(type="str", choices=["inspect", "load"]),
            staging_dir=dict(type="path"),
            entries=dict(type="list", elements="dict", default=[]),
            src=dict(type="str"),
            # the action plugin's own options, accepted so one documentation covers both
            archive_dir=dict(type="path"),
            roles=dict(type="dict"),
            images=dict(type="list", elements="str"),
        ),
        supports_check_mode=True,
    )
    params = client.module.params
    entries = params["entries"]
    if not params["op"] or not params["staging_dir"]:
        client.fail("ovms_image_ship runs on the host through its action plugin (op and staging_dir)")
    bad = [str(e.get("file")) for e in entries if not _safe_name(e)]
    if bad:
        client.fail(
            f"the manifest images.json names archive(s) {bad} that are no plain file names: {FIX_SAVE}"
        )
    what = f"archive {entries[0]['file']} (image {entries[0].get('tag')})" if entries else "the images"
    try:
        if params["op"] == "inspect":
            tmp = str(getattr(client.module, "_remote_tmp", None) or "~/.ansible/tmp")
            if tmp.startswith("~/"):  # the connecting user's home, as Ansible places its remote tmp
                tmp = str(Path.home() / tmp[2:])
            client.module.exit_json(changed=False, **inspect(client, params["staging_dir"], entries, tmp))
        if client.module.check_mode or len(entries) != 1:
            client.fail("op=load takes one entry and never runs in check mode")
        done = load(client, params["staging_dir"], entries[0], params["src"])
        client.module.exit_json(changed=True, **done)
    except Refused as exc:
        if params["op"] == "load":
            remove_if_empty(params["staging_dir"])
        client.fail(str(exc), refused=True)
    except PermissionError as exc:
        client.fail(
            f"shipping {what} into {params['staging_dir']} (prechecks_images_staging_dir) was refused: "
            f"{exc}. "
            "Fix: the task needs become: root (or Docker access and a staging folder of the connecting user)"
        )
    except (DockerException, RequestException, OSError) as exc:
        client.fail(
            f"shipping {what} failed: {exc}. Fix: check the Docker engine and the free space of the "
            "host, then re-run the deploy (verified archives already staged are not sent again)"
        )


if __name__ == "__main__":
    main()
