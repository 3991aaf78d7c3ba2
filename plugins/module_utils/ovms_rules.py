# Copyright: contributors to ovms-launcher
# Apache License 2.0 (see LICENSE)
"""The one rule engine of the collection: the roles' variable contract beyond their argument specs.

Each role keeps its rules beside its argument specs, in `roles/<role>/meta/rules.yml`; the action
plugin `ovms.edge.ovms_check` (every role's first task) applies them to the templated values of the
role's variables and of ovms_common's, and the launcher (launcher/validate/rules.py, which loads this
file by its path) applies the same files to the inventory before a run.

A rule file:

    definitions:            # (ovms_common only) named rules the other files `use`
      port: {min: 1, max: 65535}
    host: {use: host_name}  # (ovms_common only) the rule of every inventory host name
    rules:                  # option path of the specs -> one rule, or a list run in order
      ovms_tls_port: {use: port}
      ovms_client_profiles[].source.url: {when: {type: url}, pattern: '^https?://...$', why: ...}

A rule is a mapping of these keys, checked in this order, the first failing one reported: `use` (a
definition), `when` ({sibling: value}: the rule applies only then), `reads` (siblings that must be
set and valid), `not_empty`, `pattern`, `max_length`, `min`, `max`, `above` (`why`: the message of
any of these and of `use`, in the rule's own words), `check` (a named check of CHECKS below, for
what a pattern cannot say), `outside_of` (a variable naming a folder the path may neither be inside
of nor contain), `each` (a rule of every list item), `values` (a rule of every value of a mapping).
`stricter` (ovms_common's file) documents where the launcher and the roles refuse what a plain
ansible-core run would accept (shapes: SHAPES below).

Findings are (key, path, message): `ovms_client_profiles[1].source.url`, its option path
`ovms_client_profiles[].source.url`, and a message that never shows the value of a `no_log` option.
Pure Python plus ansible-core's ArgumentSpecValidator: it runs on the controller only.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import posixpath
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

try:  # the launcher loads this file by its path, Ansible as module_utils: both have ansible-core
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
except ImportError:  # pragma: no cover
    ArgumentSpecValidator = None

RULES_FILE = "meta/rules.yml"
SPECS_FILE = "meta/argument_specs.yml"
COMMON = "ovms_common"
# The entry point of meta/argument_specs.yml that holds a role's options: `main`, except ovms_common's.
# Every role depends on ovms_common (meta/main.yml), and ansible-core validates a dependency's `main`
# entry point with a task of its own in every play and on every host, which rolespec_validate cannot
# turn off: six task results per client host, each costing the controller a worker (bench/notes.md),
# for options each role's check (ovms.edge.ovms_check) applies anyway. Named otherwise, the shared
# options are checked once, by that check.
SHARED_ENTRY_POINT = "shared"
RULE_KEYS = frozenset(
    (
        "use",
        "when",
        "reads",
        "not_empty",
        "pattern",
        "why",
        "max_length",
        "min",
        "max",
        "above",
        "check",
        "outside_of",
        "each",
        "values",
        "stricter",
    )
)
# the keys of a rule that hold a rule themselves
NESTED_KEYS = ("each", "values")
HIDDEN = "(value hidden: no_log)"


class Finding(NamedTuple):
    key: str
    path: str
    message: str


class Context(NamedTuple):
    """What a check reads besides its value: the mapping holding it, the host's variables (`top`),
    names whose value is not known yet (the launcher's templated ones), whether it is a no_log value."""

    siblings: Mapping[str, Any]
    top: Mapping[str, Any]
    unknown: frozenset[str] = frozenset()
    secret: bool = False

    def known(self, name: str) -> bool:
        return name not in self.unknown and self.top.get(name) is not None


# --- messages ----------------------------------------------------------------------------------------


def shown(value: Any) -> str:
    """A value as the user wrote it, near enough: a float option given 61 shows 61, not 61.0."""
    if isinstance(value, float) and value.is_integer():
        return repr(int(value))
    return repr(value)


def got(message: str, value: Any, secret: bool = False) -> str:
    """`message (got 'x')`, unless the value is secret, a collection or shown in the message already."""
    if secret:
        return message
    if isinstance(value, (Mapping, list, tuple)) or shown(value) in message:
        return message
    return f"{message} (got {shown(value)})"


def kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return repr(value)


# --- shapes: what ansible-core's validator would convert silently -------------------------------------

TYPE_WORDS = {
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "str": "string",
    "path": "string",
    "list": "list",
    "dict": "mapping",
}
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
SHAPES = (
    "Stricter than ansible-core, in the launcher and in the roles alike: ansible's validator converts "
    "where the roles' tasks read the variable as given. Refused: a list or mapping for a string (it "
    "would become its Python text), a string for a list (split at commas) or a mapping (`k=v`), a "
    "boolean for a number, and a string for a number unless it is plainly one ('9443' as -e gives it, "
    "never '9443 ' or '1_000', which Python's int() reads but a template pastes as written)."
)


def shape(wanted: str | None, value: Any, secret: bool = False) -> str | None:
    """Why `value` is refused for an option of type `wanted` (SHAPES), None when it is not."""
    if value is None:
        return None
    wanted = wanted or "str"
    word = TYPE_WORDS.get(wanted, wanted)
    if wanted in ("str", "path") and isinstance(value, (Mapping, list, tuple)):
        return f"is not a valid {word} (got {kind(value)})"
    if wanted == "list" and not isinstance(value, (list, tuple)):
        return got(f"is not a valid {word}", value, secret)
    if wanted == "dict" and not isinstance(value, Mapping):
        return got(f"is not a valid {word}", value, secret)
    if wanted in ("int", "float", "bool") and isinstance(value, (Mapping, list, tuple)):
        return f"is not a valid {word} (got {kind(value)})"
    if wanted in ("int", "float") and isinstance(value, bool):
        return got(f"is not a valid {word}", value, secret)
    if wanted == "int" and isinstance(value, str) and not _INT.fullmatch(value):
        return got(f"is not a valid {word}", value, secret)
    if wanted == "float" and isinstance(value, str) and not _FLOAT.fullmatch(value):
        return got(f"is not a valid {word}", value, secret)
    return None


def shape_findings(option: Mapping[str, Any], value: Any, secret: bool = False) -> list[tuple[str, str]]:
    """Shape problems of a value and, for a list, of each of its items (`elements`): (suffix, message)."""
    wanted = option.get("type")
    message = shape(wanted, value, secret)
    if message:
        return [("", message)]
    elements = option.get("elements")
    if wanted == "list" and elements and elements != "raw" and isinstance(value, (list, tuple)):
        return [(f"[{i}]", m) for i, item in enumerate(value) if (m := shape(elements, item, secret))]
    return []


# --- named checks: what a pattern or a range cannot say -----------------------------------------------
# Each takes (value, context, rule) and returns a message (None when fine) or a list of (suffix, message).


def _absolute(value: Any, ctx: Context, rule: Mapping[str, Any]) -> str | None:
    if isinstance(value, str) and value.startswith("/"):
        return None
    return "must be an absolute path (starting with /)"


def _absolute_or_empty(value: Any, ctx: Context, rule: Mapping[str, Any]) -> str | None:
    return None if value == "" else _absolute(value, ctx, rule)


def _no_scheme(value: Any, ctx: Context, rule: Mapping[str, Any]) -> str | None:
    if isinstance(value, str) and "://" in value:
        return (
            "must be a folder on the controller; use `source: {type: url, url: …, sha256: …}` for a "
            "profile fetched by the client host"
        )
    return _absolute(value, ctx, rule)


def _within(path: str, folder: str) -> bool:
    return path == folder or folder == "/" or path.startswith(folder.rstrip("/") + "/")


def data_dir_problem(path: Any, system_dirs: Any, sensitive_dirs: Any) -> str:
    """Why `path` cannot be a data folder of ours ('' when it can): absolute, without `..` parts, not
    the root, not a system folder nor a parent of one, and not inside a sensitive folder (a deploy
    chowns inside data folders, `launcher destroy --purge` deletes them)."""
    text = str(path or "")
    if not text.startswith("/"):
        return f"{text!r} is not an absolute path"
    if ".." in text.split("/"):
        return f"{text!r} has a '..' part"
    normal = posixpath.normpath(text)
    if normal == "/" or normal.startswith("//"):
        return f"{text!r} is the root folder"
    for system in system_dirs or ():
        system = posixpath.normpath(str(system))
        if normal == system:
            return f"{text!r} is the system folder {system}"
        if system != "/" and system.startswith(normal + "/"):
            return f"{text!r} holds the system folder {system}"
    for sensitive in sensitive_dirs or ():
        sensitive = posixpath.normpath(str(sensitive))
        if _within(normal, sensitive):
            return f"{text!r} is inside {sensitive}, a folder of the system or its users"
    return ""


def _data_dir(value: Any, ctx: Context, rule: Mapping[str, Any]) -> str | None:
    why = data_dir_problem(
        value, ctx.top.get("ovms_common_system_dirs"), ctx.top.get("ovms_common_sensitive_dirs")
    )
    if not why:
        return None
    return (
        f"{why}: a deploy chowns inside a data folder and `launcher destroy --purge` deletes it; give it "
        "a folder of its own, e.g. /var/lib/ovms-launcher/<role> or /srv/ovms/<role>"
    )


def _outside_of(value: Any, ctx: Context, variable: str) -> str | None:
    """`value` (a controller path) neither inside nor holding the folder `variable` names."""
    if not ctx.known(variable) or not isinstance(value, str) or not value.startswith("/"):
        return None
    folder = str(ctx.top[variable])
    pairs = [(posixpath.normpath(value), posixpath.normpath(folder))]
    if os.path.lexists(value) or os.path.lexists(folder):  # where they exist: through their links too
        pairs.append((os.path.realpath(value), os.path.realpath(folder)))
    for path, other in pairs:
        if _within(path, other) or _within(other, path):
            return (
                f"{value!r} is {'inside' if _within(path, other) else 'a parent of'} {variable} ({folder}), "
                "the controller's PKI folder: its keys would be copied to the hosts; give a folder of its own"
            )
    return None


def _docker_memory(value: Any, ctx: Context, rule: Mapping[str, Any]) -> str | None:
    """Docker refuses a memory limit under 6 MiB when it creates the container."""
    if value and size_bytes(value) < 6 << 20:
        return f'{value!r} is below the 6m Docker accepts: give e.g. 512m or 2g, or "" for no limit'
    return None


_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def size_bytes(size: str) -> int:
    """A size the size rules accept (digits and an optional k/m/g) in bytes."""
    unit = size[-1].lower() if size[-1].isalpha() else ""
    return int(size.rstrip("kKmMgG")) * _UNITS[unit]


def _body_limited(value: Any, ctx: Context, rule: Mapping[str, Any]) -> str | None:
    """nginx reads client_max_body_size 0 as no limit at all."""
    if size_bytes(value) == 0:
        return f"{value!r} is no limit for nginx: give a size of at least 1, e.g. 64m"
    return None


def _ip_address(value: Any, ctx: Context, rule: Mapping[str, Any]) -> str | None:
    """Docker publishes ports on an address only; a loose pattern let `999.1.1.1` or `:::` through."""
    try:
        ipaddress.ip_address(value if isinstance(value, str) else "")
    except ValueError:
        return (
            f"{value!r} is not an IPv4 or IPv6 address: give one of the host's addresses "
            "(127.0.0.1 for this host only, 0.0.0.0 or :: for all of them)"
        )
    return None


def _san(value: Any, ctx: Context, rule: Mapping[str, Any]) -> str | None:
    """`DNS:name` (a host name, never a wildcard) or `IP:address`."""
    kind_, _sep, name = str(value).partition(":")
    if kind_ == "IP":
        return None if _ip_address(name, ctx, rule) is None else f"{name!r} is not an IP address"
    if kind_ == "DNS" and name.startswith("*"):
        return (
            f"{value!r} is a wildcard: a certificate for every name of a domain would let any host of it "
            "pass as this server; list each name as DNS:name"
        )
    if kind_ == "DNS":
        if evaluate(definition("host_name"), name.rstrip("."), ctx):
            return f"{name!r} is not a host name (letters, digits and '-' in labels joined by dots)"
        return None
    return "must be DNS:name or IP:address"


def _rest_port_own(value: Any, ctx: Context, rule: Mapping[str, Any]) -> str | None:
    if value and value == ctx.siblings.get("ovms_tls_port"):
        return f"ovms_tls_rest_port equals ovms_tls_port ({value}): give REST its own port"
    return None


def _not_controller(value: Any, ctx: Context, rule: Mapping[str, Any]) -> str | None:
    layout = ctx.top.get("ovms_common_pki_layout")
    controller = layout.get("controller") if isinstance(layout, Mapping) else None
    # DNS names (and the folders of a case-insensitive filesystem) do not tell `Launcher` from `launcher`
    if controller and str(value).lower() == str(controller).lower():
        same = "" if value == controller else f" ({controller!r} to DNS)"
        return (
            f"a host named {value!r}{same} would receive the controller's own client "
            "certificate and key (which `launcher status` uses): rename this host in the inventory (its "
            "address stays in ansible_host)"
        )
    return None


def _scalar(value: Any, ctx: Context, rule: Mapping[str, Any]) -> str | None:
    if isinstance(value, (str, int, float, bool)):
        return None
    return f"must be a string, number or boolean, not {kind(value)}"


def _string(value: Any, ctx: Context, rule: Mapping[str, Any]) -> str | None:
    return None if isinstance(value, str) else f"must be a string, not {kind(value)}"


def _a_list(value: Any, ctx: Context, rule: Mapping[str, Any]) -> str | None:
    return None if isinstance(value, list) else f"must be a list, not {kind(value)}"


def _printable(value: Any, ctx: Context, rule: Mapping[str, Any]) -> str | None:
    if isinstance(value, str) and value and value.isprintable():
        return None
    return "must be a non-empty printable string"


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _media_file(value: Any, ctx: Context, rule: Mapping[str, Any]) -> str | None:
    """A file inside the media folder: relative, without `..`, without control characters."""
    if not isinstance(value, str) or not value.strip():
        return "must be a file name relative to the media folder"
    if value.startswith(("/", "\\")):
        return f"{value!r} is absolute: give the file's path relative to the media folder"
    if ".." in re.split(r"[/\\]", value) or _CONTROL.search(value):
        return f"{value!r} leaves the media folder or holds a control character: name a file in it"
    return None


def _camera_streams(value: Any, ctx: Context, rule: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Each stream name once; each file in the media folder (on the controller, where it is)."""
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    media = ctx.top.get("ovms_camera_media_dir")
    folder = str(media) if media not in (None, "") else None
    for index, stream in enumerate(value if isinstance(value, list) else []):
        if not isinstance(stream, Mapping):
            continue
        name, file = stream.get("name"), stream.get("file")
        if isinstance(name, str) and name in seen:
            found.append((f"[{index}].name", f"{name!r} is the name of an earlier stream: give each its own"))
        seen.add(str(name))
        if file is None or _media_file(file, ctx, rule) or "ovms_camera_media_dir" in ctx.unknown:
            continue
        if folder is None:
            found.append(
                (f"[{index}].file", f"{file!r} needs ovms_camera_media_dir, the controller folder holding it")
            )
        elif Path(folder).is_dir() and not (Path(folder) / file).is_file():
            found.append((f"[{index}].file", f"{file!r} is not a file of ovms_camera_media_dir ({folder})"))
    return found


# What a camera key of ovms_client_camera_credentials may be: an rtsp/http URL without credentials,
# a host:port or a host (IPv6 in brackets), read then as the client reads it (client/credentials.py).
_CAMERA_MATCH = re.compile(
    r"((rtsps?|https?)://[A-Za-z0-9._\[\]:-]+(/[^\s@]*)?"
    r"|[A-Za-z0-9_][A-Za-z0-9._-]*(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?)"
)
_CREDENTIAL_KEYS = ("username", "password")


def camera_match(match: object) -> bool:
    """Whether a key of ovms_client_camera_credentials names a camera as the client reads it."""
    if not isinstance(match, str) or not _CAMERA_MATCH.fullmatch(match) or "@" in match:
        return False
    url = "://" in match
    try:
        parts = urlsplit(match if url else f"//{match}")
        parts.port  # noqa: B018 (raises ValueError for a port that is no number or out of range)
    except ValueError:  # such a port, or a bad IPv6 address
        return False
    host = parts.hostname or ""
    if not host or host.startswith("-"):
        return False
    if url:
        return True
    return not (parts.path or parts.query or parts.fragment) and (":" not in host or match.startswith("["))


def _camera_credentials(value: Any, ctx: Context, rule: Mapping[str, Any]) -> list[tuple[str, str]]:
    """ovms_client_camera_credentials: camera -> {username, password}; messages name keys only."""
    if value is None:
        return []
    if not isinstance(value, Mapping):
        return [("", "expected a mapping of camera (URL, host:port or host) -> {username, password}")]
    found: list[tuple[str, str]] = []
    for match, entry in value.items():
        if not camera_match(match):
            found.append(
                (
                    "",
                    "an entry whose key is not a URL or host: a key is an rtsp://, rtsps://, http:// or "
                    "https:// URL without credentials, a host:port or a host",
                )
            )
            continue
        where = f"[{match!r}]"
        if not isinstance(entry, Mapping) or set(entry) - set(_CREDENTIAL_KEYS):
            found.append((where, "expected a mapping with the keys username and password only"))
            continue
        for key in _CREDENTIAL_KEYS:
            item = entry.get(key)
            one_line = isinstance(item, str) and not any(c in item for c in "\r\n\0")
            if not one_line or not item or len(item) > 1024:
                found.append(
                    (f"{where}.{key}", "must be a non-empty string of one line (at most 1024 characters)")
                )
    return found


def _versions(value: Any, ctx: Context, rule: Mapping[str, Any]) -> list[tuple[str, str]]:
    if not value:
        return [("", "must list at least one version")]
    return [(f"[{i}]", got("must be greater than 0", v)) for i, v in enumerate(value) if v <= 0]


def _shape_of_one(value: Any) -> str | None:
    if isinstance(value, str):
        return None
    if isinstance(value, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in value):
        return None
    return "is not a shape: give auto, a shape string such as (1,3,300,300), or a list of integers"


def _model_shape(value: Any, ctx: Context, rule: Mapping[str, Any]) -> list[tuple[str, str]]:
    if isinstance(value, Mapping):
        return [(f".{k}", got(m, v)) for k, v in value.items() if (m := _shape_of_one(v))]
    message = _shape_of_one(value)
    return [("", got(message, value))] if message else []


def _model_layout(value: Any, ctx: Context, rule: Mapping[str, Any]) -> list[tuple[str, str]]:
    if isinstance(value, Mapping):
        return [
            (f".{k}", got("must be a layout string", v)) for k, v in value.items() if not isinstance(v, str)
        ]
    if isinstance(value, str):
        return []
    return [("", "must be a layout string (e.g. NHWC:NCHW) or input name -> layout string")]


def _batch_size(value: Any, ctx: Context, rule: Mapping[str, Any]) -> str | None:
    if value == "auto":
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return None
    return "must be an integer of 1 or more, or auto"


def _node_ref(value: Any, ctx: Context, rule: Mapping[str, Any]) -> str | None:
    """A pipeline's or node's input/output: {name: {node_name, data_item}}."""
    if isinstance(value, Mapping) and len(value) == 1:
        ((_name, ref),) = value.items()
        if (
            isinstance(ref, Mapping)
            and set(ref) == {"node_name", "data_item"}
            and all(isinstance(v, str) for v in ref.values())
        ):
            return None
    return "must be one name mapped to {node_name: ..., data_item: ...}"


def _published_port(value: Any, ctx: Context, rule: Mapping[str, Any]) -> str | None:
    """prechecks_ports: a port number, or {port, variable} (the variable named in the message)."""
    if isinstance(value, Mapping):
        extra = sorted(set(value) - {"port", "variable"})
        if extra or "port" not in value:
            return "must be a port number or {port: N, variable: NAME}"
        if not isinstance(value.get("variable", ""), str):
            return "its variable must be a variable name"
        value = value["port"]
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return "must be a port number or {port: N, variable: NAME}"
    if evaluate(definition("port"), value, ctx):
        return got("must be a port number from 1 to 65535", value)
    return None


def _device_paths(value: Any, ctx: Context, rule: Mapping[str, Any]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for device, paths in value.items():
        if not isinstance(paths, list):
            found.append((f".{device}", f"must be a list, not {kind(paths)}"))
            continue
        found += [
            (f".{device}[{i}]", got(m, p)) for i, p in enumerate(paths) if (m := _absolute(p, ctx, rule))
        ]
    return found


def _profile_source(value: Any, ctx: Context, rule: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The keys of a profile source depend on its type; a git source must pin the profile (`commit`:
    the pattern of a full commit id)."""
    takes_by_type = {"local": (), "url": ("url", "sha256"), "git": ("repo", "version", "commit")}
    source_type = value.get("type")
    allowed = takes_by_type.get(str(source_type))
    if allowed is None:
        return []
    takes = f"it takes {', '.join(allowed)}" if allowed else "it takes type only"
    foreign = [
        (f".{key}", f"is not a key of a {source_type} source ({takes})")
        for key, item in value.items()
        if key != "type" and item is not None and key not in allowed
    ]
    if foreign:
        return foreign
    version = str(value.get("version"))
    if source_type == "git" and value.get("commit") is None and not re.fullmatch(rule["commit"], version):
        return [
            (
                "",
                f"version {version!r} does not pin the profile: whoever controls a branch (or moves a tag) "
                "changes it on every deploy; give a full 40-character commit id as version, or add "
                "`commit:` with the full commit id the tag must resolve to",
            )
        ]
    return []


def _path_only_local(value: Any, ctx: Context, rule: Mapping[str, Any]) -> str | None:
    source = value.get("source")
    source_type = source.get("type") if isinstance(source, Mapping) else None
    if value.get("path") is not None and source_type not in (None, "local"):
        return f"`path` is a controller folder: it cannot go with a {source_type} source"
    return None


_SERIAL_STEP = re.compile(r"[0-9]+%?")
SERIAL_WHY = 'must be a count (0: all at once), "N%" or a non-empty list of them such as [1, "10%", "100%"]'


def serial_step_problem(step: Any) -> str | None:
    """One step of a `serial` (ovms_deploy_serial): a count >= 0, or digits with an optional '%'."""
    if isinstance(step, bool) or not isinstance(step, (int, str)):
        return SERIAL_WHY
    if isinstance(step, int):
        return None if step >= 0 else SERIAL_WHY
    return None if _SERIAL_STEP.fullmatch(step) else SERIAL_WHY


def _deploy_serial(value: Any, ctx: Context, rule: Mapping[str, Any]) -> list[tuple[str, str]] | str | None:
    """ovms_deploy_serial, as Ansible's `serial` reads it (launcher.rollout plans site batches with it)."""
    if isinstance(value, list):
        if not value:
            return SERIAL_WHY
        return [(f"[{i}]", got(SERIAL_WHY, s)) for i, s in enumerate(value) if serial_step_problem(s)]
    return serial_step_problem(value)


CHECKS = {
    "absolute": _absolute,
    "absolute_or_empty": _absolute_or_empty,
    "no_scheme": _no_scheme,
    "data_dir": _data_dir,
    "docker_memory": _docker_memory,
    "body_limited": _body_limited,
    "ip_address": _ip_address,
    "san": _san,
    "rest_port_own": _rest_port_own,
    "not_controller": _not_controller,
    "scalar": _scalar,
    "string": _string,
    "a_list": _a_list,
    "printable": _printable,
    "media_file": _media_file,
    "camera_streams": _camera_streams,
    "camera_credentials": _camera_credentials,
    "versions": _versions,
    "model_shape": _model_shape,
    "model_layout": _model_layout,
    "batch_size": _batch_size,
    "node_ref": _node_ref,
    "published_port": _published_port,
    "device_paths": _device_paths,
    "profile_source": _profile_source,
    "path_only_local": _path_only_local,
    "deploy_serial": _deploy_serial,
}


# --- rule files ---------------------------------------------------------------------------------------

_DEFINITIONS: dict[str, Any] = {}


def definition(name: str) -> Any:
    """A definition of ovms_common's rule file (loaded with it)."""
    return _DEFINITIONS[name]


class RuleSet(NamedTuple):
    """The rules of one or more roles' files: option path -> the rules run in order."""

    rules: Mapping[str, tuple[Mapping[str, Any], ...]]
    definitions: Mapping[str, Any]
    host: tuple[Mapping[str, Any], ...]
    files: tuple[str, ...]

    def merged(self, other: RuleSet) -> RuleSet:
        rules = dict(self.rules)
        for path, more in other.rules.items():
            rules[path] = (*rules.get(path, ()), *more)
        return RuleSet(
            rules,
            {**self.definitions, **other.definitions},
            self.host or other.host,
            self.files + other.files,
        )


_LOADED: dict[str, tuple[tuple[int, int], Any]] = {}


def load_yaml(path: str) -> Any:
    """A YAML file's data, read once per process (again only when it changed); None when missing."""
    try:
        stat = Path(path).stat()
    except OSError:
        return None
    ident = (stat.st_mtime_ns, stat.st_size)
    cached = _LOADED.get(path)
    if cached is not None and cached[0] == ident:
        return cached[1]
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with Path(path).open(encoding="utf-8") as handle:
        data = yaml.load(handle, Loader=loader)  # a safe loader
    _LOADED[path] = (ident, data)
    return data


def _as_list(rule: Any) -> tuple[Mapping[str, Any], ...]:
    if rule is None:
        return ()
    return tuple(rule) if isinstance(rule, (list, tuple)) else (rule,)


def _contract_part(file: str, key: str) -> Mapping[str, Any]:
    """The mapping `key` of a role's contract file (meta/rules.yml, meta/argument_specs.yml). A file
    that is missing, empty or without that mapping is an error naming it: a role would else check
    nothing and pass every value (fail closed)."""
    data = load_yaml(file)
    if data is None:
        state = "is missing" if not Path(file).exists() else "is empty"
    elif not isinstance(data, Mapping) or not isinstance(data.get(key), Mapping) or not data[key]:
        state = f"holds no `{key}` mapping"
    else:
        return data
    raise ValueError(
        f"{file} {state}: every role checks its variables against its meta/argument_specs.yml and "
        "meta/rules.yml, and a role without them would pass any value unchecked; restore the file"
    )


def load_rules(role_path: str) -> RuleSet:
    """`<role_path>/meta/rules.yml` (cached); a missing or empty file is an error (_contract_part)."""
    file = str(Path(role_path) / RULES_FILE)
    data = _contract_part(file, "rules")
    rules = {str(path): _as_list(rule) for path, rule in (data.get("rules") or {}).items()}
    definitions = dict(data.get("definitions") or {})
    _DEFINITIONS.update(definitions)
    return RuleSet(rules, definitions, _as_list(data.get("host")), (file,))


def entry_point(role: str) -> str:
    """The entry point of `role`'s argument specs that holds its options."""
    return SHARED_ENTRY_POINT if role == COMMON else "main"


def load_options(role_path: str, entry: str | None = None) -> dict[str, Any]:
    """The options of a role's entry point (meta/argument_specs.yml; by default the one of its options,
    `entry_point`), cached; a missing or empty file, or one without that entry point, is an error
    (_contract_part)."""
    file = str(Path(role_path) / SPECS_FILE)
    name = entry or entry_point(Path(role_path).name)
    spec = _contract_part(file, "argument_specs")["argument_specs"].get(name)
    if not isinstance(spec, Mapping):
        raise ValueError(f"{file} has no entry point {name!r}: restore argument_specs.{name}")
    return dict(spec.get("options") or {})


@functools.lru_cache(maxsize=64)
def role_contract(roles_dir: str, role: str) -> tuple[dict[str, Any], RuleSet]:
    """The options and rules a role's check applies: ovms_common's (deployment-wide) and its own.
    Read once per process (a controller checks every host of a run with the same files); callers
    never change what it returns."""
    common = str(Path(roles_dir) / COMMON)
    options = load_options(common)
    rules = load_rules(common)
    if role != COMMON:
        own = str(Path(roles_dir) / role)
        options = {**options, **{k: v for k, v in load_options(own).items() if k not in options}}
        rules = rules.merged(load_rules(own))
    return options, rules


class Contract(NamedTuple):
    """What a role's check applies (`contract`): options, rules, and the options it may leave to the
    tasks when their value cannot be templated at the check (option -> why)."""

    options: dict[str, Any]
    rules: RuleSet
    deferred: Mapping[str, str]


@functools.lru_cache(maxsize=64)
def contract(roles_dir: str, role: str) -> Contract:
    """role_contract and what the role's rule file adds to it: `also` (role -> [options]: the other
    roles' variables this role reads, checked here with their rules) and `deferred` (option -> why its
    value may depend on what the role itself sets later; any other option that cannot be templated
    at the check is a finding)."""
    options, rules = role_contract(roles_dir, role)
    file = str(Path(roles_dir) / role / RULES_FILE)
    data = load_yaml(file) or {}
    also = data.get("also") or {}
    if also:
        options, extra = dict(options), {}
        for other, names in also.items():
            theirs = load_options(str(Path(roles_dir) / other))
            their_rules = load_rules(str(Path(roles_dir) / other)).rules
            for name in names:
                if name not in theirs:
                    raise ValueError(f"{file}: also: {name} is no option of roles/{other}'s argument specs")
                options.setdefault(name, theirs[name])
                extra.update(
                    (path, r)
                    for path, r in their_rules.items()
                    if path not in rules.rules and (path == name or path.startswith((f"{name}.", f"{name}[")))
                )
        rules = rules.merged(RuleSet(extra, {}, (), ()))
    deferred = {str(name): str(why) for name, why in (data.get("deferred") or {}).items()}
    return Contract(options, rules, deferred)


# --- evaluation ---------------------------------------------------------------------------------------


def _one(rule: Mapping[str, Any], value: Any, ctx: Context) -> list[tuple[str, str]]:
    """The findings of one rule mapping (see the module docstring for the order of its keys)."""
    if "use" in rule:
        found = evaluate(_DEFINITIONS[rule["use"]], value, ctx)
        if found and "why" in rule:  # the definition's test, in the words of this rule
            return [(suffix, got(rule["why"], value, ctx.secret)) for suffix, _message in found]
        if found:
            return found
    message: str | None = None
    if rule.get("not_empty") and value in ("", None):
        message = "must not be empty"
    elif "pattern" in rule and not (isinstance(value, str) and re.fullmatch(rule["pattern"], value)):
        message = f"should match pattern {rule['pattern']!r}"
    elif "max_length" in rule and len(value) > rule["max_length"]:
        message = f"must have at most {rule['max_length']} characters"
    elif "min" in rule and value < rule["min"]:
        message = f"must be greater than or equal to {rule['min']}"
    elif "max" in rule and value > rule["max"]:
        message = f"must be less than or equal to {rule['max']}"
    elif "above" in rule and value <= rule["above"]:
        message = f"must be greater than {rule['above']}"
    if message:  # `why`: the rule's own words for what it wants
        return [("", got(rule.get("why") or message, value, ctx.secret))]
    if "check" in rule:
        result = CHECKS[rule["check"]](value, ctx, rule)
        if isinstance(result, str):
            return [("", got(result, value, ctx.secret))]
        if result:
            return list(result)
    if "outside_of" in rule and (message := _outside_of(value, ctx, rule["outside_of"])):
        return [("", message)]
    if "each" in rule:
        found = []
        for index, item in enumerate(value):
            found += [(f"[{index}]{s}", m) for s, m in evaluate(rule["each"], item, ctx)]
        if found:
            return found
    if "values" in rule:
        found = []
        for name, item in value.items():
            found += [(f".{name}{s}", m) for s, m in evaluate(rule["values"], item, ctx)]
        if found:
            return found
    return []


def applies(rule: Mapping[str, Any], ctx: Context, invalid: frozenset[str] | set[str] = frozenset()) -> bool:
    """Whether a rule runs here: its `when` siblings have those values, its `reads` are set and valid."""
    for name, wanted in (rule.get("when") or {}).items():
        if ctx.siblings.get(name) != wanted:
            return False
    return not any(
        n in invalid or n in ctx.unknown or ctx.siblings.get(n) is None for n in rule.get("reads") or ()
    )


def evaluate(
    rules: Any, value: Any, ctx: Context, invalid: frozenset[str] | set[str] = frozenset()
) -> list[tuple[str, str]]:
    """The findings of the first failing rule of `rules` (a rule or a list): (suffix, message)."""
    for rule in _as_list(rules):
        if not applies(rule, ctx, invalid):
            continue
        found = _one(rule, value, ctx)
        if found:
            return found
    return []


# --- a whole set of variables: the role's check --------------------------------------------------------

CONSTRAINTS = ("mutually_exclusive", "required_together", "required_one_of", "required_if", "required_by")
_DOC_KEYS = ("options", "description", "no_log", *CONSTRAINTS)


def nested(option: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The nested `options` of a dict or list-of-dict option (None for any other option)."""
    wanted = option.get("type")
    if wanted == "dict" or (wanted == "list" and option.get("elements") == "dict"):
        sub = option.get("options")
        return sub if isinstance(sub, Mapping) else None
    return None


def _flat(option: Mapping[str, Any]) -> dict[str, Any]:
    """An option as checked here: its nested options checked level by level, `path` as `str` (the
    roles read the value as written; ansible's validator would expand `~` and `$VARS`)."""
    flat = {k: v for k, v in option.items() if k not in _DOC_KEYS}
    if flat.get("type") == "path":
        flat["type"] = "str"
    if flat.get("elements") == "path":
        flat["elements"] = "str"
    if "elements" in flat and flat.get("type") != "list":
        del flat["elements"]
    return flat


# validators of one option alone, and of a mapping's constraints, built once per loaded spec (the specs
# are loaded once per process and kept: their ids stay theirs)
_VALIDATORS: dict[tuple[int, str], tuple[Mapping[str, Any], ArgumentSpecValidator]] = {}


def _option_validator(name: str, option: Mapping[str, Any]) -> ArgumentSpecValidator:
    found = _VALIDATORS.get((id(option), name))
    if found is None or found[0] is not option:
        found = (option, ArgumentSpecValidator({name: _flat(option)}))
        _VALIDATORS[(id(option), name)] = found
    return found[1]


def _constraints_validator(options: Mapping[str, Any], owner: Mapping[str, Any]) -> ArgumentSpecValidator:
    found = _VALIDATORS.get((id(options), "\0constraints"))
    if found is None or found[0] is not options:
        flat = {name: _flat(option) for name, option in options.items()}
        # the mapping's constraints (required, required_if, ...): types are checked option by option
        for name in flat:
            flat[name]["type"] = "raw"
            flat[name].pop("elements", None)
            flat[name].pop("choices", None)
        constraints = {c: owner.get(c) for c in CONSTRAINTS if owner.get(c)}
        found = (options, ArgumentSpecValidator(flat, **constraints))
        _VALIDATORS[(id(options), "\0constraints")] = found
    return found[1]


def _child(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


class _Walk:
    def __init__(self, rules: RuleSet, top: Mapping[str, Any]) -> None:
        self.rules = rules
        self.top = top
        self.findings: list[Finding] = []

    def add(self, key: str, path: str, message: str) -> None:
        self.findings.append(Finding(key, path, message))

    def level(
        self,
        options: Mapping[str, Any],
        given: Mapping[str, Any],
        key: str,
        path: str,
        owner: Mapping[str, Any],
        secret: bool,
    ) -> tuple[dict[str, Any], bool]:
        """One mapping: shapes, ansible's conversion option by option, the mapping's constraints, the
        nested mappings, then the rules. Returns the converted values and whether all passed."""
        before = len(self.findings)
        invalid: set[str] = set()
        for name in sorted(set(given) - set(options), key=str):
            known = ", ".join(sorted(options)) or "no key"
            self.add(_child(key, str(name)), path, f"is not a known key (it takes {known})")
        values: dict[str, Any] = {}
        for name, option in options.items():
            if name not in given:
                continue
            value = given[name]
            hidden = secret or bool(option.get("no_log"))
            here, where = _child(key, name), _child(path, name)
            problems = shape_findings(option, value, hidden)
            if not problems and value is not None:
                result = _option_validator(name, option).validate({name: value})
                if result.error_messages:
                    problems = [("", HIDDEN if hidden else "; ".join(result.error_messages))]
                else:
                    value = result.validated_parameters[name]
            if option.get("required") and value is None:
                problems = [("", "is required but has no value")]
            for suffix, message in problems:
                self.add(here + suffix, where, message)
            if problems:
                invalid.add(name)
            else:
                values[name] = value
        # a key given without a value is missing to the constraints too (`url:` under required_if), as
        # the launcher's validate reads it (the `stricter` list of ovms_common's rules)
        result = _constraints_validator(options, owner).validate(
            {k: v for k, v in given.items() if k in options and k not in invalid and v is not None}
        )
        for message in result.error_messages:
            if not message.startswith("Unsupported parameters"):
                self.add(key or "(variables)", path, message)
        for name, value in result.validated_parameters.items():
            if name not in invalid and name not in values:
                values[name] = value  # defaults of absent options
        for name, option in options.items():
            value = values.get(name)
            if name in invalid or value is None:
                continue
            hidden = secret or bool(option.get("no_log"))
            here, where = _child(key, name), _child(path, name)
            sub = nested(option)
            if sub is not None:
                if option.get("type") == "list":
                    items = []
                    for index, item in enumerate(value):
                        done, ok = self.level(sub, item, f"{here}[{index}]", f"{where}[]", option, hidden)
                        items.append(done)
                        if not ok:
                            invalid.add(name)
                    values[name] = items
                else:
                    values[name], ok = self.level(sub, value, here, where, option, hidden)
                    if not ok:
                        invalid.add(name)
                if name in invalid:
                    continue
            ctx = Context(values, self.top, frozenset(), hidden)
            rule = self.rules.rules.get(where)
            for suffix, message in evaluate(rule, value, ctx, invalid) if rule else ():
                self.add(here + suffix, where, message)
                invalid.add(name)
        ok = len(self.findings) == before
        if path and ok and (rule := self.rules.rules.get(path)):
            for suffix, message in evaluate(rule, values, Context(values, self.top, frozenset(), secret)):
                self.add(key + suffix, path, message)
        return values, len(self.findings) == before


def plain(value: Any) -> Any:
    """`value` in Python's own types, as a module receives it (JSON: a tuple or set is a list). The one
    conversion of both sides: the launcher's inventory reads values through it too. ansible-core 2.19
    tags the strings and containers it loads or templates with where they came from, and Python
    deep-copies such a value about 40 times slower than a plain one; ansible's argument-spec validator
    deep-copies every value it checks, once per nesting level."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    return value


def check(options: Mapping[str, Any], rules: RuleSet, values: Mapping[str, Any]) -> list[Finding]:
    """Every finding of `values` (variable -> value, templated) against the options and the rules."""
    values = plain(values)
    walk = _Walk(rules, values)
    converted, _ok = walk.level(options, {k: v for k, v in values.items() if k in options}, "", "", {}, False)
    walk.top = converted
    return _redacted(walk.findings, options, values)


def check_host(name: str, rules: RuleSet, top: Mapping[str, Any]) -> list[Finding]:
    """The inventory host name against the host rule (a DNS name, not the controller's own)."""
    found = evaluate(rules.host, name, Context({}, top))
    return [Finding("inventory_hostname", "inventory_hostname", message) for _suffix, message in found]


def _secrets(options: Mapping[str, Any], values: Mapping[str, Any], hidden: bool = False) -> list[str]:
    """The string values of no_log options (and everything below them)."""
    found: list[str] = []

    def strings(value: Any) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, Mapping):
            for v in value.values():  # keys name things (a camera), values are the secrets
                strings(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                strings(v)

    for name, option in options.items():
        if not isinstance(values, Mapping) or name not in values:
            continue
        secret = hidden or bool(option.get("no_log"))
        value = values[name]
        sub = nested(option)
        if secret:
            strings(value)
        elif sub is not None:
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, Mapping):
                    found += _secrets(sub, item)
    return found


def _redacted(
    findings: list[Finding], options: Mapping[str, Any], values: Mapping[str, Any]
) -> list[Finding]:
    """No message shows a no_log value, whatever check or ansible message produced it."""
    secrets = sorted({s for s in _secrets(options, values) if len(s) >= 3}, key=len, reverse=True)
    if not secrets:
        return findings
    out = []
    for finding in findings:
        message, key = finding.message, finding.key
        for secret in secrets:
            message = message.replace(secret, "********")
            key = key.replace(secret, "********")
        out.append(Finding(key, finding.path, message))
    return out
