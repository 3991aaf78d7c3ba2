"""The model server behind one API (KServe v2 or TFS gRPC): connect (TLS when configured), wait for
the model, check its metadata against the profile, and the errors the streams must tell apart.

Every API adapter gives metadata in one form: `{"model_version", "inputs": {name: {"shape",
"dtype"}}, "outputs": {...}}` with KServe datatype names (UINT8, FP32, ...) and -1 for dynamic
dimensions. A request the server refuses raises `RequestRejected` (the frame fails, the server is
up); anything else means the server is unreachable or overloaded."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from .backoff import Backoff
from .decoders import Decoder, check_outputs
from .errors import ApiNotServed, ModelMismatchError
from .preprocess import Payload
from .profile import ModelSpec, Profile, Stage
from .settings import Deployment

log = logging.getLogger("client.server")

# the profile's dtype -> the KServe datatype the server reports for it
DATATYPES = {"uint8": "UINT8", "float32": "FP32"}

Outputs = Mapping[str, np.ndarray] | np.ndarray


class InferenceServer(Protocol):
    """What the streams need from whatever runs the model (an API adapter, or an in-process stand-in)."""

    address: str

    def predict(self, payload: Payload) -> Outputs: ...

    def wait_for_metadata(self, stop: threading.Event, backoff: Backoff) -> dict[str, Any] | None: ...

    def reconnect(self) -> None: ...


# (deployment, profile, stage) -> what answers that stage's requests
ServerFactory = Callable[[Deployment, Profile, Stage], InferenceServer]


class ApiClient(Protocol):
    """One API's calls, as the shared waiting loop below uses them."""

    address: str
    model: ModelSpec
    tls: bool
    api_name: str
    # why a server that does not serve this API might be like that, and what to do
    not_served_hint: tuple[str, str]

    def metadata(self, timeout_s: float) -> dict[str, Any]: ...

    def reconnect(self) -> None: ...

    def not_served(self, exc: BaseException) -> bool: ...


def wait_for_metadata(
    client: ApiClient, timeout_s: float, stop: threading.Event, backoff: Backoff
) -> dict[str, Any] | None:
    """Ask for the model's metadata until the server answers; None when told to stop first. A server
    that does not serve the profile's API at all is a configuration error, not something to wait for."""
    started = time.monotonic()
    last_log = -1e9
    model = client.model
    while not stop.is_set():
        try:
            metadata = client.metadata(min(timeout_s, 5.0))
        except Exception as exc:
            if client.not_served(exc):
                why, fix = client.not_served_hint
                raise ApiNotServed(
                    f"the server at {client.address} does not serve the {client.api_name} API ({why})",
                    key="api",
                    fix=fix,
                ) from exc
            waited = time.monotonic() - started
            if waited - last_log >= 5.0:
                last_log = waited
                detail = str(exc).replace("Error occurred during handling the request: ", "")
                log.warning(
                    "waiting for model %r version %s at %s (%s: %s)",
                    model.name,
                    model.version or "latest",
                    client.address,
                    type(exc).__name__,
                    detail[:160],
                )
            if stop.wait(backoff.next_delay()):
                break
            client.reconnect()
            continue
        backoff.reset()
        log.info(
            "server %s answers for model %r version %s over %s (%s)",
            client.address,
            model.name,
            metadata.get("model_version"),
            client.api_name,
            "TLS" if client.tls else "plaintext",
        )
        return metadata
    return None


def make_server(deployment: Deployment, profile: Profile, stage: Stage | None = None) -> InferenceServer:
    """The adapter of the profile's API for one stage's model (the first stage's by default); each
    imports its client library only when chosen."""
    if profile.api == "tfs":
        from .tfs import TfsServer

        return TfsServer(deployment, profile, stage)
    from .kserve import KServeServer

    return KServeServer(deployment, profile, stage)


def check_metadata(metadata: Mapping[str, Any], model: ModelSpec, decoder: Decoder) -> dict[str, str]:
    """Compare the server's view of the model with the profile's; return the resolved output names.
    (Encoded images decode into 3-channel NHWC: the profile's NHWC shape check covers them too.)"""
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
    dtype_ok = info.get("dtype") == DATATYPES[model.dtype]
    if not (shape_ok and dtype_ok):
        raise ModelMismatchError(
            f"the profile sends {expected} {DATATYPES[model.dtype]} ({model.layout}) to {model.input!r}, "
            f"the server's {where} expects {served} {info.get('dtype')}",
            key="model.size" if not shape_ok else "model.dtype",
            fix="make model.size, layout and dtype match the served model, or serve the profile's model",
        )
    return check_outputs(decoder, metadata.get("outputs", {}), model.name)
