"""Client files: files a manifest entry's `client_files` writes beside the model in its version
folder, for clients rather than the server (e.g. a text recogniser's character list, which OVMS's
model metadata does not carry).

    client_files:
      characters.txt: {onnx_metadata: character}

`onnx_metadata: KEY` writes the value of the ONNX source's metadata property KEY exactly as stored
(UTF-8, no newline added or removed), read with OpenVINO (its ONNX reader puts metadata properties in
the model's rt_info under "framework"), so no `onnx` package is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from launcher.errors import LauncherError
from launcher.models.convert import _fail
from launcher.models.manifest import ClientFile, ModelEntry

if TYPE_CHECKING:
    from openvino import Model


def _metadata_keys(model: Model) -> list[str]:
    try:
        framework = model.get_rt_info()["framework"]
    except (KeyError, RuntimeError, TypeError):
        return []
    return sorted(str(key) for key in framework) if hasattr(framework, "__iter__") else []


def _onnx_metadata(
    model: Model, entry: ModelEntry, file_name: str, spec: ClientFile, manifest: Path | None, key: str | None
) -> str:
    path = ["framework", spec.onnx_metadata]
    if not model.has_rt_info(path):
        known = _metadata_keys(model)
        raise LauncherError(
            f"{entry.label}: client file {file_name}: the ONNX model has no metadata key "
            f"{spec.onnx_metadata!r}",
            file=manifest,
            key=key,
            fix=(
                f"use one of its metadata keys: {', '.join(known)}"
                if known
                else "this ONNX file has no metadata properties: remove the client file"
            ),
        )
    return str(model.get_rt_info(path).astype(str))


def write_client_files(
    entry: ModelEntry,
    source: Path,
    out_dir: Path,
    manifest: Path | None = None,
    key_prefix: str | None = None,
) -> tuple[str, ...]:
    """Write every client file of `entry` into `out_dir` from the verified `source` model file;
    the names written, sorted."""
    if not entry.client_files:
        return ()
    import openvino

    try:
        model = openvino.Core().read_model(str(source))
    except Exception as exc:
        raise _fail(entry, f"cannot read {source.name} as {entry.format}", exc) from None
    for name, spec in sorted(entry.client_files.items()):
        key = f"{key_prefix}.client_files.{name}.onnx_metadata" if key_prefix else None
        text = _onnx_metadata(model, entry, name, spec, manifest, key)
        (out_dir / name).write_bytes(text.encode("utf-8"))  # exactly as stored: no newline translation
    return tuple(sorted(entry.client_files))
