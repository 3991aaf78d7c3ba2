"""`launcher …` as a user runs it, measured (bench.procstats), with its `--json` summary read back."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procstats import Measured, run_measured
from testbed.paths import PROJECT_ROOT

LAUNCHER = str(Path(sys.executable).parent / "launcher")


class BenchError(RuntimeError):
    """A benchmark step failed: the message says which command and shows its output's end."""


@dataclass(frozen=True)
class LauncherResult:
    args: tuple[str, ...]
    measured: Measured
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> int:
        return sum(int(h.get("changed") or 0) for h in self.summary.get("hosts", []))

    def describe(self) -> str:
        m = self.measured
        return (
            f"$ launcher {' '.join(self.args)}\nexit {m.returncode}\n"
            f"stdout (end):\n{m.stdout[-3000:]}\nstderr (end):\n{m.stderr[-2000:]}"
        )


def _summary(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("type") == "summary" or "hosts" in record:
                return record
    return {}


def run_launcher(
    args: Sequence[str], *, env: Mapping[str, str] | None = None, check: bool = True, timeout: float = 1200
) -> LauncherResult:
    """Run `launcher ARGS` from the project root; with check, a non-zero exit raises BenchError."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    measured = run_measured([LAUNCHER, *args], env=full_env, cwd=str(PROJECT_ROOT), timeout=timeout)
    result = LauncherResult(tuple(args), measured, _summary(measured.stdout))
    if check and measured.returncode != 0:
        raise BenchError(f"launcher step failed:\n{result.describe()}")
    return result
