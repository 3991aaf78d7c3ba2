"""The launcher's inventory groups are one list, playbooks/vars/groups.yml: the playbooks read it with
`vars_files` and template their plays' hosts from it, the launcher and the test bed read it as data.
No playbook, launcher or test-bed module writes a group name of its own again."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from launcher.commands.deploy import _forks
from launcher.content import content
from launcher.images.specs import IMAGES
from launcher.inventory import (
    CAMERAS_GROUP,
    CLIENTS_GROUP,
    GROUPS,
    GROUPS_FILE,
    SERVERS_GROUP,
    load_groups,
    load_inventory,
)
from launcher.validate.options import check_run_options
from launcher.validate.specs import ROLES
from testbed import archives
from testbed.inventory import GROUPS as TESTBED_GROUPS
from testbed.inventory import build_inventory
from testbed.paths import PROJECT_ROOT

PLAYBOOKS = PROJECT_ROOT / "playbooks"
GROUP_NAMES = tuple(yaml.safe_load(GROUPS_FILE.read_text(encoding="utf-8"))["ovms_groups"].values())
# a group name written as a word of its own: not as part of a longer name, nor as a role of the same
# name (the monitoring group runs the role of its name): `ovms.edge.NAME`, `roles/NAME`, `role NAME`
WRITTEN = re.compile(
    rf"(?<![A-Za-z0-9_])(?<!{re.escape(content().fqcn + '.')})(?<!roles/)(?<!role )("
    + "|".join(map(re.escape, GROUP_NAMES))
    + r")(?![A-Za-z0-9_])"
)
# a group name that is also a role's: the roles' registry names the role (launcher/validate/specs.py)
ROLE_NAMED = {name for name in GROUP_NAMES if (PROJECT_ROOT / "roles" / name).is_dir() or name in ROLES}
ROLES_REGISTRY = PROJECT_ROOT / "launcher" / "validate" / "specs.py"


def _playbooks() -> list[Path]:
    return sorted(p for p in PLAYBOOKS.glob("*.yml") if p != GROUPS_FILE)


def test_the_groups_file_is_the_launchers_groups():
    data = yaml.safe_load(GROUPS_FILE.read_text(encoding="utf-8"))
    assert list(data) == ["ovms_groups"]
    assert GROUPS == load_groups() == data["ovms_groups"]
    assert (
        GROUPS["servers"],
        GROUPS["clients"],
        GROUPS["cameras"],
    ) == (SERVERS_GROUP, CLIENTS_GROUP, CAMERAS_GROUP)
    assert tuple(GROUPS.values()) == TESTBED_GROUPS
    assert set(archives.IMAGES_BY_ROLE) == set(GROUPS), (
        "every group's images are listed in testbed/archives.py"
    )
    assert archives.IMAGES_BY_ROLE["cameras"] == ("camera-sim",)
    listed = {i for images in archives.IMAGES_BY_ROLE.values() for i in images} | set(
        archives.MONITORED_IMAGES
    )
    assert listed <= set(IMAGES), f"not images of launcher/images/specs.py: {sorted(listed - set(IMAGES))}"
    assert set(archives.MONITORED_ROLES) <= set(GROUPS)


@pytest.mark.parametrize("playbook", _playbooks(), ids=lambda p: p.name)
def test_no_playbook_writes_a_group_name(playbook: Path):
    text = playbook.read_text(encoding="utf-8")
    found = [f"line {text[: m.start()].count(chr(10)) + 1}: {m.group(1)}" for m in WRITTEN.finditer(text)]
    assert found == [], f"{playbook.name} names groups itself; use ovms_groups (vars/groups.yml): {found}"


@pytest.mark.parametrize("playbook", _playbooks(), ids=lambda p: p.name)
def test_every_play_reads_the_groups_file(playbook: Path):
    for play in yaml.safe_load(playbook.read_text(encoding="utf-8")):
        if any(key.endswith("import_playbook") for key in play):
            continue
        assert "vars/groups.yml" in play.get("vars_files", []), f"{playbook.name}: play {play['name']!r}"
        assert "ovms_groups" in str(play["hosts"]), f"{playbook.name}: play {play['name']!r}"


def test_the_check_tells_a_group_from_the_role_of_its_name():
    name = GROUPS["monitoring"]
    assert WRITTEN.search(f"hosts: {name}") and WRITTEN.search(f"groups['{name}']")
    for role in (f"role: {content().fqcn}.{name}", f"roles/{name}/tasks", f"of role {name}:"):
        assert not WRITTEN.search(role), role


def _python_files() -> list[Path]:
    roots = [PROJECT_ROOT / "launcher", PROJECT_ROOT / "testbed", PROJECT_ROOT / "plugins"]
    return sorted(p for root in roots for p in root.rglob("*.py"))


def test_no_launcher_testbed_or_plugin_module_writes_a_group_name():
    found = []
    for path in _python_files():
        text = path.read_text(encoding="utf-8")
        found += [
            f"{path.relative_to(PROJECT_ROOT)}:{text[: m.start()].count(chr(10)) + 1}: {m.group(1)}"
            for m in WRITTEN.finditer(text)
            if not (path == ROLES_REGISTRY and m.group(1) in ROLE_NAMED)
        ]
    fix = "use launcher.inventory's groups (playbooks/vars/groups.yml) instead"
    assert found == [], fix + ":\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("ovms_groups: [a, b]\n", "must map each role"),
        ("ovms_groups: {servers: s, clients: c}\n", "has no group for cameras"),
        ("ovms_groups: {servers: s, clients: c, cameras: k}\n", "has no group for monitoring"),
        ("ovms_groups: {servers: 'bad name', clients: c, cameras: k}\n", "must map each role"),
        ("ovms_groups: {servers: [\n", "cannot read"),
    ],
)
def test_a_broken_groups_file_is_named(tmp_path: Path, text: str, words: str):
    from launcher.errors import LauncherError

    path = tmp_path / "groups.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LauncherError) as caught:
        load_groups(path)
    assert words in caught.value.message and caught.value.file == str(path)


def _inventory(tmp_path: Path) -> Path:
    """Three groups, one host each, and a host in two of them."""
    data = {
        "all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
            "children": {
                SERVERS_GROUP: {"hosts": {"server-1": None}},
                CLIENTS_GROUP: {"hosts": {"client-1": None, "server-1": None}},
                CAMERAS_GROUP: {"hosts": {"camera-1": None}},
                "elsewhere": {"hosts": {"other-1": None}},
            },
        }
    }
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_the_inventory_and_the_fork_count_know_every_group(tmp_path: Path):
    inventory = load_inventory([_inventory(tmp_path)])
    assert [h.name for h in inventory.cameras] == ["camera-1"]
    assert sorted(h.name for h in inventory.members()) == ["camera-1", "client-1", "server-1"]
    assert _forks(inventory) == 3


def test_limit_and_tags_know_the_cameras(tmp_path: Path):
    inventory = load_inventory([_inventory(tmp_path)])
    for action in ("deploy", "destroy", "status"):
        selected, problems = check_run_options(
            inventory, CAMERAS_GROUP, "camera", PLAYBOOKS / f"{action}.yml", PROJECT_ROOT / "roles"
        )
        assert problems == [] and selected == {"camera-1"}, action


def test_the_test_bed_writes_the_camera_group(tmp_path: Path):
    data = build_inventory(
        {"h1": "10.0.0.1", "h2": "10.0.0.2"},
        tmp_path / "key",
        {SERVERS_GROUP: ["h1"], CAMERAS_GROUP: ["h2"]},
    )
    children = data["all"]["children"]
    assert list(children) == list(GROUPS.values())
    assert list(children[CAMERAS_GROUP]["hosts"]) == ["h2"]
    with pytest.raises(ValueError, match="unknown group"):
        build_inventory({"h1": "10.0.0.1"}, tmp_path / "key", {"cameras": ["h1"]})


def _listed_hosts(playbook: Path, inventory: Path, *args: str) -> dict[str, list[str]]:
    """`ansible-playbook --list-hosts`: each play's hosts as ansible-core templates them."""
    binary = Path(sys.executable).parent / "ansible-playbook"
    command = str(binary) if binary.exists() else shutil.which("ansible-playbook")
    assert command, "ansible-playbook not found"
    proc = subprocess.run(
        [command, "-i", str(inventory), "--list-hosts", str(playbook), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=PROJECT_ROOT,
        env={
            "ANSIBLE_FORCE_COLOR": "0",
            "PATH": str(Path(sys.executable).parent),
            "HOME": str(inventory.parent),
        },
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    plays: dict[str, list[str]] = {}
    current = ""
    for line in proc.stdout.splitlines():
        play = re.match(r"\s*play #\d+ \(([^)]*)\): (.+?)\s+TAGS", line)
        if play:
            current = play.group(2)
            plays[current] = []
        elif current and line.strip() and not line.strip().startswith("pattern:") and "hosts (" not in line:
            plays[current].append(line.strip())
    return {name: sorted(hosts) for name, hosts in plays.items()}


def test_ansible_playbook_templates_the_plays_hosts_from_the_groups_file(tmp_path: Path):
    """A real ansible-playbook run (--list-hosts: no host is contacted) of each playbook."""
    inventory = _inventory(tmp_path)
    deploy = _listed_hosts(PLAYBOOKS / "deploy.yml", inventory)
    assert deploy["Prechecks of the servers"] == ["server-1"]
    assert deploy["Prechecks of the clients"] == ["client-1", "server-1"]
    assert deploy["Prechecks of the cameras"] == ["camera-1"]
    assert deploy["Models"] == deploy["Server"] == ["server-1"]
    assert deploy["Camera"] == ["camera-1"]
    assert deploy["Client"] == ["client-1", "server-1"]
    assert deploy["Verify"] == ["client-1", "server-1"]
    assert deploy["Summary"] == ["camera-1", "client-1", "server-1"]
    order = list(deploy)
    assert order.index("Server") < order.index("Camera") < order.index("Client") < order.index("Verify")
    for action in ("destroy", "status"):
        plays = _listed_hosts(PLAYBOOKS / f"{action}.yml", inventory)
        assert list(plays.values()) == [["camera-1", "client-1", "server-1"]], action
    limited = _listed_hosts(PLAYBOOKS / "destroy.yml", inventory, "--limit", CAMERAS_GROUP)
    assert list(limited.values()) == [["camera-1"]]
