"""Rules every role applies to what an inventory gives it; the launcher imports this file too, so each
rule is written once (launcher/validate/safety.py)."""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Sequence

# The comment that names our OUTPUT rules (roles/ovms_server/tasks/local_access.yml): one per network.
LOCAL_ACCESS_COMMENT = "ovms-launcher local-access {network}"
_COMMENT = re.compile(r"^ovms-launcher local-access (\S+)$")


def ovms_unsafe_dir(path: object, system_dirs: Sequence[str]) -> str:
    """Why `path` cannot be a data folder of ours ('' when it can): it must be absolute, without `..`
    parts, and neither a system folder nor a parent of one (data folders are chowned and, with
    `launcher destroy --purge`, deleted)."""
    text = str(path or "")
    if not text.startswith("/"):
        return f"{text!r} is not an absolute path"
    if ".." in text.split("/"):
        return f"{text!r} has a '..' part"
    normal = posixpath.normpath(text)
    if normal == "/" or normal.startswith("//"):
        return f"{text!r} is the root folder"
    for system in system_dirs:
        if normal == system or (system != "/" and system.startswith(normal + "/")):
            return (
                f"{text!r} is the system folder {system}"
                if normal == system
                else (f"{text!r} holds the system folder {system}")
            )
    return ""


def ovms_local_access_rules(lines: object) -> list[dict[str, str]]:
    """Our rules among `iptables -S OUTPUT` lines: [{network, interface}] (the interface is the
    network's bridge when the rule was written; a recreated network has a new bridge)."""
    rules = []
    for line in str(lines or "").splitlines():
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        if words[:2] != ["-A", "OUTPUT"] or "--comment" not in words or "-o" not in words:
            continue
        comment = words[words.index("--comment") + 1] if words.index("--comment") + 1 < len(words) else ""
        match = _COMMENT.match(comment)
        if match and words.index("-o") + 1 < len(words):
            rules.append({"network": match.group(1), "interface": words[words.index("-o") + 1]})
    return rules


def ovms_local_access_comment(network: str) -> str:
    return LOCAL_ACCESS_COMMENT.format(network=network)


class FilterModule:
    def filters(self) -> dict:
        return {
            "ovms_unsafe_dir": ovms_unsafe_dir,
            "ovms_local_access_rules": ovms_local_access_rules,
            "ovms_local_access_comment": ovms_local_access_comment,
        }
