"""The local-access rule of ovms-launcher, once: read by the module ovms_local_access (at deploy and
destroy) and by the local-access guard container (images/local-access: it re-applies the rules when the
Docker engine starts it again, after a reboot or an engine restart, and every few seconds after that).

Pure Python (no Ansible import): the guard image copies this file as it is.

One iptables OUTPUT rule per private network of ours rejects what users of the host other than root send
into the network's bridge:
  -o <bridge> -m owner ! --uid-owner 0 -m comment --comment "ovms-launcher local-access <network>" -j REJECT
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: module_utils also run on a host's older Python
    from collections.abc import Callable, Mapping, Sequence

    # run(argv) -> (return code, stdout, stderr)
    Runner = Callable[[Sequence[str]], tuple[int, str, str]]

COMMENT = "ovms-launcher local-access {network}"
_PREFIX = "ovms-launcher local-access "
# The backends of iptables 1.8 (`iptables -V` says "(nf_tables)" or "(legacy)"; older releases say
# neither and are legacy). The guard runs the binary of the host's backend: rules written by one are not
# seen by the other.
BACKENDS = {"nft": "iptables-nft", "legacy": "iptables-legacy"}
# A bridge's interface name as Linux takes it (at most 15 characters, no '/', no blanks).
_INTERFACE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
# The network names we pass (Docker's: letters, digits, '_', '.', '-').
_NETWORK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def backend_of(version_output: str) -> str:
    """'nft' or 'legacy' from the output of `iptables -V`."""
    return "nft" if "nf_tables" in version_output else "legacy"


def parse_rules(text: str) -> list[dict[str, str]]:
    """Our rules among `iptables -S OUTPUT` lines: [{network, interface}]."""
    rules = []
    for line in text.splitlines():
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        if words[:2] != ["-A", "OUTPUT"] or "--comment" not in words or "-o" not in words:
            continue
        at, out = words.index("--comment") + 1, words.index("-o") + 1
        if at < len(words) and out < len(words) and words[at].startswith(_PREFIX):
            rules.append({"network": words[at][len(_PREFIX) :], "interface": words[out]})
    return rules


def rule_spec(network: str, interface: str) -> list[str]:
    comment = COMMENT.format(network=network)
    return ["-o", interface, "-m", "owner", "!", "--uid-owner", "0", "-m", "comment", "--comment", comment]


def plan(existing: list[dict[str, str]], bridges: Mapping[str, str]) -> tuple[list[dict], list[dict]]:
    """(rules to remove, rules to add): a network's rules that name another bridge (or any, when its
    bridge is '') go; a missing rule for a network's bridge comes."""
    remove = [r for r in existing if r["network"] in bridges and r["interface"] != bridges[r["network"]]]
    have = {(r["network"], r["interface"]) for r in existing}
    add = [{"network": n, "interface": b} for n, b in sorted(bridges.items()) if b and (n, b) not in have]
    return remove, add


def bad_bridges(bridges: Mapping[str, str]) -> list[str]:
    """What is wrong with a {network: bridge} map, one message per entry (empty: nothing)."""
    problems = []
    for network, bridge in sorted(bridges.items()):
        if not _NETWORK.fullmatch(network):
            problems.append(f"network name {network!r} is not a Docker network name")
        if bridge and not _INTERFACE.fullmatch(bridge):
            problems.append(f"bridge {bridge!r} of {network} is not an interface name")
    return problems


def command(iptables: str, action: str, rule: Mapping[str, str]) -> list[str]:
    """The iptables call that removes (-D) or inserts first (-I) one rule of ours."""
    where = ["-D", "OUTPUT"] if action == "remove" else ["-I", "OUTPUT", "1"]
    return [iptables, "-w", "10", *where, *rule_spec(rule["network"], rule["interface"]), "-j", "REJECT"]


class IptablesError(RuntimeError):
    """An iptables call failed: its command line and what it said. `reading`: the listing failed (no
    change was attempted)."""

    def __init__(self, message: str, *, reading: bool = False) -> None:
        super().__init__(message)
        self.reading = reading


def enforce(
    run: Runner, iptables: str, bridges: Mapping[str, str], *, check: bool = False
) -> tuple[list, list]:
    """Read our rules, then remove the stale ones and insert the missing ones (nothing with `check`);
    returns (removed, added). Raises IptablesError naming the failed call."""
    listing = [iptables, "-w", "10", "-S", "OUTPUT"]
    rc, out, err = run(listing)
    if rc != 0:
        raise IptablesError(
            f"`{shlex.join(listing)}` failed ({rc}): {err.strip() or out.strip()}", reading=True
        )
    remove, add = plan(parse_rules(out), bridges)
    if not check:
        for action, rules in (("remove", remove), ("add", add)):
            for rule in rules:
                argv = command(iptables, action, rule)
                rc, out, err = run(argv)
                if rc != 0:
                    raise IptablesError(f"`{shlex.join(argv)}` failed ({rc}): {err.strip() or out.strip()}")
    return remove, add
