"""Convert a verified source model to OpenVINO IR (`model.xml` + `model.bin`) with the openvino runtime,
or place an ONNX model as-is (`model.onnx`, which OVMS reads directly)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from launcher.errors import ExternalError, LauncherError
from launcher.models.manifest import ModelEntry

if TYPE_CHECKING:
    from openvino import Model, Output

IR_XML = "model.xml"
IR_BIN = "model.bin"
ONNX_FILE = "model.onnx"


@dataclass(frozen=True)
class TensorInfo:
    """One input or output as OpenVINO (and therefore OVMS, which uses `get_any_name()`) reports it."""

    name: str
    dtype: str
    shape: str


def converter_version() -> str:
    import openvino

    return f"openvino {openvino.__version__}"


def _fail(entry: ModelEntry, what: str, exc: Exception) -> ExternalError:
    # OpenVINO prefixes its messages with a source-location line ("Check '...' failed at ...")
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Check ", "Exception from"))]
    detail = " ".join(useful or lines) or type(exc).__name__
    if len(detail) > 400:
        detail = detail[:397] + "..."
    return ExternalError(
        f"{entry.label}: {what}: {detail}",
        fix="the source file is damaged or not a valid "
        f"{entry.format} model; fix the source and its sha256 in the manifest",
    )


def _read(entry: ModelEntry, sources: list[Path]) -> Model:
    import openvino

    try:
        if entry.format == "ir":
            return openvino.Core().read_model(str(sources[0]), str(sources[1]))
        return openvino.convert_model(str(sources[0]))
    except Exception as exc:  # openvino raises plain RuntimeError/OpConversionFailure etc.
        raise _fail(entry, f"cannot read {sources[0].name} as {entry.format}", exc) from None


def _all_names(model: Model) -> list[str]:
    names: list[str] = []
    for port in [*model.inputs, *model.outputs]:
        names.extend(sorted(port.get_names()))
    return names


def _port(model: Model, name: str, inputs_only: bool = False) -> Output | None:
    ports = model.inputs if inputs_only else [*model.inputs, *model.outputs]
    for port in ports:
        if name in port.get_names():
            return port
    return None


def _unknown(
    entry: ModelEntry, field: str, name: str, known: list[str], file: Path | None, key: str | None
) -> LauncherError:
    return LauncherError(
        f"{entry.label}: {field} names tensor {name!r}, which the model does not have",
        file=file,
        key=key,
        fix=f"known {'input ' if field != 'tensor_names' else ''}tensors: {', '.join(known)}",
    )


def _apply(entry: ModelEntry, model: Model, file: Path | None, key_prefix: str | None) -> None:
    import openvino

    def key(field: str) -> str | None:
        return f"{key_prefix}.{field}" if key_prefix else None

    for old, new in (entry.tensor_names or {}).items():
        port = _port(model, old)
        if port is None:
            raise _unknown(entry, "tensor_names", old, _all_names(model), file, key("tensor_names"))
        port.get_tensor().set_names({new})
    input_names = [name for port in model.inputs for name in sorted(port.get_names())]
    if entry.reshape:
        for name in entry.reshape:
            if _port(model, name, inputs_only=True) is None:
                raise _unknown(entry, "reshape", name, input_names, file, key("reshape"))
        try:
            model.reshape({name: openvino.PartialShape(shape) for name, shape in entry.reshape.items()})
        except Exception as exc:
            raise _fail(entry, f"cannot reshape to {entry.reshape}", exc) from None
    for name, layout in (entry.layout or {}).items():
        port = _port(model, name, inputs_only=True)
        if port is None:
            raise _unknown(entry, "layout", name, input_names, file, key("layout"))
        try:
            port.get_node().set_layout(openvino.Layout(layout))
        except Exception as exc:
            raise _fail(entry, f"cannot set layout {layout} on {name}", exc) from None


def _convert_colors(entry: ModelEntry, model: Model, file: Path | None, key_prefix: str | None) -> Model:
    """Bake each declared colour conversion into the model (PrePostProcessor): the input then takes
    the served channel order. The input needs a layout with C (from `layout` or the model itself)."""
    from openvino.preprocess import ColorFormat, PrePostProcessor

    if not entry.color:
        return model
    key = f"{key_prefix}.color" if key_prefix else None
    input_names = [name for port in model.inputs for name in sorted(port.get_names())]
    ppp = PrePostProcessor(model)
    for name, conversion in entry.color.items():
        port = _port(model, name, inputs_only=True)
        if port is None:
            raise _unknown(entry, "color", name, input_names, file, key)
        if "C" not in port.get_node().get_layout().to_string():
            raise LauncherError(
                f"{entry.label}: color conversion of {name!r} needs to know its channel axis",
                file=file,
                key=key,
                fix=f"give the input a layout with C, e.g. `layout: {{{name!r}: NHWC}}`",
            )
        step = ppp.input(name)
        step.tensor().set_color_format(getattr(ColorFormat, conversion.served))
        step.preprocess().convert_color(getattr(ColorFormat, conversion.model))
    try:
        return ppp.build()
    except Exception as exc:
        raise _fail(entry, "cannot add the colour conversion", exc) from None


def describe(model: Model) -> dict[str, list[TensorInfo]]:
    """Inputs and outputs of a model, named the way OVMS names them."""

    def info(port: Output) -> TensorInfo:
        return TensorInfo(
            name=port.get_any_name(),
            dtype=str(port.get_element_type().to_dtype()),
            shape=str(port.get_partial_shape()),
        )

    return {"inputs": [info(p) for p in model.inputs], "outputs": [info(p) for p in model.outputs]}


def convert_to_ir(
    entry: ModelEntry,
    sources: list[Path],
    out_dir: Path,
    file: Path | None = None,
    key_prefix: str | None = None,
) -> dict[str, list[TensorInfo]]:
    """Read `sources` (the model file, plus the .bin for IR), apply the entry's renames, reshape,
    layout and colour conversion, write `out_dir/model.xml|model.bin`, and read the result back to
    make sure it loads."""
    import openvino

    model = _read(entry, sources)
    _apply(entry, model, file, key_prefix)
    model = _convert_colors(entry, model, file, key_prefix)
    try:
        openvino.save_model(model, str(out_dir / IR_XML))
    except Exception as exc:
        raise _fail(entry, "cannot save OpenVINO IR", exc) from None
    try:
        saved = openvino.Core().read_model(str(out_dir / IR_XML), str(out_dir / IR_BIN))
    except Exception as exc:
        raise _fail(entry, "the written IR does not load back", exc) from None
    return describe(saved)


def place_as_is(entry: ModelEntry, sources: list[Path], out_dir: Path) -> dict[str, list[TensorInfo]]:
    """Copy the verified ONNX source unchanged to `out_dir/model.onnx` and read it back with
    OpenVINO (as OVMS will) to make sure it loads; its inputs and outputs as OVMS reports them
    (dynamic dimensions stay dynamic: `?`, which OVMS reports as -1)."""
    import openvino

    target = out_dir / ONNX_FILE
    shutil.copyfile(sources[0], target)
    try:
        model = openvino.Core().read_model(str(target))
    except Exception as exc:
        raise _fail(entry, f"cannot read {sources[0].name} as onnx", exc) from None
    return describe(model)
