"""Ansible module ovms_probe: a remote OVMS's models and metrics through its mTLS proxy, read from the
controller (the status of roles/ovms_server in remote mode)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ovms_probe
short_description: Read a remote OpenVINO Model Server's models and metrics through its mTLS proxy
description:
  - Dials the server's mTLS proxy (roles/ovms_tls_proxy) with a client certificate; the role
    ovms_server passes the controller's own one (clients/launcher/ of the certificates folder,
    issued by C(launcher certs generate -i INV)).
  - Asks KServe v2 gRPC ModelMetadata for each model (the versions it serves are reported AVAILABLE),
    which proves each model answers over mTLS, and reads C(https://ADDRESS/metrics) once, or twice
    O(metrics_interval) seconds apart (the proxy passes only that path of the REST API).
  - A server that cannot be reached, refuses the certificate or does not serve a model is not a failure
    of the task; it is reported in RV(errors) by model name (V(*) when the certificate files are
    missing) and RV(metrics_error). A missing Python library on the controller or bad arguments fail it.
  - Changes nothing; runs in check mode. Run it on the controller (C(delegate_to) V(localhost)).
requirements:
  - tritonclient[grpc] (the KServe gRPC client)
  - requests
options:
  address:
    description: HOST:PORT of the server's mTLS proxy (its gRPC TLS port, which also serves /metrics).
    type: str
    required: true
  ca_path:
    description: The CA bundle that signed the server's certificate.
    type: path
    required: true
  client_cert:
    description: The client certificate presented to the proxy.
    type: path
    required: true
  client_key:
    description: Its private key.
    type: path
    required: true
  models:
    description: Names of the models to ask for.
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds per request.
    type: float
    default: 5.0
  metrics_interval:
    description: Seconds between the two reads of /metrics; 0 reads it once; a negative value not at all.
    type: float
    default: 0.0
notes:
  - The status play turns the two reads into rates with the filter C(ovms.edge.ovms_metrics_summary).
author: ovms-launcher developers (@ovms-launcher)
"""

EXAMPLES = r"""
- name: Ask the server for its model states and metrics through the mTLS proxy
  ovms.edge.ovms_probe:
    address: "edge-1.example.com:9443"
    ca_path: "{{ ovms_tls_certs_dir }}/ca-bundle.pem"
    client_cert: "{{ ovms_tls_certs_dir }}/clients/launcher/client.pem"
    client_key: "{{ ovms_tls_certs_dir }}/clients/launcher/client.key"
    models: [person-detection]
    metrics_interval: 2
  delegate_to: localhost
  register: probe
"""

RETURN = r"""
models:
  description: Model name -> {version -> state} of the models that answered.
  type: dict
  returned: always
  sample: {"person-detection": {"1": "AVAILABLE"}}
errors:
  description: Model name -> why it did not answer (V(*) when the certificate files are missing).
  type: dict
  returned: always
  sample: {"missing-model": "InferenceServerException: [StatusCode.NOT_FOUND] Model missing-model not found"}
metrics:
  description: The reads of /metrics that succeeded, each {t (monotonic seconds), text (Prometheus text)}.
  type: list
  elements: dict
  returned: always
metrics_error:
  description: Why /metrics could not be read (absent when it was).
  type: str
  returned: when /metrics could not be read
"""

import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    import requests
except ImportError:
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None

try:
    import tritonclient.grpc as grpcclient
except ImportError:
    HAS_TRITONCLIENT = False
    TRITONCLIENT_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_TRITONCLIENT = True
    TRITONCLIENT_IMPORT_ERROR = None

StatusCall = Callable[[str], dict[Any, dict[str, Any]]]
MISSING_FIX = "run `launcher certs generate -i INV` (it issues the controller's client certificate)"


def _one_line(exc: BaseException, limit: int | None = None) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:limit] if limit else text}"


def model_states(models: Sequence[str], get_status: StatusCall) -> dict[str, Any]:
    """{"models": {name: {version: state}}, "errors": {name: message}} from one status call per model."""
    states: dict[str, dict[str, str]] = {}
    errors: dict[str, str] = {}
    for name in models:
        try:
            answer = get_status(name)
        except Exception as exc:  # tritonclient raises InferenceServerException; TLS/connection errors too
            errors[name] = _one_line(exc)
            continue
        states[name] = {str(version): str(body.get("state", "UNKNOWN")) for version, body in answer.items()}
    return {"models": states, "errors": errors}


def kserve_status_call(address: str, ca: Path, cert: Path, key: Path, timeout: float) -> StatusCall:
    """One KServe v2 ModelMetadata call per model over mTLS: the versions it serves are AVAILABLE."""
    client = grpcclient.InferenceServerClient(
        url=address, ssl=True, root_certificates=str(ca), private_key=str(key), certificate_chain=str(cert)
    )

    def call(name: str) -> dict[Any, dict[str, Any]]:
        metadata = client.get_model_metadata(name, client_timeout=timeout)
        return {version: {"state": "AVAILABLE"} for version in metadata.versions}

    return call


def read_metrics(
    address: str, ca: Path, cert: Path, key: Path, timeout: float, interval: float
) -> tuple[list[dict[str, Any]], str | None]:
    """Reads of https://ADDRESS/metrics `interval` seconds apart: two, one when it is 0, none below."""
    samples: list[dict[str, Any]] = []
    reads = 2 if interval > 0 else (1 if interval == 0 else 0)
    for index in range(reads):
        if index:
            time.sleep(interval)
        try:
            reply = requests.get(
                f"https://{address}/metrics", cert=(str(cert), str(key)), verify=str(ca), timeout=timeout
            )
        except requests.RequestException as exc:
            return samples, _one_line(exc, 300)
        if reply.status_code != 200:
            return samples, f"HTTP {reply.status_code}: {reply.text[:200]}"
        samples.append({"t": time.monotonic(), "text": reply.text})
    return samples, None


def probe(
    address: str,
    ca: Path,
    cert: Path,
    key: Path,
    models: Sequence[str],
    timeout: float = 5.0,
    interval: float = 0.0,
) -> dict[str, Any]:
    """What the module returns (without `changed`): models, errors, metrics and maybe metrics_error."""
    missing = [str(p) for p in (ca, cert, key) if not p.is_file()]
    if missing:
        return {"models": {}, "errors": {"*": f"missing {', '.join(missing)}; {MISSING_FIX}"}, "metrics": []}
    try:
        call = kserve_status_call(address, ca, cert, key, timeout)
    except Exception as exc:  # e.g. unreadable certificate files: every model is unanswered for it
        result: dict[str, Any] = {"models": {}, "errors": {name: _one_line(exc) for name in models}}
    else:
        result = model_states(models, call)
    samples, error = read_metrics(address, ca, cert, key, timeout, interval)
    result["metrics"] = samples
    if error is not None:
        result["metrics_error"] = error
    return result


ARGUMENT_SPEC: dict[str, Any] = {
    "address": {"type": "str", "required": True},
    "ca_path": {"type": "path", "required": True},
    "client_cert": {"type": "path", "required": True},
    "client_key": {"type": "path", "required": True, "no_log": False},
    "models": {"type": "list", "elements": "str", "default": []},
    "timeout": {"type": "float", "default": 5.0},
    "metrics_interval": {"type": "float", "default": 0.0},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    for present, library, error in (
        (HAS_TRITONCLIENT, "tritonclient[grpc]", TRITONCLIENT_IMPORT_ERROR),
        (HAS_REQUESTS, "requests", REQUESTS_IMPORT_ERROR),
    ):
        if not present:
            module.fail_json(
                msg=f"{missing_required_lib(library, reason='to read the server through its mTLS proxy')} "
                f"Fix: install the collection's Python requirements (requirements.txt of ovms.edge, e.g. "
                f"`pip install '{library}'`) into the Python that runs Ansible on the controller.",
                exception=error,
            )
    params = module.params
    if params["timeout"] <= 0:
        module.fail_json(msg=f"timeout must be a positive number of seconds, got {params['timeout']}")
    result = probe(
        params["address"],
        Path(params["ca_path"]),
        Path(params["client_cert"]),
        Path(params["client_key"]),
        params["models"],
        params["timeout"],
        params["metrics_interval"],
    )
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
