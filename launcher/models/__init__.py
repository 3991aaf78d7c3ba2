"""Prepared models: fetch, verify and convert the models of a manifest into an OVMS model repository.

Public API (other parts of the project rely on it):

- `prepare_models(manifest=None, names=None) -> list[PreparedModel]` (idempotent)
- `repository_dir() -> Path` (``cache_dir()/models``)
- `client_files(name) -> {version: {file name: Path}}`: the client files (manifest `client_files`,
  e.g. ``characters.txt``) of every prepared version of a model in the controller cache
- `load_manifest(path=None)`, `DEFAULT_MANIFEST`, `PreparedModel`
- `version_files(entry) -> tuple[str, ...]`: the files a prepared version of a manifest entry holds
  (model.xml + model.bin or model.onnx, then client files; checksums.sha256 lists them)
"""

from __future__ import annotations

from launcher.models.fetch import ChecksumError
from launcher.models.manifest import DEFAULT_MANIFEST, LoadedManifest, ModelEntry, load_manifest
from launcher.models.prepare import PreparedModel, model_states, prepare_models, version_files
from launcher.models.repository import client_files, repository_dir, version_dir

__all__ = [
    "DEFAULT_MANIFEST",
    "ChecksumError",
    "LoadedManifest",
    "ModelEntry",
    "PreparedModel",
    "client_files",
    "load_manifest",
    "model_states",
    "prepare_models",
    "repository_dir",
    "version_dir",
    "version_files",
]
