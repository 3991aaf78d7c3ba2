"""Roll-outs by site (launcher/rollout.py, `launcher deploy`'s batches): batch planning as ansible-core cuts
a play's hosts by `serial` (ints, percentages, the list form whose last value repeats), the hosts without
a site in a last batch, the stop rule of ovms_deploy_max_fail_percentage, and deploy's batches run one
after the other through a fake executor (the requests it gets, the stop, the exit code, the output)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.utils.helpers import pct_to_int as ansible_pct_to_int

from launcher.commands import deploy as deploy_command
from launcher.commands.options import configured_forks, default_forks
from launcher.common_defaults import common_default
from launcher.content import content
from launcher.errors import LauncherError
from launcher.inventory import load_inventory
from launcher.rollout import (
    BATCH_EXTRAVARS,
    MAX_FAIL_VAR,
    SERIAL_VAR,
    SITE_MAX_FAIL_DEFAULT,
    Batch,
    Rollout,
    all_at_once,
    judge,
    pct_to_int,
    plan_batches,
    plan_rollout,
    playbook_extravars,
    serial_steps,
    unverified_hosts,
)
from launcher.runner import RunSummary
from launcher.runner.execute import LIMIT_FILE, LIMIT_INLINE_HOSTS, RunRequest, host_limit, runner_kwargs
from launcher.runner.summary import HostSummary

pytestmark = pytest.mark.fleet


def _sites(count: int, hosts_per_site: int = 2) -> dict[str, tuple[str, ...]]:
    return {f"s{i}": tuple(f"s{i}-h{j}" for j in range(hosts_per_site)) for i in range(1, count + 1)}


def _cut(serial: Any, count: int) -> list[list[str]]:
    batches = plan_batches(serial_steps(serial), _sites(count), [])
    return [list(b.sites) for b in batches]


def _ansible_cut(serial: Any, count: int) -> list[list[str]]:
    """ansible-core's own cut of `count` hosts named like the sites (PlaybookExecutor's algorithm)."""
    from unittest import mock

    from ansible.executor.playbook_executor import PlaybookExecutor

    names = [f"s{i}" for i in range(1, count + 1)]
    executor = PlaybookExecutor.__new__(PlaybookExecutor)
    executor._inventory = mock.Mock(get_hosts=lambda *a, **k: list(names))
    play = mock.Mock(serial=serial if isinstance(serial, list) else [serial], hosts="all", order=None)
    return [list(b) for b in executor._get_serialized_batches(play)]


# --- planning --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("serial", "count", "expected"),
    [
        (1, 3, [["s1"], ["s2"], ["s3"]]),
        (2, 5, [["s1", "s2"], ["s3", "s4"], ["s5"]]),
        ("2", 3, [["s1", "s2"], ["s3"]]),
        (10, 3, [["s1", "s2", "s3"]]),
        ("50%", 4, [["s1", "s2"], ["s3", "s4"]]),
        ("30%", 5, [["s1"], ["s2"], ["s3"], ["s4"], ["s5"]]),  # int(1.5): rounded down
        ("10%", 3, [["s1"], ["s2"], ["s3"]]),  # int(0.3) is 0: at least 1
        ([1, "50%"], 5, [["s1"], ["s2", "s3"], ["s4", "s5"]]),  # the last value repeats
        ([1, 2, 0], 6, [["s1"], ["s2", "s3"], ["s4", "s5", "s6"]]),  # 0: all the rest
        ([1, "10%", "100%"], 20, [["s1"], ["s2", "s3"], [f"s{i}" for i in range(4, 21)]]),
    ],
)
def test_sites_are_cut_as_ansible_cuts_a_plays_hosts(
    serial: Any, count: int, expected: list[list[str]]
) -> None:
    assert _cut(serial, count) == expected
    assert _ansible_cut(serial, count) == expected


@pytest.mark.parametrize("value", [0, "0", "100%", "250%", [0], ["100%", 1]])
def test_zero_or_a_whole_first_step_is_everything_at_once(value: Any) -> None:
    assert all_at_once(serial_steps(value))


@pytest.mark.parametrize("value", [1, "1", "25%", [1, "100%"], ["0%"]])
def test_any_other_serial_rolls_out(value: Any) -> None:
    assert not all_at_once(serial_steps(value))


@pytest.mark.parametrize("step", ["0%", "1%", "33%", "99%", "100%", 3, 0])
@pytest.mark.parametrize("total", [1, 3, 7, 200])
def test_percentages_round_as_ansible(step: Any, total: int) -> None:
    assert pct_to_int(step, total) == ansible_pct_to_int(step, total)


@pytest.mark.parametrize("value", ["abc", "-1", -1, "1.5", "10 %", True, [], [1, "x"], {"a": 1}, 1.5])
def test_a_serial_ansible_would_not_read_is_refused_naming_the_variable(value: Any) -> None:
    with pytest.raises(LauncherError) as caught:
        serial_steps(value)
    assert caught.value.key == SERIAL_VAR
    assert '"N%"' in str(caught.value)


def test_hosts_without_a_site_come_last_in_a_batch_of_their_own() -> None:
    batches = plan_batches(serial_steps(1), _sites(2), ["lonely", "central"])
    assert [(b.number, b.sites, b.hosts) for b in batches] == [
        (1, ("s1",), ("s1-h0", "s1-h1")),
        (2, ("s2",), ("s2-h0", "s2-h1")),
        (3, (), ("lonely", "central")),
    ]
    assert batches[2].unsited
    assert batches[2].describe() == "hosts without a site (2 hosts)"
    assert batches[0].describe() == "site s1 (2 hosts)"
    assert Batch(2, ("b", "c"), ("b1", "c1", "c2")).describe() == "sites b, c (3 hosts)"


def test_sites_without_a_host_count_in_no_percentage() -> None:
    sites = {"a": ("a1",), "empty": (), "b": ("b1",)}
    assert [b.sites for b in plan_batches(serial_steps("50%"), sites, [])] == [("a",), ("b",)]


def test_the_default_serial_lives_in_ovms_common_and_means_one_run() -> None:
    defaults = yaml.safe_load((content().roles / "ovms_common/defaults/main.yml").read_text(encoding="utf-8"))
    assert defaults[SERIAL_VAR] == common_default(SERIAL_VAR) == 0
    assert MAX_FAIL_VAR not in defaults  # its default depends on the mode: the specs say which
    assert all_at_once(serial_steps(common_default(SERIAL_VAR)))


def test_the_plays_template_the_same_default() -> None:
    """playbooks/deploy.yml's `serial:` falls back to ovms_common's default (plays without a role of
    ours do not see the roles' defaults), and plain runs never stop for a host unless told to."""
    plays = yaml.safe_load((content().playbooks / "deploy.yml").read_text(encoding="utf-8"))
    serials = {p["serial"] for p in plays if "serial" in p}
    assert serials == {f"{{{{ {SERIAL_VAR} | default({common_default(SERIAL_VAR)}) }}}}"}
    fails = {p["max_fail_percentage"] for p in plays if "max_fail_percentage" in p}
    assert fails == {f"{{{{ {MAX_FAIL_VAR} | default(100) }}}}"}


# --- the stop rule -----------------------------------------------------------------------------------


def _batch(*sites: str) -> Batch:
    return Batch(1, sites, tuple(f"{s}-{r}" for s in sites for r in ("server", "client")))


def _owner(batch: Batch) -> dict[str, str]:
    return {h: h.rsplit("-", 1)[0] for h in batch.hosts}


@pytest.mark.parametrize(
    ("failed_hosts", "max_fail", "failed", "stop"),
    [
        ([], 0, (), False),
        (["b-client"], 0, ("b",), True),  # the default in site mode: any failed site stops
        (["b-client", "b-server"], 25, ("b",), False),  # one site of four: 25%, not more
        (["b-client", "c-server"], 25, ("b", "c"), True),  # 50% > 25%
        (["a-server", "b-client", "c-server"], 75, ("a", "b", "c"), False),
        (["a-server", "b-client", "c-server", "d-client"], 100, ("a", "b", "c", "d"), True),  # all failed
        (["elsewhere"], 0, (), False),  # a host of no site of the batch
    ],
)
def test_failed_sites_and_the_stop_rule(
    failed_hosts: list[str], max_fail: float, failed: tuple, stop: bool
) -> None:
    batch = _batch("a", "b", "c", "d")
    verdict = judge(batch, failed_hosts, max_fail, _owner(batch))
    assert (verdict.failed, verdict.stop) == (failed, stop)
    if stop:
        assert verdict.reason


def test_a_run_that_did_not_complete_stops_the_roll_out() -> None:
    batch = _batch("a")
    verdict = judge(batch, [], 100, _owner(batch), completed=False)
    assert verdict.stop and verdict.failed == ()


def test_the_unsited_batch_counts_hosts() -> None:
    batch = Batch(3, (), ("x", "y", "z"))
    verdict = judge(batch, ["y"], 50, {})
    assert (verdict.failed, verdict.stop) == (("y",), False)


def _camera_site_batch() -> tuple[Batch, dict[str, str]]:
    """A batch of two sites: store-a with a server and its only camera, store-b with a server."""
    batch = Batch(1, ("store-a", "store-b"), ("a-server", "a-camera", "b-server"))
    return batch, {"a-server": "store-a", "a-camera": "store-a", "b-server": "store-b"}


def _run_summary(failed: set[str], plays: tuple[str, ...], named: set[str] | None) -> RunSummary:
    hosts = [
        HostSummary(h, 1, 0, int(h in failed), 0, 0, 0, 0, 1.0) for h in ("a-server", "a-camera", "b-server")
    ]
    return RunSummary(
        "deploy",
        "failed" if failed else "successful",
        1 if failed else 0,
        hosts,
        plays=plays,
        stats_hosts=frozenset(named) if named is not None else None,
    )


def test_a_playbook_ended_by_a_play_whose_hosts_all_failed_verifies_no_site() -> None:
    """ansible-core ends the whole playbook when every host of one play's batch failed (break_play): the
    batch's only camera failing in Prechecks of the cameras leaves store-b with no failure and no Verify.
    Both sites count as failed (store-b not verified) and the roll-out stops, whatever max_fail."""
    batch, owner = _camera_site_batch()
    rollout = Rollout((batch,), 50, owner)
    summary = _run_summary({"a-camera"}, PLAYS_ENDED_EARLY, {"a-server", "a-camera", "b-server"})
    assert unverified_hosts(batch, summary) == ("a-server", "b-server")
    verdict = rollout.verdict(batch, summary)
    assert verdict.failed == ("store-a", "store-b")
    assert verdict.unverified == ("store-b",)
    assert verdict.stop and "Verify" in verdict.reason
    # the same failure in a run that went through Verify and Summary: store-b is fine, 1 of 2 is 50%
    verdict = rollout.verdict(batch, _run_summary({"a-camera"}, PLAYS, {"a-server", "a-camera", "b-server"}))
    assert (verdict.failed, verdict.unverified, verdict.stop) == (("store-a",), (), False)


def test_a_host_the_final_stats_do_not_name_is_not_verified() -> None:
    batch, owner = _camera_site_batch()
    rollout = Rollout((batch,), 50, owner)
    verdict = rollout.verdict(batch, _run_summary(set(), PLAYS, {"a-server", "a-camera"}))
    assert (verdict.failed, verdict.unverified, verdict.stop) == (("store-b",), ("store-b",), False)
    verdict = rollout.verdict(batch, _run_summary(set(), PLAYS, None))  # no stats at all
    assert verdict.failed == ("store-a", "store-b") and verdict.stop
    assert verdict.reason == "every site of the batch failed or was not verified"


def test_max_fail_percentage_is_checked_by_its_rule() -> None:
    """The spec's type (int) and rules.yml's {min: 0, max: 100}, through the rule engine."""
    from launcher.rollout import max_fail_percentage

    assert max_fail_percentage(None) == SITE_MAX_FAIL_DEFAULT
    assert max_fail_percentage("25") == 25 and max_fail_percentage(100) == 100
    for value in (101, -1, "x", True, 1.5):
        with pytest.raises(LauncherError) as caught:
            max_fail_percentage(value)
        assert caught.value.key == MAX_FAIL_VAR


def test_the_serial_fix_shows_a_list_as_json() -> None:
    """key=value -e turns `[1, "10%"]` into a string: the fix shows the JSON form."""
    with pytest.raises(LauncherError) as caught:
        serial_steps("x")
    assert """-e '{"ovms_deploy_serial": [1, "10%", "100%"]}'""" in (caught.value.fix or "")


# --- the roll-out of an inventory --------------------------------------------------------------------------

INVENTORY = """
all:
  vars: {ansible_connection: local}
  children:
    ovms_servers:
      hosts:
        a-server: {ovms_site: store-a}
        b-server: {ovms_site: store-b}
        c-server: {ovms_site: store-c}
    ovms_clients:
      hosts:
        a-client: {ovms_site: store-a}
        b-client: {ovms_site: store-b}
        c-client: {ovms_site: store-c}
        d-client: {}
"""

SITES = {
    "store-a": ("a-server", "a-client"),
    "store-b": ("b-server", "b-client"),
    "store-c": ("c-server", "c-client"),
}


@pytest.fixture
def inventory(tmp_path: Path) -> Any:
    path = tmp_path / "hosts.yml"
    path.write_text(INVENTORY, encoding="utf-8")
    return load_inventory([path])


def test_no_serial_or_no_sites_is_one_ordinary_run(inventory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert plan_rollout(inventory, {}) is None
    assert plan_rollout(inventory, {SERIAL_VAR: "100%"}) is None
    monkeypatch.setattr("launcher.rollout.site_hosts_of", lambda inv: ({}, ["a-server"]))
    assert plan_rollout(inventory, {SERIAL_VAR: 1}) is None


def test_the_roll_out_of_an_inventory(inventory: Any) -> None:
    rollout = plan_rollout(inventory, {SERIAL_VAR: "1"})
    assert rollout is not None
    assert [(b.sites, b.hosts) for b in rollout.batches] == [
        (("store-a",), ("a-server", "a-client")),
        (("store-b",), ("b-server", "b-client")),
        (("store-c",), ("c-server", "c-client")),
        ((), ("d-client",)),
    ]
    assert rollout.max_fail_percentage == SITE_MAX_FAIL_DEFAULT == 0


def test_the_users_limit_narrows_the_batches(inventory: Any) -> None:
    rollout = plan_rollout(inventory, {SERIAL_VAR: [1, "100%"], MAX_FAIL_VAR: "50"}, {"a-client", "c-server"})
    assert rollout is not None
    assert [(b.sites, b.hosts) for b in rollout.batches] == [
        (("store-a",), ("a-client",)),
        (("store-c",), ("c-server",)),
    ]
    assert rollout.max_fail_percentage == 50


def test_the_inventorys_value_when_no_extra_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("launcher.rollout.site_hosts_of", lambda inv: (dict(SITES), []))
    path = tmp_path / "hosts.yml"
    path.write_text(
        INVENTORY.replace("ansible_connection: local}", "ansible_connection: local, ovms_deploy_serial: 2}")
    )
    rollout = plan_rollout(load_inventory([path]), {})
    assert rollout is not None and [b.sites for b in rollout.batches] == [
        ("store-a", "store-b"),
        ("store-c",),
    ]
    assert plan_rollout(load_inventory([path]), {SERIAL_VAR: 0}) is None  # -e wins


def test_a_value_that_differs_between_hosts_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("launcher.rollout.site_hosts_of", lambda inv: (dict(SITES), []))
    path = tmp_path / "hosts.yml"
    path.write_text(
        INVENTORY.replace(
            "a-server: {ovms_site: store-a}", "a-server: {ovms_site: store-a, ovms_deploy_serial: 1}"
        )
    )
    with pytest.raises(LauncherError) as caught:
        plan_rollout(load_inventory([path]), {})
    assert caught.value.key == SERIAL_VAR
    assert "a-server" in str(caught.value)
    # without sites: one ordinary run, whose plays read one value too (play keywords are templated
    # without host variables), so the same refusal
    monkeypatch.setattr("launcher.rollout.site_hosts_of", lambda inv: ({}, list(inv.hosts)))
    assert plan_rollout(load_inventory([path]), {}) is None
    with pytest.raises(LauncherError) as caught:
        playbook_extravars(load_inventory([path]), {})
    assert caught.value.key == SERIAL_VAR
    assert playbook_extravars(load_inventory([path]), {SERIAL_VAR: 1}) == {}  # -e wins


# --- forks ---------------------------------------------------------------------------------------------


def test_forks_default_to_the_hosts_up_to_ansible_cfg() -> None:
    cap = configured_forks()  # ansible.cfg's forks
    assert default_forks(3) == 3
    assert default_forks(0) == 1
    assert default_forks(1000) == cap
    assert default_forks(1000, 7) == 7


@pytest.mark.parametrize("command", ["deploy", "destroy", "status"])
def test_forks_must_be_at_least_one(command: str) -> None:
    from click.testing import CliRunner

    from launcher.cli import main

    result = CliRunner().invoke(main, [command, "--forks", "0"])
    assert result.exit_code == 2
    assert "--forks" in result.output


def test_a_batch_limit_is_a_list_or_a_host_file(tmp_path: Path) -> None:
    few = tuple(f"h{i}" for i in range(LIMIT_INLINE_HOSTS))
    assert host_limit(few, tmp_path) == ",".join(few)
    many = tuple(f"h{i}" for i in range(LIMIT_INLINE_HOSTS + 1))
    assert host_limit(many, tmp_path) == f"@{tmp_path / LIMIT_FILE}"
    assert (tmp_path / LIMIT_FILE).read_text(encoding="utf-8").split("\n") == list(many)
    assert host_limit(many, tmp_path, in_container=True) == f"@/runner/{LIMIT_FILE}"
    request = RunRequest(
        action="deploy",
        playbook=Path("deploy.yml"),
        inventories=(tmp_path,),
        limit="x",
        limit_hosts=("a", "b"),
    )
    assert runner_kwargs(request, tmp_path)["limit"] == "a,b"


def test_ansible_reads_the_host_file_as_a_limit(inventory: Any, tmp_path: Path) -> None:
    many = ("b-client", "a-server", *(f"missing{i}" for i in range(LIMIT_INLINE_HOSTS)))
    limit = host_limit(many, tmp_path)
    inventory.manager.subset(limit)
    try:
        assert sorted(h.name for h in inventory.manager.get_hosts("all")) == ["a-server", "b-client"]
    finally:
        inventory.manager.subset(None)


# --- deploy's batches through a fake executor ---------------------------------------------------------


# the plays of a complete deploy run (launcher.runner.RunState records their start events)
PLAYS = ("Prechecks of the servers", "Prechecks of the cameras", "Client", "Verify", "Summary")
# ansible-core ended the playbook in Prechecks of the cameras (every camera of the batch failed)
PLAYS_ENDED_EARLY = PLAYS[:2]


def _summary(
    request: RunRequest, failed: set[str], status: str | None = None, plays: tuple[str, ...] = PLAYS
) -> RunSummary:
    hosts = [
        HostSummary(
            h,
            ok=5,
            changed=1,
            failed=int(h in failed),
            unreachable=0,
            skipped=0,
            ignored=0,
            rescued=0,
            seconds=1.0,
        )
        for h in request.limit_hosts
    ]
    bad = [h for h in hosts if h.failed]
    return RunSummary(
        action="deploy",
        status=status or ("failed" if bad else "successful"),
        exit_code=130 if status == "canceled" else (1 if bad else 0),
        hosts=hosts,
        run_dir=Path("/runs") / f"run-{len(request.limit_hosts)}",
        plays=plays,
        stats_hosts=frozenset(request.limit_hosts),
    )


class FakeExecutor:
    def __init__(
        self, failing: set[str] = frozenset(), status: str | None = None, plays: tuple[str, ...] = PLAYS
    ) -> None:
        self.requests: list[RunRequest] = []
        self.failing = failing
        self.status = status
        self.plays = plays

    def __call__(
        self, request: RunRequest, *, json_output: bool = False, detailed: bool = False
    ) -> RunSummary:
        self.requests.append(request)
        return _summary(request, self.failing, self.status, self.plays)


def _rollout(max_fail: float = 0) -> Rollout:
    batches = plan_batches([1], dict(SITES), ["d-client"])
    owner = {h: s for s, hosts in SITES.items() for h in hosts}
    return Rollout(tuple(batches), max_fail, owner)


OPTIONS = {"inventories": (), "json_output": False, "tags": "client", "forks": None, "check": False}


def test_every_batch_runs_in_order_with_its_hosts_all_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeExecutor()
    code = deploy_command.run_rollout(_rollout(), dict(OPTIONS), {SERIAL_VAR: 1, "x": "y"}, run=fake)
    assert code == 0
    assert [r.limit_hosts for r in fake.requests] == [*SITES.values(), ("d-client",)]
    for request in fake.requests:
        assert request.limit is None and request.tags == "client"
        assert request.extravars == {**{SERIAL_VAR: 1, "x": "y"}, **BATCH_EXTRAVARS}
        assert request.extravars[SERIAL_VAR] == 0
        assert request.forks == len(request.limit_hosts)
    out = capsys.readouterr().out
    assert "batch 1/4: site store-a (2 hosts)" in out
    assert "batch 4/4: hosts without a site (1 host)" in out
    assert "roll-out completed" in out


def test_a_failed_canary_stops_the_roll_out_and_names_what_did_not_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake = FakeExecutor(failing={"a-server"})
    code = deploy_command.run_rollout(_rollout(), dict(OPTIONS, forks=4), {}, run=fake)
    assert code == 1
    assert [r.limit_hosts for r in fake.requests] == [SITES["store-a"]]
    assert fake.requests[0].forks == 4
    out = capsys.readouterr().out
    assert "batch 1/4: failed sites store-a" in out
    assert "roll-out stopped after batch 1/4" in out
    assert "not run: batch 2/4: site store-b (2 hosts)" in out
    assert "not run: batch 4/4: hosts without a site (1 host)" in out


def test_failures_under_the_threshold_go_on_and_exit_non_zero() -> None:
    batches = plan_batches([2], dict(SITES), [])
    owner = {h: s for s, hosts in SITES.items() for h in hosts}
    fake = FakeExecutor(failing={"a-client"})
    code = deploy_command.run_rollout(Rollout(tuple(batches), 50, owner), dict(OPTIONS), {}, run=fake)
    assert code == 1
    assert len(fake.requests) == 2


def test_an_interrupted_batch_stops_with_its_exit_code() -> None:
    fake = FakeExecutor(status="canceled")
    assert deploy_command.run_rollout(_rollout(100), dict(OPTIONS), {}, run=fake) == 130
    assert len(fake.requests) == 1


def test_ctrl_c_between_batches_reports_the_end(capsys: pytest.CaptureFixture[str]) -> None:
    """KeyboardInterrupt outside a run (a run handles its own): exit 130, the rollout record with the
    batches not started."""

    class InterruptedAfterOne(FakeExecutor):
        def __call__(self, request: RunRequest, *, json_output: bool = False) -> RunSummary:
            if self.requests:
                raise KeyboardInterrupt
            return super().__call__(request, json_output=json_output)

    fake = InterruptedAfterOne()
    code = deploy_command.run_rollout(_rollout(), dict(OPTIONS, json_output=True), {}, run=fake)
    assert code == 130
    end = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert end["type"] == "rollout" and end["status"] == "stopped" and end["reason"] == "interrupted"
    assert end["exit_code"] == 130 and end["batches_run"] == 2
    assert [b["number"] for b in end["not_run"]] == [3, 4]


def test_a_failure_in_the_last_batch_completes_with_failures(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeExecutor(failing={"d-client"})
    code = deploy_command.run_rollout(_rollout(), dict(OPTIONS), {}, run=fake)
    assert code == 1 and len(fake.requests) == 4
    out = capsys.readouterr().out
    assert "roll-out completed with failures" in out and "d-client" in out
    assert "stopped" not in out


def test_a_batch_ended_early_stops_the_roll_out(capsys: pytest.CaptureFixture[str]) -> None:
    """A run with a failed host that never reached Verify: its other sites count as not verified."""
    fake = FakeExecutor(failing={"a-client"}, plays=PLAYS_ENDED_EARLY)
    batches = plan_batches([2], dict(SITES), [])
    owner = {h: s for s, hosts in SITES.items() for h in hosts}
    code = deploy_command.run_rollout(Rollout(tuple(batches), 50, owner), dict(OPTIONS), {}, run=fake)
    assert code == 1 and len(fake.requests) == 1
    out = capsys.readouterr().out
    assert "failed sites store-a, store-b (not verified: store-b)" in out
    assert "not run: batch 2/2: site store-c" in out


def test_json_lines_per_batch(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeExecutor(failing={"b-client"})
    code = deploy_command.run_rollout(_rollout(), dict(OPTIONS, json_output=True), {}, run=fake)
    assert code == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(x["type"], x.get("state"), x.get("number")) for x in lines] == [
        ("batch", "start", 1),
        ("batch", "done", 1),
        ("batch", "start", 2),
        ("batch", "done", 2),
        ("rollout", None, None),
    ]
    assert lines[3]["failed"] == ["store-b"] and lines[3]["stop"] is True
    assert lines[3]["hosts"] == ["b-server", "b-client"] and lines[3]["of"] == 4
    end = lines[-1]
    assert end["status"] == "stopped" and end["exit_code"] == 1 and end["batches_run"] == 2
    assert [b["number"] for b in end["not_run"]] == [3, 4]
    assert end["not_run"][0]["sites"] == ["store-c"]
    assert lines[3]["unverified"] == [] and lines[3]["run_dir"] == "/runs/run-2"
    assert all(list(x) == sorted(x) for x in lines)  # launcher.runner.session.json_line


def test_deploy_renews_and_validates_once_then_runs_the_batches(
    inventory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`launcher deploy` on an inventory with sites: the certificates and the validation once, before
    batch 1; then one run per batch within --limit; exit 1 and batch 3 not run when batch 2 fails."""
    from types import SimpleNamespace

    from click.testing import CliRunner

    calls: list[str] = []
    monkeypatch.setattr(deploy_command, "renew_before_deploy", lambda *a, **k: calls.append("renew"))

    def validated(*args: Any, **kwargs: Any) -> Any:
        calls.append("validate")
        return SimpleNamespace(inventory=inventory, describe=lambda: "ok")

    monkeypatch.setattr(deploy_command, "_validated", validated)
    fake = FakeExecutor(failing={"b-server"})
    monkeypatch.setattr(deploy_command, "execute", fake)
    args = ["-i", str(tmp_path / "hosts.yml"), "-e", f"{SERIAL_VAR}=1", "--limit", "all:!a-client", "--json"]
    result = CliRunner().invoke(deploy_command.deploy, args)
    assert result.exit_code == 1, result.output
    assert calls == ["renew", "validate"]
    assert [r.limit_hosts for r in fake.requests] == [("a-server",), SITES["store-b"]]
    end = json.loads(result.output.splitlines()[-1])
    assert end["type"] == "rollout" and [b["sites"] for b in end["not_run"]] == [["store-c"], []]


def test_deploy_plans_before_renewing_certificates(
    inventory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A roll-out configuration problem exits 2 before any certificate is renewed or run started."""
    from click.testing import CliRunner

    calls: list[str] = []
    monkeypatch.setattr(deploy_command, "renew_before_deploy", lambda *a, **k: calls.append("renew"))
    monkeypatch.setattr(deploy_command, "execute", FakeExecutor())
    args = ["-i", str(tmp_path / "hosts.yml"), "-e", f"{MAX_FAIL_VAR}=150", "-e", f"{SERIAL_VAR}=1"]
    result = CliRunner().invoke(deploy_command.deploy, args)
    assert result.exit_code == 2, result.output
    assert calls == []
    assert MAX_FAIL_VAR in result.output


def test_an_ordinary_run_gets_the_inventorys_value_as_an_extra_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plays template `serial` without host variables: the inventory's `all:` value is passed as -e."""
    from types import SimpleNamespace

    from click.testing import CliRunner

    path = tmp_path / "hosts.yml"
    path.write_text(
        INVENTORY.replace("ansible_connection: local}", "ansible_connection: local, ovms_deploy_serial: 1}")
        .replace("ovms_site: store-a", "ovms_site: ''")
        .replace("ovms_site: store-b", "ovms_site: ''")
        .replace("ovms_site: store-c", "ovms_site: ''"),
        encoding="utf-8",
    )
    loaded = load_inventory([path])
    monkeypatch.setattr(deploy_command, "renew_before_deploy", lambda *a, **k: None)
    monkeypatch.setattr(
        deploy_command, "_validated", lambda *a, **k: SimpleNamespace(inventory=loaded, describe=lambda: "ok")
    )
    fake = FakeExecutor()
    monkeypatch.setattr(deploy_command, "execute", fake)
    result = CliRunner().invoke(deploy_command.deploy, ["-i", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert [r.extravars for r in fake.requests] == [{SERIAL_VAR: 1}]
    assert playbook_extravars(loaded, {SERIAL_VAR: 0}) == {}


def test_validate_reports_a_roll_out_problem(tmp_path: Path) -> None:
    """`launcher validate` (launcher.validate.crosschecks.check_rollout) names what deploy would refuse."""
    from launcher.validate.crosschecks import check_rollout

    path = tmp_path / "hosts.yml"
    path.write_text(
        INVENTORY.replace(
            "a-server: {ovms_site: store-a}", "a-server: {ovms_site: store-a, ovms_deploy_serial: 1}"
        ),
        encoding="utf-8",
    )
    found = check_rollout(load_inventory([path]), {}, None, [])
    assert [p.key for p in found] == [SERIAL_VAR]
    assert "a-server" in found[0].message
    assert check_rollout(load_inventory([path]), {SERIAL_VAR: 1}, None, []) == []


def test_the_runners_events_tell_a_playbook_ended_early() -> None:
    """Recorded events through RunState and summarize: the plays started and the final stats' hosts
    reach the roll-out's verdict (a run that ended in Prechecks of the cameras verifies no site)."""
    from launcher.runner import replay, summarize

    def event(counter: int, name: str, **data: Any) -> dict[str, Any]:
        return {"counter": counter, "event": name, "event_data": data}

    events = [
        event(1, "playbook_on_play_start", play="Prechecks of the servers"),
        event(2, "runner_on_ok", host="a-server", task="Check", play="Prechecks of the servers", res={}),
        event(3, "runner_on_ok", host="b-server", task="Check", play="Prechecks of the servers", res={}),
        event(4, "playbook_on_play_start", play="Prechecks of the cameras"),
        event(5, "runner_on_failed", host="a-camera", task="Check", play="Prechecks of the cameras", res={}),
        event(
            6,
            "playbook_on_stats",
            ok={"a-server": 1, "b-server": 1},
            failures={"a-camera": 1},
            processed={"a-server": 1, "b-server": 1, "a-camera": 1},
        ),
    ]
    state = replay(events)
    summary = summarize(
        "deploy", state.snapshot(), runner_status="failed", runner_rc=2, canceled=False, run_dir=None
    )
    assert summary.plays == ("Prechecks of the servers", "Prechecks of the cameras")
    assert summary.stats_hosts == {"a-server", "b-server", "a-camera"}
    batch, owner = _camera_site_batch()
    verdict = Rollout((batch,), 50, owner).verdict(batch, summary)
    assert verdict.failed == ("store-a", "store-b") and verdict.unverified == ("store-b",) and verdict.stop
