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
  - The rules are runtime state (gone after a reboot); the server role runs the local-access guard
    container beside OVMS, which re-applies the same rules (module_utils ovms_local_access) whenever the
    Docker engine starts it and checks them every few seconds. RV(backend) tells the role which
    iptables backend the guard must use.
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
backend:
  description: The host's iptables backend, C(nft) or C(legacy) (C(iptables -V)); empty without iptables.
  type: str
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.ovms.edge.plugins.module_utils.ovms_local_access import (
    IptablesError,
    backend_of,
    bad_bridges,
    enforce,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={"bridges": {"type": "dict", "required": True}}, supports_check_mode=True
    )
    bridges = {str(k): str(v or "") for k, v in module.params["bridges"].items()}
    problems = bad_bridges(bridges)
    if problems:
        module.fail_json(msg="bridges: " + "; ".join(problems))
    iptables = module.get_bin_path("iptables", required=any(bridges.values()))
    if iptables is None:  # nothing to add, and no iptables: no rule of ours can exist
        module.exit_json(changed=False, added=[], removed=[], backend="")
    rc, out, err = module.run_command([iptables, "-V"])
    backend = backend_of(out + err) if rc == 0 else "legacy"
    try:
        remove, add = enforce(module.run_command, iptables, bridges, check=module.check_mode)
    except IptablesError as exc:
        if exc.reading and not any(bridges.values()):  # no readable rules: none of ours to remove
            module.exit_json(changed=False, added=[], removed=[], backend=backend)
        module.fail_json(
            msg=f"{exc}. ovms_server_local_access is root, which keeps users of this host other than root "
            "off OVMS's plain ports with an iptables rule: run the deploy as root (become) on a host whose "
            "Docker manages iptables, or set ovms_server_local_access: any to leave the firewall alone (any "
            "local user can then reach OVMS)"
        )
    module.exit_json(changed=bool(remove or add), added=add, removed=remove, backend=backend)


if __name__ == "__main__":
    main()
