"""`launcher images build`: cached builds, offline when no registry answers."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from launcher.errors import ExternalError
from launcher.images import context, docker_cli, wheelhouse
from launcher.images.base import resolve_base
from launcher.images.specs import LABEL_PREFIX, ImageSpec
from launcher.paths import cache_dir

FINGERPRINT_LABEL = f"{LABEL_PREFIX}.fingerprint"
_STEP = re.compile(r"^Step \d+/\d+ : ")


@dataclass
class BuildResult:
    name: str
    tag: str
    base: str
    offline: bool
    built: bool
    seconds: float


def build_images(
    specs: list[ImageSpec],
    *,
    offline: bool | None = None,
    force: bool = False,
    say: Callable[[str], None] = print,
    progress: Callable[[str], None] | None = None,
) -> list[BuildResult]:
    """Build each image unless an image with the same fingerprint is already there."""
    docker_cli.ensure_engine()
    results = []
    bases: dict[str, tuple[str, bool]] = {}  # one registry decision per public base and run
    for spec in specs:
        start = time.monotonic()
        if spec.public_base not in bases:
            bases[spec.public_base] = resolve_base(spec.public_base, offline=offline, say=say)
        base, is_offline = bases[spec.public_base]
        base_id = docker_cli.image_id(base) or base
        log_path = cache_dir() / "build" / "logs" / f"{spec.name}.log"
        wheels = wheelhouse.ensure_wheelhouse(spec, say, log_path) if spec.python else None
        ctx = context.assemble(spec, wheels)
        build_args = {"BASE_IMAGE": base}
        fp = context.fingerprint(
            ctx, base_id, {**build_args, **{f"label {k}": v for k, v in spec.labels.items()}}
        )
        if not force and docker_cli.image_labels(spec.tag).get(FINGERPRINT_LABEL) == fp:
            say(f"{spec.tag}: up to date")
            results.append(
                BuildResult(spec.name, spec.tag, base, is_offline, False, time.monotonic() - start)
            )
            continue
        say(f"{spec.tag}: building FROM {base} (log {log_path})")
        args = ["build", "--tag", spec.tag, "--label", f"{FINGERPRINT_LABEL}={fp}"]
        args += ["--label", f"{LABEL_PREFIX}.image={spec.name}"]
        for key, value in spec.labels.items():
            args += ["--label", f"{key}={value}"]
        for key, value in build_args.items():
            args += ["--build-arg", f"{key}={value}"]
        args.append(str(ctx))

        def on_line(line: str, _name: str = spec.name) -> None:
            if progress and _STEP.match(line):
                progress(f"{_name}: {line[:100]}")

        # the classic builder needs no buildx plugin and works with every engine from 20.10 on
        code = docker_cli.stream(args, log_path, on_line, env={"DOCKER_BUILDKIT": "0"})
        if code != 0:
            tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
            raise ExternalError(
                f"building {spec.tag} failed (exit {code}); last lines of {log_path}:\n  " + "\n  ".join(tail)
            )
        took = time.monotonic() - start
        say(f"{spec.tag}: built in {took:.0f}s")
        results.append(BuildResult(spec.name, spec.tag, base, is_offline, True, took))
    return results
