"""One variable contract: the roles' meta/argument_specs.yml and defaults/main.yml agree, the specs are
complete (nested options, choices, required), the launcher validates with them (ansible-core's own
validator) and its rules name only options the specs have."""

from __future__ import annotations

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from click.testing import CliRunner

from launcher.cli import main
from launcher.inventory import InventoryHost as _Host
from launcher.validate import argspec, rules
from launcher.validate.origins import VarOrigins
from launcher.validate.specs import PREFIXES, ROLES, RoleSpecs, entry_point_options, nested, walk
from launcher.validate.variables import RoleDefaults, check_host, templated
from launcher.validate.view import View
from testbed.paths import PROJECT_ROOT

ROLES_DIR = PROJECT_ROOT / "roles"
SPECS = RoleSpecs.load(ROLES_DIR)
# what an option of a role argument spec may hold (ansible-core's argument spec keys)
OPTION_KEYS = {
    "type",
    "elements",
    "default",
    "choices",
    "required",
    "description",
    "options",
    "aliases",
    "no_log",
    "apply_defaults",
    *argspec.CONSTRAINTS,
}
TYPES = {"str", "list", "dict", "bool", "int", "float", "path", "raw", "jsonarg", "json", "bytes", "bits"}
# free-form mappings set by the roles' own tasks (entry points other than `main`), never by an inventory
TASK_MAPPINGS = {
    "ovms_common_containers[].env",
    "ovms_common_containers[].labels",
    "ovms_server_local_access_bridges",
}


def _defaults(role: str) -> dict:
    return yaml.safe_load((ROLES_DIR / role / "defaults" / "main.yml").read_text(encoding="utf-8")) or {}


def _entry_points(role: str) -> dict[str, dict]:
    data = yaml.safe_load((ROLES_DIR / role / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))
    return {name: entry.get("options") or {} for name, entry in data["argument_specs"].items()}


def InventoryHost(name: str, vars: dict, groups: tuple[str, ...]) -> _Host:
    return _Host(name=name, groups=groups, vars=vars, ansible_host=name)


def _description(option: dict) -> str:
    text = option.get("description", "")
    return " ".join(text) if isinstance(text, list) else str(text)


@pytest.mark.parametrize("role", ROLES)
def test_every_default_has_a_spec_in_its_role(role):
    """Shared names are defaulted and specified in roles/ovms_common, each role's own in the role."""
    options = entry_point_options(ROLES_DIR, role)
    missing = sorted(set(_defaults(role)) - set(options))
    assert missing == [], f"roles/{role}/defaults/main.yml has variables its meta/argument_specs.yml lacks"


def test_no_variable_is_specified_twice():
    seen: dict[str, str] = {}
    for role in ROLES:
        for name in entry_point_options(ROLES_DIR, role):
            assert name not in seen, f"{name} is specified by roles/{seen[name]} and roles/{role}"
            seen[name] = role


@pytest.mark.parametrize("role", ROLES)
def test_spec_defaults_are_the_role_defaults(role):
    """A spec's default is the defaults file's value; a templated default, or one deliberately written
    only in defaults/main.yml, has no `default` in the spec and the description says where it is."""
    defaults = _defaults(role)
    for name, option in entry_point_options(ROLES_DIR, role).items():
        if name not in defaults:
            assert "default" not in option, f"{name}: a spec default the defaults file lacks"
            assert "set by" in _description(option).lower(), f"{name}: no default, and not set by the tasks"
            continue
        value = defaults[name]
        if "default" in option and not templated(value):
            assert option["default"] == value, f"{name}: spec {option['default']!r}, defaults {value!r}"
        else:
            assert "default" not in option, f"{name}: templated in defaults/main.yml, yet a spec default"
            where = _description(option)
            assert "defaults/main.yml" in where, f"{name}: say its default is in defaults/main.yml"


def test_the_specs_use_only_what_ansible_reads():
    """Every option of every entry point holds known keys only (a comma in a YAML flow mapping's
    description would make a key of its own), a known type, elements only for a list."""
    for role in ROLES:
        for entry, options in _entry_points(role).items():
            for path, option in walk(options):
                where = f"roles/{role} {entry}: {path}"
                assert set(option) <= OPTION_KEYS, f"{where}: {sorted(set(option) - OPTION_KEYS)}"
                assert option.get("type", "str") in TYPES, where
                assert "elements" not in option or option.get("type") == "list", where
                assert isinstance(option.get("choices", []), list), where
                assert _description(option), f"{where}: no description"


def test_dicts_and_lists_of_dicts_have_nested_options():
    """A list of mappings or a mapping lists its keys (`options`); only a free-form mapping (an
    environment, name -> paths) has none, and then a rule of launcher/validate/rules.py checks its
    entries (or, set by the roles' own tasks, it is one of TASK_MAPPINGS)."""
    for role in ROLES:
        for entry, options in _entry_points(role).items():
            for path, option in walk(options):
                mapping = option.get("type") == "dict"
                listing = option.get("type") == "list" and option.get("elements") == "dict"
                if not (mapping or listing) or "options" in option:
                    continue
                options_entry = entry == rules.engine().entry_point(role)
                assert path in rules.BY_PATH or (not options_entry and path in TASK_MAPPINGS), (
                    f"roles/{role} {entry}: {path} lists no options and no rule checks its entries"
                )


def test_the_models_role_takes_the_server_model_entries():
    """ovms_models_list defaults to ovms_server_models: its entries have the same options."""
    server = entry_point_options(ROLES_DIR, "ovms_server")["ovms_server_models"]["options"]
    models = entry_point_options(ROLES_DIR, "ovms_models")["ovms_models_list"]["options"]
    assert models == server


def test_every_rule_names_an_option_of_a_spec():
    paths = SPECS.paths() | {f"{p}[]" for p, o in walk(SPECS.options) if o.get("type") == "list"}
    for rule in rules.RULES:
        assert rule.path in paths, f"rules.py: {rule.path} is no option of the roles' specs"
        for name in rule.reads:
            parent = rule.path.rsplit(".", 1)[0] if "." in rule.path else ""
            sibling = f"{parent}.{name}" if parent else name
            assert SPECS.option(sibling) is not None, f"rules.py: {rule.path} reads {name}, no option"


def test_every_prefix_names_the_role_that_reads_it():
    for prefix, role in PREFIXES.items():
        assert role in ROLES
        own = [n for n in entry_point_options(ROLES_DIR, role) if n.startswith(prefix)]
        assert own, f"no variable {prefix}* in roles/{role}'s spec"


@pytest.mark.parametrize("role", ROLES)
def test_role_defaults_pass_ansibles_own_role_validation(role):
    """What a run's role argument validation does with the defaults (templated ones aside): the
    nested specs as ansible reads them, not one level at a time as the launcher does."""
    options = entry_point_options(ROLES_DIR, role)
    values = {k: v for k, v in _defaults(role).items() if k in options and not templated(v)}
    result = ArgumentSpecValidator(options).validate(values)
    assert result.error_messages == []


@pytest.mark.parametrize("role", ROLES)
def test_role_defaults_pass_the_launchers_validation(role):
    options = entry_point_options(ROLES_DIR, role)
    values = {k: v for k, v in _defaults(role).items() if k in options and not templated(v)}
    _, issues = argspec.check(options, values)
    assert issues == []


def test_a_host_without_variables_is_valid_with_every_view():
    defaults = RoleDefaults.load(ROLES_DIR)
    host = InventoryHost(name="h", vars={}, groups=("ovms_servers", "ovms_clients"))
    checked, problems = check_host(host, {}, defaults, VarOrigins([]))
    assert problems == []
    for prefix in PREFIXES:
        assert isinstance(checked.get(prefix), View), prefix
    server = checked.get("ovms_server_")
    assert (server.grpc_port, server.rest_port) == (9000, 8000)
    assert server.data_dir == "/var/lib/ovms-launcher/server"
    assert server.models == () and server.device_paths == {"GPU": ["/dev/dri"], "NPU": ["/dev/accel"]}
    # templated defaults are the roles' to compute: no value here, none made up
    assert checked.get("ovms_client_").server is None and checked.get("ovms_tls_").certs_dir is None


def test_extra_vars_strings_are_converted_as_ansible_converts_them():
    """`-e ovms_tls_enabled=true -e ovms_server_rest_port=8001` give strings: accepted, and the
    cross-file checks read a boolean and a number."""
    defaults = RoleDefaults.load(ROLES_DIR)
    host = InventoryHost(name="h", vars={}, groups=("ovms_servers",))
    extra = {"ovms_tls_enabled": "true", "ovms_server_rest_port": "8001", "ovms_tls_allow_tls12": "no"}
    checked, problems = check_host(host, extra, defaults, VarOrigins([], extra))
    assert problems == []
    assert checked.get("ovms_tls_").enabled is True and checked.get("ovms_tls_").allow_tls12 is False
    assert checked.get("ovms_server_").rest_port == 8001


def test_a_view_reads_nested_options_and_refuses_anything_else():
    defaults = RoleDefaults.load(ROLES_DIR)
    models = [{"name": "m", "version_policy": {"specific": {"versions": ["2"]}}}]
    host = InventoryHost(name="h", vars={"ovms_server_models": models}, groups=("ovms_servers",))
    checked, problems = check_host(host, {}, defaults, VarOrigins([]))
    assert problems == []
    [model] = checked.get("ovms_server_").models
    assert (model.name, model.source, model.nireq) == ("m", "manifest", None)  # the spec's default
    assert model.version_policy.specific.versions == [2] and model.version_policy.latest is None
    with pytest.raises(AttributeError, match="no option 'nireqs'"):
        _ = model.nireqs
    with pytest.raises(AttributeError, match="read-only"):
        model.name = "other"


@pytest.mark.parametrize(
    ("value", "key", "words"),
    [
        ({"version_policy": {}}, "ovms_server_models[0].version_policy", "must have exactly one of all"),
        ({"source": "hand"}, "ovms_server_models[0].source", "must be one of manifest, manual (got 'hand')"),
        ({"nireq": "many"}, "ovms_server_models[0].nireq", "is not a valid integer (got 'many')"),
        ({"plugin_config": {"A": [1]}}, "ovms_server_models[0].plugin_config.A", "string, number or boolean"),
        ({"shape": [1, "x"]}, "ovms_server_models[0].shape", "is not a shape"),
        ({"batch_size": 0}, "ovms_server_models[0].batch_size", "an integer of 1 or more, or auto (got 0)"),
        (
            {"version_policy": {"specific": {"versions": [1, "x"]}}},
            "ovms_server_models[0].version_policy.specific.versions[1]",
            "is not a valid integer (got 'x')",
        ),
    ],
)
def test_ansibles_findings_are_named_by_their_full_key(value, key, words):
    defaults = RoleDefaults.load(ROLES_DIR)
    host = InventoryHost(name="h", vars={"ovms_server_models": [{"name": "m", **value}]}, groups=())
    checked, problems = check_host(host, {}, defaults, VarOrigins([]))
    [problem] = problems
    assert problem.key == key and words in problem.message
    assert "roles/ovms_server/defaults/main.yml" in problem.fix
    assert checked.get("ovms_server_") is None  # the cross-file checks skip an invalid prefix


def test_an_unknown_nested_key_gets_a_did_you_mean_and_the_keys():
    defaults = RoleDefaults.load(ROLES_DIR)
    host = InventoryHost(name="h", vars={"ovms_client_profiles": [{"name": "p", "instance": 2}]}, groups=())
    [problem] = check_host(host, {}, defaults, VarOrigins([]))[1]
    assert problem.key == "ovms_client_profiles[0].instance" and problem.message == "is not a known key"
    assert problem.fix.startswith("did you mean instances? it takes instances, name, path, source")


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("ovms_server_extra_args", "--log_level DEBUG", "is not a valid list (got '--log_level DEBUG')"),
        ("ovms_client_env", "A=1", "is not a valid mapping (got 'A=1')"),
        ("ovms_server_network", ["a"], "is not a valid string (got a list)"),
        ("ovms_server_grpc_port", True, "is not a valid integer (got True)"),
    ],
)
def test_shapes_ansible_would_convert_are_refused(variable, value, words):
    """Ansible's validator would split the string, parse k=v, print the list, read True as 1; the
    roles' tasks read the variable as written, so these are refused."""
    defaults = RoleDefaults.load(ROLES_DIR)
    host = InventoryHost(name="h", vars={variable: value}, groups=())
    [problem] = check_host(host, {}, defaults, VarOrigins([]))[1]
    assert problem.key == variable and words in problem.message


def test_a_shared_variables_fix_names_both_defaults_files():
    defaults = RoleDefaults.load(ROLES_DIR)
    host = InventoryHost(name="h", vars={"ovms_tls_port": "tls"}, groups=())
    [problem] = check_host(host, {}, defaults, VarOrigins([]))[1]
    assert "roles/ovms_common/defaults/main.yml" in problem.fix
    assert "roles/ovms_tls_proxy/defaults/main.yml points there" in problem.fix
    assert problem.fix.endswith("the default is ovms_tls_port: 9443")


def test_every_dict_option_with_options_reads_as_a_view():
    """The View wraps exactly the options that list nested options (free-form mappings stay dicts)."""
    for path, option in walk(SPECS.options):
        if nested(option) is not None:
            assert option.get("type") in ("dict", "list"), path


SHIPPED = sorted(p.name for p in (PROJECT_ROOT / "inventories").iterdir() if p.is_dir())
# inventories layered on another one, as their hosts.yml says they are used
LAYERED_ON = {"localhost-camera": ("localhost",), "localhost-models": ("localhost",)}


@pytest.mark.parametrize("inventory", SHIPPED)
def test_launcher_validate_accepts_the_shipped_inventories(inventory, tmp_path, monkeypatch):
    """`launcher validate -i inventories/X` as a user runs it (certificates too: a remote inventory's
    PKI made first by `launcher certs generate`, as docs/pki.md says)."""
    sources = [*LAYERED_ON.get(inventory, ()), inventory]
    args = [word for name in sources for word in ("-i", str(PROJECT_ROOT / "inventories" / name))]
    monkeypatch.setenv("OVMS_LAUNCHER_CERTS_DIR", str(tmp_path / "certs"))
    monkeypatch.setenv("COLUMNS", "250")
    made = CliRunner().invoke(main, ["certs", "generate", *args, "--dir", str(tmp_path / "certs")])
    assert made.exit_code == 0, made.output
    result = CliRunner().invoke(main, ["validate", *args])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("valid:")


def test_the_cross_file_checks_name_options_of_the_specs():
    """Checks across files and hosts read values by the specs' names: each name they write is one."""
    from launcher.validate.remote import MODEL_VARIABLES
    from launcher.validate.safety import DATA_DIRS

    for variable, (prefix, name) in DATA_DIRS.items():
        assert variable == prefix + name and variable in SPECS.options, variable
    for variable in MODEL_VARIABLES:
        assert variable in SPECS.options, variable


@pytest.mark.parametrize(
    ("variable", "value", "key", "words"),
    [
        (
            "ovms_client_profiles",
            [{"name": "p", "source": {"type": "url", "url": None, "sha256": "a" * 64}}],
            "ovms_client_profiles[0].source.url",
            "is required when type is url",
        ),
        ("ovms_server_models", [{"name": None}], "ovms_server_models[0].name", "is required but has no"),
        (
            "ovms_server_models",
            [{"name": "m", "version_policy": {"all": None}}],
            "ovms_server_models[0].version_policy",
            "must have exactly one of all, specific, latest",
        ),
    ],
)
def test_a_required_key_given_as_null_is_missing(variable, value, key, words):
    """ansible's `required`, `required_if` and `required_one_of` count a key with no value as given."""
    defaults = RoleDefaults.load(ROLES_DIR)
    host = InventoryHost(name="h", vars={variable: value}, groups=())
    [problem] = check_host(host, {}, defaults, VarOrigins([]))[1]
    assert problem.key == key and words in problem.message
