"""Profile schema (pydantic) and loading: `profile.yaml` + `profile.env` + process environment."""

from __future__ import annotations

import os
import re
import stat
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .envfile import DEPLOYMENT_VARIABLES, Override, parse_env_file
from .errors import ClientError
from .postprocess import (
    EYE_POINTS,
    BarcodePostprocess,
    BlazefacePostprocess,
    ClassifyPostprocess,
    CtcPostprocess,
    DbPostprocess,
    IrisPostprocess,
    LandmarksPostprocess,
    RawPostprocess,
    SsdPostprocess,
)
from .schema import Strict
from .urls import redact

PROFILE_FILE = "profile.yaml"
ENV_FILE = "profile.env"

_Strict = Strict


class Size(_Strict):
    width: int = Field(gt=0, le=8192)
    height: int = Field(gt=0, le=8192)


# The largest model input one request may carry (4096 x 4096): a profile from someone else must not
# make every crop of every frame in flight a tensor of gigabytes
MAX_INPUT_PIXELS = 4096 * 4096


class ModelSpec(_Strict):
    name: str = Field(min_length=1)
    version: int = Field(default=0, ge=0, description="0 = the latest version the server has")
    input: str = Field(min_length=1)
    layout: Literal["NHWC", "NCHW"] = "NHWC"
    size: Size
    dtype: Literal["uint8", "float32"]
    color: Literal["rgb", "bgr"] = "rgb"
    mean: float | tuple[float, float, float] = 0.0
    std: float | tuple[float, float, float] = 1.0
    # stretch: resized to size. fit_height: scaled to size.height keeping the ratio, then padded on
    # the right (with zeros after normalisation) to size.width, or kept wider up to max_width for a
    # model whose width is dynamic (a text recogniser).
    resize: Literal["stretch", "fit_height"] = "stretch"
    max_width: int | None = Field(default=None, gt=0, le=8192)

    @field_validator("std")
    @classmethod
    def _std_positive(cls, value: float | tuple[float, ...]) -> float | tuple[float, ...]:
        values = value if isinstance(value, tuple) else (value,)
        if any(v <= 0 for v in values):
            raise ValueError("every std value must be greater than 0")
        return value

    @model_validator(mode="after")
    def _normalisation_needs_float(self) -> ModelSpec:
        if self.dtype == "uint8" and (self.mean != 0.0 or self.std != 1.0):
            raise ValueError("mean/std apply to float32 inputs only; a uint8 input is sent as raw pixels")
        widest = self.max_width or self.size.width
        if widest * self.size.height > MAX_INPUT_PIXELS:
            raise ValueError(
                f"an input of {widest}x{self.size.height} pixels is more than {MAX_INPUT_PIXELS:,} "
                "(one request's tensor, repeated for every crop in flight)"
            )
        if self.max_width is not None:
            if self.resize != "fit_height":
                raise ValueError("max_width goes with resize: fit_height")
            if self.max_width < self.size.width:
                raise ValueError(
                    f"max_width ({self.max_width}) must be at least size.width ({self.size.width})"
                )
        return self


# `scheme://` at the start of an input: a URL, whatever the case of its scheme
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
NETWORK_SCHEMES = {"rtsp": "rtsp", "rtsps": "rtsp", "http": "http", "https": "http"}


def _lower_scheme(value: object) -> object:
    """`RTSP://…` -> `rtsp://…`: schemes are case-insensitive, but FFmpeg knows them in lower case."""
    if isinstance(value, str):
        value = value.strip()
        match = _URL_SCHEME.match(value)
        if match:
            return match.group(1).lower() + value[match.end(1) :]
    return value


def _not_a_url(path: str) -> str:
    """A file or folder path: text holding `://` is a URL (maybe with a password), never a file."""
    if "://" in path:
        raise ValueError(
            "expected a file or folder path, not a URL; a camera is an input of type rtsp "
            "(rtsp://, rtsps://) or http (http://, https://)"
        )
    return path


class VideoInput(_Strict):
    type: Literal["video"]
    path: str = Field(min_length=1)
    loop: bool = True

    _path = field_validator("path")(_not_a_url)


def _url_has_host(url: str) -> str:
    """A camera URL must name a host (and a valid port); the message never repeats the URL, which may
    hold a password."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        raise ValueError(
            "the URL cannot be read (a bad port or host); percent-encode @ : / in credentials"
        ) from None
    if not parts.hostname:
        raise ValueError("the URL names no host")
    if "@" in parts.path + parts.query + parts.fragment:
        # a raw / ? or # in a password cuts the URL in the wrong place (FFmpeg would dial the wrong host)
        raise ValueError("'@' after the host; percent-encode @ : / ? # in credentials (%40 %3A %2F %3F %23)")
    return url


class RtspInput(_Strict):
    type: Literal["rtsp"]
    url: str = Field(pattern=r"^rtsps?://\S+$")
    transport: Literal["tcp", "udp"] = "tcp"
    stall_timeout_s: float = Field(default=5.0, gt=0, le=3600)
    open_timeout_s: float = Field(default=10.0, gt=0, le=3600)

    _scheme = field_validator("url", mode="before")(_lower_scheme)
    _url = field_validator("url")(_url_has_host)


class HttpInput(_Strict):
    """An http(s):// camera or stream: MJPEG (multipart/x-mixed-replace), HLS, anything FFmpeg reads."""

    type: Literal["http"]
    url: str = Field(pattern=r"^https?://\S+$")
    stall_timeout_s: float = Field(default=5.0, gt=0, le=3600)
    open_timeout_s: float = Field(default=10.0, gt=0, le=3600)

    _scheme = field_validator("url", mode="before")(_lower_scheme)
    _url = field_validator("url")(_url_has_host)


class DeviceInput(_Strict):
    type: Literal["device"]
    path: str = Field(pattern=r"^/dev/video[0-9]+$")
    width: int | None = Field(default=None, gt=0)
    height: int | None = Field(default=None, gt=0)
    fps: float | None = Field(default=None, gt=0)


class ImagesInput(_Strict):
    type: Literal["images"]
    path: str = Field(min_length=1)
    loop: bool = True
    pattern: str = Field(default="*", min_length=1)

    _path = field_validator("path")(_not_a_url)


InputSource = Annotated[
    Union[VideoInput, RtspInput, HttpInput, DeviceInput, ImagesInput],  # noqa: UP007 (discriminated union)
    Field(discriminator="type"),
]


def source_from_uri(uri: str, loop: bool | None = None) -> dict[str, Any]:
    """The short form of an input: `rtsp://…`, `http(s)://…` (schemes in any case), `/dev/videoN`, a
    folder of images or a video file. Any other text holding `://` raises ValueError (a message that
    never repeats the input: it may hold a password)."""
    uri = uri.strip()
    match = _URL_SCHEME.match(uri)
    kind = NETWORK_SCHEMES.get(match.group(1).lower()) if match else None
    if kind is not None:
        return {"type": kind, "url": _lower_scheme(uri)}
    if "://" in uri:
        scheme = f" {match.group(1)!r}" if match and len(match.group(1)) <= 16 else ""
        raise ValueError(
            f"unknown URL scheme{scheme}: expected rtsp://, rtsps://, http:// or https:// (in any case), "
            "or a file, folder or /dev/videoN"
        )
    if re.match(r"^/dev/video[0-9]+$", uri):
        return {"type": "device", "path": uri}
    kind = "images" if uri.endswith("/") or Path(uri).is_dir() else "video"
    source: dict[str, Any] = {"type": kind, "path": uri.rstrip("/") or uri}
    if loop is not None:
        source["loop"] = loop
    return source


def _short_input(value: object) -> object:
    """A list item in short form becomes its mapping; an error is reported at that item's key."""
    return source_from_uri(value) if isinstance(value, str) else value


# CLIENT_INPUT: a comma followed by what clearly starts an input (a `scheme://`, `/`, `.` or `~`)
_INPUT_START = re.compile(r"(?:\s*,)+(?=\s*(?:[A-Za-z][A-Za-z0-9+.-]*://|[/.~]))")


def split_inputs(value: str) -> list[str]:
    """CLIENT_INPUT's comma-separated inputs. A password may hold a comma (`rtsp://op:Pa,ss@cam/a`),
    so a comma separates inputs where a new one clearly starts: before `scheme://`, `/`, `.` or `~`.
    Text without `:` (no URL, no credentials: `a.mp4,b.mp4`) is split at every comma."""
    inputs: list[str] = []
    for chunk in _INPUT_START.split(value):
        inputs += chunk.split(",") if ":" not in chunk else [chunk.rstrip(", \t")]
    return [item.strip() for item in inputs if item.strip()]


class EncodingSpec(_Strict):
    """How a frame travels to the server: a raw tensor, or one encoded image (KServe BYTES input of
    shape [1], which OVMS decodes into BGR and resizes; the client resizes first, so it need not)."""

    format: Literal["raw", "jpeg", "png"] = "raw"
    jpeg_quality: int = Field(default=90, ge=1, le=100)
    png_compression: int = Field(default=1, ge=0, le=9)


class PipelineSpec(_Strict):
    mode: Literal["pipelined", "sync"] = "pipelined"
    max_in_flight: int = Field(default=4, ge=1, le=64)
    request_timeout_s: float = Field(default=10.0, gt=0)


class ResilienceSpec(_Strict):
    backoff_initial_s: float = Field(default=0.2, gt=0)
    backoff_max_s: float = Field(default=2.0, gt=0)
    reopen_backoff_max_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> ResilienceSpec:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be at least backoff_initial_s")
        if self.reopen_backoff_max_s < self.backoff_initial_s:
            raise ValueError("reopen_backoff_max_s must be at least backoff_initial_s")
        return self


FileName = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+$", min_length=1)]


class OutputsSpec(_Strict):
    detections: bool = True
    detections_file: FileName = "detections.jsonl"
    stats_file: FileName = "stats.jsonl"
    stats_interval_s: float = Field(default=5.0, gt=0)
    stats_window_s: float = Field(default=10.0, gt=0)
    snapshot_interval_s: float = Field(default=10.0, ge=0, description="0 disables snapshots")
    snapshot_dir: FileName = "snapshots"
    snapshot_keep: int = Field(default=20, ge=1)
    jpeg_quality: int = Field(default=85, ge=1, le=100)
    # detections_file and stats_file rotate by size: <file>.1 (newest) ... <file>.<rotate_keep>
    rotate_mb: float = Field(default=64, gt=0, description="MiB a results file reaches before it rotates")
    rotate_keep: int = Field(default=4, ge=1, le=1000, description="rotated files kept of each")

    @property
    def rotate_bytes(self) -> int:
        return max(1, int(self.rotate_mb * 1024 * 1024))

    @field_validator("detections_file", "stats_file", "snapshot_dir")
    @classmethod
    def _names_apart(cls, value: str, info: ValidationInfo) -> str:
        """Each output a name of its own in the results folder, clear of the rotated files' names: a
        `stats_file: detections.jsonl.1` would be overwritten by each rotation of the detections."""
        key = info.field_name
        assert key is not None
        if value in (".", ".."):
            raise PydanticCustomError(
                "output_name_dots",
                "{name} is not a file name: it names the results folder or the one above it",
                {"name": repr(value)},
            )
        for other in ("detections_file", "stats_file", "snapshot_dir"):
            if other == key:
                break  # the keys are validated in this order: the later one names the clash
            taken = info.data.get(other)
            if not isinstance(taken, str):
                continue
            if value.casefold() == taken.casefold():
                how = "the same name as"
            elif _rotated_of(value, taken) or _rotated_of(taken, value):
                how = "a rotated name of" if _rotated_of(value, taken) else "rotated onto the name of"
            else:
                continue
            raise PydanticCustomError(
                "output_names_collide",
                "{how} outputs.{other} ({taken}): one output's writes would overwrite the other's",
                {"how": how, "other": other, "taken": repr(taken), "key": key},
            )
        if key in _ROTATED_OUTPUTS and _ROTATED_SUFFIX.search(value):
            raise PydanticCustomError(
                "output_name_rotated",
                "a name ending in '.<digits>' is taken by the rotated files (<file>.1 ...)",
                {"key": key},
            )
        return value


# the outputs that rotate to `<file>.1` ... `<file>.<rotate_keep>`
_ROTATED_OUTPUTS = ("detections_file", "stats_file")
_ROTATED_SUFFIX = re.compile(r"\.[0-9]+$")


def _rotated_of(name: str, output: str) -> bool:
    """Whether `name` is `<output>.<digits>`, one of the names `output` rotates to."""
    return name.casefold().startswith(output.casefold() + ".") and name[len(output) + 1 :].isdigit()


# A stage's post-processing, by `type`. The one-model form takes any of them but `barcode`, which
# runs in the client and needs the stages form (a stage with no model).
_MODEL_POSTPROCESSES = (
    SsdPostprocess,
    BlazefacePostprocess,
    RawPostprocess,
    DbPostprocess,
    ClassifyPostprocess,
    CtcPostprocess,
    LandmarksPostprocess,
    IrisPostprocess,
)
Postprocess = Annotated[Union[_MODEL_POSTPROCESSES], Field(discriminator="type")]  # noqa: UP007
StagePostprocess = Annotated[
    Union[(*_MODEL_POSTPROCESSES, BarcodePostprocess)],
    Field(discriminator="type"),
]

StageName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


class AlignSpec(_Strict):
    """Turn each crop upright by an earlier stage's answer for the same result: `rotate` maps that
    stage's label to degrees clockwise (a text-angle classifier's "180")."""

    by: StageName
    rotate: dict[str, Literal[0, 90, 180, 270]] = Field(min_length=1)
    min_score: float = Field(default=0.0, ge=0.0, le=1.0)


class CropSpec(_Strict):
    """Which results of an earlier stage a later stage runs on, and how each crop is cut."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    source: StageName = Field(alias="from")
    labels: list[Annotated[str, Field(min_length=1)]] | None = Field(default=None, min_length=1)
    min_score: float = Field(default=0.0, ge=0.0, le=1.0)
    # a fraction of the box's width and height added on each side (0.25: a box 1.5 times as large)
    padding: float = Field(default=0.0, ge=0.0, le=2.0)
    square: bool = False
    max_crops: int = Field(default=8, ge=1, le=64)
    # box: the axis-aligned box; quad: the rotated box, warped upright; auto: quad where a result has one
    shape: Literal["auto", "box", "quad"] = "auto"
    # named regions of landmark points (indices into the earlier stage's landmarks): one crop each,
    # around those points, instead of one crop of the box
    points: dict[StageName, list[Annotated[int, Field(ge=0, le=100_000)]]] | None = Field(
        default=None, min_length=1, max_length=16
    )
    mirror: list[StageName] = Field(default_factory=list)  # regions flipped left-right (a right eye)
    align: AlignSpec | None = None

    @field_validator("points")
    @classmethod
    def _regions_not_empty(cls, value: dict[str, list[int]] | None) -> dict[str, list[int]] | None:
        for region, indices in (value or {}).items():
            if not indices:
                raise ValueError(f"region {region!r} needs at least one landmark index")
        return value

    @model_validator(mode="after")
    def _mirror_named_regions(self) -> CropSpec:
        unknown = [r for r in self.mirror if r not in (self.points or {})]
        if unknown:
            raise ValueError(f"mirror names {unknown}, which are not regions of `points`")
        return self


class Stage(_Strict):
    """One step of a cascade: a model served by OVMS (or a reader run in the client) on the frame, or
    on crops of an earlier stage's results."""

    name: StageName
    model: ModelSpec | None = None
    postprocess: StagePostprocess
    crops: CropSpec | None = None
    encoding: EncodingSpec = Field(default_factory=lambda: EncodingSpec())

    @field_validator("encoding", mode="before")
    @classmethod
    def _short_encoding(cls, value: object) -> object:
        return {"format": value} if isinstance(value, str) else value

    @property
    def local(self) -> bool:
        """Runs in the client (no request to the server)."""
        return self.model is None


class Profile(_Strict):
    name: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$")
    # kserve: KServe v2 gRPC (every OVMS since 2022.1; the only API from 2026.3 on). tfs: TensorFlow
    # Serving gRPC through ovmsclient, for servers up to OVMS 2026.2.
    api: Literal["kserve", "tfs"] = "kserve"
    # The one-model form (model + postprocess + encoding) is a profile of one stage; `stages` is the
    # cascade form: stage 1 on the frame, later stages on the frame or on crops of earlier results.
    model: ModelSpec | None = None
    postprocess: Postprocess | None = None
    stages: list[Stage] | None = Field(default=None, min_length=1, max_length=8)
    inputs: list[Annotated[InputSource, BeforeValidator(_short_input)]] = Field(min_length=1, max_length=64)
    # Streams follow the inputs: by default one per input; more cycle through them (stream i reads
    # inputs[i mod len(inputs)]); fewer would leave inputs unread and are refused.
    streams: int = Field(default=None, ge=1, le=64, validate_default=True)
    target_fps: float = Field(default=0.0, ge=0, description="per stream; 0 = as fast as possible")
    encoding: EncodingSpec = Field(default_factory=EncodingSpec)
    pipeline: PipelineSpec = Field(default_factory=PipelineSpec)
    resilience: ResilienceSpec = Field(default_factory=ResilienceSpec)
    outputs: OutputsSpec = Field(default_factory=OutputsSpec)

    @field_validator("streams", mode="before")
    @classmethod
    def _one_stream_per_input(cls, value: object, info: ValidationInfo) -> object:
        if value is None:
            inputs = info.data.get("inputs")
            return len(inputs) if inputs else 1
        return value

    @field_validator("streams")
    @classmethod
    def _every_input_read(cls, value: int, info: ValidationInfo) -> int:
        inputs = info.data.get("inputs")
        if inputs and value < len(inputs):
            raise PydanticCustomError(
                "streams_below_inputs",
                "{streams} stream(s) cannot read {inputs} inputs: every input needs a stream",
                {"streams": value, "inputs": len(inputs)},
            )
        return value

    @field_validator("encoding", mode="before")
    @classmethod
    def _short_encoding(cls, value: object) -> object:
        return {"format": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_form(self) -> Profile:
        if self.stages is None:
            missing = [key for key in ("model", "postprocess") if getattr(self, key) is None]
            if missing:
                raise PydanticCustomError(
                    "profile_form",
                    "a profile needs `model` and `postprocess` (one model) or `stages` (a cascade); "
                    "missing {missing}",
                    {"missing": ", ".join(missing)},
                )
            return self
        given = [key for key in ("model", "postprocess", "encoding") if key in self.model_fields_set]
        if given:
            raise PydanticCustomError(
                "profile_form",
                "{given} at the top level cannot go with `stages`: set them on each stage",
                {"given": ", ".join(given)},
            )
        return self

    @cached_property
    def cascade(self) -> tuple[Stage, ...]:
        """The stages in order; the one-model form is one stage named after its model."""
        if self.stages is not None:
            return tuple(self.stages)
        assert self.model is not None and self.postprocess is not None
        return (
            Stage(
                name=self.model.name, model=self.model, postprocess=self.postprocess, encoding=self.encoding
            ),
        )

    @property
    def first_model(self) -> ModelSpec | None:
        return self.cascade[0].model


def describe_stage(stage: Stage) -> dict[str, Any]:
    """What the deployment needs to know of a stage: its model and the model files it reads."""
    characters = getattr(stage.postprocess, "characters", None)
    model_file = getattr(characters, "model_file", None)
    return {
        "name": stage.name,
        "model": stage.model.name if stage.model else None,
        "version": stage.model.version if stage.model else 0,
        "model_files": [model_file] if model_file else [],
    }


def point_count(postprocess: object) -> int | None:
    """How many landmark points a stage's results carry (crop regions index them); None: no points."""
    if isinstance(postprocess, LandmarksPostprocess):
        return postprocess.points
    return EYE_POINTS if isinstance(postprocess, IrisPostprocess) else None


def declared_labels(postprocess: object) -> set[str] | None:
    """The labels a stage's results can carry, when its post-processing says (None: any)."""
    if isinstance(postprocess, ClassifyPostprocess):
        return set(postprocess.labels)
    if isinstance(postprocess, SsdPostprocess):
        return set(postprocess.labels.values()) if postprocess.only_labeled else None
    label = getattr(postprocess, "label", None)
    return {label} if isinstance(label, str) else None


def stage_problems(profile: Profile) -> list[tuple[str, str, str]]:
    """(key, message, fix) for each stage rule pydantic cannot see alone: unique names, a model where
    one is needed, crops from an earlier stage, alignment by an earlier stage on the same results,
    landmark regions in range, and what a model can take (encoding_problem)."""
    if profile.stages is None:
        problem = encoding_problem(profile.api, profile.cascade[0], "")
        return [problem] if problem else []
    problems: list[tuple[str, str, str]] = []
    earlier: dict[str, Stage] = {}
    for index, stage in enumerate(profile.stages):
        key = f"stages[{index}]"
        said = f"stage {stage.name!r}"
        if stage.name in earlier:
            problems.append((f"{key}.name", f"{said} is named twice", "give each stage its own name"))
        local = stage.postprocess.type == "barcode"
        if local and stage.model is not None:
            problems.append((f"{key}.model", f"{said} runs in the client and has no model", "remove model"))
        if local and index == 0:
            fix = "put a stage with a model first (the client is a client of the server)"
            problems.append(
                (f"{key}.postprocess.type", f"{said} runs in the client and cannot be first", fix)
            )
        if not local and stage.model is None:
            fix = "add model: {name, input, size, dtype, ...}"
            problems.append((f"{key}.model", f"{said} needs a model ({stage.postprocess.type})", fix))
        if stage.crops is not None:
            if index == 0:
                fix = "remove crops from the first stage"
                problems.append((f"{key}.crops", f"{said} is the first stage: it runs on the frame", fix))
            else:
                problems += _crop_problems(profile.stages, index, earlier)
        problem = encoding_problem(profile.api, stage, f"{key}.")
        if problem is not None:
            problems.append(problem)
        earlier.setdefault(stage.name, stage)
    return problems


def _crop_problems(stages: list[Stage], index: int, earlier: dict[str, Stage]) -> list[tuple[str, str, str]]:
    stage = stages[index]
    crops = stage.crops
    assert crops is not None
    key = f"stages[{index}].crops"
    said = f"stage {stage.name!r}"
    source = earlier.get(crops.source)
    if source is None:
        later = any(s.name == crops.source for s in stages[index:])
        what = "a later stage (or this one)" if later else "no stage"
        fix = f"name an earlier stage: {', '.join(earlier)}"
        return [(f"{key}.from", f"{said} takes crops from {crops.source!r}, which is {what}", fix)]
    problems: list[tuple[str, str, str]] = []
    count = point_count(source.postprocess)
    if crops.points is not None and count is None:
        message = f"{said}: stage {source.name!r} gives no landmarks ({source.postprocess.type})"
        problems.append((f"{key}.points", message, "crop landmark regions of a landmarks or iris stage"))
    for region, indices in (crops.points or {}).items() if count is not None else ():
        bad = [i for i in indices if i >= count]
        if bad:
            message = f"{said}: landmark {bad[0]} does not exist ({source.name!r} gives {count})"
            problems.append((f"{key}.points.{region}", message, f"use indices 0-{count - 1}"))
    known = declared_labels(source.postprocess)
    unknown = [label for label in crops.labels or () if known is not None and label not in known]
    if unknown:
        message = f"{said}: stage {source.name!r} gives no result labelled {unknown[0]!r}"
        problems.append((f"{key}.labels", message, f"use its labels: {', '.join(sorted(known or ()))}"))
    if crops.align is not None:
        by = earlier.get(crops.align.by)
        answers = declared_labels(by.postprocess) if by is not None else None
        odd = [label for label in crops.align.rotate if answers is not None and label not in answers]
        if odd:
            message = f"{said}: stage {crops.align.by!r} never answers {odd[0]!r}"
            problems.append(
                (f"{key}.align.rotate", message, f"use its labels: {', '.join(sorted(answers or ()))}")
            )
        if by is None or by.crops is None or by.crops.source != crops.source:
            message = (
                f"{said} is aligned by {crops.align.by!r}, which must be an earlier stage on crops "
                f"from the same stage ({crops.source!r})"
            )
            problems.append(
                (f"{key}.align.by", message, "name an earlier stage whose crops.from is the same")
            )
    return problems


def encoding_problem(api: str, stage: Stage, prefix: str = "") -> tuple[str, str, str] | None:
    """(key, message, fix) when a stage's model cannot take the encoded images it would send: what
    OVMS does with an encoded image (decode to BGR, NHWC, pixels 0-255) decides what the model must
    take. `prefix` is the stage's key (`stages[2].`), empty for the one-model form."""
    encoding = stage.encoding.format
    model = stage.model
    if encoding == "raw" or model is None:
        return None
    what = f"encoding {encoding}" + (f" of stage {stage.name!r}" if prefix else "")
    if api != "kserve":
        return "api", f"{what} needs api: kserve (images travel in a KServe BYTES input)", "set api: kserve"
    if model.layout != "NHWC":
        fix = "serve the model with layout NHWC (OVMS config `layout: NHWC:NCHW`) or send raw tensors"
        return (
            f"{prefix}model.layout",
            f"{what} needs layout NHWC: OVMS decodes images into NHWC tensors",
            fix,
        )
    if model.color != "bgr":
        fix = "serve a model that takes BGR (models manifest `color`) and set model.color: bgr"
        return f"{prefix}model.color", f"{what} needs color bgr: OVMS decodes images into BGR", fix
    if model.mean != 0.0 or model.std != 1.0:
        fix = "bake the normalisation into the model, or set encoding: raw"
        return (
            f"{prefix}model.mean",
            f"{what} cannot apply mean/std: OVMS passes decoded pixels 0-255 unscaled",
            fix,
        )
    if stage.crops is not None and model.dtype != "uint8":
        fix = "send crops as tensors (encoding: raw), or serve a model that takes uint8 images"
        return (
            f"{prefix}model.dtype",
            f"{what}: encoded crops go only to a model that takes uint8 images",
            fix,
        )
    if model.resize != "stretch":
        fix = "use resize: stretch, or send tensors (encoding: raw)"
        return f"{prefix}model.resize", f"{what} cannot pad an encoded image ({model.resize})", fix
    return None


# ---------------------------------------------------------------------------------------------------
# Env overrides: variable -> (profile path, converter applied to the raw dict)


def _set(path: tuple[str, ...]) -> typing.Callable[[dict[str, Any], str], None]:
    def apply(data: dict[str, Any], value: str) -> None:
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[path[-1]] = value

    return apply


def _set_inputs(data: dict[str, Any], value: str) -> None:
    data["inputs"] = [_short_or_as_is(u) for u in split_inputs(value)] or value


def _short_or_as_is(uri: str) -> dict[str, Any] | str:
    try:
        return source_from_uri(uri)
    except ValueError:
        return uri  # validation reports it, naming inputs[i] and the variable it came from


def _set_loop(data: dict[str, Any], value: str) -> None:
    for source in data.get("inputs") or []:
        if isinstance(source, dict) and source.get("type") in ("video", "images"):
            source["loop"] = value


def _one_model(
    apply: typing.Callable[[dict[str, Any], str], None], key: str
) -> typing.Callable[[dict[str, Any], str], None]:
    """A setting of the one-model form; a profile with stages sets it on each stage."""

    def guarded(data: dict[str, Any], value: str) -> None:
        if "stages" in data:
            raise ValueError(f"the profile has stages: set stages[N].{key} in profile.yaml instead")
        apply(data, value)

    return guarded


def _set_threshold(data: dict[str, Any], value: str) -> None:
    post = data.get("postprocess")
    if isinstance(post, dict) and post.get("type") == "raw":
        raise ValueError("postprocess type 'raw' has no threshold")
    _set(("postprocess", "threshold"))(data, value)


# Order matters: CLIENT_INPUT replaces the inputs before CLIENT_INPUT_LOOP sets their loop flag.
ENV_OVERRIDES: dict[str, tuple[str, typing.Callable[[dict[str, Any], str], None]]] = {
    "CLIENT_INPUT": ("inputs", _set_inputs),
    "CLIENT_INPUT_LOOP": ("inputs[*].loop", _set_loop),
    "CLIENT_STREAMS": ("streams", _set(("streams",))),
    "CLIENT_TARGET_FPS": ("target_fps", _set(("target_fps",))),
    "CLIENT_MODEL_VERSION": ("model.version", _one_model(_set(("model", "version")), "model.version")),
    "CLIENT_THRESHOLD": ("postprocess.threshold", _one_model(_set_threshold, "postprocess.threshold")),
    "CLIENT_MODE": ("pipeline.mode", _set(("pipeline", "mode"))),
    "CLIENT_MAX_IN_FLIGHT": ("pipeline.max_in_flight", _set(("pipeline", "max_in_flight"))),
    "CLIENT_REQUEST_TIMEOUT_S": ("pipeline.request_timeout_s", _set(("pipeline", "request_timeout_s"))),
    "CLIENT_STATS_INTERVAL_S": ("outputs.stats_interval_s", _set(("outputs", "stats_interval_s"))),
    "CLIENT_STATS_WINDOW_S": ("outputs.stats_window_s", _set(("outputs", "stats_window_s"))),
    "CLIENT_SNAPSHOT_INTERVAL_S": ("outputs.snapshot_interval_s", _set(("outputs", "snapshot_interval_s"))),
    "CLIENT_API": ("api", _set(("api",))),
    "CLIENT_ENCODING": ("encoding.format", _one_model(_set(("encoding", "format")), "encoding")),
}
# Not profile keys, but accepted in the env file too.
EXTRA_SETTINGS = ("CLIENT_LOG_LEVEL",)


@dataclass(frozen=True)
class LoadedProfile:
    profile: Profile
    directory: Path
    file: Path
    overrides: dict[str, Override] = field(default_factory=dict)
    log_level: str = "INFO"

    @property
    def name(self) -> str:
        return self.profile.name or self.directory.name

    def resolve_path(self, path: str) -> Path:
        """Relative input paths are relative to the profile directory."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else (self.directory / candidate)


def _hard_link(directory: Path) -> tuple[str, int] | None:
    """The first regular file under `directory` with more than one name (its name relative to the
    folder, and its link count), links never followed: the roles copy a local profile's files by
    content, so a hard link to a file elsewhere (tarfile.extractall makes them from an archive's link
    members) would ship that file. roles/ovms_client/tasks/profile.yml refuses them as well."""
    for root, folders, files in os.walk(directory):  # never descends into a linked folder
        folders.sort()
        for entry in sorted(files):
            path = Path(root) / entry
            info = path.lstat()
            if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
                return path.relative_to(directory).as_posix(), info.st_nlink
    return None


def load_profile(directory: Path, environ: Mapping[str, str] | None = None) -> LoadedProfile:
    """Read and validate a profile directory; raise ClientError naming the file and the key."""
    environ = os.environ if environ is None else environ
    directory = Path(directory)
    if not directory.is_dir():
        raise ClientError(
            "the profile directory does not exist",
            file=directory,
            fix=f"pass a directory holding {PROFILE_FILE} (and optionally {ENV_FILE})",
        )
    hard_link = _hard_link(directory)
    if hard_link is not None:
        name, links = hard_link
        raise ClientError(
            f"{name!r}: a hard link ({links} names for one file); a profile holds regular files and folders "
            "only, each file with one name: a hard link would ship the file it shares (a key of the "
            "controller, say) to the hosts, as a staged profile's would be refused",
            file=directory / name,
            fix="replace it with a copy of the file (cp --remove-destination SOURCE FILE), or remove it",
        )
    file = directory / PROFILE_FILE
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ClientError(
            f"missing {PROFILE_FILE}", file=file, fix="create it; see docs/profiles.md"
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ClientError(f"{where}not valid YAML ({getattr(exc, 'problem', exc)})", file=file) from exc
    if not isinstance(data, dict):
        raise ClientError(
            f"expected a mapping of profile keys at the top level, got {type(data).__name__}", file=file
        )

    overrides = _collect_overrides(directory / ENV_FILE, environ)
    applied_from: dict[str, Override] = {}
    for variable, (target, apply) in ENV_OVERRIDES.items():
        override = overrides.get(variable)
        if override is None:
            continue
        try:
            apply(data, override.value)
        except ValueError as exc:
            raise ClientError(str(exc), file=override.origin, key=variable) from exc
        applied_from[target] = override

    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        raise _translate(exc, data, file, applied_from) from None
    problems = stage_problems(profile)
    if problems:
        key, message, fix = problems[0]
        source = applied_from.get("encoding.format") or applied_from.get(key)
        if source is not None and len(problems) == 1:
            raise ClientError(
                f"{message} (sets profile key {key})", file=source.origin, key=source.variable, fix=fix
            )
        if len(problems) > 1:
            message += "; also " + "; ".join(f"{k}: {m}" for k, m, _ in problems[1:])
        raise ClientError(message, file=file, key=key, fix=fix)
    level = overrides.get("CLIENT_LOG_LEVEL")
    log_level = level.value.upper() if level else "INFO"
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ClientError(
            f"expected one of DEBUG, INFO, WARNING, ERROR, got {level.value!r}",
            file=level.origin if level else None,
            key="CLIENT_LOG_LEVEL",
        )
    return LoadedProfile(profile, directory, file, overrides, log_level)


def _collect_overrides(env_file: Path, environ: Mapping[str, str]) -> dict[str, Override]:
    allowed = (*ENV_OVERRIDES, *EXTRA_SETTINGS)
    result: dict[str, Override] = {}
    if env_file.exists():
        for key, override in parse_env_file(env_file).items():
            if key in DEPLOYMENT_VARIABLES:
                raise ClientError(
                    "set by the deployment, never by a profile",
                    file=override.origin,
                    key=key,
                    fix="remove the line; the deployment sets the server address, TLS files, results dir, "
                    "camera credentials, model files folder and metrics port",
                )
            if key not in allowed:
                raise ClientError(
                    f"unknown setting; expected one of {', '.join(allowed)}",
                    file=override.origin,
                    key=key,
                )
            result[key] = override
    for key in allowed:
        if key in environ:
            result[key] = Override(key, environ[key], "environment")
    return result


# ---------------------------------------------------------------------------------------------------
# pydantic errors -> "file: key: what was expected (got …)"


def _translate(
    exc: ValidationError, data: dict[str, Any], file: Path, applied_from: dict[str, Override]
) -> ClientError:
    problems: list[tuple[str, str, str]] = []  # (file, key, message)
    for error in exc.errors():
        key, value_present = _key_path(error["loc"], data)
        message = _message({**error, "_data": data})
        if key.endswith(".[key]"):
            key = key[: -len(".[key]")]
            message = "expected integer keys (class ids)" if error["type"] == "int_parsing" else message
        message = _stage_named(key, data) + message
        got = error.get("input")
        scalar = not isinstance(got, dict | list)
        if value_present and scalar and error["type"] not in ("missing", "extra_forbidden"):
            # a camera URL may hold a password: never repeat one unmasked
            message += f" (got {redact(got)!r})" if isinstance(got, str) else f" (got {got!r})"
        if error["type"] == "streams_below_inputs" and "inputs" in applied_from:
            origin = applied_from["inputs"]
            message += f"; the inputs come from {origin.variable} ({origin.origin})"
        source = next(
            (o for target, o in applied_from.items() if key == target or key.startswith(target + "[")), None
        )
        if source is None and key.startswith("inputs["):
            loop = key.endswith(".loop")
            source = applied_from.get("inputs[*].loop") if loop else applied_from.get("inputs")
        fix = _FIXES.get(error["type"], "").format(**error.get("ctx", {})) or None
        if source is not None:
            problems.append((source.origin, source.variable, f"{message} (sets profile key {key})", fix))
        else:
            problems.append((str(file), key, message, fix))
    if len(problems) == 1:
        where, key, message, fix = problems[0]
        return ClientError(message, file=where, key=key, fix=fix)
    body = "; ".join(f"{k}: {m}" for _, k, m, _ in problems)
    fixes = [f for *_, f in problems if f]
    return ClientError(
        f"{len(problems)} problems: {body}",
        file=problems[0][0],
        key=problems[0][1],
        fix="; ".join(fixes) or None,
    )


def _stage_named(key: str, data: dict[str, Any]) -> str:
    """`stage 'ocr': ` for a key inside a stage that has a name, else nothing."""
    match = re.match(r"^stages\[(\d+)\]", key)
    stages = data.get("stages")
    if not match or not isinstance(stages, list) or int(match.group(1)) >= len(stages):
        return ""
    stage = stages[int(match.group(1))]
    name = stage.get("name") if isinstance(stage, dict) else None
    return f"stage {name!r}: " if isinstance(name, str) and len(name) <= 64 else ""


_FIXES = {
    "output_name_dots": "give it a plain file name (letters, digits, '.', '_', '-'), e.g. the default",
    "output_name_rotated": "give {key} a name that does not end in '.<digits>' (e.g. the default)",
    "output_names_collide": (
        "give each of outputs.detections_file, stats_file and snapshot_dir a name of its own, neither "
        "another's name nor another's name followed by '.<digits>' (the defaults: detections.jsonl, "
        "stats.jsonl, snapshots)"
    ),
    "streams_below_inputs": (
        "remove `streams` (it defaults to one stream per input) or set it to {inputs} or more; "
        "to read fewer inputs, remove them from `inputs` (or CLIENT_INPUT)"
    ),
}


def _key_path(loc: tuple[int | str, ...], data: Any) -> tuple[str, bool]:
    """Join a pydantic location into `a.b[0].c`, dropping union tags that are not in the data."""
    text = ""
    node: Any = data
    present = True
    for part in loc:
        if isinstance(part, int) and isinstance(node, list):
            text += f"[{part}]"
            node = node[part] if part < len(node) else None
            present = present and node is not None
        elif isinstance(node, dict) and part in node:
            text += f".{part}" if text else str(part)
            node = node[part]
        elif isinstance(node, dict) and str(part) in {str(k) for k in node}:
            text += f".{part}"
            node = {str(k): v for k, v in node.items()}[str(part)]
        elif isinstance(part, str) and part.startswith(("function-", "tagged-union[")):
            continue
        elif isinstance(node, dict) and node.get("type") == part:
            continue  # discriminated-union tag
        elif isinstance(part, str) and part in ("float", "tuple[float, float, float]", "str", "list[str]"):
            continue  # member of a plain union
        else:
            text += f".{part}" if text else str(part)
            node = None
            present = False
    return text or "(top level)", present


_PATTERN_HELP = {
    r"^rtsps?://\S+$": "expected an rtsp:// or rtsps:// URL",
    r"^https?://\S+$": "expected an http:// or https:// URL",
    r"^/dev/video[0-9]+$": "expected a video device path /dev/videoN",
    r"^[A-Za-z0-9._-]+$": "expected a plain file name (letters, digits, '.', '_', '-'; no '/')",
    r"^[A-Za-z0-9._-]*$": "expected letters, digits, '.', '_' or '-' only",
}


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(error["loc"], error.get("_data"))
        return "unknown key" + (f"; expected one of: {', '.join(allowed)}" if allowed else "")
    if kind == "union_tag_invalid":
        expected = error.get("ctx", {}).get("expected_tags", "")
        return f"unknown type {error['input'].get('type')!r}; expected one of {expected}"
    if kind == "union_tag_not_found":
        return "missing the 'type' key that selects the kind of entry"
    if kind == "literal_error":
        return f"expected {error['ctx']['expected']}"
    if kind == "string_pattern_mismatch":
        pattern = error.get("ctx", {}).get("pattern", "")
        return _PATTERN_HELP.get(pattern, f"expected text matching {pattern}")
    if kind in ("model_attributes_type", "dict_type"):
        if error["loc"][:1] == ("inputs",):
            return (
                "expected a mapping with a 'type' key or a source (file, folder, rtsp://…, http(s)://…, "
                "/dev/videoN)"
            )
        return "expected a mapping of keys"
    text = str(error["msg"])
    if text.startswith("Value error, "):
        text = text[len("Value error, ") :]
    return text[:1].lower() + text[1:]


def _allowed_keys(loc: tuple[int | str, ...], data: dict[str, Any]) -> list[str]:
    """The field names of the model that holds the unknown key at `loc`."""
    model: Any = Profile
    node: Any = data
    for part in loc[:-1]:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
        elif isinstance(model, type) and issubclass(model, BaseModel):
            info = model.model_fields.get(str(part))
            if info is None:
                continue  # a union tag
            model = info.annotation
            node = node.get(part) if isinstance(node, dict) else None
        model = _unwrap(model, node)
    model = _unwrap(model, node)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _unwrap(annotation: Any, node: Any) -> Any:
    """list[X] -> X (once the node is an item, not the list), Annotated[Union[...]] -> the member
    chosen by the node's `type`."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is list and isinstance(node, list):
            return annotation  # the next part of the location is the index
        if origin is Annotated or origin is list:
            annotation = typing.get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [m for m in typing.get_args(annotation) if isinstance(m, type)]
            tag = node.get("type") if isinstance(node, dict) else None
            chosen = [
                m
                for m in members
                if issubclass(m, BaseModel)
                and "type" in m.model_fields
                and tag in typing.get_args(m.model_fields["type"].annotation)
            ]
            annotation = chosen[0] if chosen else (members[0] if members else annotation)
            if not chosen:
                return annotation
        else:
            return annotation
