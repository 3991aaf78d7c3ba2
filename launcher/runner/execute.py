"""Running a playbook with the ansible-runner Python API, cancellable with Ctrl+C."""

from __future__ import annotations

import os
import re
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import ansible_runner

from launcher.content import content
from launcher.errors import ExternalError, LauncherError
from launcher.paths import cache_dir, default_certs_dir
from launcher.pki.layout import CERTS_DIR_ENV
from launcher.runner import proctree
from launcher.runner.eventfile import events_dir, write_event
from launcher.runner.isolation import IN_RUNNER, ExecutionEnvironment, ee_playbook
from launcher.runner.rundir import artifacts_dir, new_run_dir
from launcher.runner.strategy import strategy_envvars

EventHandler = Callable[[dict[str, Any]], None]

POLL_SECONDS = 0.1
CANCEL_CHECK_SECONDS = 0.5
OUTPUT_TAIL_LINES = 15
# a batch's hosts (RunRequest.limit_hosts): up to this many as `--limit a,b,c`, more as `--limit @FILE`
# (a file in the run dir, one name a line: ansible-core reads it as a host list)
LIMIT_INLINE_HOSTS = 50
LIMIT_FILE = "limit.hosts"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class RunRequest:
    """What to run and how; mirrors the launcher's common options."""

    action: str
    playbook: Path
    inventories: tuple[Path, ...]
    extravars: Mapping[str, Any] = field(default_factory=dict)
    limit: str | None = None
    tags: str | None = None
    check: bool = False
    diff: bool = False
    verbosity: int = 0
    forks: int | None = None  # parallel hosts (launcher.commands.options.default_forks)
    # exactly these hosts (a roll-out's batch, already within the user's --limit): replaces `limit`
    limit_hosts: tuple[str, ...] = ()
    runs_root: Path | None = None
    ansible_config: Path = content().ansible_cfg
    # `--ee IMAGE`: run inside that execution environment (launcher.runner.isolation); None: on this machine
    ee: ExecutionEnvironment | None = None


@dataclass(frozen=True)
class RunOutcome:
    status: str
    rc: int | None
    canceled: bool
    run_dir: Path
    output_tail: tuple[str, ...] = ()


def runner_envvars(ansible_config: Path) -> dict[str, str]:
    """ANSIBLE_CONFIG, PATH with this interpreter's bin directory first (ansible-playbook lives there),
    and OVMS_LAUNCHER_CACHE: the roles find prepared models and sample media in the launcher's cache.
    OVMS_LAUNCHER_CERTS_DIR tells the roles where the PKI lives (`launcher.paths.default_certs_dir`).
    The strategy (Mitogen when installed) comes from launcher.runner.strategy."""
    bin_dir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    parts = [bin_dir, *[p for p in path.split(os.pathsep) if p and p != bin_dir]]
    envvars = {
        "ANSIBLE_CONFIG": str(ansible_config),
        "PATH": os.pathsep.join(parts),
        "OVMS_LAUNCHER_CACHE": str(cache_dir()),
        # the collection (ovms.edge) the playbooks and roles come from
        "ANSIBLE_COLLECTIONS_PATH": str(content().collections_path),
    }
    # always the resolved PKI folder (environment, checkout, else the user's data folder: launcher.paths)
    envvars[CERTS_DIR_ENV] = str(default_certs_dir().expanduser().resolve())
    envvars.update(strategy_envvars())
    return envvars


def host_limit(hosts: tuple[str, ...], run_dir: Path, *, in_container: bool = False) -> str:
    """`--limit` for exactly `hosts`: a comma list, or for many a host list file written to the run dir
    (`@FILE`; inside an execution environment the run dir is /runner)."""
    if len(hosts) <= LIMIT_INLINE_HOSTS:
        return ",".join(hosts)
    path = run_dir / LIMIT_FILE
    path.write_text("\n".join(hosts), encoding="utf-8")  # no last newline: an empty line is a pattern
    return f"@{IN_RUNNER}/{LIMIT_FILE}" if in_container else f"@{path}"


def runner_kwargs(request: RunRequest, run_dir: Path) -> dict[str, Any]:
    """The keyword arguments for `ansible_runner.run_async` (without the callbacks); with limit_hosts,
    writes the host list file host_limit needs into the run dir."""
    cmdline = [flag for flag, on in (("--check", request.check), ("--diff", request.diff)) if on]
    kwargs: dict[str, Any] = {
        "private_data_dir": str(run_dir),
        "playbook": str(request.playbook),
        "inventory": [str(p) for p in request.inventories],
        "envvars": runner_envvars(request.ansible_config),
        "extravars": dict(request.extravars),
        "ident": request.action,
        "quiet": True,
        # the runner checks cancel_callback each time it stops waiting for output: Ctrl+C within 0.5 s
        "settings": {"pexpect_timeout": CANCEL_CHECK_SECONDS},
    }
    if request.limit_hosts:
        kwargs["limit"] = host_limit(request.limit_hosts, run_dir, in_container=request.ee is not None)
    elif request.limit:
        kwargs["limit"] = request.limit
    if request.tags:
        kwargs["tags"] = request.tags
    if cmdline:
        kwargs["cmdline"] = " ".join(cmdline)
    if request.verbosity:
        kwargs["verbosity"] = request.verbosity
    if request.forks:
        kwargs["forks"] = request.forks
    if request.ee is not None:
        # the image's collection, by name; the environment inside the container replaces this machine's
        kwargs["playbook"] = ee_playbook(request.action)
        kwargs.update(request.ee.runner_settings(run_dir, request.ansible_config))
        del kwargs["inventory"]  # ansible-runner's container mode ignores it: -i options instead
        kwargs["cmdline"] = shlex.join([*request.ee.inventory_args(), *cmdline])
    return kwargs


def check_request(request: RunRequest) -> None:
    """Invalid input found before anything runs (exit 2)."""
    if not request.playbook.is_file():
        raise LauncherError(
            "playbook not found", file=request.playbook, fix="run the launcher from a complete checkout"
        )
    for inventory in request.inventories:
        if not inventory.exists():
            raise LauncherError(
                "inventory not found",
                file=inventory,
                key="--inventory",
                fix="pass an existing file or folder",
            )


class _Interrupt:
    """SIGINT sets a flag the runner polls through its cancel_callback (main thread only)."""

    def __init__(self, on_interrupt: Callable[[], None] | None) -> None:
        self.event = threading.Event()
        self._on_interrupt = on_interrupt
        self._previous: Any = None
        self._installed = False
        self._before = proctree.descendants(os.getpid())
        self._own_session = proctree.session_of(os.getpid())
        self._snapped = False
        self.leftovers: set[proctree.ProcessId] = set()
        self.sessions: set[int] = set()

    def __enter__(self) -> _Interrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if not self.event.is_set() and self._on_interrupt is not None:
            self._on_interrupt()
        self.event.set()

    def end_leftovers(self) -> None:
        """After the runner stopped: end what it could not (Ansible's workers call setsid())."""
        if not self._snapped:
            return
        for _ in range(2):  # a worker may have started its module while the first round ran
            found = self.leftovers | proctree.in_sessions(self.sessions)
            self.leftovers = set()
            if not found:
                break
            proctree.end(found)

    def cancelled(self) -> bool:
        """The runner's cancel_callback (runner thread): True once interrupted."""
        if not self.event.is_set():
            return False
        if not self._snapped:
            # just before the runner kills ansible-playbook's process group: note every process the
            # run started, and their sessions, to end the ones that survive the group kill
            self.leftovers = proctree.descendants(os.getpid()) - self._before
            self.sessions = proctree.sessions(self.leftovers) - {self._own_session}
            self._snapped = True
        return True


def _output_tail(run_dir: Path, ident: str) -> tuple[str, ...]:
    stdout = artifacts_dir(run_dir, ident) / "stdout"
    try:
        text = stdout.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ()
    lines = [_ANSI.sub("", line).rstrip() for line in text.splitlines()]
    return tuple(line for line in lines if line.strip())[-OUTPUT_TAIL_LINES:]


def run_playbook(
    request: RunRequest,
    on_event: EventHandler,
    *,
    tick: Callable[[], None] | None = None,
    on_interrupt: Callable[[], None] | None = None,
) -> RunOutcome:
    """Run the playbook; `on_event` gets every runner event (from the runner's thread).

    `tick` is called in the calling thread about every 0.1 s while Ansible runs (UI refresh).
    Ctrl+C asks the runner to stop (it terminates ansible-playbook) and the outcome says canceled.
    """
    check_request(request)
    run_dir = new_run_dir(request.action, request.runs_root)

    events = events_dir(run_dir, request.action)

    def handler(event: dict[str, Any]) -> bool:
        on_event(event)
        # kept in artifacts/<ident>/job_events/ as the runner keeps it, at a fraction of its cost
        write_event(events, event)
        return False

    with _Interrupt(on_interrupt) as interrupt:
        try:
            thread, runner = ansible_runner.run_async(
                **runner_kwargs(request, run_dir),
                event_handler=handler,
                cancel_callback=interrupt.cancelled,
            )
        except Exception as exc:  # ansible-runner raises its own ConfigurationError and OSError
            raise ExternalError(
                f"ansible-runner could not start: {exc}", file=run_dir, fix="see the run directory"
            ) from exc
        while thread.is_alive():
            thread.join(POLL_SECONDS)
            if tick is not None:
                tick()
        interrupt.end_leftovers()
    canceled = interrupt.cancelled() or bool(getattr(runner, "canceled", False))
    status = str(getattr(runner, "status", "") or "")
    rc = getattr(runner, "rc", None)
    return RunOutcome(
        status=status,
        rc=rc if isinstance(rc, int) else None,
        canceled=canceled,
        run_dir=run_dir,
        output_tail=_output_tail(run_dir, request.action),
    )
