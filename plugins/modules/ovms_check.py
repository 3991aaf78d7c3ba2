"""Documentation of the action plugin ovms_check (plugins/action/ovms_check.py): it runs on the
controller only, no module is sent to the host."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ovms_check
short_description: Check a role's variables against its argument specs and rules, after templating
description:
  - The first task of every entry point of every ovms.edge role (tasks/main.yml, precheck.yml,
    status.yml, absent.yml). Runs on the controller; nothing is sent to or changed on the host.
  - Templates the role's variables and the deployment-wide ones of ovms.edge.ovms_common (those its
    C(meta/argument_specs.yml) specify), converts them as the argument specs say (refusing what
    ansible-core would convert silently, e.g. a list for a string), then applies the role's
    C(meta/rules.yml) and ovms_common's (patterns, ranges, folders; the engine is the module utility
    ovms_rules, which the launcher applies to inventories too).
  - Checks the inventory host name against the host-name rule (a DNS name, never the controller's own
    certificate name, in any letter case).
  - Fails closed. A value that cannot be templated at the check (it uses a variable set later, a
    lookup that fails) is a finding, C(cannot be evaluated before the role runs), unless the role's
    C(meta/rules.yml) lists the option under C(deferred) with the reason its value may depend on
    what the role sets later. Lists and mappings are templated item by item when the whole fails, so
    one such item neither hides the findings of its siblings nor lets them pass unchecked.
  - Also checks the options of other roles the role's tasks read, as its C(meta/rules.yml) declares
    them under C(also) (role -> options), with their rules. The prechecks role's variables are
    checked by the first task of its C(tasks/check.yml), which every role's C(precheck.yml) imports.
  - "Fails with every finding, one line each as C(<host>: <variable key>: <message>); a message never
    shows the value of a C(no_log) option."
options:
  role:
    description:
      - The role whose variables are checked (its name in the collection); default the role of the task.
    type: str
    required: false
notes:
  - Rule files are read once per controller process (again only when they change).
  - ansible-core 2.19 templates lazily. A value computed by a lookup (a file, a URL, an environment
    variable) is evaluated again at each use; the check sees one evaluation and a later task may read
    another, if the source changed in between. The inventory is trusted code (docs/security.md); the
    check guards against mistakes and untrusted data written into plain values, not against an
    inventory whose expressions read a source an attacker controls.
author: ovms-launcher developers (@ovms-launcher)
"""

EXAMPLES = r"""
- name: Check this role's variables
  ovms.edge.ovms_check:
"""

RETURN = r"""
findings:
  description: Every finding, each {key, path, message}.
  type: list
  elements: dict
  returned: always
role:
  description: The role checked.
  type: str
  returned: always
untemplated:
  description: Keys of C(deferred) options whose value could not be templated here (left to the
    tasks that read them; any other such value is a finding).
  type: list
  elements: str
  returned: always
"""
