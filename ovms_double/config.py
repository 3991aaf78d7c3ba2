"""config.json reading and per-model settings, with the real server's rules for paths and policies."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema

from .schema import CONFIG_SCHEMA, IGNORED_SECTIONS
from .status import Code, ServingError

log = logging.getLogger("modelmanager")

CLOUD_PREFIXES = ("s3://", "gs://", "az://", "azfs://", "azure://")
_VALIDATOR = jsonschema.Draft7Validator(CONFIG_SCHEMA)


@dataclass(frozen=True)
class VersionPolicy:
    """Which version directories are served: latest N (default 1), all, or specific ones."""

    kind: str = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    @classmethod
    def from_json(cls, data: dict | None) -> VersionPolicy:
        if not data:
            return cls()
        if "all" in data:
            return cls(kind="all")
        if "specific" in data:
            return cls(kind="specific", versions=tuple(sorted(set(data["specific"]["versions"]))))
        return cls(kind="latest", num_versions=int(data["latest"]["num_versions"]))

    def select(self, available: list[int]) -> list[int]:
        ordered = sorted(available)
        if self.kind == "all":
            return ordered
        if self.kind == "specific":
            return [v for v in ordered if v in self.versions]
        return ordered[-self.num_versions :]


@dataclass(frozen=True)
class ModelConfig:
    """One entry of model_config_list (or the single model given on the command line)."""

    name: str
    base_path: str
    resolved_path: Path | None
    target_device: str = "CPU"
    nireq: int = 0
    batch_size: str | None = None
    shape: str | dict | None = None
    layout: str | dict | None = None
    plugin_config: dict = field(default_factory=dict)
    version_policy: VersionPolicy = VersionPolicy()

    def load_settings(self) -> tuple:
        """What forces already-loaded versions to be reloaded when it changes."""
        return (
            self.resolved_path,
            self.target_device,
            self.nireq,
            self.batch_size,
            json.dumps(self.shape, sort_keys=True),
            json.dumps(self.layout, sort_keys=True),
            json.dumps(self.plugin_config, sort_keys=True),
        )


@dataclass
class ConfigDocument:
    """A validated config.json: the model configs it declares, in file order."""

    models: list[ModelConfig]
    invalid_models: list[str]
    md5: str


def content_md5(path: Path) -> str | None:
    try:
        return hashlib.md5(path.read_bytes()).hexdigest()
    except OSError:
        return None


def resolve_base_path(base_path: str, config_dir: Path | None) -> Path | None:
    """Absolute path for a local base_path; None for cloud storage. Raises on `..` escapes."""
    if base_path.startswith(CLOUD_PREFIXES):
        return None
    if ".." in Path(base_path).parts:
        raise ServingError(Code.PATH_INVALID, f"Path {base_path} escape with .. is forbidden.")
    path = Path(base_path)
    if not path.is_absolute():
        if config_dir is None:
            raise ServingError(
                Code.PATH_INVALID, "Using relative path without setting configuration directory path."
            )
        path = config_dir / path
    return path


def _model_from_json(node: dict, config_dir: Path | None) -> ModelConfig:
    base_path = node["base_path"]
    plugin_config = node.get("plugin_config") or {}
    return ModelConfig(
        name=node["name"],
        base_path=base_path,
        resolved_path=resolve_base_path(base_path, config_dir),
        target_device=node.get("target_device", "CPU"),
        nireq=int(node.get("nireq", 0)),
        batch_size=None if node.get("batch_size") is None else str(node["batch_size"]),
        shape=node.get("shape"),
        layout=node.get("layout"),
        plugin_config=dict(plugin_config),
        version_policy=VersionPolicy.from_json(node.get("model_version_policy")),
    )


def read_config(path: Path) -> ConfigDocument:
    """Read, parse and schema-check config.json. Raises ServingError like the real server's loadConfig."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        log.error("Configuration file is invalid %s (%s)", path, exc.strerror)
        raise ServingError(Code.CONFIG_FILE_INVALID, str(path)) from exc
    md5 = hashlib.md5(raw).hexdigest()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        log.error("Configuration file is not a valid JSON file. Error: %s", exc)
        err = ServingError(Code.JSON_INVALID, str(exc))
        err.md5 = md5  # type: ignore[attr-defined]
        raise err from exc
    errors = sorted(_VALIDATOR.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        for error in errors:
            where = "/".join(str(p) for p in error.absolute_path) or "<root>"
            log.error("Configuration file %s: %s: %s", path, where, error.message)
        log.error("Configuration file is not in valid configuration format")
        err = ServingError(Code.JSON_INVALID, "Configuration file is not in valid configuration format")
        err.md5 = md5  # type: ignore[attr-defined]
        raise err
    for section in IGNORED_SECTIONS:
        if data.get(section):
            log.warning(
                "OVMS TEST DOUBLE: section %r is schema-checked but not served by the double", section
            )
    models: list[ModelConfig] = []
    invalid: list[str] = []
    seen: set[str] = set()
    for entry in data["model_config_list"]:
        node = entry["config"]
        name = node["name"]
        if name in seen:
            log.warning(
                "Duplicated model names: %s defined in config file. Only first definition will be loaded.",
                name,
            )
            continue
        try:
            model = _model_from_json(node, path.parent)
        except ServingError as exc:
            log.error("Parsing model: %s config failed due to error: %s", name, exc.text)
            invalid.append(name)
            continue
        seen.add(name)
        models.append(model)
    return ConfigDocument(models=models, invalid_models=invalid, md5=md5)


def single_model_config(name: str, model_path: str, cli: dict[str, object]) -> ModelConfig:
    """The model given with --model_name/--model_path plus the per-model CLI flags."""

    def _json_or_str(text: object) -> object:
        if text is None:
            return None
        try:
            return json.loads(str(text))
        except ValueError:
            return str(text)

    policy = _json_or_str(cli.get("model_version_policy"))
    plugin = _json_or_str(cli.get("plugin_config"))
    return ModelConfig(
        name=name,
        base_path=model_path,
        resolved_path=resolve_base_path(model_path, Path.cwd()),
        target_device=str(cli.get("target_device") or "CPU"),
        nireq=int(cli.get("nireq") or 0),
        batch_size=None if cli.get("batch_size") is None else str(cli["batch_size"]),
        shape=_json_or_str(cli.get("shape"))
        if str(cli.get("shape", "")).startswith("{")
        else cli.get("shape"),
        layout=_json_or_str(cli.get("layout"))
        if str(cli.get("layout", "")).startswith("{")
        else cli.get("layout"),
        plugin_config=plugin if isinstance(plugin, dict) else {},
        version_policy=VersionPolicy.from_json(policy if isinstance(policy, dict) else None),
    )
