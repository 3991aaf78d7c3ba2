"""Issue 21, L5: what the roles leave on a host. The proxy's certificate and config folders and the
client's TLS folder are root's with group access for the container (0750 folders, 0640 files, keys
included), so a host account that has the container's uid can neither rewrite nginx's config nor read or
replace a key; the containers run with that group. nginx's worker_shutdown_timeout is rendered from a
role variable; the server has a default memory limit. (The Molecule scenario of ovms_tls_proxy checks the
modes on a real deploy; tests/integration/test_proxy_shutdown_timeout.py the timeout in nginx.)"""

from __future__ import annotations

import re

import pytest
import yaml

from testbed.paths import PROJECT_ROOT

pytestmark = [pytest.mark.contract]

ROLES = PROJECT_ROOT / "roles"


def _yaml(path: str):
    return yaml.safe_load((ROLES / path).read_text())


def _module_tasks(path: str, module: str) -> list[dict]:
    return [t[module] for t in _yaml(path) if module in t]


# (tasks file, the role's gid variable, the path expressions the role creates or writes there)
WRITERS = [
    ("ovms_tls_proxy/tasks/present.yml", "ovms_tls_proxy_gid"),
    ("ovms_client/tasks/tls.yml", "ovms_client_gid"),
]


def _client_tls_folder() -> dict:
    """The client's certificate folder, as its folders task (tasks/main.yml, one loop) makes it."""
    [task] = [t for t in _yaml("ovms_client/tasks/main.yml") if t.get("name") == "Create the client folders"]
    entry = re.search(r"\{'name': 'tls', 'group': (\w+), 'mode': '(\d+)'\}", task["loop"])
    assert entry, task["loop"]
    owner = task["ansible.builtin.file"]["owner"]
    assert (
        owner == "{{ ovms_client_dir.owner | default('root') }}"
        and task["ansible.builtin.file"]["state"] == "directory"
    )
    return {"owner": "root", "group": f"{{{{ {entry.group(1)} }}}}", "mode": entry.group(2)}


@pytest.mark.parametrize(("tasks", "gid"), WRITERS)
def test_tls_folders_and_files_are_root_owned_with_group_read(tasks, gid):
    folders = [f for f in _module_tasks(tasks, "ansible.builtin.file") if f.get("state") == "directory"]
    if tasks.startswith("ovms_client/"):
        folders.append(_client_tls_folder())
    files = _module_tasks(tasks, "ansible.builtin.copy") + _module_tasks(tasks, "ansible.builtin.template")
    assert folders and files
    for folder in folders:
        assert (folder["owner"], folder["group"], folder["mode"]) == ("root", f"{{{{ {gid} }}}}", "0750"), (
            folder
        )
    for written in files:
        # one mode for everything, the private key included: the container reads it by its group
        assert (written["owner"], written["group"], written["mode"]) == (
            "root",
            f"{{{{ {gid} }}}}",
            "0640",
        ), written


@pytest.mark.parametrize(
    ("role", "service", "uid", "gid"),
    [
        ("ovms_tls_proxy", "ovms_tls_proxy_service", "ovms_tls_proxy_uid", "ovms_tls_proxy_gid"),
        ("ovms_client", "ovms_client_service", "ovms_client_uid", "ovms_client_gid"),
    ],
)
def test_the_container_runs_with_the_group_that_may_read(role, service, uid, gid):
    variables = _yaml(f"{role}/vars/main.yml")
    spec = variables.get(service) or {}
    user = spec.get("user") if isinstance(spec, dict) else None
    if user is None:  # the client's spec is built per profile: find its user line
        text = (ROLES / role / "vars" / "main.yml").read_text()
        user = re.search(r"^\s+user: (.+)$", text, re.MULTILINE).group(1).strip('"')
    assert user == f"{{{{ {uid} }}}}:{{{{ {gid} }}}}"
    assert variables[uid] != 0 and variables[gid] != 0


def test_the_proxy_renders_the_worker_shutdown_timeout_into_the_main_context():
    defaults = _yaml("ovms_tls_proxy/defaults/main.yml")
    specs = _yaml("ovms_tls_proxy/meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert (
        defaults["ovms_tls_worker_shutdown_timeout"] == specs["ovms_tls_worker_shutdown_timeout"]["default"]
    )
    assert re.fullmatch(r"[1-9][0-9]*(ms|s|m|h)?", defaults["ovms_tls_worker_shutdown_timeout"])
    template = (ROLES / "ovms_tls_proxy" / "templates" / "ovms-proxy.main.j2").read_text()
    assert "worker_shutdown_timeout {{ ovms_tls_worker_shutdown_timeout }};" in template
    # nginx reads it in the main context only: the image includes conf.d/*.main outside http {}
    image = (PROJECT_ROOT / "images" / "tls-proxy" / "nginx.conf").read_text()
    assert image.index("include /etc/nginx/conf.d/*.main;") < image.index("http {")
    [render] = [t for t in _module_tasks("ovms_tls_proxy/tasks/present.yml", "ansible.builtin.template")]
    assert "ovms_tls_conf_dir" in render["dest"]
    loop = next(t for t in _yaml("ovms_tls_proxy/tasks/present.yml") if "ansible.builtin.template" in t)[
        "loop"
    ]
    assert {"src": "ovms-proxy.main.j2", "dest": "ovms-proxy.main"} in loop


def _bytes(size: str) -> int:
    number, unit = re.fullmatch(r"([0-9]+)([kmg]?)", size.lower()).groups()
    return int(number) << {"": 0, "k": 10, "m": 20, "g": 30}[unit]


def test_the_server_has_a_default_memory_limit_with_room_for_the_shipped_models():
    defaults = _yaml("ovms_server/defaults/main.yml")
    spec = _yaml("ovms_server/meta/argument_specs.yml")["argument_specs"]["main"]["options"][
        "ovms_server_memory"
    ]
    assert defaults["ovms_server_memory"] == spec["default"] != ""
    # measured with the double serving all of models/manifest.yaml: 0.3 GiB loaded, 1.3 GiB peak with
    # full-HD text-detection frames 8 at a time; the default leaves at least twice that
    assert _bytes(defaults["ovms_server_memory"]) >= 2 * (13 << 30) // 10
    assert "1.3 GiB" in spec["description"]
