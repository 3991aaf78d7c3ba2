"""Model manager: loads config.json, reconciles versions on disk, reloads on change, like OVMS's."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import openvino as ov

from .config import ConfigDocument, ModelConfig, content_md5, read_config
from .metrics import Registry
from .servable import ModelVersion, State, dir_fingerprint
from .status import Code, ServingError

log = logging.getLogger("modelmanager")


class Model:
    """All versions ever loaded under one name; models are never forgotten, only retired (as in OVMS)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.versions: dict[int, ModelVersion] = {}
        self.lock = threading.Lock()

    def default_version(self) -> ModelVersion | None:
        with self.lock:
            available = [v for n, v in self.versions.items() if v.state == State.AVAILABLE]
        return max(available, key=lambda v: v.version) if available else None

    def get(self, version: int) -> ModelVersion | None:
        with self.lock:
            return self.versions.get(version)

    def snapshot(self) -> list[ModelVersion]:
        with self.lock:
            return [self.versions[k] for k in sorted(self.versions)]


def list_version_dirs(base: Path) -> list[int]:
    """Positive integer subdirectories of base, as readAvailableVersions does."""
    if not base.is_dir():
        log.error("Directory does not exist: %s", base)
        raise ServingError(Code.PATH_INVALID, str(base))
    versions = []
    for entry in base.iterdir():
        if not entry.is_dir():
            continue
        try:
            number = int(entry.name)
        except ValueError:
            log.warning("Expected version directory name to be in number format. Got: %s", entry.name)
            continue
        if number <= 0:
            log.warning("Expected version directory name to be a number greater than 0. Got: %d", number)
            continue
        versions.append(number)
    if not versions:
        log.warning("No version found for model in path: %s", base)
    return sorted(versions)


class ModelManager:
    def __init__(
        self,
        config_path: Path | None,
        single_model: ModelConfig | None = None,
        cache_dir: str | None = None,
        cpu_extension: str = "",
        metrics: Registry | None = None,
    ) -> None:
        self.config_path = config_path
        self.metrics = metrics if metrics is not None else Registry(frozenset())
        self.single_model = single_model
        self.core = ov.Core()
        log.info("Available devices for Open VINO: %s", ", ".join(self.core.available_devices))
        if cpu_extension:
            log.info("Loading custom CPU extension from %s", cpu_extension)
            self.core.add_extension(cpu_extension)
            log.info("Extension added.")
        if cache_dir:
            self.core.set_property({"CACHE_DIR": cache_dir})
            log.info("Model cache is enabled: %s", cache_dir)
        self.models: dict[str, Model] = {}
        self.models_lock = threading.Lock()
        self.served: dict[str, ModelConfig] = {}
        self.config_mutex = threading.RLock()
        self.last_md5: str | None = None
        self.last_status: Code = Code.OK
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    # -- lookups used by the frontends ---------------------------------------------------------
    def find(self, name: str) -> Model | None:
        with self.models_lock:
            return self.models.get(name)

    def all_models(self) -> list[Model]:
        with self.models_lock:
            return [self.models[k] for k in sorted(self.models)]

    def get_version(self, name: str, version: int, missing: Code = Code.MODEL_NAME_MISSING) -> ModelVersion:
        """Model version for a request: NOT_FOUND errors like ModelManager::getModelInstance. An
        unknown name is `missing` (KServe ModelInfer looks for a MediaPipe graph last and says so)."""
        model = self.find(name)
        if model is None:
            raise ServingError(missing)
        instance = model.get(version) if version else model.default_version()
        if instance is None:
            raise ServingError(Code.MODEL_VERSION_MISSING)
        return instance

    # -- loading -------------------------------------------------------------------------------
    def start(self) -> Code:
        """First load. Returns the status; config-file errors are fatal for the caller."""
        with self.config_mutex:
            if self.config_path is not None:
                return self.load_config()
            assert self.single_model is not None
            self.served = {self.single_model.name: self.single_model}
            return self._reload_model(self.single_model)

    def load_config(self) -> Code:
        """Read config.json and apply it; on a file/schema error nothing changes."""
        assert self.config_path is not None
        with self.config_mutex:
            log.info("Loading configuration from %s", self.config_path)
            try:
                doc = read_config(self.config_path)
            except ServingError as exc:
                self.last_md5 = getattr(exc, "md5", content_md5(self.config_path))
                self.last_status = exc.code
                log.error("Config not applied: %s; the previous configuration keeps serving", exc.text)
                return exc.code
            self.last_md5 = doc.md5
            self.last_status = self._apply(doc)
            return self.last_status

    def _apply(self, doc: ConfigDocument) -> Code:
        first_error = Code.MODEL_CONFIG_INVALID if doc.invalid_models else Code.OK
        new_served: dict[str, ModelConfig] = {}
        for config in doc.models:
            status = self._reload_model(config)
            if status not in (Code.OK, Code.OK_RELOADED) and first_error == Code.OK:
                first_error = status
            new_served[config.name] = config
        # Models gone from the file (or whose entry became invalid) are retired.
        for model in self.all_models():
            if model.name not in new_served:
                self._retire_all(model)
        self.served = new_served
        return first_error

    def _retire_all(self, model: Model) -> None:
        for instance in model.snapshot():
            if instance.state in (State.AVAILABLE,):
                log.info("Will unload model: %s; version: %d ...", model.name, instance.version)
                instance.retire()
            elif instance.failed_loading or instance.state == State.START:
                instance.cleanup_failed()

    def _reload_model(self, config: ModelConfig) -> Code:
        """Reconcile one model's versions with its directory and policy (reloadModelWithVersions)."""
        if config.resolved_path is None:
            log.error(
                "OVMS TEST DOUBLE: model %s: cloud storage base_path %s is not supported by the double; "
                "model skipped",
                config.name,
                config.base_path,
            )
            return Code.PATH_INVALID
        try:
            available = list_version_dirs(config.resolved_path)
        except ServingError as exc:
            log.error("Cannot reload model: %s with versions due to error: %s", config.name, exc.text)
            return exc.code
        with self.models_lock:
            model = self.models.get(config.name)
            if model is None:
                model = self.models[config.name] = Model(config.name)
        settings = config.load_settings()
        base = config.resolved_path
        # As reloadModelWithVersions: start (or reload) the requested versions first, while the ones
        # they replace keep serving; a version that fails to load is dropped from the available ones
        # and the policy is applied again (so an older version is served instead); only then are the
        # versions no longer requested retired. A rollout never leaves a moment with nothing served.
        failed: set[int] = set()
        changed = False
        all_ok = True
        while True:
            wanted = set(config.version_policy.select([v for v in available if v not in failed]))
            newly_failed: set[int] = set()
            for number in sorted(wanted):
                loaded, attempted = self._start_version(model, config, settings, base / str(number))
                changed |= attempted
                if not loaded:
                    newly_failed.add(number)
                    all_ok &= not attempted  # a failure known from an earlier cycle is not news
            if not newly_failed:
                break
            failed |= newly_failed
        for instance in model.snapshot():
            if instance.version in wanted or instance.version in failed:
                continue
            if instance.state in (State.AVAILABLE, State.LOADING, State.START):
                log.info("Will unload model: %s; version: %d ...", model.name, instance.version)
                if instance.state == State.AVAILABLE:
                    instance.retire()
                else:
                    instance.cleanup_failed()
                changed = True
        if not all_ok:
            return Code.MODEL_NOT_LOADED
        return Code.OK_RELOADED if changed else Code.OK

    def _start_version(
        self, model: Model, config: ModelConfig, settings: tuple, version_dir: Path
    ) -> tuple[bool, bool]:
        """Make one requested version AVAILABLE: (loaded, whether a load was attempted). A version
        that already failed with these settings and files is not tried again until either changes."""
        number = int(version_dir.name)
        current = model.get(number)
        if current is not None and current.settings == settings:
            if current.state == State.AVAILABLE:
                return True, False
            if current.failed_loading and current.fingerprint == dir_fingerprint(version_dir):
                return False, False
        if current is not None and current.state == State.LOADING and not current.failed_loading:
            return True, False
        log.info("Will add model: %s; version: %d ...", model.name, number)
        instance = ModelVersion(config.name, number, self.metrics)
        ok = instance.load(self.core, config, version_dir)
        with model.lock:
            previous = model.versions.get(number)
            model.versions[number] = instance
        if previous is not None and previous.state == State.AVAILABLE:
            previous.retire()
        return ok, True

    def rescan_versions(self) -> Code:
        """updateConfigurationWithoutConfigFile: re-read version directories of served models."""
        with self.config_mutex:
            result = Code.OK
            for config in list(self.served.values()):
                status = self._reload_model(config)
                if status == Code.OK_RELOADED and result == Code.OK:
                    result = Code.OK_RELOADED
                elif status not in (Code.OK, Code.OK_RELOADED) and result in (Code.OK, Code.OK_RELOADED):
                    result = status
            return result

    # -- reload --------------------------------------------------------------------------------
    def config_changed(self) -> bool:
        return self.config_path is not None and content_md5(self.config_path) != self.last_md5

    def reload_request(self) -> tuple[Code, bool]:
        """POST /v1/config/reload: (error or OK, whether anything was reloaded)."""
        with self.config_mutex:
            reloaded = False
            if self.config_path is not None:
                if not self.config_path.is_file():
                    return Code.CONFIG_FILE_INVALID, False
                if self.config_changed() or self.last_status not in (Code.OK, Code.OK_RELOADED):
                    status = self.load_config()
                    if status not in (Code.OK, Code.OK_RELOADED):
                        return status, False
                    reloaded = True
            status = self.rescan_versions()
            if status not in (Code.OK, Code.OK_RELOADED):
                return status, reloaded
            return Code.OK, reloaded or status == Code.OK_RELOADED

    def start_watcher(self, interval_s: int) -> None:
        if interval_s <= 0:
            log.info("File system polling disabled (file_system_poll_wait_seconds=0)")
            return
        self._watcher = threading.Thread(
            target=self._watch, args=(interval_s,), name="ovms-watcher", daemon=True
        )
        self._watcher.start()

    def _watch(self, interval_s: int) -> None:
        log.info("Started model manager thread")
        while not self._stop.wait(interval_s):
            try:
                with self.config_mutex:
                    if self.config_changed():
                        self.load_config()
                    self.rescan_versions()
            except Exception:  # keep watching whatever one cycle hit
                log.exception("Model manager check cycle failed")
        log.info("Stopped model manager thread")

    def shutdown(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        for model in self.all_models():
            self._retire_all(model)
