"""Runs the launcher command line the way a user does, against the harness inventory, and reads its
`--json` summary."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.archives import launcher_bin

COMMAND_TIMEOUT_S = 600


@dataclass
class LauncherRun:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    summary: dict[str, Any] = field(default_factory=dict)

    def host(self, name: str) -> dict[str, Any]:
        for host in self.summary.get("hosts", []):
            if host["host"] == name:
                return host
        raise KeyError(
            f"{name} not in the summary of `launcher {' '.join(self.args[:2])}`:\n{self.describe()}"
        )

    def changed(self) -> dict[str, int]:
        return {h["host"]: h["changed"] for h in self.summary.get("hosts", [])}

    def describe(self) -> str:
        tail = "\n".join(self.summary.get("output_tail", []))
        failures = {h["host"]: h.get("failure") for h in self.summary.get("hosts", []) if h.get("failure")}
        return (
            f"$ launcher {' '.join(self.args)}\nexit {self.returncode}\n"
            f"status: {self.summary.get('status')} {self.summary.get('message', '')}\n"
            f"failures: {json.dumps(failures, indent=1)[:4000]}\n"
            f"output tail:\n{tail}\nstderr:\n{self.stderr[-3000:]}"
        )


class Launcher:
    """`launcher …` as a subprocess with this test's certificates dir and runs dir."""

    def __init__(self, certs_dir: Path, runs_dir: Path, extra_env: Mapping[str, str] | None = None) -> None:
        self.env = {
            **os.environ,
            "OVMS_LAUNCHER_CERTS_DIR": str(certs_dir),
            "OVMS_LAUNCHER_RUNS": str(runs_dir),
            "COLUMNS": "200",
            **(extra_env or {}),
        }

    def run(self, args: Sequence[str], *, timeout: float = COMMAND_TIMEOUT_S) -> LauncherRun:
        proc = subprocess.run(
            [str(launcher_bin()), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        summary: dict[str, Any] = {}
        for line in proc.stdout.splitlines():
            if line.startswith("{"):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if record.get("type") == "summary":
                    summary = record
        return LauncherRun(list(args), proc.returncode, proc.stdout, proc.stderr, summary)

    def ok(self, args: Sequence[str], *, timeout: float = COMMAND_TIMEOUT_S) -> LauncherRun:
        """Run and require exit 0."""
        result = self.run(args, timeout=timeout)
        assert result.returncode == 0, result.describe()
        return result
