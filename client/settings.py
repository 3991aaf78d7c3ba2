"""What the deployment sets in the environment: server address, TLS files, results directory, the
camera credentials file, the model files folder, the metrics port."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import ClientError

_ADDRESS = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})$")
ENVIRONMENT = "environment"


@dataclass(frozen=True)
class TlsFiles:
    """The CA that signed the server certificate, and this client's certificate and key (mTLS)."""

    ca: str
    cert: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class Deployment:
    address: str
    tls: TlsFiles | None
    results_dir: Path
    # OVMS_CAMERA_CREDENTIALS: the JSON file of camera credentials (client/credentials.py)
    camera_credentials: Path | None = None
    # OVMS_MODEL_FILES_DIR: files prepared beside the models (a recogniser's characters), laid out
    # <model>/<version>/<file>; the deployment mounts them read-only at /model-files
    model_files_dir: Path = Path("/model-files")
    # OVMS_METRICS_PORT: the port the Prometheus metrics are served on (0.0.0.0); None: not served
    metrics_port: int | None = None


def deployment_from_env(environ: Mapping[str, str]) -> Deployment:
    address = environ.get("OVMS_ADDRESS", "").strip()
    if not address:
        raise ClientError(
            "not set",
            file=ENVIRONMENT,
            key="OVMS_ADDRESS",
            fix="set OVMS_ADDRESS=host:port (the server's gRPC port); the deployment sets it",
        )
    match = _ADDRESS.match(address)
    if not match or not 0 < int(match.group(1)) < 65536:
        raise ClientError(
            f"expected host:port with a port between 1 and 65535, got {address!r}",
            file=ENVIRONMENT,
            key="OVMS_ADDRESS",
        )
    results = environ.get("OVMS_RESULTS_DIR", "").strip() or "results"
    model_files = environ.get("OVMS_MODEL_FILES_DIR", "").strip() or "/model-files"
    return Deployment(
        address,
        _tls(environ),
        Path(results),
        _camera_credentials(environ),
        Path(model_files),
        _metrics_port(environ),
    )


def _metrics_port(environ: Mapping[str, str]) -> int | None:
    text = environ.get("OVMS_METRICS_PORT", "").strip()
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or not 0 < int(text) < 65536:
        raise ClientError(
            f"expected a port between 1 and 65535, got {text!r}",
            file=ENVIRONMENT,
            key="OVMS_METRICS_PORT",
            fix="set OVMS_METRICS_PORT to the port the metrics are served on (the deployment sets "
            "ovms_client_metrics_port), or leave it empty to serve none",
        )
    return int(text)


def _camera_credentials(environ: Mapping[str, str]) -> Path | None:
    path = environ.get("OVMS_CAMERA_CREDENTIALS", "").strip()
    if not path:
        return None
    if not Path(path).is_file():
        raise ClientError(
            f"file {path} does not exist or is not a file",
            file=ENVIRONMENT,
            key="OVMS_CAMERA_CREDENTIALS",
            fix="mount the camera credentials file the deployment writes, or unset the variable",
        )
    return Path(path)


def _tls(environ: Mapping[str, str]) -> TlsFiles | None:
    ca, cert, key = (environ.get(v, "").strip() for v in ("OVMS_TLS_CA", "OVMS_TLS_CERT", "OVMS_TLS_KEY"))
    if not (ca or cert or key):
        return None
    if not ca:
        raise ClientError(
            "required when OVMS_TLS_CERT or OVMS_TLS_KEY is set (the CA that signed the server certificate)",
            file=ENVIRONMENT,
            key="OVMS_TLS_CA",
        )
    if bool(cert) != bool(key):
        missing = "OVMS_TLS_KEY" if cert else "OVMS_TLS_CERT"
        raise ClientError("the client certificate and its key go together", file=ENVIRONMENT, key=missing)
    for variable, path in (("OVMS_TLS_CA", ca), ("OVMS_TLS_CERT", cert), ("OVMS_TLS_KEY", key)):
        if path and not Path(path).is_file():
            raise ClientError(
                f"file {path} does not exist or is not readable", file=ENVIRONMENT, key=variable
            )
    return TlsFiles(ca, cert or None, key or None)
