"""Runs on a harness host inside the client image: one KServe ModelMetadata call through the server's
mTLS port with the given files (tritonclient, as the client does), printed as one JSON line. Exit 0
either way; the test judges.

    python tls_probe.py ADDRESS MODEL --ca CA [--cert CERT --key KEY]
"""

from __future__ import annotations

import argparse
import json
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("model")
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args()
    import tritonclient.grpc as grpcclient

    try:
        client = grpcclient.InferenceServerClient(
            url=args.address,
            ssl=True,
            root_certificates=args.ca,
            private_key=args.key,
            certificate_chain=args.cert,
        )
        metadata = client.get_model_metadata(args.model, client_timeout=10.0)
    except Exception as exc:  # the test wants to see which error a refused client gets
        status = getattr(exc, "status", lambda: None)()
        failure = {"ok": False, "error": type(exc).__name__, "status": status, "message": str(exc)[:500]}
        print(json.dumps(failure))
        return 0
    print(json.dumps({"ok": True, "states": {version: "AVAILABLE" for version in metadata.versions}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
