"""Cascaded stages: the profile's stage rules, crops and their way back to the frame, and the cascade
run with stand-in servers (concurrent crops, a failed crop keeps the rest, nested results)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from client.cascade import Cascade, StageRunner
from client.crops import box_crop, mirrored, points_crop, quad_crop, rotated, to_frame
from client.decoders import Detection
from client.errors import ClientError, RequestRejected
from client.preprocess import Preprocessor
from client.profile import ModelSpec, Profile, Size, load_profile
from client.stats import Stats

pytestmark = pytest.mark.models

PROFILES = Path(__file__).resolve().parents[2] / "profiles"


def _model(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "input": "x", "size": {"width": 32, "height": 32}, "dtype": "float32", **extra}


def _write(tmp_path: Path, stages: list[dict[str, Any]]) -> Path:
    folder = tmp_path / "p"
    folder.mkdir(exist_ok=True)
    data = {"name": "cascade", "stages": stages, "inputs": ["/media/sample.mp4"]}
    (folder / "profile.yaml").write_text(yaml.safe_dump(data))
    return folder


# -- the profile's stage rules ---------------------------------------------------------------------


def test_sample_profiles_are_cascades():
    price = load_profile(PROFILES / "price-label", {}).profile
    assert [s.name for s in price.cascade] == ["text-detection", "text-angle", "text-recognition", "barcode"]
    assert price.cascade[3].model is None and price.cascade[2].crops.align.by == "text-angle"
    mesh = load_profile(PROFILES / "face-mesh", {}).profile
    assert [s.model.name for s in mesh.cascade] == ["face-detection", "face-landmarks", "iris-landmarks"]


def test_the_one_model_form_is_one_stage_named_after_its_model():
    profile = load_profile(PROFILES / "person-detection", {}).profile
    [stage] = profile.cascade
    assert stage.name == "person-detection" and stage.model is profile.model and stage.crops is None


@pytest.mark.parametrize(
    ("stages", "key", "words"),
    [
        (
            [
                {"name": "a", "model": _model("a"), "postprocess": {"type": "raw"}},
                {"name": "b", "crops": {"from": "c"}, "model": _model("b"), "postprocess": {"type": "raw"}},
                {"name": "c", "crops": {"from": "a"}, "model": _model("c"), "postprocess": {"type": "raw"}},
            ],
            "stages[1].crops.from",
            ["stage 'b'", "'c'", "a later stage"],
        ),
        (
            [
                {"name": "a", "model": _model("a"), "postprocess": {"type": "raw"}},
                {
                    "name": "b",
                    "crops": {"from": "a", "max_crops": 0},
                    "model": _model("b"),
                    "postprocess": {"type": "raw"},
                },
            ],
            "stages[1].crops.max_crops",
            ["stage 'b'", "greater than or equal to 1"],
        ),
        (
            [
                {"name": "a", "model": _model("a"), "postprocess": {"type": "raw"}},
                {"name": "a", "model": _model("b"), "postprocess": {"type": "raw"}},
            ],
            "stages[1].name",
            ["named twice"],
        ),
        (
            [{"name": "codes", "postprocess": {"type": "barcode"}}],
            "stages[0].postprocess.type",
            ["cannot be first"],
        ),
        (
            [
                {"name": "a", "model": _model("a"), "postprocess": {"type": "raw"}},
                {"name": "b", "crops": {"from": "a"}, "postprocess": {"type": "raw"}},
            ],
            "stages[1].model",
            ["needs a model"],
        ),
        (
            [
                {"name": "a", "model": _model("a"), "postprocess": {"type": "raw"}},
                {
                    "name": "b",
                    "crops": {"from": "a", "points": {"eye": [1, 2]}},
                    "model": _model("b"),
                    "postprocess": {"type": "raw"},
                },
            ],
            "stages[1].crops.points",
            ["gives no landmarks"],
        ),
        (
            [
                {"name": "a", "model": _model("a"), "postprocess": {"type": "raw"}},
                {"name": "b", "crops": {"from": "a"}, "model": _model("b"), "postprocess": {"type": "raw"}},
                {
                    "name": "c",
                    "crops": {"from": "b", "align": {"by": "b", "rotate": {"180": 180}}},
                    "model": _model("c"),
                    "postprocess": {"type": "raw"},
                },
            ],
            "stages[2].crops.align.by",
            ["same stage"],
        ),
        (
            [
                {"name": "a", "model": _model("a"), "postprocess": {"type": "raw"}},
                {
                    "name": "b",
                    "crops": {"from": "a"},
                    "model": _model("b"),
                    "encoding": "jpeg",
                    "postprocess": {"type": "raw"},
                },
            ],
            "stages[1].model.color",
            ["encoding jpeg of stage 'b'"],
        ),
    ],
)
def test_stage_rules_name_the_profile_stage_and_key(tmp_path, stages, key, words):
    folder = _write(tmp_path, stages)
    with pytest.raises(ClientError) as caught:
        load_profile(folder, {})
    error = caught.value
    assert error.key == key and error.file.endswith("p/profile.yaml"), error.render()
    for word in words:
        assert word in error.message, error.render()


def test_encoded_crops_only_for_uint8_models(tmp_path):
    uint8 = _model("b", dtype="uint8", layout="NHWC", color="bgr")
    stages = [
        {"name": "a", "model": _model("a"), "postprocess": {"type": "raw"}},
        {
            "name": "b",
            "crops": {"from": "a"},
            "model": uint8,
            "encoding": "jpeg",
            "postprocess": {"type": "raw"},
        },
    ]
    assert load_profile(_write(tmp_path, stages), {}).profile.cascade[1].encoding.format == "jpeg"
    stages[1]["model"] = {**uint8, "dtype": "float32"}
    with pytest.raises(ClientError, match="encoded crops go only to a model that takes uint8"):
        load_profile(_write(tmp_path, stages), {})


def test_top_level_model_cannot_go_with_stages(tmp_path):
    folder = _write(tmp_path, [{"name": "a", "model": _model("a"), "postprocess": {"type": "raw"}}])
    data = yaml.safe_load((folder / "profile.yaml").read_text())
    data["encoding"] = "jpeg"
    (folder / "profile.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ClientError, match="cannot go with `stages`"):
        load_profile(folder, {})


def test_one_model_settings_from_the_environment_are_refused_with_stages(tmp_path):
    folder = _write(tmp_path, [{"name": "a", "model": _model("a"), "postprocess": {"type": "raw"}}])
    with pytest.raises(ClientError) as caught:
        load_profile(folder, {"CLIENT_THRESHOLD": "0.3"})
    assert (
        caught.value.key == "CLIENT_THRESHOLD" and "stages[N].postprocess.threshold" in caught.value.message
    )


# -- crops and the way back ------------------------------------------------------------------------


def _frame() -> np.ndarray:
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[20:40, 30:90] = (255, 255, 255)  # a white bar
    return frame


def test_box_crop_with_padding_maps_back_exactly():
    crop = box_crop(_frame(), (30, 20, 90, 40), padding=0.5)
    assert (crop.width, crop.height) == (120, 40)
    # the bar sits in the middle of the crop, surrounded by black
    assert crop.image[20, 60].tolist() == [255, 255, 255] and crop.image[2, 2].tolist() == [0, 0, 0]
    det = Detection("x", 0, 0.9, (30.0, 10.0, 90.0, 30.0), keypoints=((60.0, 20.0),))
    back = to_frame(det, crop)
    assert back.box == pytest.approx((30.0, 20.0, 90.0, 40.0))
    assert back.keypoints[0] == pytest.approx((60.0, 30.0))


def test_square_crop_is_square_around_the_centre():
    crop = box_crop(_frame(), (30, 20, 90, 40), square=True)
    assert crop.width == crop.height == 60
    assert to_frame(Detection("x", 0, 1, (0, 0, 60, 60)), crop).box == pytest.approx((30, 0, 90, 60))


def test_rotation_and_mirroring_keep_points_in_place():
    frame = np.random.default_rng(1).integers(0, 255, (50, 80, 3), dtype=np.uint8)
    crop = box_crop(frame, (10, 5, 70, 45))
    point = (12.0, 7.0)  # a crop pixel
    expected = to_frame(Detection("p", 0, 1, (*point, *point), points=(point,)), crop).points[0]
    for turned, where in (
        (rotated(crop, 180), (crop.width - point[0], crop.height - point[1])),
        (rotated(crop, 90), (crop.height - point[1], point[0])),
        (rotated(crop, 270), (point[1], crop.width - point[0])),
        (mirrored(crop), (crop.width - point[0], point[1])),
    ):
        mapped = to_frame(Detection("p", 0, 1, (*where, *where), points=(where,)), turned).points[0]
        assert mapped == pytest.approx(expected)
    # the pixels move with the matrix: the crop's top-left pixel is the 180-turned crop's bottom-right
    assert np.array_equal(rotated(crop, 180).image[-1, -1], crop.image[0, 0])
    assert np.array_equal(mirrored(crop).image[0, -1], crop.image[0, 0])


def test_quad_crop_turns_a_tilted_box_upright():
    frame = np.zeros((200, 200, 3), np.uint8)
    quad = ((50.0, 100.0), (130.0, 60.0), (140.0, 80.0), (60.0, 120.0))
    crop = quad_crop(frame, quad)
    assert crop.width > crop.height  # along the text line
    corners = to_frame(Detection("t", 0, 1, (0, 0, crop.width, crop.height), quad=((0.0, 0.0),)), crop)
    assert corners.quad[0] == pytest.approx(quad[0], abs=0.01)


def test_points_crop_is_a_square_around_the_points():
    points = tuple((float(x), 50.0) for x in range(100))
    crop = points_crop(np.zeros((120, 160, 3), np.uint8), points, [20, 60], padding=0.5, region="eye")
    assert crop.region == "eye" and crop.width == crop.height == 80


# -- the cascade with stand-in servers -------------------------------------------------------------

SPEC = ModelSpec(name="m", input="x", size=Size(width=16, height=16), dtype="float32")


class _Boxes:
    """A decoder returning fixed boxes (in the pixels of the image it got)."""

    roles: dict[str, list[str]] = {}

    def decode(self, outputs: Any, width: int, height: int) -> list[Detection]:
        return [Detection("crop", 0, 0.5, (0.0, 0.0, float(width), float(height)), text=str(outputs["n"]))]


def _stage_profile(max_crops: int = 8) -> Profile:
    return Profile.model_validate(
        {
            "stages": [
                {"name": "find", "model": _model("find"), "postprocess": {"type": "raw"}},
                {
                    "name": "read",
                    "crops": {"from": "find", "max_crops": max_crops},
                    "model": _model("read"),
                    "postprocess": {"type": "raw"},
                },
            ],
            "inputs": ["/x.mp4"],
        }
    )


def _run(profile: Profile, predict, detections: list[Detection], workers: int = 8, timeout_s: float = 30.0):
    stats = Stats(10.0, stages=[(s.name, s.model.name) for s in profile.cascade])
    stage = profile.cascade[1]
    runner = StageRunner(stage, stats, preprocess=Preprocessor(SPEC), predict=predict, decoder=_Boxes())
    with ThreadPoolExecutor(workers) as pool:
        cascade = Cascade(profile.cascade[0], [runner], pool, stage_timeout_s=timeout_s)
        results = cascade.run(np.zeros((100, 100, 3), np.uint8), detections)
    return results, stats


def _people(n: int) -> list[Detection]:
    return [Detection("p", 0, 0.9 - i / 100, (10.0 * i, 0.0, 10.0 * i + 10, 10.0)) for i in range(n)]


def test_crops_go_to_the_server_at_once():
    barrier = threading.Barrier(4, timeout=5)
    calls = []

    def predict(payload):
        calls.append(payload.shape)
        barrier.wait()  # passes only when all four crops are in flight together
        return {"n": len(calls)}

    results, stats = _run(_stage_profile(), predict, _people(4))
    assert len(calls) == 4 and all(shape == (1, 16, 16, 3) for shape in calls)
    assert [len(node.children["read"]) for node in results.first] == [1, 1, 1, 1]
    assert stats.snapshot()["stages"]["read"]["requests"] == 4


def test_max_crops_keeps_the_best_scores():
    results, _ = _run(_stage_profile(max_crops=2), lambda p: {"n": 1}, _people(5))
    assert [bool(node.children) for node in results.first] == [True, True, False, False, False]


def test_a_failed_crop_keeps_the_other_results():
    lock = threading.Lock()
    seen = []

    def predict(payload):
        with lock:
            seen.append(1)
            if len(seen) == 2:
                raise RequestRejected("NOT_FOUND: model read is not served")
        time.sleep(0.01)
        return {"n": 1}

    results, stats = _run(_stage_profile(), predict, _people(3))
    items = [node.children["read"][0] for node in results.first]
    failed = [item for item in items if not hasattr(item, "detection")]
    assert len(failed) == 1 and "NOT_FOUND" in failed[0].to_json()["error"]
    assert failed[0].to_json()["status"] == "failed"
    assert len(results.detections_json()) == 3
    line = stats.snapshot()["stages"]["read"]
    assert (line["requests"], line["failures"]) == (3, 1)


def test_a_later_stage_that_cannot_answer_fails_its_crops_only():
    """A later stage's model that times out (or the server cannot be reached for it) fails its crops;
    the first stage's results stay, and the server gate (which follows the first stage) is not
    touched: the cascade has no gate at all."""

    def predict(payload):
        raise TimeoutError("Deadline Exceeded")

    results, stats = _run(_stage_profile(), predict, _people(2))
    assert [n.children["read"][0].to_json()["status"] for n in results.first] == ["failed", "failed"]
    assert stats.snapshot()["stages"]["read"]["failures"] == 2


def test_a_stage_waits_for_its_crops_no_longer_than_its_timeout():
    """A crop not answered within the stage's wait fails (a queued one is not sent at all); the frame
    goes on without waiting for it."""
    release = threading.Event()

    def predict(payload):
        release.wait(10)
        return {"n": 1}

    profile = _stage_profile()
    runner = StageRunner(
        profile.cascade[1], Stats(10.0), preprocess=Preprocessor(SPEC), predict=predict, decoder=_Boxes()
    )
    pool = ThreadPoolExecutor(1)
    try:
        cascade = Cascade(profile.cascade[0], [runner], pool, stage_timeout_s=0.3)
        results = cascade.run(np.zeros((100, 100, 3), np.uint8), _people(2))
        assert not release.is_set()  # the run came back while the first crop was still being answered
    finally:
        release.set()
        pool.shutdown(wait=True)
    errors = [n.children["read"][0].to_json().get("error") for n in results.first]
    assert errors == ["no answer within 0.3 s", "no answer within 0.3 s"]


def test_a_result_with_a_nan_or_inf_is_dropped_not_a_crash():
    class _Broken(_Boxes):
        def decode(self, outputs, width, height):
            nan = float("nan")
            return [
                Detection("bad", 0, 0.5, (nan, 0.0, 1.0, 1.0)),
                Detection("bad", 0, 0.5, (0.0, 0.0, 1.0, 1.0), points=((float("inf"), 1.0),)),
                Detection("ok", 0, 0.5, (0.0, 0.0, 4.0, 4.0)),
            ]

    profile = _stage_profile()
    stats = Stats(10.0)
    runner = StageRunner(
        profile.cascade[1], stats, preprocess=Preprocessor(SPEC), predict=lambda p: {}, decoder=_Broken()
    )
    first = [
        Detection("p", 0, 0.9, (float("nan"), 0.0, 10.0, 10.0)),
        Detection(
            "p",
            0,
            0.8,
            (10.0, 10.0, 30.0, 30.0),
            quad=((10.0, 10.0), (20.0, 20.0), (30.0, 30.0), (10.0, 30.0)),
        ),
        Detection("p", 0, 0.7, (40.0, 40.0, 60.0, 60.0)),
    ]
    with ThreadPoolExecutor(2) as pool:
        results = Cascade(profile.cascade[0], [runner], pool).run(np.zeros((100, 100, 3), np.uint8), first)
    # the NaN box and the degenerate quad (three corners on a line) give no crop; the third box's crop
    # keeps only its finite result
    assert [list(n.children) for n in results.first] == [[], [], ["read"]]
    assert [c.detection.label for c in results.first[2].children["read"]] == ["ok"]


def test_results_nest_in_frame_pixels():
    results, _ = _run(
        _stage_profile(), lambda p: {"n": 7}, [Detection("p", 0, 0.9, (20.0, 30.0, 60.0, 50.0))]
    )
    [record] = results.detections_json()
    [child] = record["stages"]["read"]
    assert child["box"] == [20.0, 30.0, 60.0, 50.0] and child["text"] == "7"


def test_labels_a_stage_never_gives_are_refused(tmp_path):
    """A typo in crops.labels or align.rotate would silently switch a stage off."""
    price = yaml.safe_load((PROFILES / "price-label" / "profile.yaml").read_text())
    price["stages"][1]["crops"]["labels"] = ["txet"]
    price["stages"][2]["crops"]["align"]["rotate"] = {"18O": 180}
    folder = tmp_path / "price"
    folder.mkdir()
    (folder / "profile.yaml").write_text(yaml.safe_dump(price))
    with pytest.raises(ClientError) as caught:
        load_profile(folder, {})
    assert caught.value.key == "stages[1].crops.labels"
    assert "gives no result labelled 'txet'" in caught.value.message
    assert (
        "stages[2].crops.align.rotate: stage 'text-recognition': stage 'text-angle' never answers '18O'"
        in (caught.value.message)
    )


def test_a_model_input_of_gigabytes_is_refused(tmp_path):
    stages = [
        {"name": "a", "model": _model("a"), "postprocess": {"type": "raw"}},
        {
            "name": "b",
            "crops": {"from": "a"},
            "model": _model("b", size={"width": 8192, "height": 8192}),
            "postprocess": {"type": "raw"},
        },
    ]
    with pytest.raises(ClientError) as caught:
        load_profile(_write(tmp_path, stages), {})
    assert caught.value.key == "stages[1].model" and "16,777,216" in caught.value.message
