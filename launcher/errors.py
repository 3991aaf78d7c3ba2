"""Errors the launcher reports to a person: each names where the problem is and how to fix it."""

from __future__ import annotations

from pathlib import Path


class LauncherError(Exception):
    """A problem with the user's input or environment (exit code 2 unless said otherwise)."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        key: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.key = key
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        where = ""
        if self.file and self.key:
            where = f"{self.file}: {self.key}: "
        elif self.file:
            where = f"{self.file}: "
        elif self.key:
            where = f"{self.key}: "
        text = f"{where}{self.message}"
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text


class ExternalError(LauncherError):
    """A tool or host the launcher relies on failed (exit code 1)."""

    exit_code = 1
