"""The model server through ovmsclient gRPC: connect (TLS when configured), wait, check metadata."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np
from ovmsclient import make_grpc_client

from .backoff import Backoff
from .decoders import Decoder, check_outputs
from .errors import ModelMismatchError
from .profile import ModelSpec
from .settings import Deployment

log = logging.getLogger("client.server")

DTYPES = {"uint8": "DT_UINT8", "float32": "DT_FLOAT"}

Outputs = Mapping[str, np.ndarray] | np.ndarray


class InferenceServer(Protocol):
    """What the streams need from whatever runs the model (ModelServer, or an in-process stand-in)."""

    address: str

    def predict(self, tensor: np.ndarray) -> Outputs: ...

    def wait_for_metadata(self, stop: threading.Event, backoff: Backoff) -> dict[str, Any] | None: ...

    def reconnect(self) -> None: ...


ServerFactory = Callable[[Deployment, ModelSpec, float], InferenceServer]


class ModelServer:
    """One gRPC channel, shared by every stream and worker thread (gRPC stubs are thread-safe)."""

    def __init__(self, deployment: Deployment, model: ModelSpec, timeout_s: float) -> None:
        self.address = deployment.address
        self.model = model
        self.timeout_s = timeout_s
        self._tls_config = deployment.tls
        self.tls = deployment.tls is not None
        self.client = make_grpc_client(deployment.address, tls_config=deployment.tls)

    def reconnect(self) -> None:
        """A fresh channel. gRPC's own reconnect backoff grows to minutes during a long outage and
        fails requests fast meanwhile; a new channel dials at once, so a returning server is used
        within our (much shorter) retry delay. Called only while the server is unreachable."""
        old = self.client
        self.client = make_grpc_client(self.address, tls_config=self._tls_config)
        channel = getattr(old, "channel", None)
        if channel is not None:
            channel.close()

    def predict(self, tensor: np.ndarray) -> Outputs:
        return self.client.predict(
            {self.model.input: tensor}, self.model.name, self.model.version, timeout=self.timeout_s
        )

    def wait_for_metadata(self, stop: threading.Event, backoff: Backoff) -> dict[str, Any] | None:
        """Ask for the model's metadata until the server answers; None when told to stop first."""
        started = time.monotonic()
        last_log = -1e9
        while not stop.is_set():
            try:
                metadata = self.client.get_model_metadata(
                    self.model.name, self.model.version, timeout=min(self.timeout_s, 5.0)
                )
            except (ConnectionError, TimeoutError, Exception) as exc:
                waited = time.monotonic() - started
                if waited - last_log >= 5.0:
                    last_log = waited
                    detail = str(exc).replace("Error occurred during handling the request: ", "")
                    log.warning(
                        "waiting for model %r version %s at %s (%s: %s)",
                        self.model.name,
                        self.model.version or "latest",
                        self.address,
                        type(exc).__name__,
                        detail[:160],
                    )
                if stop.wait(backoff.next_delay()):
                    break
                self.reconnect()
                continue
            backoff.reset()
            log.info(
                "server %s answers for model %r version %s (%s)",
                self.address,
                self.model.name,
                metadata.get("model_version"),
                "TLS" if self.tls else "plaintext",
            )
            return metadata
        return None


def check_metadata(metadata: Mapping[str, Any], model: ModelSpec, decoder: Decoder) -> dict[str, str]:
    """Compare the server's view of the model with the profile's; return the resolved output names."""
    inputs: Mapping[str, Any] = metadata.get("inputs", {})
    where = f"model {model.name!r} version {metadata.get('model_version', model.version)}"
    if model.input not in inputs:
        raise ModelMismatchError(
            f"the profile sends input {model.input!r}, the server's {where} has inputs {sorted(inputs)}",
            key="model.input",
        )
    info = inputs[model.input]
    width, height = model.size.width, model.size.height
    expected = [1, 3, height, width] if model.layout == "NCHW" else [1, height, width, 3]
    served = list(info.get("shape", []))
    shape_ok = len(served) == len(expected) and all(
        s in (-1, e) for s, e in zip(served, expected, strict=True)
    )
    dtype_ok = info.get("dtype") == DTYPES[model.dtype]
    if not (shape_ok and dtype_ok):
        raise ModelMismatchError(
            f"the profile sends {expected} {DTYPES[model.dtype]} ({model.layout}) to {model.input!r}, "
            f"the server's {where} expects {served} {info.get('dtype')}",
            key="model.size" if not shape_ok else "model.dtype",
            fix="make model.size, layout and dtype match the served model, or serve the profile's model",
        )
    return check_outputs(decoder, metadata.get("outputs", {}), model.name)
