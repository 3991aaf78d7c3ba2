"""A `kserve.Model` answering as the project's `person-detection` SSD model, served by the kserve SDK's
own model server (`kserve.ModelServer`). Run by tests/integration/test_client_kserve_sdk.py with the
python of the kserve SDK's virtual environment (never the project's .venv: the SDK pins its own grpcio,
protobuf and fastapi), as:

    python kserve_sdk_model.py --mode typed|raw|short --grpc_port P --http_port H

(kserve parses --grpc_port/--http_port itself, from sys.argv, when imported.)

Every request gets the same detections (DETECTIONS), in the form `--mode` names:
- typed: the typed contents fields (`fp32_contents`): each output set with
  `InferOutput.set_data_from_numpy(array, binary_data=False)`; what the SDK sends for list data;
- raw: `raw_output_contents`: `set_data_from_numpy(array, binary_data=True)` and
  `InferResponse(use_binary_outputs=True)` — the SDK produces raw contents over gRPC itself;
- short: typed, but `detection_scores:0` (shape [1, 100]) carries 99 values.

The SDK binds its gRPC server to [::] and its REST server to 0.0.0.0, hard-coded; the tests talk only
to loopback, so both are bound to 127.0.0.1 here (two small patches below; the test checks the
listening sockets). Stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import grpc
import numpy as np
import uvicorn

PROFILE_MODEL = "person-detection"
INPUT = "image_tensor:0"
MAX_DETECTIONS = 100
# (y_min, x_min, y_max, x_max) normalised, class, score: two people above the profile's 0.5 threshold,
# one below it; the test expects exactly these
DETECTIONS = [
    ((0.10, 0.20, 0.90, 0.45), 1, 0.875),
    ((0.25, 0.55, 0.75, 0.80), 1, 0.625),
    ((0.40, 0.40, 0.60, 0.60), 1, 0.25),
]


def outputs() -> dict[str, np.ndarray]:
    boxes = np.zeros((1, MAX_DETECTIONS, 4), np.float32)
    classes = np.zeros((1, MAX_DETECTIONS), np.float32)
    scores = np.zeros((1, MAX_DETECTIONS), np.float32)
    for index, (box, label, score) in enumerate(DETECTIONS):
        boxes[0, index], classes[0, index], scores[0, index] = box, label, score
    count = np.array([len(DETECTIONS)], np.float32)
    return {
        "detection_boxes:0": boxes,
        "detection_classes:0": classes,
        "detection_scores:0": scores,
        "num_detections:0": count,
    }


def bind_to_loopback() -> None:
    """The SDK's servers listen on every interface; these listen on 127.0.0.1 only."""
    from kserve.protocol.grpc import server as grpc_server

    class LoopbackAio:
        @staticmethod
        def server(*args: Any, **kwargs: Any) -> grpc.aio.Server:
            server = grpc.aio.server(*args, **kwargs)
            add = server.add_insecure_port

            def loopback(address: str) -> int:
                return add(address.replace("[::]", "127.0.0.1", 1))

            server.add_insecure_port = loopback
            return server

    grpc_server.aio = LoopbackAio
    config_init = uvicorn.Config.__init__

    def loopback_config(self: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        kwargs["host"] = "127.0.0.1"
        config_init(self, *args, **kwargs)

    uvicorn.Config.__init__ = loopback_config


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("typed", "raw", "short"), required=True)
    parser.add_argument("--grpc_port", type=int, required=True)
    parser.add_argument("--http_port", type=int, required=True)
    options, _ = parser.parse_known_args()

    import kserve
    from kserve import InferOutput, InferRequest, InferResponse
    from kserve.errors import InvalidInput

    bind_to_loopback()
    mode = options.mode

    class PersonDetection(kserve.Model):
        def __init__(self) -> None:
            super().__init__(PROFILE_MODEL)
            self.ready = True

        def get_input_types(self) -> list[dict[str, Any]]:
            return [{"name": INPUT, "datatype": "UINT8", "shape": [1, 300, 300, 3]}]

        def get_output_types(self) -> list[dict[str, Any]]:
            return [
                {"name": name, "datatype": "FP32", "shape": list(array.shape)}
                for name, array in outputs().items()
            ]

        async def predict(
            self,
            payload: InferRequest,
            headers: dict[str, str] | None = None,
            response_headers: dict[str, str] | None = None,
        ) -> InferResponse:
            image = payload.get_input_by_name(INPUT)
            if image is None or image.datatype != "UINT8" or list(image.shape) != [1, 300, 300, 3]:
                raise InvalidInput(f"expected {INPUT} UINT8 [1, 300, 300, 3]")
            answers = []
            for name, array in outputs().items():
                answer = InferOutput(name=name, shape=list(array.shape), datatype="FP32")
                if mode == "short" and name == "detection_scores:0":
                    answer.data = array.reshape(-1)[:-1].tolist()  # one value short of [1, 100]
                else:
                    answer.set_data_from_numpy(array, binary_data=mode == "raw")
                answers.append(answer)
            return InferResponse(
                response_id=payload.id or "",
                model_name=self.name,
                infer_outputs=answers,
                use_binary_outputs=mode == "raw",
            )

    kserve.ModelServer(
        grpc_port=options.grpc_port, http_port=options.http_port, grace_period=2, enable_grpc=True
    ).start([PersonDetection()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
