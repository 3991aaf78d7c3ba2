"""The post-processing specs of a stage (`postprocess:` in a profile), one class per `type`: what each
decoder in client/decoders needs. Kept apart from the decoders so the profile schema can import
them without importing any decoder."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from .schema import Names, Strict, as_list

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

    @field_validator("boxes", "classes", "scores", "count", "detection_output", mode="before")
    @classmethod
    def _lists(cls, value: object) -> object:
        return as_list(value)


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

    @field_validator("regressors", "classificators", mode="before")
    @classmethod
    def _lists(cls, value: object) -> object:
        return as_list(value)


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
