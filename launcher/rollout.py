"""Roll-outs by site: `launcher deploy` on an inventory with sites and `ovms_deploy_serial` set runs the
deploy playbook once per batch of SITES, in order, each batch through every play (Verify included) before
the next starts, and stops the roll-out per `ovms_deploy_max_fail_percentage`.

- `ovms_deploy_serial` is read as Ansible's play keyword `serial` reads it (ansible-core's
  PlaybookExecutor._get_serialized_batches and utils.helpers.pct_to_int): a count, "N%" (of all the
  sites, rounded down, at least 1) or a list of them whose last value repeats; 0 (or a first value of
  0 or "100%") is everything at once. Its rule (`deploy_serial`) and default live in roles/ovms_common.
- Hosts without a site go in a last batch of their own.
- After a batch: a site failed when any of its hosts failed, was unreachable or was not verified (see
  `unverified_hosts`: ansible-core ends the whole playbook when every host of one play failed, so the
  other sites of the batch never reach Verify); the roll-out stops when more than
  `ovms_deploy_max_fail_percentage` % of the batch's sites failed (unset: 0, the first failed site stops
  it) or every site of the batch did (Ansible stops a play whose whole batch failed).

Both variables are playbook-level: Ansible templates play keywords (`serial`, `max_fail_percentage`)
without host variables, so a value in the inventory's `all:` vars reaches no play by itself (a plain
ansible-playbook or AWX run reads only -e / the job's extra vars). The launcher reads them once,
`-e` first, else the one value the inventory gives every member host (a value that differs between
hosts is refused, naming the variable), plans the roll-out with them, and for an ordinary run passes the
inventory's value to ansible-playbook as an extra var (`playbook_extravars`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from launcher.errors import LauncherError
from launcher.inventory import Inventory
from launcher.runner.stages import stage_of
from launcher.runner.summary import RunSummary
from launcher.sites import sites, unsited

SERIAL_VAR = "ovms_deploy_serial"
MAX_FAIL_VAR = "ovms_deploy_max_fail_percentage"
# `ovms_deploy_max_fail_percentage` unset, in a roll-out by site: the first failed site stops it (the
# plays' own default, for a plain run counting hosts, is playbooks/deploy.yml's 100)
SITE_MAX_FAIL_DEFAULT = 0
# inside a batch: every host at once, and no play stops the batch's other sites (the launcher decides
# between batches)
BATCH_EXTRAVARS: Mapping[str, Any] = {SERIAL_VAR: 0, MAX_FAIL_VAR: 100}
_WHOLE_INVENTORY = "set it once for the whole inventory: -e, or the `all:` vars"
# the last plays of playbooks/deploy.yml (stages, launcher.runner.stages): a batch's run that did not
# start both ended early, every host of one play having failed (ansible-core's break_play)
FINAL_STAGES = ("verify", "summary")

SerialStep = int | str


@dataclass(frozen=True)
class Batch:
    """One run of a roll-out: its number (from 1), the sites it deploys (none for the hosts without a
    site), and the hosts, in inventory order."""

    number: int
    sites: tuple[str, ...]
    hosts: tuple[str, ...]

    @property
    def unsited(self) -> bool:
        return not self.sites

    def describe(self) -> str:
        """`sites store-b, store-c (6 hosts)`, or `hosts without a site (2 hosts)`."""
        count = f"{len(self.hosts)} host{'s' if len(self.hosts) != 1 else ''}"
        if self.unsited:
            return f"hosts without a site ({count})"
        word = "site" if len(self.sites) == 1 else "sites"
        return f"{word} {', '.join(self.sites)} ({count})"

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "sites": list(self.sites), "hosts": list(self.hosts)}


@dataclass(frozen=True)
class Verdict:
    """A batch's outcome: the sites that failed (for the unsited batch: its failed hosts), those of them
    only not verified (no host failed), whether the roll-out stops, and why."""

    failed: tuple[str, ...]
    stop: bool
    reason: str = ""
    unverified: tuple[str, ...] = ()


# --- the variables ----------------------------------------------------------------------------------


def _engine() -> Any:
    from launcher.validate.rules import engine

    return engine()


def serial_steps(value: Any, *, key: str = SERIAL_VAR) -> list[SerialStep]:
    """`ovms_deploy_serial` as a non-empty list of steps (ints, or "N%" strings), checked with its rule
    (roles/ovms_common/meta/rules.yml `deploy_serial`); a LauncherError naming the key otherwise."""
    problems = _engine().CHECKS["deploy_serial"](value, None, {})
    if problems:
        message = problems if isinstance(problems, str) else problems[0][1]
        raise LauncherError(
            message,
            key=key,
            fix=f"e.g. -e {SERIAL_VAR}=1, -e {SERIAL_VAR}=25% or (a list: JSON, as key=value gives a string) "
            f"""-e '{{"{SERIAL_VAR}": [1, "10%", "100%"]}}'""",
        )
    items = value if isinstance(value, list) else [value]
    return [s if isinstance(s, int) or s.endswith("%") else int(s) for s in items]


def all_at_once(steps: Sequence[SerialStep]) -> bool:
    """Whether a serial puts everything in one batch whatever the count (0, "0", "100%" or more first)."""
    first = steps[0]
    if isinstance(first, str):
        return int(first[:-1]) >= 100
    return first <= 0


def pct_to_int(step: SerialStep, total: int) -> int:
    """A batch's size as ansible-core computes a play's (utils.helpers.pct_to_int): "N%" of `total`
    rounded down, at least 1; a count as is."""
    from ansible.utils.helpers import pct_to_int as ansible_pct_to_int

    return int(ansible_pct_to_int(step, total))


def max_fail_percentage(value: Any, *, key: str = MAX_FAIL_VAR) -> float:
    """`ovms_deploy_max_fail_percentage` (None: SITE_MAX_FAIL_DEFAULT) as a number, checked as the roles
    check it: its spec's type (int, roles/ovms_common/meta/argument_specs.yml) and its rule
    (roles/ovms_common/meta/rules.yml); a LauncherError naming the key otherwise."""
    if value is None:
        return float(SITE_MAX_FAIL_DEFAULT)
    from ansible.module_utils.common.validation import check_type_int

    from launcher.validate.rules import run

    try:
        number = None if isinstance(value, bool) else check_type_int(value)
    except TypeError:
        number = None
    if number is None:
        findings = [("", f"must be a whole number (got {value!r})")]
    else:  # the rule's message names the value
        findings = run(MAX_FAIL_VAR, number, {})
    if findings:
        raise LauncherError(findings[0][1], key=key, fix=f"a percentage, e.g. -e {MAX_FAIL_VAR}=25")
    return float(number)


def playbook_value(inventory: Inventory, extravars: Mapping[str, Any], name: str) -> tuple[Any, str]:
    """A playbook-level variable and where it came from: the extra vars' (`-e`), else the one value the
    inventory gives its member hosts (None when none has it). Hosts disagreeing (one without it
    included) is an error."""
    if name in extravars:
        return extravars[name], f"--extra-vars: {name}"
    values: dict[str, list[str]] = {}
    shown: dict[str, Any] = {}
    for host in inventory.members():
        value = host.vars.get(name)
        text = "unset" if value is None else repr(value)
        values.setdefault(text, []).append(host.name)
        shown[text] = value
    if not values or list(values) == ["unset"]:
        return None, name
    if len(values) > 1:
        detail = "; ".join(f"{text} on {', '.join(hosts[:3])}" for text, hosts in values.items())
        raise LauncherError(
            f"differs between hosts ({detail}): a roll-out reads one value",
            file=inventory.source_label,
            key=name,
            fix=_WHOLE_INVENTORY,
        )
    text = next(iter(values))
    value = shown[text]
    if isinstance(value, str) and "{{" in value:
        raise LauncherError(
            "is templated: the launcher reads it before any template runs (a play's keywords are "
            "templated without host variables)",
            file=inventory.source_label,
            key=name,
            fix='write a plain value (a count, "N%" or a list of them)',
        )
    return value, name


def playbook_extravars(inventory: Inventory, extravars: Mapping[str, Any]) -> dict[str, Any]:
    """What an ordinary run (no roll-out by site) adds to its extra vars: the value of
    ovms_deploy_serial / ovms_deploy_max_fail_percentage the inventory gives its hosts (`all:` vars)
    when -e does not set it, since the plays template `serial` and `max_fail_percentage` without host
    variables. A value that differs between hosts is refused (playbook_value)."""
    added: dict[str, Any] = {}
    for name in (SERIAL_VAR, MAX_FAIL_VAR):
        if name in extravars:
            continue
        value, _ = playbook_value(inventory, extravars, name)
        if value is not None:
            added[name] = value
    return added


# --- planning -----------------------------------------------------------------------------------------


def plan_batches(
    serial: Sequence[SerialStep], site_hosts: Mapping[str, Sequence[str]], unsited: Sequence[str]
) -> list[Batch]:
    """The batches of a roll-out: the sites (in the mapping's order) cut as ansible-core's
    _get_serialized_batches cuts a play's hosts, then the hosts without a site in a batch of their own.
    Sites without a host are left out (counted in no percentage)."""
    names = [name for name, hosts in site_hosts.items() if hosts]
    total = len(names)
    groups: list[list[str]] = []
    step_index = 0
    while names:
        size = pct_to_int(serial[step_index], total)
        if size <= 0:
            groups.append(names)
            break
        groups.append(names[:size])
        names = names[size:]
        step_index = min(step_index + 1, len(serial) - 1)
    batches = [
        Batch(number, tuple(group), tuple(h for site in group for h in site_hosts[site]))
        for number, group in enumerate(groups, start=1)
    ]
    if unsited:
        batches.append(Batch(len(batches) + 1, (), tuple(unsited)))
    return batches


def ended_early(summary: RunSummary) -> bool:
    """Whether a run ended before deploy.yml's last plays (FINAL_STAGES) started: ansible-core ends the
    whole playbook when every host of one play failed (PlaybookExecutor's break_play), e.g. a batch's
    only camera in *Prechecks of the cameras*; the other hosts then have no failure, and no Verify."""
    started = {stage_of({"play": play}) for play in summary.plays}
    return not set(FINAL_STAGES) <= started


def unverified_hosts(batch: Batch, summary: RunSummary) -> tuple[str, ...]:
    """The batch's hosts that did not fail but cannot count as deployed and verified: every one when the
    run ended early (ended_early), else those the final stats do not name (the Summary play, tagged
    always, names every host of a run). Per host "reached Verify" is not the test: the Verify play runs
    on the servers and clients only, and with --tags its tasks may all be skipped."""
    failed = {h.host for h in summary.failed_hosts}
    named = summary.stats_hosts or frozenset()
    early = ended_early(summary)
    return tuple(h for h in batch.hosts if h not in failed and (early or h not in named))


@dataclass(frozen=True)
class Rollout:
    """What `launcher deploy` runs on an inventory with sites: the batches, the stop rule, and which
    site each host belongs to."""

    batches: tuple[Batch, ...]
    max_fail_percentage: float
    site_of_host: Mapping[str, str]

    def verdict(self, batch: Batch, summary: RunSummary) -> Verdict:
        """The batch's failed (or not verified) sites and whether the roll-out stops, from its run's
        summary; a run that did not complete (cancelled, or ansible-playbook itself failed) always
        stops it."""
        return judge(
            batch,
            [h.host for h in summary.failed_hosts],
            self.max_fail_percentage,
            self.site_of_host,
            completed=summary.status in ("successful", "failed"),
            interrupted=summary.status == "canceled",
            unverified=unverified_hosts(batch, summary),
            early=ended_early(summary),
        )


def judge(
    batch: Batch,
    failed_hosts: Iterable[str],
    max_fail: float,
    site_of_host: Mapping[str, str],
    *,
    completed: bool = True,
    interrupted: bool = False,
    unverified: Iterable[str] = (),
    early: bool = False,
) -> Verdict:
    """See Rollout.verdict. The unsited batch's units are its hosts; a unit with a failed or an
    `unverified` host failed; `early`: the run ended before Verify (ended_early)."""
    members = set(batch.hosts)
    bad = {h for h in failed_hosts if h in members}
    unchecked = {h for h in unverified if h in members} - bad

    def units_of(hosts: set[str]) -> tuple[str, ...]:
        if batch.unsited:
            return tuple(h for h in batch.hosts if h in hosts)
        names = {site_of_host.get(h, "") for h in hosts}
        return tuple(s for s in batch.sites if s in names)

    failed_units = units_of(bad)
    failed = units_of(bad | unchecked)
    only_unverified = tuple(u for u in failed if u not in failed_units)
    units = len(batch.hosts) if batch.unsited else len(batch.sites)
    unit = "host" if batch.unsited else "site"
    if not completed:
        reason = "interrupted" if interrupted else "the run did not complete"
        return Verdict(failed, True, reason, only_unverified)
    if early:
        reason = (
            "the playbook ended before its last plays, Verify and Summary (Ansible ends it when every "
            f"host of one play failed): the batch's other {unit}s are not verified"
        )
        return Verdict(failed, True, reason, only_unverified)
    if not failed:
        return Verdict((), False)
    if len(failed) == units:
        what = "failed or was not verified" if only_unverified else "failed"
        return Verdict(failed, True, f"every {unit} of the batch {what}", only_unverified)
    if len(failed) / units > max_fail / 100.0:
        reason = f"{len(failed)} of {units} failed, more than {MAX_FAIL_VAR} {max_fail:g}%"
        return Verdict(failed, True, reason, only_unverified)
    return Verdict(failed, False, "", only_unverified)


def site_hosts_of(inventory: Inventory) -> tuple[dict[str, tuple[str, ...]], list[str]]:
    """The inventory's sites (name -> hosts, launcher.sites order) and its member hosts without one."""
    return {name: site.hosts for name, site in sites(inventory).items()}, list(unsited(inventory))


def plan_rollout(
    inventory: Inventory, extravars: Mapping[str, Any], selected: set[str] | None = None
) -> Rollout | None:
    """The roll-out `launcher deploy` runs, or None for one ordinary run: no site in the inventory, or
    ovms_deploy_serial unset (roles/ovms_common's default) or all at once. `selected`: the hosts the
    user's --limit selects (None: all); the batches hold only those, and count only sites with one."""
    from launcher.common_defaults import common_default

    site_hosts, unsited = site_hosts_of(inventory)
    if not site_hosts:  # the plays' serial, as ever (it may differ between groups there)
        return None
    value, key = playbook_value(inventory, extravars, SERIAL_VAR)
    if value is None:
        value, key = common_default(SERIAL_VAR), f"roles/ovms_common/defaults/main.yml: {SERIAL_VAR}"
    steps = serial_steps(value, key=key)
    if all_at_once(steps):
        return None
    if selected is not None:
        site_hosts = {name: tuple(h for h in hosts if h in selected) for name, hosts in site_hosts.items()}
        unsited = [h for h in unsited if h in selected]
    fail_value, fail_key = playbook_value(inventory, extravars, MAX_FAIL_VAR)
    return Rollout(
        batches=tuple(plan_batches(steps, site_hosts, unsited)),
        max_fail_percentage=max_fail_percentage(fail_value, key=fail_key),
        site_of_host={h: name for name, hosts in site_hosts.items() for h in hosts},
    )
