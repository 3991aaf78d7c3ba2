"""Ansible module ovms_local_access: keep users of a host other than root off our Docker networks."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ovms_local_access
short_description: One iptables OUTPUT rule per network of ours, rejecting users other than root
description:
  - Any user of a host can connect to a container's address on a Docker bridge, internal network or
    not. For each network of O(bridges) with a bridge, keeps one OUTPUT rule
    C(-o <bridge> -m owner ! --uid-owner 0 -m comment --comment "ovms-launcher local-access <network>"
    -j REJECT); removes our rules of those networks that name another bridge (the network was
    recreated) or none (the network is going away, or the choice is C(any)).
  - Reads the rules with C(iptables -S OUTPUT) and changes them with C(iptables -D) / C(-I), in one
    call. Supports check mode.
options:
  bridges:
    description: Network name -> the bridge to protect, or '' to remove that network's rules.
    type: dict
    required: true
author: ovms-launcher developers (@ovms-launcher)
"""

EXAMPLES = r"""
- name: Keep users other than root off the server's networks
  ovms.edge.ovms_local_access:
    bridges:
      ovms-internal: br-0123456789ab
      ovms-public: br-ba9876543210

- name: Remove the rules of a network that is going away
  ovms.edge.ovms_local_access:
    bridges:
      ovms-internal: ""
"""

RETURN = r"""
added:
  description: Rules added, as {network, interface}.
  type: list
  returned: always
removed:
  description: Rules removed, as {network, interface}.
  type: list
  returned: always
"""

import shlex

from ansible.module_utils.basic import AnsibleModule

COMMENT = "ovms-launcher local-access {network}"
_PREFIX = "ovms-launcher local-access "


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


def plan(existing: list[dict[str, str]], bridges: dict[str, str]) -> tuple[list[dict], list[dict]]:
    """(rules to remove, rules to add)."""
    remove = [r for r in existing if r["network"] in bridges and r["interface"] != bridges[r["network"]]]
    have = {(r["network"], r["interface"]) for r in existing}
    add = [{"network": n, "interface": b} for n, b in sorted(bridges.items()) if b and (n, b) not in have]
    return remove, add


def main() -> None:
    module = AnsibleModule(
        argument_spec={"bridges": {"type": "dict", "required": True}}, supports_check_mode=True
    )
    bridges = {str(k): str(v or "") for k, v in module.params["bridges"].items()}
    iptables = module.get_bin_path("iptables", required=any(bridges.values()))
    if iptables is None:  # nothing to add, and no iptables: no rule of ours can exist
        module.exit_json(changed=False, added=[], removed=[])
    rc, out, err = module.run_command([iptables, "-w", "10", "-S", "OUTPUT"])
    if rc != 0:
        if not any(bridges.values()):
            module.exit_json(changed=False, added=[], removed=[])
        module.fail_json(
            msg=f"`iptables -S OUTPUT` failed: {err.strip() or out.strip()}. ovms_server_local_access is "
            "root, which keeps users of this host other than root off OVMS's plain ports with an iptables "
            "rule: run the deploy as root (become) on a host whose Docker manages iptables, or set "
            "ovms_server_local_access: any to leave the firewall alone (any local user can then reach OVMS)"
        )
    remove, add = plan(parse_rules(out), bridges)
    if not module.check_mode:
        for rule in remove:
            spec = rule_spec(rule["network"], rule["interface"])
            module.run_command([iptables, "-w", "10", "-D", "OUTPUT", *spec, "-j", "REJECT"], check_rc=True)
        for rule in add:
            spec = rule_spec(rule["network"], rule["interface"])
            module.run_command(
                [iptables, "-w", "10", "-I", "OUTPUT", "1", *spec, "-j", "REJECT"], check_rc=True
            )
    module.exit_json(changed=bool(remove or add), added=add, removed=remove)


if __name__ == "__main__":
    main()
