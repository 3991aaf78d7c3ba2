"""GetModelStatus through the scenario's proxy: `grpc_status.py ADDRESS CA [CERT KEY]`.

Prints `ok <states>` and exits 0 when the server answered, else `refused <error>` and exits 3.
Without CERT and KEY it dials with TLS but no client certificate (the proxy must refuse it).
"""

import sys

from ovmsclient import make_grpc_client

address, ca, *pair = sys.argv[1:]
tls = {"server_cert_path": ca}
if pair:
    tls.update(client_cert_path=pair[0], client_key_path=pair[1])
try:
    status = make_grpc_client(address, tls_config=tls).get_model_status("person-detection", timeout=5)
except Exception as exc:  # ConnectionError (HTTP 400 from nginx) or a TLS failure
    print(f"refused {type(exc).__name__}: {' '.join(str(exc).split())}")
    sys.exit(3)
print(f"ok {status}")
