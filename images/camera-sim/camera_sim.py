#!/usr/bin/python3
"""camera-sim: an RTSP camera simulator on GStreamer's RTSP server (Debian's gst-rtsp-server).

    camera-sim                        serve the built-in sample at rtsp://0.0.0.0:8554/sample, 15 FPS
    camera-sim --config FILE          serve the streams FILE names (JSON, see below)
    camera-sim [--config FILE] --healthcheck
                                      exit 0 when the local server answers an RTSP OPTIONS, else 1
                                      (port: the config's, else the running server's, else 8554)

FILE: {"port": 8554,
       "streams": [{"name": "aisle3", "file": "/media/clip.mp4" | null, "fps": 15}],
       "auth": null | {"username": "u", "password": "p"}}
`file` null (or omitted) is the built-in sample; `fps` defaults to 15, `port` to 8554, `auth` to null.

Every clip is H.264 before the server starts: the sample was encoded once at image build; another
file is taken as it is when it already holds H.264 without B-frames, else decoded and encoded once,
into /tmp/camera-sim. Serving never encodes: each stream's access units are pushed
through an appsrc in a loop with timestamps of its own (frame n at n/fps s), so a client sees one
steady, monotonic stream across loop boundaries; the RTSP server's sinks pace it by the clock. A
stream is shared by its clients; when the last one leaves, the next one starts a fresh pipeline.
Every frame of a file is one frame of the stream: a file recorded at another rate plays faster or
slower. The password is never logged.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

SAMPLE = Path("/opt/camera-sim/sample.h264")
WORK_DIR = Path("/tmp/camera-sim")
DEFAULT_PORT = 8554
DEFAULT_FPS = 15
MAX_FPS = 120
NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")
# the encoding of files that are not H.264 already (the sample's, see the Dockerfile)
ENCODER = "x264enc bframes=0 key-int-max={gop} speed-preset=veryfast pass=qual quantizer=21"
AU_CAPS = "video/x-h264,stream-format=byte-stream,alignment=au"
PREPARE_TIMEOUT_S = 3600
# a stream this far behind the clock skips ahead rather than sending the missed frames in a burst
LATE_NS = 500_000_000
# the running server's port, for `--healthcheck` without --config
PORT_FILE = WORK_DIR / "port"

log = logging.getLogger("camera-sim")


class ConfigError(Exception):
    """An invalid configuration; the message names the file and the key."""


@dataclass(frozen=True)
class StreamConfig:
    name: str
    file: str | None
    fps: float


@dataclass(frozen=True)
class Config:
    path: str | None = None  # None: the defaults, no file
    port: int = DEFAULT_PORT
    streams: tuple[StreamConfig, ...] = (StreamConfig("sample", None, DEFAULT_FPS),)
    auth: tuple[str, str] | None = field(default=None, repr=False)


# --- configuration -------------------------------------------------------------------------------


def _fail(path: str, key: str, message: str) -> ConfigError:
    return ConfigError(f"invalid config {path}: {key}: {message}")


def _keys(path: str, where: str, value: dict, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise _fail(path, f"{where}{unknown[0]}", f"unknown key (allowed: {', '.join(allowed)})")


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _stream(path: str, index: int, item: object, seen: set[str]) -> StreamConfig:
    where = f"streams[{index}]"
    if not isinstance(item, dict):
        raise _fail(path, where, "must be an object {name, file, fps}")
    _keys(path, f"{where}.", item, ("name", "file", "fps"))
    name = item.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name) or name in (".", ".."):
        raise _fail(path, f"{where}.name", f"must be a string matching {NAME_RE.pattern} (got {name!r})")
    if name in seen:
        raise _fail(path, f"{where}.name", f"duplicate stream name {name!r}")
    seen.add(name)
    file = item.get("file")
    if file is not None:
        if not isinstance(file, str) or not Path(file).is_absolute():
            raise _fail(path, f"{where}.file", f"must be an absolute file path or null (got {file!r})")
        if not Path(file).is_file():
            raise _fail(path, f"{where}.file", f"{file} is not a file (is the media folder mounted?)")
        if not os.access(file, os.R_OK):
            raise _fail(path, f"{where}.file", f"{file} is not readable by uid {os.getuid()}")
    fps = item.get("fps", DEFAULT_FPS)
    if not _number(fps) or not 0 < fps <= MAX_FPS or not math.isfinite(fps):
        raise _fail(path, f"{where}.fps", f"must be a number above 0 and at most {MAX_FPS} (got {fps!r})")
    return StreamConfig(name, file, float(fps))


def _auth(path: str, value: object) -> tuple[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _fail(path, "auth", "must be null or an object {username, password}")
    _keys(path, "auth.", value, ("username", "password"))
    username, password = value.get("username"), value.get("password")
    if not isinstance(username, str) or not username or ":" in username or not username.isprintable():
        raise _fail(path, "auth.username", "must be a non-empty printable string without ':'")
    # the value is never repeated in a message
    if not isinstance(password, str) or not password or not password.isprintable():
        raise _fail(path, "auth.password", "must be a non-empty printable string")
    return username, password


def load_config(path: str) -> Config:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"invalid config {path}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise _fail(path, "(top level)", "must be a JSON object {port, streams, auth}")
    _keys(path, "", data, ("port", "streams", "auth"))
    port = data.get("port", DEFAULT_PORT)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise _fail(path, "port", f"must be an integer from 1 to 65535 (got {port!r})")
    items = data.get("streams")
    if not isinstance(items, list) or not items:
        raise _fail(path, "streams", "must be a non-empty list of {name, file, fps}")
    seen: set[str] = set()
    streams = tuple(_stream(path, i, item, seen) for i, item in enumerate(items))
    return Config(path, port, streams, _auth(path, data.get("auth")))


# --- clips: H.264 access units on disk ------------------------------------------------------------


@dataclass
class Clip:
    """A clip's access units in one byte-stream file: (offset, size, keyframe) each; starts with a
    keyframe."""

    path: Path
    units: list[tuple[int, int, bool]]
    fd: int = -1

    def open(self) -> None:
        self.fd = os.open(self.path, os.O_RDONLY)

    def read(self, index: int) -> tuple[bytes, bool]:
        offset, size, key = self.units[index]
        return os.pread(self.fd, size, offset), key


class PrepareError(Exception):
    pass


def _gst() -> tuple[Any, Any, Any, Any]:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstPbutils", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstPbutils, GstRtspServer

    Gst.init(None)
    return GLib, Gst, GstPbutils, GstRtspServer


def _video_caps(Gst: Any, GstPbutils: Any, path: str) -> str:
    """The caps name of the file's first video stream (e.g. video/x-h264)."""
    discoverer = GstPbutils.Discoverer.new(30 * Gst.SECOND)
    try:
        info = discoverer.discover_uri(Gst.filename_to_uri(path))
    except Exception as exc:  # GLib.Error: not a media file, unknown format
        raise PrepareError(f"cannot read it as video: {getattr(exc, 'message', exc)}") from exc
    videos = info.get_video_streams()
    if not videos:
        raise PrepareError("it holds no video stream")
    return videos[0].get_caps().get_structure(0).get_name()


def _slice_types(data: bytes) -> set[int]:
    """The slice_type (mod 5: 0 P, 1 B, 2 I, 3 SP, 4 SI) of each slice in an Annex B access unit."""
    types = set()
    for start in (m.end() for m in re.finditer(b"\x00\x00\x01", data)):
        if start >= len(data) or data[start] & 0x1F not in (1, 5):
            continue
        # the slice header's first fields, without emulation prevention bytes (00 00 03)
        head = re.sub(b"\x00\x00\x03", b"\x00\x00", data[start + 1 : start + 16])
        bits = "".join(f"{byte:08b}" for byte in head)
        position = 0
        values = []
        for _ in range(2):  # ue(v) first_mb_in_slice, ue(v) slice_type
            zeros = len(bits) - len(bits[position:].lstrip("0")) - position
            if zeros > 31 or position + 2 * zeros + 1 > len(bits):
                break
            values.append(int(bits[position + zeros : position + 2 * zeros + 1], 2) - 1)
            position += 2 * zeros + 1
        if len(values) == 2:
            types.add(values[1] % 5)
    return types


def _collect(
    Gst: Any, source: Path | str, chain: str, target: Path
) -> tuple[list[tuple[int, int, bool]], bool]:
    """Read `source` through `chain` (GStreamer elements ending in H.264 access units) to the end,
    writing each access unit to `target`; returns their index and whether any holds a B slice (then
    frames may be reordered)."""
    pipeline = Gst.parse_launch(f"filesrc name=src ! {chain} ! {AU_CAPS} ! appsink name=sink sync=false")
    pipeline.get_by_name("src").set_property("location", str(source))
    sink = pipeline.get_by_name("sink")
    bus = pipeline.get_bus()
    units: list[tuple[int, int, bool]] = []
    b_slices = False
    offset = 0
    deadline = time.monotonic() + PREPARE_TIMEOUT_S
    pipeline.set_state(Gst.State.PLAYING)
    try:
        with target.open("wb") as out:
            while True:
                message = bus.pop_filtered(Gst.MessageType.ERROR)
                if message is not None:
                    error, _debug = message.parse_error()
                    raise PrepareError(error.message)
                sample = sink.emit("try-pull-sample", Gst.SECOND // 2)
                if sample is None:
                    if sink.get_property("eos"):
                        break
                    if time.monotonic() > deadline:
                        raise PrepareError(f"still not done after {PREPARE_TIMEOUT_S} s")
                    continue
                buffer = sample.get_buffer()
                key = not buffer.has_flags(Gst.BufferFlags.DELTA_UNIT)
                if not units and not key:
                    continue  # a loop starts at a keyframe
                data = buffer.extract_dup(0, buffer.get_size())
                b_slices = b_slices or 1 in _slice_types(data)
                out.write(data)
                units.append((offset, len(data), key))
                offset += len(data)
    finally:
        pipeline.set_state(Gst.State.NULL)
    if not units:
        raise PrepareError("no H.264 keyframe in it")
    return units, b_slices


def prepare(gst: tuple, source: str | None, fps: float, number: int) -> Clip:
    """The clip for a stream: the sample or a file, as H.264 access units in WORK_DIR."""
    _glib, Gst, GstPbutils, _server = gst
    target = WORK_DIR / f"clip-{number}.h264"
    if source is None:
        units, _ = _collect(Gst, SAMPLE, "h264parse", target)
        return Clip(target, units)
    if _video_caps(Gst, GstPbutils, source) == "video/x-h264":
        units, b_slices = _collect(Gst, source, "parsebin ! h264parse", target)
        if not b_slices:
            log.info("clip %s: H.264 already, %d frames (not re-encoded)", source, len(units))
            return Clip(target, units)
        log.info("clip %s: H.264 with B-frames, encoding once without them", source)
    else:
        log.info("clip %s: encoding once to H.264", source)
    started = time.monotonic()
    encoder = ENCODER.format(gop=max(1, round(fps)))
    chain = f"decodebin ! videoconvert ! video/x-raw,format=I420 ! {encoder} ! h264parse"
    units, _ = _collect(Gst, source, chain, target)
    log.info("clip %s: %d frames encoded in %.1f s", source, len(units), time.monotonic() - started)
    return Clip(target, units)


# --- serving --------------------------------------------------------------------------------------


class Feeder:
    """Pushes a clip's access units into one media pipeline's appsrc, looped, frame n at n/fps after
    the start. When the pipeline fell behind the clock (the container was paused, the machine
    stalled), the frames go on from now instead of catching up in a burst: the timestamps jump
    forward, as a camera's do after a hiccup, and the frames stay in order."""

    def __init__(self, Gst: Any, clip: Clip, fps: float) -> None:
        self.Gst = Gst
        self.clip = clip
        self.fps = fps
        self.frame = 0
        self.offset = 0  # ns added to every timestamp since the last jump

    def _pts(self, frame: int) -> int:
        return self.offset + round(frame * self.Gst.SECOND / self.fps)

    def need_data(self, src: Any, _length: int) -> None:
        Gst = self.Gst
        now = src.get_current_running_time()
        if now != Gst.CLOCK_TIME_NONE and now - self._pts(self.frame) > LATE_NS:
            self.offset += now - self._pts(self.frame)
        data, key = self.clip.read(self.frame % len(self.clip.units))
        buffer = Gst.Buffer.new_wrapped(data)
        start = self._pts(self.frame)
        buffer.pts = buffer.dts = start
        buffer.duration = self._pts(self.frame + 1) - start
        if not key:
            buffer.set_flags(Gst.BufferFlags.DELTA_UNIT)
        self.frame += 1
        src.emit("push-buffer", buffer)


def make_factory(gst: tuple, stream: StreamConfig, clip: Clip, auth: bool) -> Any:
    _glib, Gst, _pbutils, GstRtspServer = gst
    rate = Fraction(stream.fps).limit_denominator(1001)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( appsrc name=src is-live=true format=time do-timestamp=false "
        f"caps={AU_CAPS},framerate={rate.numerator}/{rate.denominator} "
        "! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
    )
    factory.set_shared(True)
    if auth:
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role("camera-user", "media.factory.access", True)
        permissions.add_permission_for_role("camera-user", "media.factory.construct", True)
        factory.set_permissions(permissions)

    def configure(_factory: Any, media: Any) -> None:
        src = media.get_element().get_by_name_recurse_up("src")
        src.connect("need-data", Feeder(Gst, clip, stream.fps).need_data)

    factory.connect("media-configure", configure)
    return factory


class Session:
    """One client connection: a log line when it starts playing a stream and one when it goes."""

    def __init__(self, client: Any) -> None:
        self.peer = _peer(client)
        self.path: str | None = None
        self.since = 0.0
        client.connect("play-request", self.play)
        client.connect("closed", self.closed)

    @classmethod
    def connected(cls, _server: Any, client: Any) -> None:
        cls(client)  # the signal handlers keep it alive as long as the client

    def play(self, _client: Any, ctx: Any) -> None:
        if self.path is None:
            self.path = ctx.uri.abspath if ctx.uri is not None else "?"
            self.since = time.monotonic()
            log.info("client %s connected: playing %s", self.peer, self.path)

    def closed(self, _client: Any) -> None:
        if self.path is not None:
            log.info(
                "client %s disconnected from %s after %.1f s",
                self.peer,
                self.path,
                time.monotonic() - self.since,
            )


def _peer(client: Any) -> str:
    connection = client.get_connection()
    if connection is None:
        return "?"
    try:
        return f"{connection.get_ip()}:{connection.get_read_socket().get_remote_address().get_port()}"
    except Exception:  # a connection already gone
        return connection.get_ip() or "?"


def _exit(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def serve(config: Config) -> int:
    # stop at once while the clips are prepared (the main loop handles the signals afterwards)
    signal.signal(signal.SIGTERM, _exit)
    gst = _gst()
    GLib, _gst_mod, _pbutils, GstRtspServer = gst
    try:
        WORK_DIR.mkdir(mode=0o700, exist_ok=True)
        probe = WORK_DIR / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        log.error("cannot write %s (%s): give the container a writable /tmp (--tmpfs /tmp)", WORK_DIR, exc)
        return 1
    clips: dict[str | None, Clip] = {}
    for index, stream in enumerate(config.streams):
        if stream.file not in clips:
            try:
                clips[stream.file] = prepare(gst, stream.file, stream.fps, len(clips))
            except PrepareError as exc:
                if stream.file is None:
                    log.error("the built-in sample %s: %s (a broken image: rebuild it)", SAMPLE, exc)
                    return 1
                log.error("invalid config %s: streams[%d].file: %s: %s", config.path, index, stream.file, exc)
                return 2
            clips[stream.file].open()

    server = GstRtspServer.RTSPServer()
    server.set_address("0.0.0.0")
    server.set_service(str(config.port))
    if config.auth is not None:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "camera-user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(*config.auth), token)
        server.set_auth(auth)
    mounts = server.get_mount_points()
    for stream in config.streams:
        mounts.add_factory(
            f"/{stream.name}", make_factory(gst, stream, clips[stream.file], bool(config.auth))
        )
    server.connect("client-connected", Session.connected)
    if server.attach(None) == 0:
        log.error("cannot listen on port %d", config.port)
        return 1
    PORT_FILE.write_text(f"{config.port}\n", encoding="ascii")

    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, _stop, loop, signum)
    access = "basic authentication required" if config.auth else "no authentication"
    for stream in config.streams:
        clip = clips[stream.file]
        log.info(
            "serving rtsp://0.0.0.0:%d/%s (%s, %d frames looped at %g FPS, %s)",
            config.port,
            stream.name,
            stream.file or "built-in sample",
            len(clip.units),
            stream.fps,
            access,
        )
    loop.run()
    return 0


def _stop(loop: Any, signum: int) -> bool:
    log.info("stopping (%s)", signal.Signals(signum).name)
    loop.quit()
    return False


# --- healthcheck ----------------------------------------------------------------------------------


def healthcheck(port: int, timeout: float = 3.0) -> int:
    """0 when 127.0.0.1:port answers an RTSP OPTIONS request (any status: 401 is alive too)."""
    request = (
        f"OPTIONS rtsp://127.0.0.1:{port}/ RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: camera-sim-healthcheck\r\n\r\n"
    )
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.sendall(request.encode())
            reply = conn.recv(256)
    except OSError as exc:
        print(f"camera-sim: no RTSP server on 127.0.0.1:{port}: {exc}", file=sys.stderr)
        return 1
    if not reply.startswith(b"RTSP/1.0 "):
        print(f"camera-sim: 127.0.0.1:{port} did not answer RTSP: {reply[:40]!r}", file=sys.stderr)
        return 1
    return 0


def _running_port() -> int:
    try:
        return int(PORT_FILE.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return DEFAULT_PORT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="camera-sim",
        description="RTSP camera simulator: serves H.264 clips looped at a steady frame rate.",
    )
    parser.add_argument("--config", metavar="FILE", help="JSON configuration (default: the sample only)")
    parser.add_argument(
        "--healthcheck", action="store_true", help="exit 0 when the local server answers RTSP OPTIONS"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s camera-sim %(levelname)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S%z",
        stream=sys.stderr,
    )
    try:
        config = load_config(args.config) if args.config else Config()
    except ConfigError as exc:
        print(f"camera-sim: {exc}", file=sys.stderr)
        return 1 if args.healthcheck else 2  # Docker reserves a health check's exit 2
    if args.healthcheck:
        return healthcheck(config.port if args.config else _running_port())
    return serve(config)


if __name__ == "__main__":
    sys.exit(main())
