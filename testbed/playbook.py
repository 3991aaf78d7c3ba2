"""A real `ansible-playbook` run of the checkout's collection (ovms.edge) on this machine, without the
launcher: the unit tests that run a role's tasks, or its first task, for real over tmp folders.

`run_playbook` writes the plays (and an inventory given as data) into a folder and runs them from
there, with the checkout's ansible.cfg and collections folder, on the local connection with this
Python. Its output is either the `json` stdout callback (one JSON document: `task_results` reads
it) or the default callback with results as JSON (`host_failure` reads a host's failure from it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from launcher.content import content

PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


def run_playbook(
    root: Path,
    plays: list[dict[str, Any]] | dict[str, Any],
    inventory: str | Mapping[str, Any] = "localhost,",
    *,
    json_callback: bool = False,
    extra_env: Mapping[str, str] | None = None,
    extra_vars: Mapping[str, Any] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run `plays` (one play or a list) with `ansible-playbook` in the folder `root`; never raises on
    the playbook's exit status (the caller asserts on `returncode`, `stdout`, `stderr`).

    The plays go to `root/play-<n>.yml` (a new file each run). `inventory` is an `-i` argument as it
    is (default `localhost,`) or the data of a YAML inventory, written to `root/hosts.yml`. Every host
    is reached with the local connection and this Python (`-c local`, `-e ansible_python_interpreter`).
    The environment is this process's plus: ANSIBLE_CONFIG (the checkout's ansible.cfg),
    ANSIBLE_COLLECTIONS_PATH (`launcher.content.content().collections_path`, where the checkout is
    linked as ovms.edge), no colour, retry files or localhost and unparsed-inventory warnings; then
    `extra_env`. `extra_vars` go to one `-e` option as JSON (an extra variable, as `-e` gives it). The
    output: with `json_callback`, the `json` stdout callback (read it with
    `task_results`); otherwise the default callback with results as JSON (`host_failure`).
    """
    playbook = root / f"play-{len(list(root.glob('play-*.yml')))}.yml"
    playbook.write_text(yaml.safe_dump(plays if isinstance(plays, list) else [plays]), encoding="utf-8")
    if not isinstance(inventory, str):
        (root / "hosts.yml").write_text(yaml.safe_dump(dict(inventory)), encoding="utf-8")
        inventory = str(root / "hosts.yml")
    found = content()
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(found.ansible_cfg),
        "ANSIBLE_COLLECTIONS_PATH": str(found.collections_path),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    }
    if json_callback:
        env["ANSIBLE_STDOUT_CALLBACK"] = "json"
    else:
        env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.default"
        env["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "json"
    env |= extra_env or {}
    return subprocess.run(
        [str(PLAYBOOK), "-i", inventory, "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}",
         *(["-e", json.dumps(dict(extra_vars))] if extra_vars else []), str(playbook)],
        cwd=root, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def task_results(done: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    """A `json_callback` run's result of each task on its (one) host, by the task's name without its
    role prefix (`ovms.edge.ovms_client : Copy …` -> `Copy …`); a later task of one name wins."""
    report = json.loads(done.stdout)
    return {
        task["task"]["name"].split(" : ")[-1]: next(iter(task["hosts"].values()))
        for play in report["plays"]
        for task in play["tasks"]
    }


def host_failure(output: str, host: str) -> dict[str, Any]:
    """The result of the task that failed on `host`, from a default-callback run's output (its
    `fatal: [host]: FAILED! => {…}` line); AssertionError when the host did not fail."""
    prefix = f"fatal: [{host}]: FAILED! => "
    for line in output.splitlines():
        if line.startswith(prefix):
            return json.loads(line[len(prefix) :])
    raise AssertionError(f"{host} did not fail:\n{output}")
