"""client/kserve_outputs.py: KServe v2 gRPC outputs in either form the protocol allows (raw_output_contents
or the typed contents fields), for every datatype; a response that cannot be read is an
UnreadableResponse (a RequestRejected: a frame's error, the server up) naming the model and output."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from tritonclient.grpc import InferResult
from tritonclient.grpc.service_pb2 import ModelInferResponse

from client.errors import RequestRejected, UnreadableResponse
from client.kserve_outputs import DATATYPES, read_outputs

pytestmark = pytest.mark.models

MODEL = "person-detection"

# datatype -> (typed field, numpy dtype, values of shape [2, 3] with the type's extremes)
NUMERIC = {
    "BOOL": ("bool_contents", np.bool_, [True, False, True, True, False, False]),
    "UINT8": ("uint_contents", np.uint8, [0, 1, 127, 128, 254, 255]),
    "UINT16": ("uint_contents", np.uint16, [0, 1, 255, 256, 65534, 65535]),
    "UINT32": ("uint_contents", np.uint32, [0, 1, 65535, 65536, 2**32 - 2, 2**32 - 1]),
    "UINT64": ("uint64_contents", np.uint64, [0, 1, 2**32, 2**63, 2**64 - 2, 2**64 - 1]),
    "INT8": ("int_contents", np.int8, [-128, -1, 0, 1, 100, 127]),
    "INT16": ("int_contents", np.int16, [-32768, -1, 0, 1, 1000, 32767]),
    "INT32": ("int_contents", np.int32, [-(2**31), -1, 0, 1, 2**20, 2**31 - 1]),
    "INT64": ("int64_contents", np.int64, [-(2**63), -1, 0, 1, 2**40, 2**63 - 1]),
    "FP32": ("fp32_contents", np.float32, [-1.5, 0.0, 0.25, 3.4e38, -1e-30, 0.1]),
    "FP64": ("fp64_contents", np.float64, [-1.5, 0.0, 0.25, 1.7e308, -1e-300, 0.1]),
}


def tensor(
    response: ModelInferResponse, name: str, datatype: str, shape: list[int]
) -> ModelInferResponse.InferOutputTensor:
    output = response.outputs.add()
    output.name, output.datatype = name, datatype
    output.shape.extend(shape)
    return output


def raw_response(*outputs: tuple[str, str, list[int], bytes]) -> ModelInferResponse:
    response = ModelInferResponse(model_name=MODEL, model_version="1")
    for name, datatype, shape, data in outputs:
        tensor(response, name, datatype, shape)
        response.raw_output_contents.append(data)
    return response


def typed_response(*outputs: tuple[str, str, list[int], str, list]) -> ModelInferResponse:
    response = ModelInferResponse(model_name=MODEL, model_version="1")
    for name, datatype, shape, field, values in outputs:
        getattr(tensor(response, name, datatype, shape).contents, field).extend(values)
    return response


def bytes_raw(items: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def person_detection(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The SSD outputs of the person-detection profile's model."""
    return {
        "detection_boxes:0": rng.random((1, 100, 4), dtype=np.float32),
        "detection_classes:0": rng.integers(1, 91, (1, 100)).astype(np.float32),
        "detection_scores:0": rng.random((1, 100), dtype=np.float32),
        "num_detections:0": np.array([7.0], np.float32),
    }


# --- both forms, every datatype -----------------------------------------------------------------


@pytest.mark.parametrize("datatype", sorted(NUMERIC))
def test_every_numeric_datatype_in_both_forms(datatype):
    field, dtype, values = NUMERIC[datatype]
    expected = np.array(values, dtype=dtype).reshape(2, 3)
    raw = raw_response(("out", datatype, [2, 3], expected.astype(expected.dtype.newbyteorder("<")).tobytes()))
    typed = typed_response(("out", datatype, [2, 3], field, values))
    for response in (raw, typed):
        array = read_outputs(response, MODEL)["out"]
        assert array.dtype == dtype and array.shape == (2, 3)
        np.testing.assert_array_equal(array, expected)


def test_bytes_in_both_forms_as_object_arrays():
    items = [b"", b"person", b"\x00\xff\x00", "caf\u00e9".encode()]
    raw = raw_response(("text", "BYTES", [2, 2], bytes_raw(items)))
    typed = typed_response(("text", "BYTES", [2, 2], "bytes_contents", items))
    for response in (raw, typed):
        array = read_outputs(response, MODEL)["text"]
        assert array.dtype == np.object_ and array.shape == (2, 2)
        assert array.reshape(-1).tolist() == items


def test_fp16_and_bf16_from_raw():
    half = np.array([[0.5, -2.0, 65504.0], [6.1e-5, 0.0, 1.0009765625]], np.float16)
    # BF16 is the upper 16 bits of a float32: these values are exact in it
    bf16_values = np.array([1.5, -2.0, 3.140625, 0.0, -0.0078125, 256.0], np.float32)
    bf16 = (bf16_values.view(np.uint32) >> 16).astype("<u2").tobytes()
    response = raw_response(("half", "FP16", [2, 3], half.tobytes()), ("brain", "BF16", [6], bf16))
    arrays = read_outputs(response, MODEL)
    assert arrays["half"].dtype == np.float16
    np.testing.assert_array_equal(arrays["half"], half)
    assert arrays["brain"].dtype == np.float32
    np.testing.assert_array_equal(arrays["brain"], bf16_values)


def test_every_listed_datatype_is_covered_here():
    assert set(DATATYPES) == {*NUMERIC, "BYTES", "FP16", "BF16"}


def test_the_person_detection_outputs_read_the_same_in_both_forms():
    outputs = person_detection(np.random.default_rng(19))
    raw = raw_response(*((name, "FP32", list(a.shape), a.tobytes()) for name, a in outputs.items()))
    typed = typed_response(
        *(
            (name, "FP32", list(a.shape), "fp32_contents", a.reshape(-1).tolist())
            for name, a in outputs.items()
        )
    )
    for response in (raw, typed):
        arrays = read_outputs(response, MODEL)
        assert list(arrays) == list(outputs)
        for name, expected in outputs.items():
            assert arrays[name].shape == expected.shape
            np.testing.assert_array_equal(arrays[name], expected)


def test_raw_outputs_read_as_tritonclient_read_them():
    """What OVMS answers reads exactly as before (tritonclient's as_numpy, raw only)."""
    outputs = {
        name: np.array(values, dtype=dtype).reshape(2, 3) for name, (_, dtype, values) in NUMERIC.items()
    }
    outputs["half"] = np.arange(6, dtype=np.float16).reshape(3, 2)
    datatypes = {**{name: name for name in NUMERIC}, "half": "FP16"}
    response = raw_response(
        *((name, datatypes[name], list(a.shape), a.tobytes()) for name, a in outputs.items()),
        ("text", "BYTES", [2], bytes_raw([b"a", b"bc"])),
    )
    ours = read_outputs(response, MODEL)
    theirs = InferResult(response)
    for name, array in ours.items():
        expected = theirs.as_numpy(name)
        assert array.dtype == expected.dtype and array.shape == expected.shape, name
        np.testing.assert_array_equal(array, expected)


def test_typed_outputs_are_what_tritonclient_could_not_read():
    """The reported failure: as_numpy saw no raw data and could not reshape an empty array."""
    outputs = person_detection(np.random.default_rng(3))
    typed = typed_response(
        *(
            (name, "FP32", list(a.shape), "fp32_contents", a.reshape(-1).tolist())
            for name, a in outputs.items()
        )
    )
    with pytest.raises(ValueError, match="cannot reshape array of size 0"):
        InferResult(typed).as_numpy("detection_boxes:0")
    assert read_outputs(typed, MODEL)["detection_boxes:0"].shape == (1, 100, 4)


def test_only_the_outputs_asked_for_in_that_order():
    outputs = person_detection(np.random.default_rng(5))
    response = raw_response(*((name, "FP32", list(a.shape), a.tobytes()) for name, a in outputs.items()))
    arrays = read_outputs(response, MODEL, ["num_detections:0", "detection_scores:0"])
    assert list(arrays) == ["num_detections:0", "detection_scores:0"]
    assert arrays["num_detections:0"].tolist() == [7.0]


def test_empty_and_scalar_shapes():
    response = typed_response(
        ("none", "FP32", [0, 4], "fp32_contents", []), ("scalar", "INT64", [], "int64_contents", [42])
    )
    arrays = read_outputs(response, MODEL)
    assert arrays["none"].shape == (0, 4) and arrays["none"].dtype == np.float32
    assert arrays["scalar"].shape == () and int(arrays["scalar"]) == 42
    raw = raw_response(("none", "BYTES", [0], b""), ("half", "FP16", [1, 0], b""))
    arrays = read_outputs(raw, MODEL)
    assert arrays["none"].shape == (0,) and arrays["half"].shape == (1, 0)


def test_an_empty_raw_entry_beside_typed_data_reads_the_typed_data():
    response = raw_response(
        ("a", "FP32", [2], np.array([1, 2], np.float32).tobytes()), ("b", "INT32", [2], b"")
    )
    response.outputs[1].contents.int_contents.extend([5, -6])
    arrays = read_outputs(response, MODEL)
    assert arrays["a"].tolist() == [1.0, 2.0] and arrays["b"].tolist() == [5, -6]


# --- responses that cannot be read --------------------------------------------------------------


def scores(values: list[float]) -> ModelInferResponse:
    return typed_response(("detection_scores:0", "FP32", [1, 100], "fp32_contents", values))


BROKEN = {
    "typed, one value short": (
        scores([0.5] * 99),
        "detection_scores:0",
        "shape [1, 100] FP32 needs 100 values, fp32_contents holds 99",
    ),
    "typed, one value too many": (scores([0.5] * 101), "detection_scores:0", "fp32_contents holds 101"),
    "no data in either form (what as_numpy could not reshape)": (
        scores([]),
        "detection_scores:0",
        "no data: shape [1, 100] FP32 needs 100 values, the response has neither raw_output_contents "
        "nor fp32_contents",
    ),
    "typed, in another datatype's field": (
        typed_response(("detection_scores:0", "FP32", [1, 3], "int_contents", [1, 2, 3])),
        "detection_scores:0",
        "it fills int_contents (3 values)",
    ),
    "raw, one value short": (
        raw_response(("detection_boxes:0", "FP32", [1, 100, 4], bytes(4 * 399))),
        "detection_boxes:0",
        "raw_output_contents holds 1596 bytes, shape [1, 100, 4] FP32 needs 1600 (399 values)",
    ),
    "raw, not a whole number of values": (
        raw_response(("num_detections:0", "FP32", [1], b"\x00\x00\x80\x3f\x00")),
        "num_detections:0",
        "raw_output_contents holds 5 bytes, shape [1] FP32 needs 4",
    ),
    "raw, empty": (
        raw_response(("num_detections:0", "FP64", [1], b"")),
        "num_detections:0",
        "raw_output_contents holds 0 bytes, shape [1] FP64 needs 8",
    ),
    "an unknown datatype": (
        raw_response(("logits", "FP8", [4], bytes(4))),
        "logits",
        "datatype 'FP8' is not one the client reads (BOOL, UINT8",
    ),
    "a negative dimension": (
        typed_response(("logits", "FP32", [1, -1], "fp32_contents", [1.0])),
        "logits",
        "shape [1, -1] has a negative dimension",
    ),
    "FP16 typed (only raw exists for it)": (
        typed_response(("logits", "FP16", [2], "fp32_contents", [1.0, 2.0])),
        "logits",
        "FP16 comes only as raw_output_contents (the protocol has no typed field for it), and the "
        "response has none (it fills fp32_contents (2 values))",
    ),
    "INT8 typed out of range": (
        typed_response(("labels", "INT8", [3], "int_contents", [1, -129, 5])),
        "labels",
        "int_contents holds -129, outside INT8 [-128, 127]",
    ),
    "UINT16 typed out of range": (
        typed_response(("labels", "UINT16", [2], "uint_contents", [65536, 1])),
        "labels",
        "uint_contents holds 65536, outside UINT16 [0, 65535]",
    ),
    "BYTES raw, an element cut short": (
        raw_response(("text", "BYTES", [2], bytes_raw([b"abc"]) + struct.pack("<I", 10) + b"xy")),
        "text",
        "BYTES element 1 says 10 bytes, 2 are left",
    ),
    "BYTES raw, fewer elements": (
        raw_response(("text", "BYTES", [3], bytes_raw([b"a", b"b"]))),
        "text",
        "raw_output_contents holds 10 bytes, too few for the 3 BYTES elements of shape [3]",
    ),
    "BYTES raw, bytes left over": (
        raw_response(("text", "BYTES", [1], bytes_raw([b"a", b"b"]))),
        "text",
        "raw_output_contents holds 5 bytes after the 1 BYTES elements shape [1] needs",
    ),
    "BYTES typed, one short": (
        typed_response(("text", "BYTES", [2], "bytes_contents", [b"a"])),
        "text",
        "shape [2] BYTES needs 2 values, bytes_contents holds 1",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_response_that_cannot_be_read_names_the_model_and_the_output(case):
    response, output, problem = BROKEN[case]
    with pytest.raises(UnreadableResponse) as caught:
        read_outputs(response, MODEL)
    error = caught.value
    assert isinstance(error, RequestRejected)  # the pipeline: the frame's error, the server stays up
    assert (error.model, error.output) == (MODEL, output)
    assert str(error).startswith(f"model {MODEL!r} output {output!r}: ")
    assert problem in str(error)


def test_fewer_raw_entries_than_outputs():
    outputs = person_detection(np.random.default_rng(7))
    response = raw_response(*((name, "FP32", list(a.shape), a.tobytes()) for name, a in outputs.items()))
    del response.raw_output_contents[3]
    # the three outputs that have an entry still read; the one without is named
    assert len(read_outputs(response, MODEL, ["detection_boxes:0"])) == 1
    with pytest.raises(UnreadableResponse) as caught:
        read_outputs(response, MODEL)
    assert caught.value.output == "num_detections:0"
    assert "no raw_output_contents entry for it: the response has 3 for 4 outputs" in str(caught.value)


def test_more_raw_entries_than_outputs():
    response = raw_response(("a", "FP32", [1], bytes(4)))
    response.raw_output_contents.append(bytes(4))
    with pytest.raises(UnreadableResponse) as caught:
        read_outputs(response, MODEL)
    assert caught.value.output is None
    assert str(caught.value) == (
        f"model {MODEL!r}: the response has 2 raw_output_contents for 1 outputs ['a'] "
        "(the protocol wants one per output, in order)"
    )


def test_an_output_asked_for_that_the_response_lacks():
    response = raw_response(("a", "FP32", [1], bytes(4)))
    with pytest.raises(UnreadableResponse) as caught:
        read_outputs(response, MODEL, ["a", "b"])
    assert str(caught.value) == f"model {MODEL!r} output 'b': the response has no such output (it has ['a'])"


def test_a_shape_claiming_more_than_the_answer_holds_is_unreadable_not_an_outage():
    """A BYTES output whose shape claims 2**40 elements, or a shape numpy cannot hold: the answer is
    unreadable (a per-frame error), never a MemoryError the stream would take for an outage."""
    for shape in ([2**40], [2**62, 4]):
        response = ModelInferResponse(model_name="m")
        response.outputs.add(name="out", datatype="BYTES", shape=shape)
        response.raw_output_contents.append(b"\x01\x00\x00\x00a")
        with pytest.raises(UnreadableResponse, match="model 'm' output 'out'"):
            read_outputs(response, "m")
