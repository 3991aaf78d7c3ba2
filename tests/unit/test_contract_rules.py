"""The rule engine (plugins/module_utils/ovms_rules.py) and the roles' rule files (roles/*/meta/
rules.yml): every rule names an option of the specs, each pattern is written once, every value the
nginx template renders has a rule, and the rules the second security review asked for hold (host
names, data folders in sensitive folders, the PKI folder kept out of media and profile folders,
wildcard SANs)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jinja2
import jinja2.nodes
import pytest
import yaml

from launcher.inventory import load_inventory
from launcher.pki.names import parse_san
from launcher.validate import rules
from launcher.validate.specs import ROLES, RoleSpecs, walk
from testbed.paths import PROJECT_ROOT

pytestmark = [pytest.mark.contract]

ROLES_DIR = PROJECT_ROOT / "roles"
ENGINE = rules.engine()
SPECS = RoleSpecs.load(ROLES_DIR)
SECRET = "pa55-word-never-shown"


def _rule_files() -> dict[str, dict[str, Any]]:
    return {
        role: yaml.safe_load((ROLES_DIR / role / "meta" / "rules.yml").read_text(encoding="utf-8")) or {}
        for role in ROLES
    }


def _check(role: str, values: dict[str, Any]) -> list[Any]:
    options, ruleset = ENGINE.role_contract(str(ROLES_DIR), role)
    return list(ENGINE.check(options, ruleset, values))


def _keys(findings: list[Any]) -> dict[str, str]:
    return {f.key: f.message for f in findings}


# --- the rule files -----------------------------------------------------------------------------------


def test_every_role_has_a_rule_file_and_each_rule_names_an_option_of_its_specs():
    paths = SPECS.paths() | {f"{p}[]" for p, o in walk(SPECS.options) if o.get("type") == "list"}
    definitions = _rule_files()["ovms_common"]["definitions"]
    for role, data in _rule_files().items():
        assert set(data) <= {"rules", "definitions", "host", "stricter", "also", "deferred"}, role
        for name, why in (data.get("deferred") or {}).items():  # a reason each, and an option of the role
            assert (
                isinstance(why, str) and why.strip() and name in ENGINE.contract(str(ROLES_DIR), role).options
            )
        assert ENGINE.contract(str(ROLES_DIR), role).options  # its `also` names options of those roles
        for path, rule in (data.get("rules") or {}).items():
            assert path in paths, f"roles/{role}/meta/rules.yml: {path} is no option of the roles' specs"
            for one in rule if isinstance(rule, list) else [rule]:
                assert set(one) <= ENGINE.RULE_KEYS | {"commit"}, f"{role} {path}: {sorted(one)}"
                assert "use" not in one or one["use"] in definitions, f"{role} {path}: use {one['use']}"
                assert "check" not in one or one["check"] in ENGINE.CHECKS, f"{role} {path}: {one['check']}"
                for name in one.get("reads") or ():
                    parent = path.rsplit(".", 1)[0] if "." in path else ""
                    assert SPECS.option(f"{parent}.{name}" if parent else name) is not None, (path, name)


# where the roles' variables are checked (the models manifest, the client's profile schema and the
# data checks of the filter and lookup plugins read files of their own)
SEARCHED = (
    "roles",
    "plugins/module_utils",
    "plugins/action",
    "playbooks",
    "launcher/validate",
    "launcher/pki",
    "plugins/filter",
    "plugins/lookup",
)
# (file, pattern) -> why the file holds the pattern too: it reads no role variable but what a profile
# or the client's check names, a path on the controller (anchors ^ $ \Z are not compared)
PATTERN_ALSO = {
    ("plugins/filter/ovms_client.py", "^[A-Za-z0-9][A-Za-z0-9._-]*$"): (
        "model and file names the client's check prints for a profile (client/schema.py's rule)"
    ),
    ("plugins/lookup/ovms_client_model_files.py", "^[A-Za-z0-9][A-Za-z0-9._-]*$"): (
        "the same names again where they become controller paths (defence in depth)"
    ),
}


def _core(pattern: str) -> str:
    """A pattern without its anchors: `^x$`, `^x\\Z` and `x` (for fullmatch) are written once."""
    return pattern.removeprefix("^").removesuffix("$").removesuffix("\\Z")


def test_each_pattern_is_written_once_in_the_repository():
    # the engine's own regular expressions count too: the camera keys' (written on two lines, its
    # first line here), once written in the client's filter as well
    patterns: set[str] = {ENGINE._CAMERA_MATCH.pattern.split("|[")[0]}

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("pattern", "commit") and isinstance(value, str):
                    patterns.add(value)
                collect(value)
        elif isinstance(node, list):
            for item in node:
                collect(item)

    collect(_rule_files())
    assert len(patterns) >= 10
    texts = {
        path: path.read_text(encoding="utf-8", errors="replace")
        for folder in SEARCHED
        for path in (PROJECT_ROOT / folder).rglob("*")
        if path.is_file() and path.suffix in (".py", ".yml", ".yaml", ".j2") and "molecule" not in path.parts
    }
    for pattern in sorted(patterns):
        core = _core(pattern)
        found = [
            f"{path}: {text.count(core)}"
            for path, text in texts.items()
            if core in text and (str(path.relative_to(PROJECT_ROOT)), pattern) not in PATTERN_ALSO
        ]
        assert found == [f"{found[0].split(':')[0]}: 1"], f"{pattern!r} is written more than once: {found}"
    for file, pattern in PATTERN_ALSO:  # the allow-list stays true
        assert _core(pattern) in texts[PROJECT_ROOT / file], (file, pattern)


def _template_variables(path: Path) -> set[str]:
    """Every variable a template renders, attribute chains included (`a.b.c`)."""
    env = jinja2.Environment(autoescape=False)
    tree = env.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for output in tree.find_all(jinja2.nodes.Output):
        for node in output.find_all((jinja2.nodes.Getattr, jinja2.nodes.Name)):
            chain: list[str] = []
            current: Any = node
            while isinstance(current, jinja2.nodes.Getattr):
                chain.insert(0, current.attr)
                current = current.node
            if isinstance(current, jinja2.nodes.Name):
                found.add(".".join([current.name, *chain]))
    # keep the longest chains only (a.b.c, not a or a.b)
    return {v for v in found if not any(o.startswith(v + ".") for o in found)}


# produced by Ansible or by the role itself, not by an inventory: the map of certificate names allowed to
# read the metrics loops over the filter ovms_monitoring_metrics_peers, which checks each as a DNS name
PRODUCED = {"ansible_managed", "peer.dn", "peer.peer"}


@pytest.mark.parametrize("template", sorted((ROLES_DIR / "ovms_tls_proxy" / "templates").glob("*.j2")))
def test_every_value_rendered_into_the_nginx_config_has_a_rule(template: Path):
    """A value pasted into nginx's config unchecked can close a block and open another (M2): each
    variable rendered has a rule, or is a boolean the template reads with `| bool`."""
    ruled = rules.paths()
    variables = _template_variables(template)
    if template.name == "ovms-proxy.conf.j2":
        assert {"ovms_tls_upstream_host", "ovms_common_pki_layout.leaves.server.cert"} <= variables
    for variable in sorted(variables - PRODUCED):
        option = SPECS.option(variable)
        assert option is not None, f"{template.name}: {variable} is no option of the specs"
        if option.get("type") == "bool":
            continue
        assert variable in ruled, f"{template.name} renders {variable}, which no rule file checks"


def test_a_missing_rule_for_a_template_variable_is_caught(tmp_path: Path):
    template = tmp_path / "x.conf.j2"
    template.write_text(
        "server {{ ovms_tls_probe_address }}:{{ ovms_tls_restart_policy }};\n", encoding="utf-8"
    )
    unruled = {v for v in _template_variables(template) if v not in rules.paths()}
    assert unruled == {"ovms_tls_restart_policy"}


# --- the engine ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "key", "words"),
    [
        ({"ovms_tls_port": ["9443"]}, "ovms_tls_port", "is not a valid integer (got a list)"),
        ({"ovms_tls_port": "9443 "}, "ovms_tls_port", "is not a valid integer"),
        ({"ovms_tls_port": "1_000"}, "ovms_tls_port", "is not a valid integer"),
        ({"ovms_tls_port": True}, "ovms_tls_port", "is not a valid integer"),
        ({"ovms_tls_port": 70000}, "ovms_tls_port", "less than or equal to 65535"),
        (
            {"ovms_tls_upstream_host": ["a", "b"]},
            "ovms_tls_upstream_host",
            "is not a valid string (got a list)",
        ),
        (
            {"ovms_tls_upstream_host": "a b"},
            "ovms_tls_upstream_host",
            "must be a container name, a host name",
        ),
        ({"ovms_tls_max_body_size": "0"}, "ovms_tls_max_body_size", "no limit for nginx"),
        ({"ovms_tls_rest_port": 9443}, "ovms_tls_rest_port", "give REST its own port"),
        ({"ovms_tls_extra_sans": ["DNS:*.shop.example"]}, "ovms_tls_extra_sans[0]", "wildcard"),
        ({"ovms_tls_extra_sans": ["DNS:a_b"]}, "ovms_tls_extra_sans[0]", "not a host name"),
        ({"ovms_tls_memory": "1k"}, "ovms_tls_memory", "below the 6m"),
        ({"ovms_tls_bind_address": "999.1.1.1"}, "ovms_tls_bind_address", "not an IPv4 or IPv6"),
    ],
)
def test_the_proxy_role_refuses(values: dict, key: str, words: str):
    found = _keys(_check("ovms_tls_proxy", values))
    assert key in found and words in found[key], found


def test_good_values_pass():
    good = {
        "ovms_tls_port": "9443",
        "ovms_tls_upstream_host": "ovms-server",
        "ovms_tls_extra_sans": ["DNS:ovms.example", "IP:192.0.2.1"],
        "ovms_tls_grpc_buffer_size": "1m",
        "ovms_server_data_dir": "/srv/ovms/server",
        "ovms_client_data_dir": "/var/lib/ovms/client",
    }
    assert _check("ovms_tls_proxy", good) == []


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("/var/lib/ovms", True),
        ("/srv/ovms", True),
        ("/opt/ovms/server", True),
        ("/var/lib/ovms-launcher/server", True),
        ("/tmp/ovms-test/x", True),
        ("/etc/ssh", False),
        ("/root/.ssh", False),
        ("/home/alice", False),
        ("/var/lib/docker/volumes", False),
        ("/boot/efi", False),
        ("/usr/local/ovms", False),
        ("/var/lib", False),
        ("/", False),
        ("/srv/../etc", False),
    ],
)
def test_data_folders_inside_sensitive_folders_are_refused(path: str, ok: bool):
    defaults = yaml.safe_load(
        (ROLES_DIR / "ovms_common" / "defaults" / "main.yml").read_text(encoding="utf-8")
    )
    values = {k: defaults[k] for k in ("ovms_common_system_dirs", "ovms_common_sensitive_dirs")}
    found = _keys(_check("ovms_server", {**values, "ovms_server_data_dir": path}))
    assert ("ovms_server_data_dir" not in found) is ok, found


@pytest.mark.parametrize(
    "name", ["camera-1/../launcher", "-x", "x-", "a_b", "a..b", ".a", "a b", "x" * 64, "launcher"]
)
def test_bad_host_names_are_refused(name: str):
    layout = {"ovms_common_pki_layout": {"controller": "launcher"}}
    assert ENGINE.check_host(name, rules.ruleset(), layout)


def _inventory_host_names() -> set[str]:
    names: set[str] = set()
    for hosts in (PROJECT_ROOT / "inventories").glob("*/hosts.yml"):
        names |= set(load_inventory([hosts]).hosts)
    source = "\n".join(p.read_text(encoding="utf-8") for p in (PROJECT_ROOT / "testbed").glob("*.py"))
    names |= set(re.findall(r"\"((?:ovms|camera|client|server)[a-z0-9-]*)\"", source))
    return names


def test_the_host_names_of_the_inventories_and_the_testbed_are_valid():
    names = _inventory_host_names()
    assert "localhost" in names
    layout = {"ovms_common_pki_layout": {"controller": "launcher"}}
    assert {
        n: ENGINE.check_host(n, rules.ruleset(), layout)
        for n in names
        if ENGINE.check_host(n, rules.ruleset(), layout)
    } == {}


def test_launcher_certs_refuse_a_wildcard_san():
    with pytest.raises(ValueError, match="wildcard"):
        parse_san("DNS:*.shop.example")


def test_no_log_values_never_show():
    found = _check(
        "ovms_camera",
        {"ovms_camera_credentials": {"username": f"{SECRET}:x", "password": f"{SECRET}\n"}},
    )
    assert {f.key for f in found} == {"ovms_camera_credentials.username", "ovms_camera_credentials.password"}
    assert all(SECRET not in f.message for f in found), found
    found = _check(
        "ovms_client", {"ovms_client_camera_credentials": {"cam-1": {"username": "u", "password": [SECRET]}}}
    )
    assert found and all(SECRET not in f.message + f.key for f in found), found


def test_a_stream_file_missing_from_the_media_folder_is_named(tmp_path: Path):
    found = _keys(
        _check(
            "ovms_camera",
            {
                "ovms_camera_streams": [{"name": "a", "file": "gone.mp4"}],
                "ovms_camera_media_dir": str(tmp_path),
            },
        )
    )
    assert found == {
        "ovms_camera_streams[0].file": f"'gone.mp4' is not a file of ovms_camera_media_dir ({tmp_path})"
    }


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ovms_client_media_dir", "{certs}/ca"),
        ("ovms_client_media_dir", "{certs}/.."),
        ("ovms_client_profiles_src", "{certs}"),
        ("ovms_client_profiles", [{"name": "p", "path": "{certs}/clients"}]),
    ],
)
def test_media_and_profile_folders_keep_out_of_the_pki_folder(tmp_path: Path, variable: str, value: Any):
    certs = tmp_path / "certs"
    (certs / "ca").mkdir(parents=True)
    text = yaml.safe_dump(value).replace("{certs}", str(certs))
    found = _keys(_check("ovms_client", {"ovms_tls_certs_dir": str(certs), variable: yaml.safe_load(text)}))
    assert any(k.startswith(variable) and "PKI folder" in m for k, m in found.items()), found
    elsewhere = _check(
        "ovms_client", {"ovms_tls_certs_dir": str(certs), "ovms_client_media_dir": str(tmp_path / "media")}
    )
    assert elsewhere == []


def test_the_launcher_validates_every_host_name(tmp_path: Path):
    from launcher.validate import validate

    hosts = tmp_path / "hosts.yml"
    hosts.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "vars": {"ansible_connection": "local"},
                    "children": {
                        "ovms_servers": {"hosts": {"localhost": None}},
                        "ovms_clients": {"hosts": {"camera-1/../launcher": None}},
                    },
                }
            }
        ),
        encoding="utf-8",
    )
    report = validate([hosts])
    named = [p for p in report.problems if p.key == "camera-1/../launcher"]
    assert named and "must be a DNS name" in named[0].message, [p.to_dict() for p in report.problems]


@pytest.mark.parametrize(
    ("role", "values", "key"),
    [
        (
            "ovms_client",
            {
                "ovms_client_profiles": [
                    {"name": "p", "source": {"type": "url", "url": None, "sha256": "a" * 64}}
                ]
            },
            "ovms_client_profiles[0].source",
        ),
        ("ovms_server", {"ovms_server_models": [{"name": "m", "version_policy": {"all": None}}]}, None),
    ],
    ids=["required_if", "required_one_of"],
)
def test_a_key_without_a_value_is_missing_to_the_constraints_as_in_validate(role, values, key):
    """The `stricter` null rule holds in the role's check too: `url:` with no value does not satisfy
    required_if, `all:` with no value does not satisfy required_one_of."""
    found = _check(role, values)
    assert found, f"{values} passed the role's check"
    if key is not None:
        assert any(f.key == key for f in found), found


def test_tagged_values_are_checked_as_plain_ones():
    """ansible-core 2.19 tags what it loads or templates (a deep copy of such a value is slow, and the
    argument-spec validator copies every value): the engine checks Python's own types, same findings."""
    from ansible._internal._datatag._tags import Origin

    origin = Origin(path="/inv.yml", line_num=1)

    def tagged(value: Any) -> Any:
        if isinstance(value, dict):
            return origin.tag({tagged(k): tagged(v) for k, v in value.items()})
        if isinstance(value, list):
            return origin.tag([tagged(v) for v in value])
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return origin.tag(value)
        return value

    values = {
        "ovms_tls_port": 9443,
        "ovms_tls_rest_port": 9443,
        "ovms_tls_upstream_host": "a b",
        "ovms_tls_extra_sans": ["DNS:*.shop.example", "IP:192.0.2.1"],
        "ovms_tls_memory": "1k",
    }
    marked = tagged(values)
    assert type(marked["ovms_tls_upstream_host"]) is not str and type(marked["ovms_tls_port"]) is not int
    found = _check("ovms_tls_proxy", marked)
    assert found == _check("ovms_tls_proxy", values) and len(found) >= 4
    extra = {"t": (marked["ovms_tls_memory"], True), "none": None, "f": tagged(1.5), "s": {tagged("x")}}
    stripped = ENGINE.plain({**marked, **extra})
    # as a module receives the value (JSON): a tuple or a set is a list
    assert stripped == {**values, "t": ["1k", True], "none": None, "f": 1.5, "s": ["x"]}
    kinds = {type(stripped["ovms_tls_upstream_host"]), type(stripped["ovms_tls_port"]), type(stripped["f"])}
    assert kinds == {str, int, float} and type(stripped["ovms_tls_extra_sans"]) is list
    assert type(stripped["s"][0]) is str and type(stripped["ovms_tls_extra_sans"][0]) is str
