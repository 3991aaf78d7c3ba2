"""KServe v2 gRPC through tritonclient (the client OVMS's own KServe samples use): the default API, and
the only one of OVMS 2026.3 and later. A raw frame is one UINT8/FP32 tensor; an encoded frame is one
JPEG/PNG in a BYTES input of shape [1] (tritonclient puts the 4-byte little-endian length before it in
raw_input_contents, as OVMS's binary-input format wants)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from .backoff import Backoff
from .errors import RequestRejected
from .kserve_outputs import read_outputs
from .preprocess import Payload
from .profile import Profile, Stage
from .server import DATATYPES, Outputs, wait_for_metadata
from .settings import Deployment

log = logging.getLogger("client.server")

# gRPC codes with which a server that is up refuses one request; every other code (UNAVAILABLE,
# DEADLINE_EXCEEDED, INTERNAL from a proxy, ...) means the server cannot be used right now
REJECTED = frozenset(
    f"StatusCode.{name}"
    for name in (
        "INVALID_ARGUMENT",
        "NOT_FOUND",
        "FAILED_PRECONDITION",
        "OUT_OF_RANGE",
        "ALREADY_EXISTS",
        "RESOURCE_EXHAUSTED",
        # OVMS answers UNKNOWN "Unknown error" for codes missing from its gRPC table, e.g. an image
        # it cannot decode (IMAGE_PARSING_FAILED)
        "UNKNOWN",
    )
)
NOT_SERVED = "StatusCode.UNIMPLEMENTED"


def rejected(exc: InferenceServerException) -> bool:
    """A refusal of this request by a server that is up (or a request the client could not build)."""
    return exc.status() is None or exc.status() in REJECTED


class KServeServer:
    api_name = "KServe v2"
    not_served_hint = (
        "OpenVINO Model Server serves it since 2022.1",
        "use a current OVMS, or `api: tfs` for an older one",
    )

    def __init__(self, deployment: Deployment, profile: Profile, stage: Stage | None = None) -> None:
        stage = stage or profile.cascade[0]
        assert stage.model is not None, "a stage run in the client has no server"
        self.address = deployment.address
        self.model = stage.model
        self.timeout_s = profile.pipeline.request_timeout_s
        self._tls = deployment.tls
        self.tls = deployment.tls is not None
        self.encoded = stage.encoding.format != "raw"
        self._datatype = "BYTES" if self.encoded else DATATYPES[self.model.dtype]
        self._version = str(self.model.version) if self.model.version else ""
        self._outputs: list[str] | None = None
        self.client = self._connect()

    def _connect(self) -> grpcclient.InferenceServerClient:
        tls = self._tls
        if tls is None:
            return grpcclient.InferenceServerClient(url=self.address)
        return grpcclient.InferenceServerClient(
            url=self.address,
            ssl=True,
            root_certificates=tls.ca,
            private_key=tls.key,
            certificate_chain=tls.cert,
        )

    def reconnect(self) -> None:
        """A fresh channel. gRPC's own reconnect backoff grows to minutes during a long outage and
        fails requests fast meanwhile; a new channel dials at once, so a returning server is used
        within our (much shorter) retry delay. Called only while the server is unreachable."""
        old, self.client = self.client, self._connect()
        old.close()

    # -- requests ------------------------------------------------------------------------------
    def predict(self, payload: Payload) -> Outputs:
        if isinstance(payload, bytes):
            data = grpcclient.InferInput(self.model.input, [1], "BYTES")
            data.set_data_from_numpy(np.array([payload], dtype=np.object_))
        else:
            data = grpcclient.InferInput(self.model.input, list(payload.shape), self._datatype)
            data.set_data_from_numpy(payload)
        try:
            result = self.client.infer(
                self.model.name, [data], model_version=self._version, client_timeout=self.timeout_s
            )
        except InferenceServerException as exc:
            if rejected(exc):
                raise RequestRejected(f"{_status(exc)}: {exc.message()}") from exc
            raise
        response = result.get_response()
        names = self._outputs
        if names is None:
            names = self._outputs = [t.name for t in response.outputs]
        # raw_output_contents (OVMS, Triton) or the typed contents fields (the kserve SDK's server);
        # an answer that cannot be read is this frame's error (UnreadableResponse), not an outage
        return read_outputs(response, self.model.name, names)

    # -- start-up ------------------------------------------------------------------------------
    def metadata(self, timeout_s: float) -> dict[str, Any]:
        response = self.client.get_model_metadata(
            self.model.name, model_version=self._version, client_timeout=timeout_s
        )
        versions = [int(v) for v in response.versions if v.isdigit()]
        resolved = self.model.version or (max(versions) if versions else None)

        def tensors(items: Any) -> dict[str, dict[str, Any]]:
            return {t.name: {"shape": [int(d) for d in t.shape], "dtype": t.datatype} for t in items}

        return {
            "model_version": resolved,
            "inputs": tensors(response.inputs),
            "outputs": tensors(response.outputs),
        }

    def not_served(self, exc: BaseException) -> bool:
        return isinstance(exc, InferenceServerException) and exc.status() == NOT_SERVED

    def wait_for_metadata(self, stop: threading.Event, backoff: Backoff) -> dict[str, Any] | None:
        return wait_for_metadata(self, self.timeout_s, stop, backoff)


def _status(exc: InferenceServerException) -> str:
    status = exc.status()
    return status.removeprefix("StatusCode.") if status else "client"
