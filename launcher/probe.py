"""Model reachability and metrics of a remote OVMS through its mTLS proxy, for `launcher status` (controller).

`python -m launcher.probe --address HOST:PORT --ca CA --cert CERT --key KEY --model NAME ...
[--metrics-interval S]` prints one JSON object:
`{"models": {name: {version: state}}, "errors": {name: message}, "metrics": [{"t": …, "text": …}, …]}`.
It dials the proxy's TLS port with the controller's own client certificate (`certs/clients/launcher/`,
issued by `launcher certs generate -i INV`): KServe v2 gRPC ModelMetadata per model (the versions a
server serves are AVAILABLE; `launcher status` takes every version's state from /v1/config on the
server's host and uses this call to prove each model answers over mTLS), and two reads of
`/metrics` S seconds apart, which the proxy passes to OVMS's REST port (nothing else of that API).
The role turns the two reads into rates (`ovms_metrics_summary`). Exit status: 0 when every model
answered, 1 otherwise (the JSON still says what was found).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

StatusCall = Callable[[str], dict[Any, dict[str, Any]]]


def model_states(models: Sequence[str], get_status: StatusCall) -> dict[str, Any]:
    """{"models": {name: {version: state}}, "errors": {name: message}} from one status call per model."""
    states: dict[str, dict[str, str]] = {}
    errors: dict[str, str] = {}
    for name in models:
        try:
            answer = get_status(name)
        except Exception as exc:  # tritonclient raises InferenceServerException; TLS/connection errors too
            errors[name] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            continue
        states[name] = {str(version): str(body.get("state", "UNKNOWN")) for version, body in answer.items()}
    return {"models": states, "errors": errors}


def _kserve_status_call(address: str, ca: Path, cert: Path, key: Path, timeout: float) -> StatusCall:
    import tritonclient.grpc as grpcclient

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
    """Two reads of https://ADDRESS/metrics `interval` seconds apart (one when interval is 0)."""
    import requests

    samples: list[dict[str, Any]] = []
    for index in range(2 if interval > 0 else 1):
        if index:
            time.sleep(interval)
        try:
            reply = requests.get(
                f"https://{address}/metrics", cert=(str(cert), str(key)), verify=str(ca), timeout=timeout
            )
        except requests.RequestException as exc:
            return samples, f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        if reply.status_code != 200:
            return samples, f"HTTP {reply.status_code}: {reply.text[:200]}"
        samples.append({"t": time.monotonic(), "text": reply.text})
    return samples, None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m launcher.probe", description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True, help="HOST:PORT of the server's TLS port")
    parser.add_argument("--ca", required=True, type=Path, help="CA bundle that signed the server certificate")
    parser.add_argument("--cert", required=True, type=Path, help="controller client certificate")
    parser.add_argument("--key", required=True, type=Path, help="its private key")
    parser.add_argument("--model", action="append", default=[], help="model name (repeatable)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per request")
    parser.add_argument(
        "--metrics-interval", type=float, default=0.0, help="seconds between two reads of /metrics (0: one)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [str(p) for p in (args.ca, args.cert, args.key) if not p.is_file()]
    if missing:
        fix = "run `launcher certs generate -i INV` (it issues the client certificate `launcher`)"
        result: dict[str, Any] = {"models": {}, "errors": {"*": f"missing {', '.join(missing)}; {fix}"}}
    else:
        call = _kserve_status_call(args.address, args.ca, args.cert, args.key, args.timeout)
        result = model_states(args.model, call)
        samples, error = read_metrics(
            args.address, args.ca, args.cert, args.key, args.timeout, args.metrics_interval
        )
        result["metrics"] = samples
        if error is not None:
            result["metrics_error"] = error
    print(json.dumps(result, sort_keys=True))
    return 0 if not result["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
