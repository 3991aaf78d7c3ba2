"""What a role's argument spec cannot express, written once: patterns, ranges, absolute paths, sizes,
the keys a profile source takes for its type, and the shapes Ansible would convert silently.

Every rule is keyed by an option path of the roles' specs (launcher/validate/specs.py: a variable
`ovms_tls_port`, an entry option `ovms_client_profiles[].source.url`); a test checks that each path
exists in a spec. ansible-core's validator runs first (type, choices, required, nested options):
a rule runs only on a value that passed it, already converted to the option's type. The git source
patterns are the ovms_client role's own (roles/ovms_client/vars/main.yml), which its tasks check on
the host too.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from launcher.content import content
from launcher.validate import common_role
from launcher.validate.specs import load_yaml

# (key below the option: "" for the option itself, "[2]" for a list item, ".GPU[0]" inside a mapping; message)
Finding = tuple[str, str]
# (the value, the mapping holding it: the host's variables, or the entry it is an option of) -> findings
Check = Callable[[Any, Mapping[str, Any]], list[Finding]]
Simple = Callable[[Any], str | None]


@dataclass(frozen=True)
class Rule:
    path: str  # an option path of the specs
    check: Check
    # options of the same mapping the check reads too: it runs only when they are set and valid
    reads: tuple[str, ...] = ()


def shown(value: Any) -> str:
    """A value as the user wrote it, near enough: a float option given 61 shows 61, not 61.0."""
    if isinstance(value, float) and value.is_integer():
        return repr(int(value))
    return repr(value)


def got(message: str, value: Any) -> str:
    """`message (got 'x')`, unless the message shows the value already or the value is a collection."""
    if isinstance(value, Mapping | list | tuple) or shown(value) in message:
        return message
    return f"{message} (got {shown(value)})"


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return repr(value)


# --- shapes: what Ansible's type checks would convert, where the roles' tasks read the value as given ----

TYPE_WORDS = {
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "str": "string",
    "path": "string",
    "list": "list",
    "dict": "mapping",
}


def shape(wanted: str | None, value: Any) -> str | None:
    """Why `value` is refused for an option of type `wanted` before Ansible's own type check.

    Ansible's validator converts where the roles' tasks would not (they read the variable as given,
    never the validator's conversion): any value to a string (a list becomes its Python text), a
    comma-separated string to a list, a `k=v` string to a mapping, a boolean to an integer. A string
    for a boolean ("true", "yes", as `-e` gives it) is accepted: the roles read booleans with `| bool`.
    """
    if value is None:
        return None
    wanted = wanted or "str"
    word = TYPE_WORDS.get(wanted, wanted)
    if wanted in ("str", "path") and isinstance(value, Mapping | list | tuple):
        return f"is not a valid {word} (got {_kind(value)})"
    if wanted == "list" and not isinstance(value, list | tuple):
        return got(f"is not a valid {word}", value)
    if wanted == "dict" and not isinstance(value, Mapping):
        return got(f"is not a valid {word}", value)
    if wanted in ("int", "float") and isinstance(value, bool):
        return got(f"is not a valid {word}", value)
    if wanted in ("int", "float", "bool") and isinstance(value, Mapping | list | tuple):
        return f"is not a valid {word} (got {_kind(value)})"
    return None


def shape_findings(option: Mapping[str, Any], value: Any) -> list[Finding]:
    """Shape problems of a value and, for a list, of each of its items (`elements`)."""
    wanted = option.get("type")
    message = shape(wanted, value)
    if message:
        return [("", message)]
    elements = option.get("elements")
    if wanted == "list" and elements and elements != "raw" and isinstance(value, list | tuple):
        return [(f"[{i}]", m) for i, item in enumerate(value) if (m := shape(elements, item))]
    return []


# --- building blocks ------------------------------------------------------------------------------


def simple(*checks: Simple) -> Check:
    """The first message of `checks` on the value (each check returns a message without the value)."""

    def check(value: Any, _: Mapping[str, Any]) -> list[Finding]:
        for one in checks:
            message = one(value)
            if message:
                return [("", got(message, value))]
        return []

    return check


def each(*checks: Simple) -> Check:
    """`checks` on every item of a list."""
    inner = simple(*checks)

    def check(value: Any, siblings: Mapping[str, Any]) -> list[Finding]:
        return [(f"[{i}]{s}", m) for i, item in enumerate(value) for s, m in inner(item, siblings)]

    return check


def values(*checks: Simple) -> Check:
    """`checks` on every value of a free-form mapping (environment, device paths...)."""
    inner = simple(*checks)

    def check(value: Any, siblings: Mapping[str, Any]) -> list[Finding]:
        return [(f".{k}{s}", m) for k, item in value.items() for s, m in inner(item, siblings)]

    return check


def at_least(bound: float) -> Simple:
    return lambda v: f"must be greater than or equal to {bound}" if v < bound else None


def at_most(bound: float) -> Simple:
    return lambda v: f"must be less than or equal to {bound}" if v > bound else None


def above(bound: float) -> Simple:
    return lambda v: f"must be greater than {bound}" if v <= bound else None


def pattern(regex: str, why: str = "") -> Simple:
    compiled = re.compile(regex)
    message = why or f"should match pattern {regex!r}"
    return lambda v: None if isinstance(v, str) and compiled.fullmatch(v) else message


def longest(count: int) -> Simple:
    return lambda v: f"must have at most {count} characters" if len(v) > count else None


def not_empty(value: Any) -> str | None:
    return "must not be empty" if value in ("", None) else None


def absolute(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith("/"):
        return None
    return f"must be an absolute path (starting with /), got {value!r}"


def scalar(value: Any) -> str | None:
    if isinstance(value, str | int | float | bool):
        return None
    return f"must be a string, number or boolean, not {_kind(value)}"


def string(value: Any) -> str | None:
    return None if isinstance(value, str) else f"must be a string, not {_kind(value)}"


def a_list(value: Any) -> str | None:
    return None if isinstance(value, list) else f"must be a list, not {_kind(value)}"


PORT = (at_least(1), at_most(65535))
NAME = (not_empty,)
IMAGE = (pattern(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$"), longest(512))  # name[:tag][@digest], never "-..."
CONTAINER = (pattern(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"),)
DNS_NAME = (pattern(r"^[A-Za-z0-9][A-Za-z0-9._-]*$"),)
SIZE = (pattern(r"^[0-9]+[kKmMgG]?$"),)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def _bytes(size: str) -> int:
    unit = size[-1].lower() if size[-1].isalpha() else ""
    return int(size.rstrip("kKmMgG")) * _UNITS[unit]


def docker_memory(value: str) -> str | None:
    """Docker refuses a memory limit under 6 MiB when it creates the container."""
    if value and _bytes(value) < 6 << 20:
        return f'{value!r} is below the 6m Docker accepts: give e.g. 512m or 2g, or "" for no limit'
    return None


MEMORY = (pattern(r"^([1-9][0-9]*[kKmMgG]?|)$"), docker_memory)  # "" for none


def ip_address(value: str) -> str | None:
    """Docker publishes ports on an address only; a loose pattern let `999.1.1.1` or `:::` through."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return (
            f"{value!r} is not an IPv4 or IPv6 address: give one of the host's addresses "
            "(0.0.0.0 or :: for all of them)"
        )
    return None


def body_limited(value: str) -> str | None:
    """nginx reads client_max_body_size 0 as no limit at all."""
    if int(value.rstrip("kKmMgG")) == 0:
        return f"{value!r} is no limit for nginx: give a size of at least 1, e.g. 64m"
    return None


# --- ovms_server_models entries (also ovms_models_list's) ----------------------------------------


def _versions(value: list[int], siblings: Mapping[str, Any]) -> list[Finding]:
    if not value:
        return [("", "must list at least one version")]
    return each(above(0))(value, siblings)


def _shape_of_one(value: Any) -> str | None:
    if isinstance(value, str):
        return None
    if isinstance(value, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in value):
        return None
    return "is not a shape: give auto, a shape string such as (1,3,300,300), or a list of integers"


def _model_shape(value: Any, _: Mapping[str, Any]) -> list[Finding]:
    if isinstance(value, Mapping):
        return [(f".{k}", got(m, v)) for k, v in value.items() if (m := _shape_of_one(v))]
    message = _shape_of_one(value)
    return [("", got(message, value))] if message else []


def _model_layout(value: Any, _: Mapping[str, Any]) -> list[Finding]:
    if isinstance(value, Mapping):
        return [(f".{k}", got("must be a layout string", v)) for k, v in value.items() if string(v)]
    if isinstance(value, str):
        return []
    return [("", got("must be a layout string (e.g. NHWC:NCHW) or input name -> layout string", value))]


def _batch_size(value: Any) -> str | None:
    if value == "auto":
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return None
    return "must be an integer of 1 or more, or auto"


def _model_rules(base: str) -> list[Rule]:
    return [
        Rule(f"{base}[].name", simple(pattern(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"))),
        Rule(f"{base}[].version_policy.specific.versions", _versions),
        Rule(f"{base}[].version_policy.latest.num_versions", simple(at_least(1))),
        Rule(f"{base}[].nireq", simple(at_least(0))),
        Rule(f"{base}[].target_device", simple(*NAME)),
        Rule(f"{base}[].plugin_config", values(scalar)),
        Rule(f"{base}[].shape", _model_shape),
        Rule(f"{base}[].layout", _model_layout),
        Rule(f"{base}[].batch_size", simple(_batch_size)),
    ]


def _node_ref(value: Any) -> str | None:
    """A pipeline's or node's input/output: {name: {node_name, data_item}}."""
    if isinstance(value, Mapping) and len(value) == 1:
        ((_, ref),) = value.items()
        if (
            isinstance(ref, Mapping)
            and set(ref) == {"node_name", "data_item"}
            and all(isinstance(v, str) for v in ref.values())
        ):
            return None
    return "must be one name mapped to {node_name: ..., data_item: ...}"


DEMULTIPLY = (at_least(-1), at_most(10000))

# --- ovms_client_profiles entries -----------------------------------------------------------------


@cache
def git_patterns() -> dict[str, str]:
    """The git source rules the ovms_client role checks on the host too (roles/ovms_client/vars)."""
    data = load_yaml(content().roles / "ovms_client" / "vars" / "main.yml") or {}
    return {key: data[f"ovms_client_git_{key}_pattern"] for key in ("repo", "ref", "commit")}


SOURCE_KEYS = {"local": (), "url": ("url", "sha256"), "git": ("repo", "version", "commit")}


def _only(kind: str, *checks: Simple) -> Check:
    """`checks` on an option of a profile source of type `kind` (another type refuses the key itself)."""
    inner = simple(*checks)

    def check(value: Any, source: Mapping[str, Any]) -> list[Finding]:
        return inner(value, source) if source.get("type") == kind else []

    return check


def _git(key: str, why: str) -> Simple:
    return lambda v: None if re.fullmatch(git_patterns()[key], v) else why


GIT_REPO = _git(
    "repo",
    "must be an https://, ssh://, user@host:path or file:/// repository, never starting with '-' "
    "(git would read it as an option)",
)
GIT_REF = _git("ref", "must be a commit id or a tag name: letters, digits, '.', '_', '/', '-', not first")
GIT_COMMIT = _git("commit", "must be a full 40-character commit id (lowercase hexadecimal)")


def _source(value: Mapping[str, Any], _: Mapping[str, Any]) -> list[Finding]:
    """The keys of a profile source depend on its type; a git source must pin the profile."""
    kind = value.get("type")
    allowed = SOURCE_KEYS.get(str(kind))
    if allowed is None:
        return []
    takes = f"it takes {', '.join(allowed)}" if allowed else "it takes type only"
    foreign = [
        (f".{key}", f"is not a key of a {kind} source ({takes})")
        for key, item in value.items()
        if key != "type" and item is not None and key not in allowed
    ]
    if foreign:
        return foreign
    version = str(value.get("version"))
    if kind == "git" and value.get("commit") is None and not re.fullmatch(git_patterns()["commit"], version):
        return [
            (
                "",
                f"version {version!r} does not pin the profile: whoever controls a branch (or moves a tag) "
                "changes it on every deploy; give a full 40-character commit id as version, or add "
                "`commit:` with the full commit id the tag must resolve to",
            )
        ]
    return []


def _no_scheme(value: str) -> str | None:
    if "://" in value:
        return (
            f"must be a folder on the controller, got {value!r}; "
            "use `source: {type: url, url: …, sha256: …}` for a profile fetched by the client host"
        )
    return None


def _path_only_local(value: Mapping[str, Any], _: Mapping[str, Any]) -> list[Finding]:
    source = value.get("source")
    kind = source.get("type") if isinstance(source, Mapping) else None
    if value.get("path") is not None and kind not in (None, "local"):
        return [("", f"`path` is a controller folder: it cannot go with a {kind} source")]
    return []


# --- ovms_camera: the role's own rules (its filter plugin, which its tasks/validate.yml asserts) -----


def _camera(check: str) -> Simple:
    """A check of the camera role's filter plugin (`<check>_problem`) on one value."""
    return lambda value: getattr(common_role.role_filters("ovms_camera"), f"{check}_problem")(value)


def _camera_password(value: Any, _: Mapping[str, Any]) -> list[Finding]:
    """The message never shows the value."""
    message = _camera("password")(value)
    return [("", message)] if message else []


# --- other variables ------------------------------------------------------------------------------


def _published_port(value: Any) -> str | None:
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
    for check in PORT:
        if message := check(value):
            return got(message, value)
    return None


def _rest_port_own(value: int, siblings: Mapping[str, Any]) -> list[Finding]:
    """Reported on ovms_tls_rest_port itself, so the message names the file that sets it."""
    if value and value == siblings.get("ovms_tls_port"):
        return [("", f"ovms_tls_rest_port equals ovms_tls_port ({value}): give REST its own port")]
    return []


def _media_dir(value: str) -> str | None:
    return None if value == "" else absolute(value)


def _device_paths(value: Mapping[str, Any], siblings: Mapping[str, Any]) -> list[Finding]:
    return [
        (f".{device}{s}", m)
        for device, paths in value.items()
        if isinstance(paths, list)
        for s, m in each(absolute)(paths, siblings)
    ]


def _camera_credentials(value: Any, _: Mapping[str, Any]) -> list[Finding]:
    """The ovms_client role's own check; its messages name keys, never a value (they are passwords)."""
    problems = common_role.role_filters("ovms_client").ovms_client_credentials_problems(value)
    return [("", problem) for problem in problems]


def _rules() -> list[Rule]:
    return [
        # deployment-wide (roles/ovms_common)
        Rule("ovms_server_container_name", simple(*CONTAINER)),
        Rule("ovms_server_network", simple(*NAME)),
        Rule("ovms_server_internal_network", simple(*NAME)),
        Rule("ovms_server_grpc_port", simple(*PORT)),
        Rule("ovms_server_rest_port", simple(*PORT)),
        Rule("ovms_server_data_dir", simple(absolute)),
        Rule("ovms_client_data_dir", simple(absolute)),
        Rule("ovms_client_container_prefix", simple(*CONTAINER)),
        Rule("ovms_tls_port", simple(*PORT)),
        Rule("ovms_tls_certs_dir", simple(absolute)),
        Rule("ovms_common_cache_dir", simple(absolute)),
        Rule("ovms_common_label", simple(*NAME)),
        Rule("ovms_common_tls.clients", values(string)),
        Rule("ovms_common_system_dirs", each(absolute)),
        Rule("ovms_common_log_driver", simple(*NAME)),
        Rule("ovms_common_log_options", values(scalar)),
        # roles/ovms_server
        Rule("ovms_server_image", simple(*IMAGE)),
        Rule("ovms_server_file_system_poll_wait_seconds", simple(at_least(0))),
        Rule("ovms_server_grpc_workers", simple(at_least(1))),
        Rule("ovms_server_metrics_list", each(*NAME)),
        Rule("ovms_server_status_interval", simple(at_least(0), at_most(60))),
        Rule("ovms_server_ready_timeout", simple(at_least(1))),
        *_model_rules("ovms_server_models"),
        Rule("ovms_server_pipelines[].outputs", each(_node_ref)),
        Rule("ovms_server_pipelines[].demultiply_count", simple(*DEMULTIPLY)),
        Rule("ovms_server_pipelines[].nodes[].inputs", each(_node_ref)),
        Rule("ovms_server_pipelines[].nodes[].version", simple(at_least(1))),
        Rule("ovms_server_pipelines[].nodes[].params", values(string)),
        Rule("ovms_server_pipelines[].nodes[].demultiply_count", simple(*DEMULTIPLY)),
        Rule("ovms_server_env", values(scalar)),
        Rule("ovms_server_memory", simple(*MEMORY)),
        Rule("ovms_server_pids_limit", simple(at_least(0))),
        Rule("ovms_server_cpus", simple(at_least(0))),
        Rule("ovms_server_device_paths", values(a_list)),
        Rule("ovms_server_device_paths", _device_paths),
        # roles/ovms_models
        Rule("ovms_models_cache_dir", simple(absolute)),
        Rule("ovms_models_dir", simple(absolute)),
        *_model_rules("ovms_models_list"),
        Rule("ovms_models_network_fs_types", each(*NAME)),
        # roles/ovms_client
        Rule("ovms_client_image", simple(*IMAGE)),
        Rule("ovms_client_server", simple(*NAME)),
        Rule(
            "ovms_client_server_address",
            simple(pattern(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):[0-9]{1,5}$")),
        ),
        Rule("ovms_client_profiles[]", _path_only_local),
        Rule("ovms_client_profiles[].name", simple(pattern(r"^[A-Za-z0-9][A-Za-z0-9._-]*$"))),
        Rule("ovms_client_profiles[].instances", simple(at_least(1))),
        Rule("ovms_client_profiles[].path", simple(_no_scheme, absolute)),
        Rule("ovms_client_profiles[].source", _source),
        Rule("ovms_client_profiles[].source.url", _only("url", pattern(r"^https?://[^\s/]+(/\S*)?$"))),
        Rule("ovms_client_profiles[].source.sha256", _only("url", pattern(r"^[0-9a-fA-F]{64}$"))),
        Rule("ovms_client_profiles[].source.repo", _only("git", GIT_REPO)),
        Rule("ovms_client_profiles[].source.version", _only("git", longest(255), GIT_REF)),
        Rule("ovms_client_profiles[].source.commit", _only("git", GIT_COMMIT)),
        Rule("ovms_client_profiles_src", simple(absolute)),
        Rule("ovms_client_network", simple(*NAME)),
        Rule("ovms_client_env", values(scalar)),
        Rule("ovms_client_media_dir", simple(_media_dir)),
        Rule("ovms_client_camera_credentials", _camera_credentials),
        Rule("ovms_client_memory", simple(*MEMORY)),
        Rule("ovms_client_pids_limit", simple(at_least(0))),
        Rule("ovms_client_cpus", simple(at_least(0))),
        Rule("ovms_client_results_timeout", simple(at_least(0))),
        # roles/prechecks
        Rule("prechecks_min_docker_api", simple(pattern(r"^[0-9]+\.[0-9]+$"))),
        Rule("prechecks_min_free_disk_mb", simple(at_least(0))),
        Rule("prechecks_ports", each(_published_port)),
        Rule("prechecks_architectures", each(*NAME)),
        Rule("prechecks_images[].image", simple(*IMAGE)),
        Rule("prechecks_data_dir", simple(absolute)),
        Rule("prechecks_paths[].path", simple(absolute)),
        Rule("prechecks_paths[].min_free_mb", simple(at_least(0))),
        Rule("prechecks_network_fs_types", each(*NAME)),
        # roles/ovms_tls_proxy
        Rule("ovms_tls_extra_sans", each(pattern(r"^(DNS|IP):\S+$"))),
        Rule("ovms_tls_image", simple(*IMAGE)),
        Rule("ovms_tls_container_name", simple(*CONTAINER)),
        Rule("ovms_tls_bind_address", simple(ip_address)),
        Rule("ovms_tls_rest_port", simple(at_least(0), at_most(65535))),
        Rule("ovms_tls_rest_port", _rest_port_own, reads=("ovms_tls_port",)),
        Rule("ovms_tls_grpc_buffer_size", simple(*SIZE)),
        Rule("ovms_tls_keepalive", simple(at_least(1))),
        Rule("ovms_tls_max_body_size", simple(*SIZE, body_limited)),
        Rule("ovms_tls_limit_conn", simple(at_least(0))),
        Rule("ovms_tls_limit_req_rate", simple(at_least(0))),
        Rule("ovms_tls_limit_req_burst", simple(at_least(0))),
        Rule("ovms_tls_dir", simple(absolute)),
        Rule("ovms_tls_conf_dir", simple(absolute)),
        Rule("ovms_tls_network", simple(*NAME)),
        Rule("ovms_tls_internal_network", simple(*NAME)),
        Rule("ovms_tls_aliases", each(*DNS_NAME)),
        Rule("ovms_tls_upstream_host", simple(*NAME)),
        Rule("ovms_tls_upstream_grpc_port", simple(*PORT)),
        Rule("ovms_tls_upstream_rest_port", simple(*PORT)),
        Rule("ovms_tls_probe_address", simple(*NAME)),
        Rule("ovms_tls_memory", simple(*MEMORY)),
        Rule("ovms_tls_pids_limit", simple(at_least(0))),
        Rule("ovms_tls_cpus", simple(at_least(0))),
        # roles/ovms_camera (its container name and data folder are deployment-wide: roles/ovms_common)
        Rule("ovms_camera_container_name", simple(*CONTAINER)),
        Rule("ovms_camera_data_dir", simple(absolute)),
        Rule("ovms_camera_image", simple(*IMAGE)),
        Rule("ovms_camera_bind_address", simple(_camera("bind_address"))),
        Rule("ovms_camera_port", simple(_camera("port"))),
        # each name once, each file in the media folder: launcher/validate/crosschecks.py check_cameras
        Rule("ovms_camera_streams[].name", simple(_camera("name"))),
        Rule("ovms_camera_streams[].file", simple(_camera("file"))),
        Rule("ovms_camera_streams[].fps", simple(_camera("fps"))),
        Rule("ovms_camera_media_dir", simple(_media_dir)),
        Rule("ovms_camera_credentials.username", simple(_camera("username"))),
        Rule("ovms_camera_credentials.password", _camera_password),
        Rule("ovms_camera_network", simple(*NAME)),
        Rule("ovms_camera_memory", simple(*MEMORY)),
        Rule("ovms_camera_pids_limit", simple(at_least(0))),
        Rule("ovms_camera_cpus", simple(at_least(0))),
        Rule("ovms_camera_tmpfs_size", simple(*SIZE)),
        Rule("ovms_camera_start_timeout", simple(at_least(0))),
    ]


RULES: tuple[Rule, ...] = tuple(_rules())
BY_PATH: dict[str, tuple[Rule, ...]] = {}
for _rule in RULES:
    BY_PATH[_rule.path] = (*BY_PATH.get(_rule.path, ()), _rule)


def run(path: str, value: Any, siblings: Mapping[str, Any], invalid: Iterable[str] = ()) -> list[Finding]:
    """The findings of the first rule of `path` that fails (rules of a path run in order, as each
    needs the one before it to pass: a size pattern before its unit arithmetic)."""
    bad = set(invalid)
    for rule in BY_PATH.get(path, ()):
        if any(name in bad or siblings.get(name) is None for name in rule.reads):
            continue
        findings = rule.check(value, siblings)
        if findings:
            return findings
    return []
