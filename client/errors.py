"""Errors the client reports to a person; each names the file, the key and what was expected."""

from __future__ import annotations

from pathlib import Path


class ClientError(Exception):
    """Invalid configuration (profile, env file, deployment environment): exit code 2."""

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
        parts = [p for p in (self.file, self.key) if p]
        text = ": ".join([*parts, self.message])
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text


class SourceError(ClientError):
    """An input source that cannot be opened at start (missing file, folder or device)."""


class ModelMismatchError(ClientError):
    """The model the server serves does not match what the profile declares."""


class RequestRejected(Exception):
    """The server answered a request with an error about that request (a corrupt image, a wrong
    input, a version just retired): the frame has no result, but the server is up."""


class UnreadableResponse(RequestRejected):
    """The server answered, but an output of its answer cannot be read (data missing, more or fewer
    elements than its shape, a datatype the client does not know): the frame has no result, but the
    server is up. The message names the model and the output."""

    def __init__(self, model: str, output: str | None, problem: str) -> None:
        self.model = model
        self.output = output
        self.problem = problem
        where = f"model {model!r}" + (f" output {output!r}" if output is not None else "")
        super().__init__(f"{where}: {problem}")


class ApiNotServed(ClientError):
    """The server does not serve the API the profile asks for (TFS on OVMS 2026.3 and later)."""
