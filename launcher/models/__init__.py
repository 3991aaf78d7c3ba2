"""Prepared models: fetch, verify and convert the models of a manifest into an OVMS model repository.

Public API (other parts of the project rely on it):

- `prepare_models(manifest=None, names=None) -> list[PreparedModel]` (idempotent)
- `repository_dir() -> Path` (``cache_dir()/models``)
- `load_manifest(path=None)`, `DEFAULT_MANIFEST`, `PreparedModel`
"""

from __future__ import annotations

from launcher.models.fetch import ChecksumError
from launcher.models.manifest import DEFAULT_MANIFEST, LoadedManifest, ModelEntry, load_manifest
from launcher.models.prepare import PreparedModel, model_states, prepare_models
from launcher.models.repository import repository_dir, version_dir

__all__ = [
    "DEFAULT_MANIFEST",
    "ChecksumError",
    "LoadedManifest",
    "ModelEntry",
    "PreparedModel",
    "load_manifest",
    "model_states",
    "prepare_models",
    "repository_dir",
    "version_dir",
]
