"""Action plugin ovms_image_ship (docs: plugins/modules/ovms_image_ship.py): the controller's side of
shipping image archives, the one task of playbooks/deploy.yml's play "Images from the controller".

One task per host: the settings are checked with role prechecks' rules (the staging folder's data_dir
rule: the play imports no role, so nothing else checks them under a plain ansible-playbook or AWX run),
the manifest and the images the host needs are worked out here (no round trip), one call asks the host
what it lacks and how much room it has, then each missing archive is sent (unless verified in staging)
and loaded by one call of the module on the host.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

MANIFEST = "images.json"
COLLECTION = "ovms.edge"
MODULE = f"{COLLECTION}.ovms_image_ship"
COMMON_ROLE = "ovms_common"
PRECHECKS_ROLE = (f"{COLLECTION}.prechecks", "prechecks")
IMPORTS = ("import_role", "include_role", "ansible.builtin.import_role", "ansible.builtin.include_role")
# the variables the task reads, checked with roles/prechecks/meta/rules.yml (and what those rules read)
CHECKED = (
    "prechecks_images_archive_dir",
    "prechecks_images_staging_dir",
    "ovms_common_system_dirs",
    "ovms_common_sensitive_dirs",
)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_IMAGE_ID = re.compile(r"^sha256:[0-9a-f]{64}$")
# an archive `launcher images save` names: NAME.tar, a plain name of this folder
_FILE = re.compile(r"^[A-Za-z0-9][\w.-]*\.tar$", re.ASCII)
SAVE_FIX = "write the folder with `launcher images save DIR` and set prechecks_images_archive_dir to DIR"
TRUST_FIX = (
    "the folder, images.json and the archives must belong to the user running Ansible and be writable by "
    "no one else (chown them to that user, chmod go-w)"
)
# free space an archive needs on the host's staging filesystem: the copy, and room for docker load
ROOM_FACTOR = 2


class ManifestError(ValueError):
    """The archive folder cannot be used; the message names the file, the key and the fix."""


def untrusted(path: str, info: os.stat_result) -> str:
    """Why a controller file or folder of the archives cannot be trusted ("" when it can): like ssh's
    StrictModes, it must belong to the user running Ansible and be writable by no one else."""
    if info.st_uid != os.geteuid():
        user = os.geteuid()
        return f"{path} belongs to uid {info.st_uid}, not to the user running Ansible ({user}): {TRUST_FIX}"
    if info.st_mode & 0o022:
        return (
            f"{path} is writable by its group or others (mode {stat.S_IMODE(info.st_mode):04o}): {TRUST_FIX}"
        )
    return ""


def read_manifest(folder: str) -> list[dict[str, Any]]:
    """The entries of FOLDER/images.json ({name, tag, id, file, sha256, size?}), each checked: a plain
    archive name, a sha256, an image ID. The folder and the manifest must be the Ansible user's and
    writable by no one else; the manifest a regular file, opened without following a link."""
    path = str(Path(folder, MANIFEST))
    try:
        problem = untrusted(folder, Path(folder).stat())
    except FileNotFoundError:
        raise ManifestError(f"{folder}: no such folder: {SAVE_FIX}") from None
    if problem:
        raise ManifestError(problem)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ManifestError(f"{path}: no image manifest: {SAVE_FIX}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ManifestError(f"{path}: is a link (links are never followed): {SAVE_FIX}") from None
        raise ManifestError(f"{path}: cannot be opened ({exc}): {SAVE_FIX}") from exc
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ManifestError(f"{path}: is not a regular file: {SAVE_FIX}")
        if problem := untrusted(path, info):
            raise ManifestError(problem)
        try:
            data = json.loads(handle.read().decode("utf-8"))
        except (OSError, ValueError) as exc:
            raise ManifestError(f"{path}: cannot be read as JSON ({exc}): {SAVE_FIX}") from exc
    images = data.get("images") if isinstance(data, Mapping) else None
    if not isinstance(images, list):
        raise ManifestError(f"{path}: key images: missing list: {SAVE_FIX}")
    entries = []
    for index, entry in enumerate(images):
        where = f"{path}: images[{index}]"
        if not isinstance(entry, Mapping):
            raise ManifestError(f"{where}: not a mapping: {SAVE_FIX}")
        for key, pattern in (("file", _FILE), ("sha256", _SHA256), ("id", _IMAGE_ID)):
            if not isinstance(entry.get(key), str) or not pattern.match(entry[key]):
                raise ManifestError(f"{where}.{key}: missing or malformed ({entry.get(key)!r}): {SAVE_FIX}")
        if not isinstance(entry.get("tag"), str) or not entry["tag"]:
            raise ManifestError(f"{where}.tag: missing: {SAVE_FIX}")
        entries.append(dict(entry))
    return entries


def archive_problem(folder: str, entry: Mapping[str, Any]) -> str:
    """Why the controller's archive of `entry` cannot be sent ("" when it can): it must be a regular
    file of the folder (not a link), the Ansible user's and writable by no one else, and, when the
    manifest says its size, that size."""
    path = str(Path(folder, entry["file"]))
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return f"archive {path} (image {entry['tag']}) is missing: {SAVE_FIX}"
    if not stat.S_ISREG(info.st_mode):
        return f"archive {path} is a link or not a regular file (links are never followed): {SAVE_FIX}"
    if problem := untrusted(path, info):
        return f"archive {path} (image {entry['tag']}): {problem}"
    size = entry.get("size")
    if isinstance(size, int) and info.st_size != size:
        return (
            f"archive {path} (image {entry['tag']}) has {info.st_size} bytes, the manifest images.json says "
            f"{size}: the archive is damaged or was changed; nothing was sent. Fix: write the archives "
            "again with `launcher images save DIR`"
        )
    return ""


def room_problem(entry: Mapping[str, Any], size: int, free: Mapping[str, Any]) -> str:
    """Why the host has no room for the archive (`size` bytes) ("" when it has): its staging
    filesystem needs ROOM_FACTOR x size free, Ansible's remote tmp the size (what the host reported)."""
    staging, tmp = free.get("staging"), free.get("tmp")
    if isinstance(staging, int) and staging < ROOM_FACTOR * size:
        return (
            f"archive {entry['file']} (image {entry['tag']}, {size} bytes) needs {ROOM_FACTOR * size} bytes "
            f"free on the filesystem of prechecks_images_staging_dir, the host has {staging}; nothing was "
            "sent. Fix: free space there or set prechecks_images_staging_dir to a folder on a larger "
            "filesystem"
        )
    if isinstance(tmp, int) and tmp < size:
        return (
            f"archive {entry['file']} (image {entry['tag']}, {size} bytes) does not fit in Ansible's remote "
            f"tmp folder on the host ({tmp} bytes free); nothing was sent. Fix: free space there or set "
            "ansible_remote_tmp to a folder on a larger filesystem"
        )
    return ""


def roles_of_host(
    host: str,
    groups: Mapping[str, Sequence[str]],
    ovms_groups: Mapping[str, str],
    roles: Mapping[str, Sequence[str]],
) -> list[str]:
    """The roles the host runs, each once, in the order of `roles` (launcher group key -> roles, by their
    fully qualified names as the playbook imports them: ovms.edge.ovms_server), as folder names."""
    found: list[str] = []
    for key, names in roles.items():
        if host in (groups.get(ovms_groups.get(key, ""), ()) or ()):
            found += [n for n in map(role_folder, names) if n not in found]
    return found


def role_folder(name: str) -> str:
    """The folder of a role of this collection named `ovms.edge.NAME` (or NAME); anything else is refused."""
    short = str(name).removeprefix(COLLECTION + ".")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", short):
        raise AnsibleError(f"ovms.edge.ovms_image_ship: {name!r} is not a role of {COLLECTION}")
    return short


def _tasks(tasks: Any, when: tuple[Any, ...] = ()) -> Iterator[tuple[Mapping[str, Any], tuple[Any, ...]]]:
    """Every task of a task list, blocks opened, with the conditions of the blocks around it."""
    for task in tasks if isinstance(tasks, list) else ():
        if not isinstance(task, Mapping):
            continue
        own = task.get("when")
        conditions = when + tuple(own if isinstance(own, list) else [own] if own is not None else [])
        if "block" in task:
            yield from _tasks(task["block"], conditions)
        else:
            yield task, conditions


def precheck_images(tasks: Any) -> list[tuple[Any, tuple[Any, ...]]]:
    """(prechecks_role_images, conditions) of each import of role prechecks in a role's precheck.yml:
    the images that role runs, as the role itself names them (untemplated)."""
    found = []
    for task, conditions in _tasks(tasks):
        for action in IMPORTS:
            spec = task.get(action)
            if isinstance(spec, Mapping) and spec.get("name") in PRECHECKS_ROLE:
                images = (task.get("vars") or {}).get("prechecks_role_images")
                if images is not None:
                    found.append((images, conditions))
    return found


def image_names(templated: Any) -> list[str]:
    """The image references of a templated prechecks_role_images ({image, hint} items)."""
    if not isinstance(templated, list):
        return []
    return [str(i["image"]) for i in templated if isinstance(i, Mapping) and i.get("image")]


def plan(
    needed: Sequence[str], manifest: Sequence[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], list[str]]:
    """(the manifest's entries of the needed images, each once; the needed images it has no archive of)."""
    by_tag = {e["tag"]: e for e in manifest}
    entries, absent = [], []
    for tag in dict.fromkeys(needed):
        if tag in by_tag:
            entries.append(dict(by_tag[tag]))
        else:
            absent.append(tag)
    return entries, absent


def missing_entries(entries: Sequence[Mapping[str, Any]], status: Sequence[Mapping[str, Any]]) -> list[dict]:
    """The entries the host lacks (no image of that tag with the manifest's ID), with `staged`: a
    verified copy already in its staging folder (not sent again)."""
    by_tag = {s["tag"]: s for s in status}
    lacking = []
    for entry in entries:
        seen = by_tag.get(entry["tag"], {})
        if seen.get("present_id") != entry["id"]:
            lacking.append({**entry, "staged": bool(seen.get("staged"))})
    return lacking


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("roles", "archive_dir", "staging_dir", "images"))

    def _roles_dir(self) -> Path:
        return Path(__file__).resolve().parents[2] / "roles"

    def _load(self, path: Path) -> Any:
        if not path.is_file():
            return None
        return self._loader.load_from_file(str(path), trusted_as_template=True) or None

    def _role_templar(self, role: str, task_vars: Mapping[str, Any]) -> Any:
        """A templar seeing role `role`'s defaults and vars (and ovms_common's) below the host's
        variables, as the role's own tasks see them."""
        roles_dir = self._roles_dir()
        scope: dict[str, Any] = {}
        layers = ((COMMON_ROLE, "defaults"), (role, "defaults"), (COMMON_ROLE, "vars"), (role, "vars"))
        for name, part in layers:
            data = self._load(roles_dir / name / part / "main.yml")
            if isinstance(data, Mapping):
                scope.update(data)
        scope.update(task_vars)
        return self._templar.copy_with_new_env(available_variables=scope)

    def _role_images(self, role: str, task_vars: Mapping[str, Any]) -> list[str]:
        """The images role `role` runs on this host: its precheck.yml's prechecks_role_images under its
        conditions."""
        found = precheck_images(self._load(self._roles_dir() / role / "tasks" / "precheck.yml"))
        if not found:
            return []
        templar = self._role_templar(role, task_vars)
        images: list[str] = []
        for value, conditions in found:
            if all(templar.evaluate_conditional(c) for c in conditions):
                images += image_names(templar.template(value))
        return images

    def settings(self, task_vars: Mapping[str, Any]) -> dict[str, Any]:
        """archive_dir, staging_dir and images: the task's arguments, else the prechecks variables
        (prechecks_images_archive_dir, prechecks_images_staging_dir, prechecks_images: the inventory's,
        else roles/prechecks/defaults/main.yml); `findings`: what roles/prechecks/meta/rules.yml (and
        ovms_common's, e.g. the data_dir rule of the staging folder) refuses of them."""
        args = self._task.args
        templar = self._role_templar("prechecks", task_vars)
        found = {
            key: args[key] if args.get(key) is not None else templar.resolve_variable_expression(var)
            for key, var in (
                ("archive_dir", "prechecks_images_archive_dir"),
                ("staging_dir", "prechecks_images_staging_dir"),
                ("images", "prechecks_images"),
            )
        }
        found["images"] = [i.get("image") if isinstance(i, Mapping) else i for i in found["images"] or []]
        values = {name: templar.resolve_variable_expression(name) for name in CHECKED[2:]}
        values.update(prechecks_images_archive_dir=found["archive_dir"],
                      prechecks_images_staging_dir=found["staging_dir"])  # fmt: skip
        found["findings"] = self._rule_findings(values)
        return found

    def _rule_findings(self, values: Mapping[str, Any]) -> list[str]:
        """The findings of roles/prechecks' rules (the role's own check, ovms.edge.ovms_check, applies
        the same ones) on `values`, as "KEY: MESSAGE"."""
        from ansible_collections.ovms.edge.plugins.module_utils.ovms_rules import check, contract

        options, rules, _deferred = contract(str(self._roles_dir()), "prechecks")
        return [f"{f.key}: {f.message}" for f in check(options, rules, values)]

    def needed_images(self, task_vars: Mapping[str, Any], extra: Sequence[str] = ()) -> list[str]:
        host = str(task_vars.get("inventory_hostname"))
        ovms_groups = self._templar.template(task_vars.get("ovms_groups") or {})
        roles = roles_of_host(host, task_vars.get("groups") or {}, ovms_groups, self._task.args["roles"])
        needed: list[str] = []
        for role in roles:
            needed += self._role_images(role, task_vars)
        needed += [str(i) for i in extra if i]
        return list(dict.fromkeys(needed))

    def _module(self, task_vars: dict, **module_args: Any) -> dict[str, Any]:
        return self._execute_module(
            module_name=MODULE,
            module_args={"staging_dir": self._staging, **module_args},
            task_vars=task_vars,
        )

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        if not isinstance(self._task.args.get("roles"), Mapping):
            raise AnsibleError(
                "ovms.edge.ovms_image_ship needs `roles`: group key -> the roles its hosts run"
            )
        if not task_vars.get("ovms_groups"):
            raise AnsibleError("ovms.edge.ovms_image_ship needs ovms_groups (playbooks/vars/groups.yml)")
        found = self.settings(task_vars)
        folder, self._staging = str(found["archive_dir"] or ""), str(found["staging_dir"] or "")
        if not folder:
            what = f"prechecks_images_ship is true but prechecks_images_archive_dir is empty: {SAVE_FIX}"
            return {**result, "failed": True, "changed": False, "msg": what}
        if found["findings"]:
            # before any call on the host: the module creates, and removes when empty, the staging folder
            return {**result, "failed": True, "changed": False, "findings": found["findings"],
                    "msg": "prechecks_images_ship: refused by the rules of roles/prechecks (meta/rules.yml, "
                    "ovms_common's too), nothing was done on the host; set each in the inventory as its "
                    "message says: " + " | ".join(found["findings"])}  # fmt: skip
        try:
            manifest = read_manifest(folder)
        except ManifestError as exc:
            return {**result, "failed": True, "changed": False, "msg": f"prechecks_images_archive_dir: {exc}"}
        needed = self.needed_images(task_vars, found["images"])
        entries, absent = plan(needed, manifest)
        result.update(changed=False, needed=needed, not_in_archive=absent,
                      missing=[], shipped=[], loaded=[])  # fmt: skip
        if not entries:
            result["msg"] = "no image of this host is in the archive folder"
            return result
        status = self._module(task_vars, op="inspect", entries=entries)
        if status.get("failed"):
            return {**result, **status}
        lacking = missing_entries(entries, status.get("images") or [])
        result["free"] = status.get("free") or {}
        result["missing"] = [{"tag": e["tag"], "file": e["file"], "staged": e["staged"]} for e in lacking]
        if not lacking:
            result["msg"] = "every image is on the host"
            return result
        if self._task.check_mode:
            # what a deploy would send and load (one item per image: launcher diff lists them)
            result["changed"] = True
            result["results"] = [
                {"item": e["tag"], "changed": True, "would_send": not e["staged"], "file": e["file"]}
                for e in lacking
            ]
            result["msg"] = "would ship " + ", ".join(
                f"{e['tag']} ({e['file']}{', verified copy staged' if e['staged'] else ''})" for e in lacking
            )
            return result
        return self._ship(result, folder, lacking, task_vars)

    def _ship(self, result: dict, folder: str, lacking: list[dict], task_vars: dict) -> dict[str, Any]:
        failures: list[str] = []
        made_tmp = False
        try:
            for entry in lacking:
                problem = archive_problem(folder, entry)
                if not problem and not entry["staged"]:
                    size = Path(folder, entry["file"]).lstat().st_size
                    problem = room_problem(entry, size, result["free"])
                if problem:
                    failures.append(problem)
                    continue
                src = None
                if not entry["staged"]:
                    if self._connection._shell.tmpdir is None:
                        self._make_tmp_path()
                        made_tmp = True
                    src = self._connection._shell.join_path(self._connection._shell.tmpdir, entry["file"])
                    self._transfer_file(str(Path(folder, entry["file"])), src)
                    self._fixup_perms2((self._connection._shell.tmpdir, src))
                    result["shipped"].append(entry["file"])
                clean = {k: entry[k] for k in ("name", "tag", "id", "file", "sha256") if k in entry}
                done = self._module(task_vars, op="load", entries=[clean], src=src)
                if done.get("failed"):
                    failures.append(str(done.get("msg")))
                    continue
                result["loaded"].append(entry["tag"])
                result["changed"] = True
        finally:
            if made_tmp:
                self._remove_tmp_path(self._connection._shell.tmpdir)
        if failures:
            result["failed"] = True
            result["msg"] = (
                f"{len(failures)} image archive(s) refused on {task_vars.get('inventory_hostname')} "
                f"(prechecks_images_ship, archives of {folder}): " + " | ".join(failures)
            )
        else:
            result["msg"] = "loaded " + ", ".join(result["loaded"])
        return result
