"""KServe ModelMetadata through the scenario's proxy: `grpc_status.py ADDRESS CA [CERT KEY]`.

Prints `ok <versions>` and exits 0 when the server answered, else `refused <error>` and exits 3.
Without CERT and KEY it dials with TLS but no client certificate (the proxy must refuse it).
"""

import sys

import tritonclient.grpc as grpcclient

address, ca, *pair = sys.argv[1:]
cert, key = pair if pair else (None, None)
try:
    client = grpcclient.InferenceServerClient(
        url=address, ssl=True, root_certificates=ca, private_key=key, certificate_chain=cert
    )
    metadata = client.get_model_metadata("person-detection", client_timeout=5)
except Exception as exc:  # INTERNAL (HTTP 400 from nginx) or a TLS failure
    print(f"refused {type(exc).__name__}: {' '.join(str(exc).split())}")
    sys.exit(3)
print(f"ok {dict.fromkeys(metadata.versions, 'AVAILABLE')}")
