"""Model states of a remote OVMS through its mTLS proxy, for `launcher status` (run on the controller).

`python -m launcher.probe --address HOST:PORT --ca CA --cert CERT --key KEY --model NAME ...` prints one
JSON object: `{"models": {name: {version: state}}, "errors": {name: message}}`. It dials the proxy's
gRPC TLS port with the controller's own client certificate (`certs/clients/launcher/`, issued by
`launcher certs generate -i INV`) and asks TF-Serving's GetModelStatus for every model. Exit status:
0 when every model answered, 1 otherwise (the JSON still says what was found).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

StatusCall = Callable[[str], dict[Any, dict[str, Any]]]


def model_states(models: Sequence[str], get_status: StatusCall) -> dict[str, Any]:
    """{"models": {name: {version: state}}, "errors": {name: message}} from GetModelStatus per model."""
    states: dict[str, dict[str, str]] = {}
    errors: dict[str, str] = {}
    for name in models:
        try:
            answer = get_status(name)
        except Exception as exc:  # ovmsclient raises built-in ConnectionError/TimeoutError and its own
            errors[name] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            continue
        states[name] = {str(version): str(body.get("state", "UNKNOWN")) for version, body in answer.items()}
    return {"models": states, "errors": errors}


def _grpc_status_call(address: str, ca: Path, cert: Path, key: Path, timeout: float) -> StatusCall:
    from ovmsclient import make_grpc_client

    client = make_grpc_client(
        address,
        tls_config={
            "server_cert_path": str(ca),
            "client_cert_path": str(cert),
            "client_key_path": str(key),
        },
    )

    def call(name: str) -> dict[Any, dict[str, Any]]:
        return client.get_model_status(model_name=name, timeout=timeout)

    return call


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m launcher.probe", description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True, help="HOST:PORT of the server's gRPC TLS port")
    parser.add_argument("--ca", required=True, type=Path, help="CA bundle that signed the server certificate")
    parser.add_argument("--cert", required=True, type=Path, help="controller client certificate")
    parser.add_argument("--key", required=True, type=Path, help="its private key")
    parser.add_argument("--model", action="append", default=[], help="model name (repeatable)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per request")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [str(p) for p in (args.ca, args.cert, args.key) if not p.is_file()]
    if missing:
        fix = "run `launcher certs generate -i INV` (it issues the client certificate `launcher`)"
        result: dict[str, Any] = {"models": {}, "errors": {"*": f"missing {', '.join(missing)}; {fix}"}}
    else:
        call = _grpc_status_call(args.address, args.ca, args.cert, args.key, args.timeout)
        result = model_states(args.model, call)
    print(json.dumps(result, sort_keys=True))
    return 0 if not result["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
