"""Action plugin ovms_check (docs: plugins/modules/ovms_check.py): every role's first task."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible_collections.ovms.edge.plugins.module_utils.ovms_rules import (
    HIDDEN,
    Finding,
    _redacted,
    check,
    check_host,
    contract,
)


def _related(key: str, other: str) -> bool:
    """Whether one finding key is the other or lies below it (`a.b`, `a[1]`)."""
    short, long = sorted((key, other), key=len)
    return long == short or long.startswith((f"{short}.", f"{short}["))


class ActionModule(ActionBase):
    """Templates the role's variables (and ovms_common's), converts them as the role's argument specs
    say, applies the rule files, and fails with every finding before the role changes anything."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("role",))

    def _role(self) -> tuple[str, str]:
        """(roles folder, role name) of the role whose task this is, or of the `role` argument."""
        role = self._task._role
        if role is not None:
            role_path = Path(role._role_path)
            return str(role_path.parent), str(self._task.args.get("role") or role_path.name)
        if not self._task.args.get("role"):
            raise AnsibleError("ovms.edge.ovms_check outside a role needs `role`: the role whose rules apply")
        # this collection's roles (plugins/action/ -> the collection's root)
        return str(Path(__file__).resolve().parents[2] / "roles"), str(self._task.args["role"])

    def _leaves(self, value: Any, key: str, failed: list[tuple[str, str]]) -> Any:
        """`value` templated item by item (a lazy item cannot hide its siblings): the leaves that cannot
        be templated keep their raw value and are listed in `failed` as (key, error)."""
        if isinstance(value, Mapping):
            return {k: self._leaves(v, f"{key}.{k}", failed) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._leaves(v, f"{key}[{i}]", failed) for i, v in enumerate(value)]
        try:
            return self._templar.template(value)
        except AnsibleError as error:
            failed.append((key, (str(error).strip().splitlines() or ["an error"])[0]))
            return value

    def _template(self, name: str, value: Any, failed: list[tuple[str, str]]) -> Any:
        """The value as the role's tasks read it; item by item only when the whole cannot be templated."""
        try:
            return self._templar.template(value)
        except AnsibleError as error:
            before = len(failed)
            done = self._leaves(value, name, failed)
            if len(failed) == before:  # the whole fails, each part alone does not
                failed.append((name, (str(error).strip().splitlines() or ["an error"])[0]))
            return done

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        roles_dir, role = self._role()
        options, rules, deferred = contract(roles_dir, role)
        values = {}
        failed: list[tuple[str, str]] = []  # (key, error) of the values that cannot be templated
        untemplated: list[str] = []  # keys of deferred options left to the tasks that read them
        for name in options:
            if name not in task_vars:
                continue
            before = len(failed)
            values[name] = self._template(name, task_vars[name], failed)
            if options[name].get("no_log"):  # an error may quote the value
                failed[before:] = [(key, HIDDEN) for key, _error in failed[before:]]
            if name in deferred and len(failed) > before:
                untemplated += [key for key, _error in failed[before:]]
                del failed[before:]
        host = str(task_vars.get("inventory_hostname", ""))
        blind = [key for key, _error in failed] + untemplated
        findings = [
            f
            for f in check_host(host, rules, values) + check(options, rules, values)
            if not any(_related(f.key, key) for key in blind)  # what the raw text of such a leaf gave
        ]
        findings += _redacted(
            [
                Finding(
                    key,
                    re.sub(r"\[[0-9]+\]", "[]", key),
                    f"cannot be evaluated before the role runs: {error}; its rules could not be checked "
                    "(a value may use only what is known before the role's first task: inventory, "
                    "facts, extra vars)",
                )
                for key, error in failed
            ],
            options,
            values,
        )
        result["changed"] = False
        result["role"] = role
        result["untemplated"] = untemplated
        result["findings"] = [{"key": f.key, "path": f.path, "message": f.message} for f in findings]
        if findings:
            result["failed"] = True
            lines = [f"{host}: {f.key}: {f.message}" for f in findings]
            result["msg"] = (
                f"{len(findings)} variable value(s) refused by the rules of roles/{role} "
                "(meta/argument_specs.yml and meta/rules.yml, ovms_common's too); set each in the inventory "
                "as its message says "
                "(see the role's defaults/main.yml), nothing was changed on the host:\n" + "\n".join(lines)
            )
        else:
            result["msg"] = f"the variables of roles/{role} pass its rules"
        return result
