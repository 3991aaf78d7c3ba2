"""Runs on a harness host inside the client image: one gRPC GetModelStatus call through the server's
mTLS port with the given files, printed as one JSON line. Exit 0 either way; the test judges.

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
    from ovmsclient import make_grpc_client

    tls = {"server_cert_path": args.ca}
    if args.cert:
        tls |= {"client_cert_path": args.cert, "client_key_path": args.key}
    try:
        client = make_grpc_client(args.address, tls_config=tls)
        status = client.get_model_status(model_name=args.model, timeout=10.0)
    except Exception as exc:  # the test wants to see which error a refused client gets
        print(json.dumps({"ok": False, "error": type(exc).__name__, "message": str(exc)[:500]}))
        return 0
    states = {str(version): info.get("state") for version, info in status.items()}
    print(json.dumps({"ok": True, "states": states}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
