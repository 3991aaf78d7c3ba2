"""Command line of the real `ovms` binary: same flags, defaults, checks and exit codes."""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from .release import Release, current

EX_USAGE = 64  # sysexits.h: what the real server returns on a bad command line
MAX_PORT = 65535
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


class UsageError(Exception):
    """A command line the real server would refuse with EX_USAGE."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error parsing options - {message}\n")
        sys.exit(EX_USAGE)


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {text!r}")


@dataclass
class Settings:
    """Parsed server and single-model settings."""

    port: int = 9178
    rest_port: int = 0
    grpc_bind_address: str = "0.0.0.0"
    rest_bind_address: str = "0.0.0.0"
    grpc_workers: int = 1
    rest_workers: int | None = None
    log_level: str = "INFO"
    log_path: str | None = None
    file_system_poll_wait_seconds: int = 1
    metrics_enable: bool = False
    metrics_list: str = ""
    cpu_extension: str = ""
    cache_dir: str | None = None
    config_path: str | None = None
    model_name: str | None = None
    model_path: str | None = None
    disable_input_count_validation: bool = False
    single_model: dict[str, object] = field(default_factory=dict)


def build_parser(release: Release) -> argparse.ArgumentParser:
    """The flags of the emulated release: the stateful-model flags left in 2026.3 (model_server
    #4271), --disable_input_count_validation came with 2026.4.0."""
    p = _Parser(prog="ovms", description="OVMS TEST DOUBLE — not OpenVINO Model Server", allow_abbrev=False)
    p.add_argument("--version", action="store_true")
    p.add_argument("--port", type=int, default=9178)
    p.add_argument("--grpc_bind_address", default="0.0.0.0")
    p.add_argument("--rest_port", type=int, default=0)
    p.add_argument("--rest_bind_address", default="0.0.0.0")
    p.add_argument("--grpc_workers", type=int, default=1)
    p.add_argument("--grpc_max_threads", type=int)
    p.add_argument("--grpc_memory_quota", type=int)
    p.add_argument("--grpc_channel_arguments")
    p.add_argument("--rest_workers", type=int)
    p.add_argument("--log_level", default="INFO")
    p.add_argument("--log_path")
    p.add_argument("--file_system_poll_wait_seconds", type=int, default=1)
    if release.has_stateful_flags:
        p.add_argument("--sequence_cleaner_poll_wait_minutes", type=int, default=5)
    p.add_argument("--custom_node_resources_cleaner_interval_seconds", type=int, default=1)
    p.add_argument("--cache_dir")
    p.add_argument("--metrics_enable", type=_bool, nargs="?", const=True, default=False)
    p.add_argument("--metrics_list", default="")
    p.add_argument("--cpu_extension", default="")
    p.add_argument("--config_path")
    p.add_argument("--model_name")
    p.add_argument("--model_path")
    p.add_argument("--batch_size")
    p.add_argument("--shape")
    p.add_argument("--layout")
    p.add_argument("--model_version_policy")
    p.add_argument("--nireq", type=int)
    p.add_argument("--target_device")
    p.add_argument("--plugin_config")
    if release.has_stateful_flags:
        p.add_argument("--stateful", type=_bool, nargs="?", const=True, default=False)
    if release.has_input_count_flag:
        p.add_argument("--disable_input_count_validation", type=_bool, nargs="?", const=True, default=False)
    return p


def _valid_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return bool(_HOSTNAME.match(text))
    return True


def parse(argv: list[str], release: Release | None = None) -> Settings:
    """Parse like the real server; exits 0 for --help/--version and EX_USAGE on any problem."""
    parser = build_parser(release or current())
    if not argv:
        parser.print_help()
        sys.exit(0)
    ns = parser.parse_args(argv)
    if ns.version:
        print(f"OVMS TEST DOUBLE (Python) — not OpenVINO Model Server; emulates {release or current()}")
        sys.exit(0)
    try:
        return _validate(ns)
    except UsageError as exc:
        sys.stderr.write(f"{exc}\n")
        sys.exit(EX_USAGE)


def _validate(ns: argparse.Namespace) -> Settings:
    single_keys = (
        "batch_size",
        "shape",
        "layout",
        "model_version_policy",
        "nireq",
        "target_device",
        "plugin_config",
    )
    single = {k: getattr(ns, k) for k in single_keys if getattr(ns, k) is not None}
    if ns.config_path and (ns.model_name or ns.model_path):
        raise UsageError("Use either config_path or model_path with model_name")
    if not ns.config_path and not (ns.model_name and ns.model_path):
        raise UsageError("Use config_path or model_path with model_name")
    if ns.config_path and single:
        raise UsageError("Model parameters in CLI are exclusive with the config file")
    cores = os.cpu_count() or 1
    if not 1 <= ns.grpc_workers <= cores:
        raise UsageError(f"grpc_workers count should be from 1 to CPU core count : {cores}")
    if ns.rest_workers is not None and ns.rest_port == 0:
        raise UsageError(
            "rest_workers is set but rest_port is not set. rest_port is required to start rest servers"
        )
    if ns.rest_workers is not None and not 2 <= ns.rest_workers <= 10000:
        raise UsageError("rest_workers count should be from 2 to 10000")
    if not 0 <= ns.port <= MAX_PORT:
        raise UsageError(f"port number out of range from 0 to {MAX_PORT}")
    if not 0 <= ns.rest_port <= MAX_PORT:
        raise UsageError(f"rest_port number out of range from 0 to {MAX_PORT}")
    if ns.metrics_enable and ns.rest_port == 0:
        raise UsageError("rest_port setting is missing, metrics are enabled on rest port")
    if not ns.metrics_enable and ns.metrics_list:
        raise UsageError("metrics_enable setting is missing, required when metrics_list is provided")
    if not _valid_address(ns.rest_bind_address):
        raise UsageError("rest_bind_address has invalid format: proper hostname or IP address expected.")
    if not _valid_address(ns.grpc_bind_address):
        raise UsageError("grpc_bind_address has invalid format: proper hostname or IP address expected.")
    if ns.port == ns.rest_port:
        raise UsageError("port and rest_port cannot have the same values")
    if ns.cpu_extension and not Path(ns.cpu_extension).exists():
        raise UsageError(
            "File path provided as an --cpu_extension parameter does not exists in the filesystem: "
            f"{ns.cpu_extension}"
        )
    if ns.log_level not in LOG_LEVELS:
        raise UsageError("log_level should be one of: TRACE, DEBUG, INFO, WARNING, ERROR")
    if ns.file_system_poll_wait_seconds < 0:
        ns.file_system_poll_wait_seconds = 0
    return Settings(
        port=ns.port,
        rest_port=ns.rest_port,
        grpc_bind_address=ns.grpc_bind_address,
        rest_bind_address=ns.rest_bind_address,
        grpc_workers=ns.grpc_workers,
        rest_workers=ns.rest_workers,
        log_level=ns.log_level,
        log_path=ns.log_path,
        file_system_poll_wait_seconds=ns.file_system_poll_wait_seconds,
        metrics_enable=ns.metrics_enable,
        metrics_list=ns.metrics_list,
        cpu_extension=ns.cpu_extension,
        cache_dir=ns.cache_dir,
        config_path=ns.config_path,
        model_name=ns.model_name,
        model_path=ns.model_path,
        disable_input_count_validation=bool(getattr(ns, "disable_input_count_validation", False)),
        single_model=single,
    )
