"""The build context of an image, assembled in the cache, and its fingerprint."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from pathlib import Path

from launcher.content import content
from launcher.errors import LauncherError
from launcher.images.specs import ImageSpec
from launcher.paths import cache_dir

_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "*.egg-info")


def context_dir(spec: ImageSpec) -> Path:
    return cache_dir() / "build" / spec.name / "context"


def assemble(spec: ImageSpec, wheelhouse: Path | None) -> Path:
    """Lay out images/<name>/*, the declared sources, the generated files and the wheels in a fresh
    context folder."""
    if not spec.dockerfile.is_file():
        raise LauncherError("Dockerfile missing", file=spec.dockerfile, fix="restore it from git")
    ctx = context_dir(spec)
    if ctx.exists():
        shutil.rmtree(ctx)
    shutil.copytree(spec.directory, ctx, ignore=_IGNORE)
    for dest, src in spec.sources.items():
        source = content().root / src
        if not (source.is_file() or source.is_dir()):
            raise LauncherError(
                f"image {spec.name} needs the source {src}, which is missing",
                file=source,
                fix="restore it from git",
            )
        _copy(source, ctx / dest)
    for dest, module in spec.packages.items():
        _copy(package_source(spec, module, file=dest.endswith(".py")), ctx / dest)
    for dest, make in spec.generated.items():
        shutil.copy(make(), ctx / dest)
    wheels = ctx / "wheels"
    wheels.mkdir(exist_ok=True)
    if wheelhouse is not None:
        for wheel in wheelhouse.glob("*.whl"):
            try:
                os.link(wheel, wheels / wheel.name)
            except OSError:
                shutil.copy2(wheel, wheels / wheel.name)
    return ctx


def package_source(spec: ImageSpec, module: str, *, file: bool = False) -> Path:
    """Where this interpreter imports `module` from: a package's folder (its __init__.py with `file`),
    or a module's file; the installed package, or the checkout in an editable install."""
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    if found is None or found.origin is None:
        raise LauncherError(
            f"image {spec.name} needs the Python package {module}, which this interpreter cannot import",
            fix="reinstall the ovms-launcher package",
        )
    origin = Path(found.origin)
    return origin.parent if found.submodule_search_locations and not file else origin


def _copy(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, dest, ignore=_IGNORE)
    else:
        shutil.copy2(source, dest)


def fingerprint(ctx: Path, base_image_id: str, build_args: dict[str, str]) -> str:
    """A digest of everything that decides the image: files (wheels by name and size), base, args."""
    digest = hashlib.sha256()
    digest.update(f"base={base_image_id}\n".encode())
    for key in sorted(build_args):
        digest.update(f"arg {key}={build_args[key]}\n".encode())
    for path in sorted(p for p in ctx.rglob("*") if p.is_file()):
        rel = path.relative_to(ctx).as_posix()
        digest.update(f"file {rel} {path.stat().st_mode & 0o777:o}\n".encode())
        if rel.startswith("wheels/"):
            digest.update(f"size {path.stat().st_size}\n".encode())
        else:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()
