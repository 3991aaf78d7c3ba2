"""Action plugin ovms_client_devices (docs: plugins/modules/ovms_client_devices.py): the client role's
device check of a profile. The reading is checked on the controller (filter ovms_client_checked, the
one place that says which device paths a profile may name); the host is asked only about the devices
the profile reads, if any (a profile of files or cameras costs no call to the host)."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase


def sort_devices(stats: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """{devices, groups, missing, root_group} from each device path's stat (not following a link): the
    container's devices (read and write at the same path), the gid of each one's group (once each), the
    paths that are missing or no character device, and those whose group is root's."""
    found: dict[str, list[str]] = {"devices": [], "groups": [], "missing": [], "root_group": []}
    for path, info in stats.items():
        if not info.get("exists") or not info.get("ischr"):
            found["missing"].append(path)
        elif str(info.get("gid")) == "0":
            found["root_group"].append(path)
        else:
            found["devices"].append(f"{path}:{path}:rw")
            if str(info.get("gid")) not in found["groups"]:
                found["groups"].append(str(info.get("gid")))
    return found


def problem(host: str, profile: str, found: dict[str, list[str]]) -> str | None:
    """The message of the first problem found (a missing device before one in root's group), or None."""
    if found["missing"]:
        devices = ", ".join(found["missing"])
        return (
            f"host {host}: profile {profile} reads video device {devices}, which this host lacks (no "
            "character device at that path); no client container of this host was started or changed. "
            "Plug the camera in (`ls -l /dev/video*` on the host), or change the profile's input "
            "(profile.yaml, profile.env, or CLIENT_INPUT in ovms_client_env)."
        )
    if found["root_group"]:
        devices = ", ".join(found["root_group"])
        return (
            f"host {host}: profile {profile} reads video device {devices}, whose group is root (gid 0): "
            "the client would join root's group to read it. Give the device the `video` group (a udev "
            "rule, as Debian's does: `ls -l /dev/video*` shows the group); no client container of this "
            "host was started or changed."
        )
    return None


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("output", "profile"))

    def _stat(self, path: str, task_vars: dict[str, Any]) -> dict[str, Any]:
        """ansible.builtin.stat of `path` on the host, not following a link."""
        answer = self._execute_module(
            module_name="ansible.legacy.stat",
            module_args={"path": path, "follow": False, "get_checksum": False, "get_mime": False,
                         "get_attributes": False},
            task_vars=task_vars,
        )  # fmt: skip
        if answer.get("failed"):
            raise AnsibleError(f"the look at video device {path} failed: {answer.get('msg')}")
        return answer.get("stat") or {}

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        required_str = {"type": "str", "required": True}
        _validation, args = self.validate_argument_spec(
            argument_spec={"output": required_str, "profile": required_str}
        )
        profile = args["profile"]
        host = str(task_vars.get("inventory_hostname", ""))
        # imported here: the unit tests load this file by path, where the collection is no package
        from ansible_collections.ovms.edge.plugins.filter.ovms_client import ovms_client_checked

        try:
            reading = ovms_client_checked(args["output"], profile)
            stats = {path: self._stat(path, task_vars) for path in reading["devices"]}
        except (ValueError, AnsibleError) as error:
            return {**result, "failed": True, "msg": f"host {host}: {error}"}
        found = sort_devices(stats)
        result.update(
            changed=False, profile=profile, stages=reading["stages"], outputs=reading["outputs"], **found
        )
        message = problem(host, profile, found)
        if message:
            result.update(failed=True, msg=message)
        return result
