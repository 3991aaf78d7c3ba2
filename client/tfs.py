"""TensorFlow Serving gRPC through ovmsclient, for servers up to OVMS 2026.2 (`api: tfs`).

OVMS 2026.3 removed this API; such a server answers UNIMPLEMENTED, which the start-up check turns
into an error that names the fix (`api: kserve`)."""

from __future__ import annotations

import threading
from typing import Any

import grpc
from ovmsclient import make_grpc_client
from ovmsclient.tfs_compat.base.errors import BadResponseError, InvalidInputError, ModelNotFoundError

from .backoff import Backoff
from .errors import RequestRejected
from .preprocess import Payload
from .profile import Profile, Stage
from .server import Outputs, wait_for_metadata
from .settings import Deployment, TlsFiles

# TF DataType names ovmsclient reports -> the KServe names the metadata check compares
_DATATYPES = {
    "DT_UINT8": "UINT8",
    "DT_INT8": "INT8",
    "DT_UINT16": "UINT16",
    "DT_INT16": "INT16",
    "DT_INT32": "INT32",
    "DT_INT64": "INT64",
    "DT_UINT32": "UINT32",
    "DT_UINT64": "UINT64",
    "DT_HALF": "FP16",
    "DT_FLOAT": "FP32",
    "DT_DOUBLE": "FP64",
    "DT_BOOL": "BOOL",
    "DT_STRING": "BYTES",
}


def _tls_config(tls: TlsFiles | None) -> dict[str, str] | None:
    if tls is None:
        return None
    config = {"server_cert_path": tls.ca}
    if tls.cert and tls.key:
        config |= {"client_cert_path": tls.cert, "client_key_path": tls.key}
    return config


class TfsServer:
    api_name = "TensorFlow Serving"
    not_served_hint = (
        "OpenVINO Model Server removed the TensorFlow Serving API in 2026.3",
        "set `api: kserve` in the profile (KServe v2 is served by every OVMS since 2022.1)",
    )

    def __init__(self, deployment: Deployment, profile: Profile, stage: Stage | None = None) -> None:
        stage = stage or profile.cascade[0]
        assert stage.model is not None, "a stage run in the client has no server"
        self.address = deployment.address
        self.model = stage.model
        self.timeout_s = profile.pipeline.request_timeout_s
        self._tls_config = _tls_config(deployment.tls)
        self.tls = deployment.tls is not None
        self.client = make_grpc_client(deployment.address, tls_config=self._tls_config)

    def reconnect(self) -> None:
        """A fresh channel (see KServeServer.reconnect)."""
        old = self.client
        self.client = make_grpc_client(self.address, tls_config=self._tls_config)
        channel = getattr(old, "channel", None)
        if channel is not None:
            channel.close()

    def predict(self, payload: Payload) -> Outputs:
        if isinstance(payload, bytes):
            raise RequestRejected("encoded images need api: kserve")
        try:
            return self.client.predict(
                {self.model.input: payload}, self.model.name, self.model.version, timeout=self.timeout_s
            )
        except (InvalidInputError, ModelNotFoundError, BadResponseError) as exc:
            raise RequestRejected(f"{type(exc).__name__}: {exc}") from exc

    def metadata(self, timeout_s: float) -> dict[str, Any]:
        answer = self.client.get_model_metadata(self.model.name, self.model.version, timeout=timeout_s)

        def tensors(items: dict[str, Any]) -> dict[str, dict[str, Any]]:
            return {
                name: {"shape": list(info.get("shape", [])), "dtype": _DATATYPES.get(info.get("dtype"), "")}
                for name, info in items.items()
            }

        return {
            "model_version": answer.get("model_version"),
            "inputs": tensors(answer.get("inputs", {})),
            "outputs": tensors(answer.get("outputs", {})),
        }

    def not_served(self, exc: BaseException) -> bool:
        """ovmsclient reports every gRPC error it does not know as ConnectionError; the gRPC error
        it was raised from says UNIMPLEMENTED when the server has no TFS service."""
        cause = exc.__cause__ or exc.__context__
        return isinstance(cause, grpc.RpcError) and cause.code() == grpc.StatusCode.UNIMPLEMENTED

    def wait_for_metadata(self, stop: threading.Event, backoff: Backoff) -> dict[str, Any] | None:
        return wait_for_metadata(self, self.timeout_s, stop, backoff)
