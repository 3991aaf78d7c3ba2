"""Starts the pieces in the real server's order: gRPC, REST, then the model manager (first load)."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from concurrent import futures
from pathlib import Path

import grpc

from . import BANNER, kfs_frontend
from .cli import Settings
from .config import single_model_config
from .manager import ModelManager
from .metrics import MetricsListError, Registry, enabled_families
from .release import Release
from .rest import RestApi, start_rest
from .status import Code

log = logging.getLogger("serving")

EX_FAILURE = 1
MAX_MESSAGE = 1024 * 1024 * 1024


def _pool_size(settings: Settings) -> int:
    """gRPC handler threads: at least the sum of all models' nireq so pipelined clients overlap.

    Read leniently here (the model manager validates and reports the file properly)."""
    cores = os.cpu_count() or 1
    auto = 2 * cores  # what OPTIMAL_NUMBER_OF_INFER_REQUESTS gives at most on CPU, roughly
    if settings.config_path:
        try:
            data = json.loads(Path(settings.config_path).read_text())
            entries = [e["config"] for e in data.get("model_config_list", [])]
            nireq_total = sum(int(e.get("nireq") or auto) for e in entries)
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            nireq_total = 0
    else:
        nireq_total = int(settings.single_model.get("nireq") or auto)
    return max(16, nireq_total + 4)


class Server:
    def __init__(self, settings: Settings, release: Release, metrics: Registry) -> None:
        self.settings = settings
        self.release = release
        self.metrics = metrics
        self._ready = threading.Event()
        self._stop = threading.Event()
        single = None
        if settings.config_path is None:
            assert settings.model_name and settings.model_path
            single = single_model_config(settings.model_name, settings.model_path, settings.single_model)
        config_path = Path(settings.config_path).absolute() if settings.config_path else None
        self.manager = ModelManager(
            config_path, single, settings.cache_dir, settings.cpu_extension, metrics=metrics
        )
        self.grpc_server: grpc.Server | None = None
        self.rest_server = None

    def is_ready(self) -> bool:
        return self._ready.is_set()

    def run(self) -> int:
        s = self.settings
        log.info("%s", BANNER)
        log.info(
            "OVMS TEST DOUBLE: emulating OpenVINO Model Server %s (%s)",
            self.release,
            "TensorFlow Serving and KServe APIs"
            if self.release.serves_tfs
            else "KServe API; no TensorFlow Serving API",
        )
        workers = _pool_size(s)
        self.grpc_server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"),
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE),
                ("grpc.max_receive_message_length", MAX_MESSAGE),
            ],
        )
        count_inputs = not s.disable_input_count_validation
        kfs_frontend.add_service(self.grpc_server, self.manager, self.release, self.is_ready, count_inputs)
        if self.release.serves_tfs:
            from . import tfs_frontend  # ovmsclient's protos: only releases before 2026.3 need them

            tfs_frontend.add_services(self.grpc_server, self.manager)
        try:
            self.grpc_server.add_insecure_port(f"{s.grpc_bind_address}:{s.port}")
        except RuntimeError as exc:
            log.error("Failed to start gRPC server on %s:%d: %s", s.grpc_bind_address, s.port, exc)
            return EX_FAILURE
        self.grpc_server.start()
        log.info("Started gRPC server on port %d", s.port)
        log.debug("gRPC handler threads: %d", workers)
        if s.rest_port:
            api = RestApi(
                self.manager, self.metrics, self.is_ready, s.metrics_enable, self.release, count_inputs
            )
            try:
                self.rest_server = start_rest(api, s.rest_bind_address, s.rest_port)
            except OSError as exc:
                log.error("Failed to start REST server at %s:%d: %s", s.rest_bind_address, s.rest_port, exc)
                self.grpc_server.stop(None)
                return EX_FAILURE
            threading.Thread(target=self.rest_server.serve_forever, name="rest", daemon=True).start()
            log.info("Started REST server at %s:%d", s.rest_bind_address, s.rest_port)
        status = self.manager.start()
        if status in (Code.CONFIG_FILE_INVALID, Code.JSON_INVALID):
            log.error("Couldn't start model manager")
            self.shutdown()
            return EX_FAILURE
        self._ready.set()
        log.info("Server ready: first configuration load finished (status: %s)", status.name)
        self.manager.start_watcher(s.file_system_poll_wait_seconds)
        self._stop.wait()
        log.info("Shutting down")
        self.shutdown()
        return 0

    def request_stop(self, *_args: object) -> None:
        self._stop.set()

    def shutdown(self) -> None:
        if self.grpc_server is not None:
            self.grpc_server.stop(grace=2).wait(3)
        if self.rest_server is not None:
            self.rest_server.shutdown()
            self.rest_server.server_close()
        self.manager.shutdown()


def serve(settings: Settings, release: Release) -> int:
    try:
        metrics = Registry(
            enabled_families(settings.metrics_enable, settings.metrics_list), tfs=release.serves_tfs
        )
    except MetricsListError as exc:
        logging.getLogger("modelmanager").warning("%s", exc)
        log.error("ovms::ModelManager::Start() Error: Invalid name in metrics_list")
        return EX_FAILURE
    server = Server(settings, release, metrics)
    signal.signal(signal.SIGTERM, server.request_stop)
    signal.signal(signal.SIGINT, server.request_stop)
    return server.run()
