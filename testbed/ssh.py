"""Commands and file copies to a harness host over SSH with the generated key (the way Ansible goes)."""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

# The hosts are created per run: their host keys are new each time and never worth remembering.
SSH_OPTIONS = (
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR",
    "-o", "BatchMode=yes",
    "-o", "ConnectTimeout=5",
)  # fmt: skip


class SshError(RuntimeError):
    pass


@dataclass(frozen=True)
class SshTarget:
    address: str
    private_key: Path
    user: str = "root"

    def _base(self, program: str) -> list[str]:
        return [program, "-i", str(self.private_key), *SSH_OPTIONS]

    def run(
        self, command: str | list[str], *, check: bool = True, timeout: float = 120, stdin: str | None = None
    ) -> subprocess.CompletedProcess:
        """Run a shell command on the host (a list is quoted word by word)."""
        text = command if isinstance(command, str) else shlex.join(command)
        proc = subprocess.run(
            [*self._base("ssh"), f"{self.user}@{self.address}", text],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise SshError(
                f"ssh {self.address} `{text[:200]}` failed ({proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()[-2000:]}"
            )
        return proc

    def put(self, source: Path, destination: str, *, timeout: float = 300) -> None:
        """Copy a local file or folder to the host (scp -r)."""
        proc = subprocess.run(
            [*self._base("scp"), "-q", "-r", str(source), f"{self.user}@{self.address}:{destination}"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise SshError(f"scp {source} to {self.address}:{destination} failed: {proc.stderr.strip()}")
