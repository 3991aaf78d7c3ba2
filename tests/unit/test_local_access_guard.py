"""Issue 21, L1: the local-access rule survives a reboot. The rule logic lives once
(plugins/module_utils/ovms_local_access.py); the module applies it at deploy, and the guard container
(images/local-access/guard.py) re-applies it whenever the Docker engine starts the guard again and checks
it every few seconds. Here: the guard's logic against a fake iptables, and how the role runs the guard
(host network, root with NET_ADMIN and NET_RAW only, restart policy always, removed before its rules).
The guard image itself is run in tests/integration/test_local_access_guard_image.py; the reboot on a
DinD host in tests/multihost/test_reliability_faults.py (engine restart)."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from types import ModuleType

import pytest
import yaml

from launcher.images.specs import IMAGES
from testbed import archives
from testbed.paths import PROJECT_ROOT
from testbed.plugins import load_plugin

pytestmark = [pytest.mark.contract]

ROLE = PROJECT_ROOT / "roles" / "ovms_server"
RULES_FILE = PROJECT_ROOT / "plugins" / "module_utils" / "ovms_local_access.py"
GUARD_FILE = PROJECT_ROOT / "images" / "local-access" / "guard.py"


RULES = load_plugin(RULES_FILE, "ovms_local_access")


@pytest.fixture
def guard(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """guard.py as the image runs it: `ovms_local_access` importable beside it."""
    monkeypatch.setitem(sys.modules, "ovms_local_access", RULES)
    return load_plugin(GUARD_FILE, "local_access_guard")


class FakeIptables:
    """`iptables -S OUTPUT`, `-I OUTPUT 1 …` and `-D OUTPUT …` on a list of -A lines."""

    def __init__(self, *lines: str, fail: str = "") -> None:
        self.lines = list(lines)
        self.calls: list[list[str]] = []
        self.fail = fail  # the first word of a call to refuse ('-S', '-I', '-D')

    def __call__(self, argv: Sequence[str]) -> tuple[int, str, str]:
        argv = list(argv)
        self.calls.append(argv)
        assert argv[1:3] == ["-w", "10"], argv
        verb, rest = argv[3], argv[4:]
        if verb == self.fail:
            return 4, "", "iptables: Resource temporarily unavailable."
        if verb == "-S":
            return 0, "\n".join(["-P OUTPUT ACCEPT", *self.lines]) + "\n", ""
        if verb == "-I":
            assert rest[:2] == ["OUTPUT", "1"], rest
            self.lines.insert(0, shlex.join(["-A", "OUTPUT", *rest[2:]]))
            return 0, "", ""
        assert verb == "-D" and rest[0] == "OUTPUT", argv
        self.lines.remove(shlex.join(["-A", "OUTPUT", *rest[1:]]))
        return 0, "", ""


def ours(network: str, bridge: str) -> str:
    return shlex.join(["-A", "OUTPUT", *RULES.rule_spec(network, bridge), "-j", "REJECT"])


OTHER = '-A OUTPUT -o eth0 -m comment --comment "site firewall" -j ACCEPT'


def test_a_missing_rule_is_put_back_first_and_nothing_else_changes(guard):
    iptables = FakeIptables(OTHER)
    logged: list[str] = []
    assert guard.guard_once(iptables, "iptables-nft", {"ovms-internal": "br-0123456789ab"}, logged.append)
    assert iptables.lines == [ours("ovms-internal", "br-0123456789ab"), OTHER]
    assert logged == ["added the rule of ovms-internal on br-0123456789ab"]
    assert all(call[0] == "iptables-nft" for call in iptables.calls)
    # the next check finds it: reads only
    before = len(iptables.calls)
    assert guard.guard_once(iptables, "iptables-nft", {"ovms-internal": "br-0123456789ab"}, logged.append)
    assert [c[3] for c in iptables.calls[before:]] == ["-S"] and len(logged) == 1


def test_a_stale_bridge_of_the_network_is_replaced_and_other_networks_are_left(guard):
    iptables = FakeIptables(ours("ovms-internal", "br-old"), ours("other-deployment", "br-x"))
    logged: list[str] = []
    assert guard.guard_once(iptables, "iptables-legacy", {"ovms-internal": "br-new"}, logged.append)
    assert iptables.lines == [ours("ovms-internal", "br-new"), ours("other-deployment", "br-x")]
    assert logged == [
        "removed the stale rule of ovms-internal on br-old",
        "added the rule of ovms-internal on br-new",
    ]


@pytest.mark.parametrize("verb", ["-S", "-I"])
def test_a_failed_call_is_reported_and_retried_soon(guard, verb):
    iptables = FakeIptables(fail=verb)
    logged: list[str] = []
    assert not guard.guard_once(iptables, "iptables-nft", {"net": "br-1"}, logged.append)
    [message] = logged
    assert message.startswith(f"error: `iptables-nft -w 10 {verb} OUTPUT") and "temporarily" in message


def test_the_loop_checks_at_the_interval_and_retries_a_failure_after_a_second(guard, monkeypatch, capsys):
    iptables = FakeIptables(fail="-S")
    monkeypatch.setattr(guard, "run", iptables)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            iptables.fail = ""  # the engine finished setting up its own rules
        if len(waits) == 4:
            raise SystemExit(0)

    with pytest.raises(SystemExit):
        guard.main(["--backend", "nft", "--interval", "7", "ovms-net=br-0123456789ab"], sleep=sleep)
    assert waits == [guard.RETRY_S, guard.RETRY_S, 7.0, 7.0]
    assert iptables.lines == [ours("ovms-net", "br-0123456789ab")]
    out = capsys.readouterr().out
    assert "keeping users other than root off ovms-net on br-0123456789ab (iptables-nft, every 7s)" in out


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--backend", "nft", "net"], "'net' is not NETWORK=BRIDGE"),
        (["--backend", "nft", "net="], "'net=' is not NETWORK=BRIDGE"),
        (["--backend", "nft", "net=br-0123456789abcdef"], "is not an interface name"),
        (["--backend", "nft", "net=br 1"], "is not an interface name"),
        (["--backend", "nft", "_bad=br-1"], "is not a Docker network name"),
        (["--backend", "nft", "--interval", "0", "net=br-1"], "--interval"),
        (["--backend", "xtables", "net=br-1"], "invalid choice"),
        (["net=br-1"], "--backend"),
    ],
)
def test_bad_arguments_stop_the_guard(guard, capsys, argv, error):
    with pytest.raises(SystemExit) as stopped:
        guard.parse_args(argv)
    assert stopped.value.code == 2
    assert error in capsys.readouterr().err


def test_the_backend_is_read_from_iptables_version():
    assert RULES.backend_of("iptables v1.8.9 (nf_tables)") == "nft"
    assert RULES.backend_of("iptables v1.8.7 (legacy)") == "legacy"
    assert RULES.backend_of("iptables v1.6.1") == "legacy"
    assert set(RULES.BACKENDS) == {"nft", "legacy"}


def test_check_mode_reads_and_changes_nothing():
    iptables = FakeIptables(ours("net", "br-old"))
    removed, added = RULES.enforce(iptables, "iptables", {"net": "br-new"}, check=True)
    assert (removed, added) == (
        [{"network": "net", "interface": "br-old"}],
        [{"network": "net", "interface": "br-new"}],
    )
    assert [c[3] for c in iptables.calls] == ["-S"]


# --- how the role runs the guard -------------------------------------------------------------------


def _tasks(name: str) -> list[dict]:
    return yaml.safe_load((ROLE / "tasks" / name).read_text())


def _guard_task() -> dict:
    [task] = [
        t for t in _tasks("local_access.yml") if t.get("community.docker.docker_container", {}).get("image")
    ]
    return task["community.docker.docker_container"]


def test_the_guard_runs_in_the_host_network_as_root_with_two_capabilities_only():
    task = _guard_task()
    assert task["network_mode"] == "host"
    assert task["user"] == "0:0"
    assert task["cap_drop"] == ["ALL"] and task["capabilities"] == ["NET_ADMIN", "NET_RAW"]
    assert task["read_only"] is True and task["security_opts"] == ["no-new-privileges:true"]
    assert [t.split(":")[0] for t in task["tmpfs"]] == ["/tmp"]  # iptables-legacy's lock (XTABLES_LOCKFILE)
    assert "mounts" not in task and "volumes" not in task  # nothing of the host's filesystem
    # brought back by every engine start, like OVMS (also after an operator's docker stop)
    assert task["restart_policy"] == "always"
    assert task["memory"] and task["pids_limit"]
    assert "'ovms-launcher.role': 'server'" in task["labels"]
    dockerfile = (PROJECT_ROOT / "images" / "local-access" / "Dockerfile").read_text()
    assert "ENV XTABLES_LOCKFILE=/tmp/xtables.lock" in dockerfile


def test_the_guard_goes_before_its_rules_and_comes_after_them():
    tasks = _tasks("local_access.yml")
    kinds = [next(k for k in t if k.startswith(("community.", "ovms."))) for t in tasks]
    assert kinds == [
        "community.docker.docker_container",  # state absent: nothing left to keep
        "ovms.edge.ovms_local_access",
        "community.docker.docker_container",  # the guard, with the backend the module found
    ]
    assert tasks[0]["community.docker.docker_container"]["state"] == "absent"
    assert tasks[0]["when"] == "ovms_server_local_access_kept | length == 0"
    assert tasks[2]["when"] == "ovms_server_local_access_kept | length > 0"
    assert (
        "ovms_server_local_access_rules.backend" in tasks[2]["community.docker.docker_container"]["command"]
    )
    # destroy passes every network with '' (guard removed first, then the rules)
    [access] = [
        t for t in _tasks("absent.yml") if t.get("ansible.builtin.import_tasks") == "local_access.yml"
    ]
    assert "product([''])" in access["vars"]["ovms_server_local_access_bridges"]


def test_the_guard_image_is_built_from_the_collection_rule_file_and_shipped_to_servers():
    spec = IMAGES["local-access"]
    assert spec.sources == {"ovms_local_access.py": "plugins/module_utils/ovms_local_access.py"}
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert defaults["ovms_server_local_access_image"] == spec.tag
    assert "local-access" in archives.IMAGES_BY_ROLE["servers"]
    assert "from ovms_local_access import" in GUARD_FILE.read_text()
    assert "COPY guard.py ovms_local_access.py " in spec.dockerfile.read_text()


def test_the_precheck_asks_for_the_guard_image_only_with_local_access_root():
    [check] = [t for t in _tasks("precheck.yml") if "ansible.builtin.import_role" in t]
    images = check["vars"]["prechecks_role_images"]
    assert "ovms_server_local_access_image" in images and "if ovms_server_local_access == 'root'" in images
