"""The client run: load the profile, open the sources, wait for the server, run the streams, report."""

from __future__ import annotations

import faulthandler
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from .backoff import Backoff
from .cascade import Cascade, StageRunner
from .credentials import CameraCredentials, load_camera_credentials
from .decoders import CtcDecoder, Decoder, make_decoder
from .errors import ModelMismatchError
from .health import ServerGate
from .metrics import ClientMetrics
from .pipeline import StreamConfig, StreamWorker
from .preprocess import Preprocessor
from .profile import LoadedProfile, OutputsSpec, Stage, load_profile
from .results import JsonLines, Snapshots
from .server import InferenceServer, ServerFactory, check_metadata, make_server
from .settings import deployment_from_env
from .sources import FrameSource, make_source
from .stats import Stats
from .urls import redact_text

log = logging.getLogger("client")

# threads sending a cascade's crops (all crops of the frames in flight at once, up to this)
MAX_CROP_WORKERS = 64


@dataclass(frozen=True)
class RunOptions:
    profile_dir: Path
    duration_s: float | None = None
    max_frames: int | None = None
    sync: bool = False


class RedactingFormatter(logging.Formatter):
    """Every log line (a traceback included) with URL credentials, secret URL parameters and
    anything like `user:password@` masked: the last guard for text the client did not write."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    for handler in logging.getLogger().handlers:
        handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))


def run(options: RunOptions, environ: Mapping[str, str], server_factory: ServerFactory = make_server) -> int:
    """Run until the duration ends, every stream ends, or SIGTERM/SIGINT; 0 unless a stream crashed.
    Configuration problems raise ClientError (the caller turns it into exit code 2).

    `server_factory` builds what answers the requests: the OVMS gRPC client of the profile's API, or
    (for the in-process benchmark, bench/inference_inprocess.py) OpenVINO in this process behind the
    same interface."""
    started = time.monotonic()
    loaded = load_profile(options.profile_dir, environ)
    configure_logging(loaded.log_level)
    profile = loaded.profile
    deployment = deployment_from_env(environ)
    sync = options.sync or profile.pipeline.mode == "sync"
    window = 1 if sync else profile.pipeline.max_in_flight

    credentials = (
        load_camera_credentials(deployment.camera_credentials) if deployment.camera_credentials else None
    )
    sources = _open_sources(loaded, credentials)
    stage_models = [(s.name, s.model.name if s.model else None) for s in profile.cascade]
    metrics = ClientMetrics(loaded.name, profile.streams, profile.target_fps, stage_models)
    metrics.attach(sources=sources)
    stop = threading.Event()
    _install_signal_handlers(stop)
    timer = None
    if options.duration_s is not None:
        remaining = max(0.0, options.duration_s - (time.monotonic() - started))
        timer = threading.Timer(remaining, stop.set)
        timer.daemon = True
        timer.start()

    outputs = profile.outputs
    results_dir = deployment.results_dir
    crop_pool: ThreadPoolExecutor | None = None
    cascade: Cascade | None = None
    detections: JsonLines | None = None
    stats_file: JsonLines | None = None
    try:
        if deployment.metrics_port is not None:
            metrics.serve(deployment.metrics_port)
        if outputs.detections:
            detections = _results_file(results_dir, outputs.detections_file, outputs)
        stats_file = _results_file(results_dir, outputs.stats_file, outputs)
        snapshots = Snapshots(
            results_dir / outputs.snapshot_dir,
            outputs.snapshot_interval_s,
            outputs.snapshot_keep,
            outputs.jpeg_quality,
        )
        stages = profile.cascade
        first = stages[0]
        servers = {s.name: server_factory(deployment, profile, s) for s in stages if s.model is not None}
        decoders = {s.name: make_decoder(s.postprocess, s.model) for s in stages if s.model is not None}
        server = servers[first.name]
        resilience = profile.resilience
        log.info(
            "profile %s: %s, %d stream(s), %s (window %d), server %s, %s API, %s frames",
            loaded.name,
            "model " + repr(first.model.name if first.model else None)
            if len(stages) == 1
            else "stages "
            + " -> ".join(f"{s.name} ({s.model.name if s.model else 'in the client'})" for s in stages),
            profile.streams,
            "sync" if sync else "pipelined",
            window,
            deployment.address,
            profile.api,
            first.encoding.format,
        )
        for stage in stages:
            if stage.model is None:
                continue
            wait_backoff = Backoff(resilience.backoff_initial_s, resilience.backoff_max_s)
            metadata = servers[stage.name].wait_for_metadata(stop, wait_backoff)
            if metadata is None:
                log.info("stopped before the server answered")
                return 0
            resolved = _checked(metadata, stage, decoders[stage.name], len(stages) > 1)
            if resolved:
                log.info(
                    "%soutputs: %s",
                    f"stage {stage.name}: " if len(stages) > 1 else "",
                    ", ".join(f"{role}={name}" for role, name in resolved.items()),
                )
            _bind_model_files(decoders[stage.name], stage, metadata, deployment.model_files_dir, loaded)

        stats = Stats(
            outputs.stats_window_s,
            streams=profile.streams,
            stages=stage_models,
            on_latency=metrics.observe_latency,
        )
        gate = ServerGate(
            Backoff(resilience.backoff_initial_s, resilience.backoff_max_s),
            on_probe=lambda: [each.reconnect() for each in servers.values()],
        )
        metrics.attach(stats=stats, gate=gate)
        decoder = decoders[first.name]
        assert first.model is not None
        preprocess = Preprocessor(first.model, first.encoding)
        if len(stages) > 1:
            # every crop of every frame in flight at once (a stage's crops go together), within reason
            crops = max((s.crops.max_crops for s in stages if s.crops is not None), default=1)
            workers = min(MAX_CROP_WORKERS, max(4, profile.streams * window * crops))
            crop_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crop")
            runners = [_runner(s, servers, decoders, stats) for s in stages[1:]]
            # a stage waits for its crops a little longer than one request may take
            cascade = Cascade(first, runners, crop_pool, profile.pipeline.request_timeout_s + 2.0)
        with ThreadPoolExecutor(max_workers=profile.streams * window, thread_name_prefix="request") as pool:
            workers = [
                StreamWorker(
                    StreamConfig(
                        stream=index,
                        profile=loaded.name,
                        window=window,
                        sync=sync,
                        target_fps=profile.target_fps,
                        max_frames=options.max_frames,
                        stage=first.name,
                    ),
                    source,
                    preprocess,
                    server.predict,
                    decoder,
                    gate,
                    pool,
                    stats,
                    detections,
                    snapshots,
                    stop,
                    cascade,
                )
                for index, source in enumerate(sources)
            ]
            for worker in workers:
                worker.start()
            _report_until_done(
                workers, stats, stats_file, stop, loaded, outputs.stats_interval_s, gate, sources
            )
            for worker in workers:
                worker.join()
        _emit_stats(stats, stats_file, loaded, gate, sources, final=True)
        failures = [w.failure for w in workers if w.failure is not None]
        return 1 if failures else 0
    finally:
        metrics.close()
        if crop_pool is not None:
            crop_pool.shutdown(wait=False, cancel_futures=True)
        if timer is not None:
            timer.cancel()
        for source in sources:
            source.close()
        if detections is not None:
            detections.close()
        if stats_file is not None:
            stats_file.close()


def _results_file(results_dir: Path, name: str, outputs: OutputsSpec) -> JsonLines:
    """A JSON lines file of the results folder, rotated as the profile's `outputs` say."""
    return JsonLines(results_dir / name, outputs.rotate_bytes, outputs.rotate_keep)


def _checked(metadata: Mapping[str, Any], stage: Stage, decoder: Decoder, named: bool) -> dict[str, str]:
    """check_metadata for one stage; in a cascade its error keys name the stage."""
    assert stage.model is not None
    try:
        return check_metadata(metadata, stage.model, decoder)
    except ModelMismatchError as exc:
        if not named:
            raise
        key = f"stage {stage.name!r}: {exc.key}" if exc.key else f"stage {stage.name!r}"
        raise ModelMismatchError(exc.message, file=exc.file, key=key, fix=exc.fix) from exc


def _bind_model_files(
    decoder: Decoder, stage: Stage, metadata: Mapping[str, Any], files_dir: Path, loaded: LoadedProfile
) -> None:
    """A recogniser's character list, for the model version the server reports, checked against the
    class count of its output."""
    if not isinstance(decoder, CtcDecoder):
        return
    assert stage.model is not None
    version = int(metadata.get("model_version") or stage.model.version)
    decoder.bind(profile_dir=loaded.directory, files_dir=files_dir, model=stage.model.name, version=version)
    for name in decoder.roles["probabilities"]:
        shape = metadata.get("outputs", {}).get(name, {}).get("shape") or []
        if shape and shape[-1] > 0:
            decoder.check_classes(int(shape[-1]))
            break


def _runner(
    stage: Stage,
    servers: Mapping[str, InferenceServer],
    decoders: Mapping[str, Decoder],
    stats: Stats,
) -> StageRunner:
    if stage.model is None:
        from .decoders import BarcodeReader

        return StageRunner(stage, stats, reader=BarcodeReader(stage.postprocess))
    return StageRunner(
        stage,
        stats,
        preprocess=Preprocessor(stage.model, stage.encoding),
        predict=servers[stage.name].predict,
        decoder=decoders[stage.name],
    )


def _open_sources(loaded: LoadedProfile, credentials: CameraCredentials | None = None) -> list[FrameSource]:
    """One source per stream; streams cycle through the inputs (3 streams over 1 input: 3 readers).
    The profile has at least as many streams as inputs, so every input is read."""
    inputs = loaded.profile.inputs
    sources: list[FrameSource] = []
    try:
        for stream in range(loaded.profile.streams):
            index = stream % len(inputs)
            source = make_source(inputs[index], index, loaded, credentials)
            source.open()
            sources.append(source)
            log.info("stream %d: %s", stream, source.description)
    except BaseException:
        for source in sources:
            source.close()
        raise
    return sources


def _install_signal_handlers(stop: threading.Event) -> None:
    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            return
        log.info("%s: finishing in-flight requests and flushing results", signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
        # `docker kill --signal USR1 <client>` prints every thread's stack to the log: a client that
        # stalls can be diagnosed without stopping it
        faulthandler.register(signal.SIGUSR1, all_threads=True)


def _report_until_done(
    workers: list[StreamWorker],
    stats: Stats,
    stats_file: JsonLines,
    stop: threading.Event,
    loaded: LoadedProfile,
    interval_s: float,
    gate: ServerGate,
    sources: list[FrameSource],
) -> None:
    next_report = time.monotonic() + interval_s
    while any(w.is_alive() for w in workers):
        if any(w.failure is not None for w in workers):
            stop.set()
        now = time.monotonic()
        if now >= next_report:
            _emit_stats(stats, stats_file, loaded, gate, sources)
            next_report = now + interval_s
        alive = [w for w in workers if w.is_alive()]
        if alive:
            alive[0].join(timeout=min(0.2, max(0.01, next_report - time.monotonic())))


def _emit_stats(
    stats: Stats,
    stats_file: JsonLines,
    loaded: LoadedProfile,
    gate: ServerGate,
    sources: list[FrameSource],
    final: bool = False,
) -> None:
    line = stats.snapshot([source.status() for source in sources])
    line["profile"] = loaded.name
    stages = loaded.profile.cascade
    line["model"] = stages[0].model.name if stages[0].model else None
    line["models"] = [s.model.name for s in stages if s.model is not None]
    line["server"] = "up" if gate.up else "down"
    line["outages"] = gate.outages
    if final:
        line["final"] = True
    stats_file.write(line)
    p50 = "-" if line["latency_p50_ms"] is None else f"{line['latency_p50_ms']:.1f}"
    p95 = "-" if line["latency_p95_ms"] is None else f"{line['latency_p95_ms']:.1f}"
    print(
        f"stats profile={line['profile']} fps={line['fps']:.1f} p50_ms={p50} p95_ms={p95} "
        f"in_flight={line['in_flight']} frames={line['frames']} dropped={line['dropped']} "
        f"errors={line['errors']} server={line['server']} reconnects={line['reconnects']} "
        f"stalls={line['stalls']}" + (" final" if final else ""),
        flush=True,
    )
    log.debug("stats %s", json.dumps(line))
