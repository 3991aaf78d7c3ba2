"""The post-processing specs of a stage (`postprocess:` in a profile), one class per `type`: ssd,
blazeface, raw, db (text detection), classify, ctc (text recognition), landmarks (face mesh), iris,
barcode — what each decoder in client/decoders needs. Plain pydantic models on `client.schema`, kept
apart from the decoders so the profile schema imports them without importing any decoder."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from .errors import ClientError
from .schema import MODEL_FILE_NAME, Names, Strict, as_list

# Output tensor names of the TensorFlow Object Detection API graphs; OpenVINO keeps several names per
# tensor and a server reports one of them, so each role accepts a list of alternatives.
TF_SSD_OUTPUTS = {
    "boxes": [
        "detection_boxes:0",
        "detection_boxes",
        "Postprocessor/BatchMultiClassNonMaxSuppression/map/TensorArrayStack/TensorArrayGatherV3:0",
    ],
    "classes": [
        "detection_classes:0",
        "detection_classes",
        "add:0",
        "Postprocessor/BatchMultiClassNonMaxSuppression/map/TensorArrayStack_2/TensorArrayGatherV3:0",
    ],
    "scores": [
        "detection_scores:0",
        "detection_scores",
        "Postprocessor/BatchMultiClassNonMaxSuppression/map/TensorArrayStack_1/TensorArrayGatherV3:0",
    ],
    "count": ["num_detections:0", "num_detections", "Postprocessor/ToFloat_3:0"],
}


class SsdOutputs(Strict):
    boxes: Names = Field(default_factory=lambda: list(TF_SSD_OUTPUTS["boxes"]))
    classes: Names = Field(default_factory=lambda: list(TF_SSD_OUTPUTS["classes"]))
    scores: Names = Field(default_factory=lambda: list(TF_SSD_OUTPUTS["scores"]))
    count: Names = Field(default_factory=lambda: list(TF_SSD_OUTPUTS["count"]))
    detection_output: Names = Field(default_factory=lambda: ["detection_out"])


class SsdPostprocess(Strict):
    type: Literal["ssd"]
    format: Literal["tf", "detection_output"] = "tf"
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    labels: dict[int, str] = Field(default_factory=dict)
    only_labeled: bool = False
    max_detections: int = Field(default=100, gt=0)
    outputs: SsdOutputs = Field(default_factory=SsdOutputs)


class BlazefaceOutputs(Strict):
    regressors: Names = Field(default_factory=lambda: ["regressors"])
    classificators: Names = Field(default_factory=lambda: ["classificators"])


class BlazefacePostprocess(Strict):
    type: Literal["blazeface"]
    anchors: Literal["front"] = "front"
    threshold: float = Field(default=0.75, ge=0.0, le=1.0)
    nms: Literal["weighted", "plain"] = "weighted"
    iou_threshold: float = Field(default=0.3, gt=0.0, le=1.0)
    label: str = Field(default="face", min_length=1)
    max_detections: int = Field(default=100, gt=0)
    outputs: BlazefaceOutputs = Field(default_factory=BlazefaceOutputs)


class RawPostprocess(Strict):
    type: Literal["raw"]


# Output tensor names of the shipped models (OpenVINO keeps several names per tensor; the server
# reports one of them): PP-OCRv4 detection, the PP-OCR text-angle classifier, PP-OCRv4 recognition,
# MediaPipe face_landmark and iris_landmark.
DB_OUTPUTS = ["sigmoid_0.tmp_0"]
CLASSIFY_OUTPUTS = ["save_infer_model/scale_0.tmp_1"]
CTC_OUTPUTS = ["softmax_11.tmp_0"]
LANDMARKS_OUTPUTS = {"landmarks": ["conv2d_20"], "presence": ["conv2d_30"]}
IRIS_OUTPUTS = {"contours": ["output_eyes_contours_and_brows"], "iris": ["output_iris"]}

Label = Annotated[str, Field(min_length=1, max_length=64)]


class DbOutputs(Strict):
    probability: Names = Field(default_factory=lambda: list(DB_OUTPUTS))  # [1,1,H,W] text probability


class DbPostprocess(Strict):
    """DB (Differentiable Binarization) text detection: the probability map to rotated text boxes."""

    type: Literal["db"]
    threshold: float = Field(default=0.3, ge=0.0, le=1.0)  # a map pixel is text above it
    box_threshold: float = Field(default=0.5, ge=0.0, le=1.0)  # a box's mean probability, kept from it
    unclip_ratio: float = Field(default=1.6, ge=0.0, le=10.0)  # growth: area * ratio / perimeter per side
    dilate: bool = True  # dilate the text pixels by 2x2 first (PP-OCR's use_dilation)
    min_size: float = Field(default=3.0, ge=0.0, le=1000.0)  # shorter side in map pixels, kept from it
    max_detections: int = Field(default=50, gt=0, le=1000)
    label: Label = "text"
    outputs: DbOutputs = Field(default_factory=DbOutputs)


class ClassifyOutputs(Strict):
    probabilities: Names = Field(default_factory=lambda: list(CLASSIFY_OUTPUTS))  # [1,N]


class ClassifyPostprocess(Strict):
    """One label per image: the best of N classes."""

    type: Literal["classify"]
    labels: list[Label] = Field(min_length=1, max_length=100_000)  # one per class, in the model's order
    # auto: softmax only when the values are not already probabilities (each in 0..1, summing to 1)
    softmax: Literal["auto"] | bool = "auto"
    threshold: float = Field(default=0.0, ge=0.0, le=1.0)  # no result below this score
    outputs: ClassifyOutputs = Field(default_factory=ClassifyOutputs)

    @field_validator("labels")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        repeated = sorted({label for label in value if value.count(label) > 1})
        if repeated:
            raise ValueError(f"labels must be unique; repeated: {repeated}")
        return value


_PLAIN_FILE = re.compile(MODEL_FILE_NAME)


class CharacterSource(Strict):
    """Where a recogniser's character list is: a file beside the served model (`model_file`, read from
    `<OVMS_MODEL_FILES_DIR>/<model>/<version>/NAME` for the version the server reports) or a file of
    the profile (`path`, relative to the profile folder). UTF-8, one character per line."""

    model_file: str | None = Field(default=None, min_length=1, max_length=255)
    path: str | None = Field(default=None, min_length=1, max_length=4096)

    @field_validator("model_file")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if value is not None and (not _PLAIN_FILE.match(value) or value in (".", "..")):
            raise ValueError("expected a plain file name (letters, digits, '.', '_', '-'; no '/')")
        return value

    @field_validator("path")
    @classmethod
    def _inside_the_profile(cls, value: str | None) -> str | None:
        """A profile may come from someone else: its files stay inside its own folder."""
        if value is None:
            return value
        if "://" in value:
            raise ValueError("expected a file path relative to the profile folder, not a URL")
        parts = Path(value).parts
        if Path(value).is_absolute() or ".." in parts or "\x00" in value:
            raise ValueError("expected a path inside the profile folder (relative, no '..')")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> CharacterSource:
        if (self.model_file is None) == (self.path is None):
            raise ValueError("give exactly one of model_file (a file beside the model) or path")
        return self

    def locate(
        self,
        *,
        profile_dir: Path,
        files_dir: Path | None,
        model: str,
        version: int,
        key: str = "postprocess.characters",
    ) -> Path:
        """The file to read: `path` against the profile folder, or `model_file` in the model files
        folder, under the served model's name and version (the version the server reports)."""
        if self.path is not None:
            return _inside(profile_dir, self.path, key)
        if files_dir is None:
            raise ClientError(
                f"the character list {self.model_file!r} is a model file, but no model files folder is set",
                key=f"{key}.model_file",
                fix="set OVMS_MODEL_FILES_DIR (the deployment mounts /model-files), or give characters.path",
            )
        return files_dir / model / str(version) / str(self.model_file)


def _inside(folder: Path, relative: str, key: str) -> Path:
    """`folder/relative` when it is a regular file whose real path stays inside `folder`: a link out
    of a profile folder is never followed."""
    path = folder / relative
    try:
        real, root = path.resolve(strict=True), folder.resolve(strict=True)
    except (OSError, RuntimeError):
        return path  # missing: read_characters says so, naming the file
    if not real.is_relative_to(root) or not real.is_file() or real.stat().st_nlink > 1:
        raise ClientError(
            "the character list must be a regular file inside the profile folder (a link out of it, "
            "symbolic or hard, or anything but a file, is refused)",
            file=path,
            key=f"{key}.path",
            fix="copy the file into the profile folder",
        )
    return real


class CtcOutputs(Strict):
    probabilities: Names = Field(default_factory=lambda: list(CTC_OUTPUTS))  # [1,T,C]


class CtcPostprocess(Strict):
    """Greedy CTC text recognition: class 0 is the blank, 1..n the characters of the list and, with
    `space` (PP-OCR's use_space_char), one more class last for a space."""

    type: Literal["ctc"]
    characters: CharacterSource
    space: bool = True
    threshold: float = Field(default=0.0, ge=0.0, le=1.0)  # no result below this score
    label: Label = "text"
    outputs: CtcOutputs = Field(default_factory=CtcOutputs)


class LandmarksOutputs(Strict):
    landmarks: Names = Field(default_factory=lambda: list(LANDMARKS_OUTPUTS["landmarks"]))  # [.., N*3]
    presence: Names = Field(default_factory=lambda: list(LANDMARKS_OUTPUTS["presence"]))  # a logit


class LandmarksPostprocess(Strict):
    """A face mesh (MediaPipe face_landmark): N (x, y, z) points in input pixels and a presence logit."""

    type: Literal["landmarks"]
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)  # sigmoid(presence), kept from it
    points: int = Field(default=468, gt=0, le=10_000)
    label: Label = "face"
    outputs: LandmarksOutputs = Field(default_factory=LandmarksOutputs)


class IrisOutputs(Strict):
    contours: Names = Field(default_factory=lambda: list(IRIS_OUTPUTS["contours"]))  # [1,213]: 71 x 3
    iris: Names = Field(default_factory=lambda: list(IRIS_OUTPUTS["iris"]))  # [1,15]: 5 x 3, centre first


# points of iris_landmark's eye contour output (the iris decoder reads them; a profile check counts them)
EYE_POINTS = 71


class IrisPostprocess(Strict):
    """MediaPipe iris_landmark: 71 eye contour and brow points, 5 iris points (centre first)."""

    type: Literal["iris"]
    label: Label = "iris"
    outputs: IrisOutputs = Field(default_factory=IrisOutputs)


# Barcode formats a profile may name, by the spelling results carry in `format`; each maps to its
# zxing-cpp BarcodeFormat member. A name is matched ignoring case, spaces, '-' and '_'
# ("ean13", "Code128", "QRCode", "QR Code" are all accepted).
BARCODE_FORMATS: dict[str, str] = {
    "EAN-13": "EAN13",
    "EAN-8": "EAN8",
    "UPC-A": "UPCA",
    "UPC-E": "UPCE",
    "Code-128": "Code128",
    "Code-39": "Code39",
    "Code-93": "Code93",
    "Codabar": "Codabar",
    "ITF": "ITF",
    "QR": "QRCode",
    "Micro-QR": "MicroQRCode",
    "DataMatrix": "DataMatrix",
    "PDF417": "PDF417",
    "Aztec": "Aztec",
}
DEFAULT_BARCODE_FORMATS = ["EAN-13", "UPC-A", "Code-128", "QR"]


def _squash(name: str) -> str:
    return re.sub(r"[\s_-]+", "", name).lower()


_BARCODE_SPELLINGS = {
    **{_squash(zxing): name for name, zxing in BARCODE_FORMATS.items()},
    **{_squash(name): name for name in BARCODE_FORMATS},
}


def barcode_format(name: str) -> str:
    """The canonical spelling of a barcode format name; ValueError listing the known ones."""
    canonical = _BARCODE_SPELLINGS.get(_squash(name))
    if canonical is None:
        raise ValueError(f"unknown barcode format {name!r}; expected one of {', '.join(BARCODE_FORMATS)}")
    return canonical


class BarcodePostprocess(Strict):
    """Barcodes read in the client with zxing-cpp (no model), on the frame or on crops."""

    type: Literal["barcode"]
    formats: list[str] = Field(default_factory=lambda: list(DEFAULT_BARCODE_FORMATS), min_length=1)
    try_rotate: bool = True  # also barcodes turned by 90 degrees
    try_downscale: bool = True  # also scaled-down copies of the image (large images)
    try_invert: bool = False  # also light bars on a dark background
    max_results: int = Field(default=16, gt=0, le=256)
    label: Label = "barcode"

    @field_validator("formats", mode="before")
    @classmethod
    def _list(cls, value: object) -> object:
        return as_list(value)

    @field_validator("formats")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        canonical: list[str] = []
        for name in value:
            spelled = barcode_format(name)
            if spelled not in canonical:
                canonical.append(spelled)
        return canonical
