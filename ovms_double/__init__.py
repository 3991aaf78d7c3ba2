"""OVMS TEST DOUBLE — not OpenVINO Model Server.

A small Python server that honours the interface of OpenVINO Model Server (command line,
config.json, reload, TFS and KServe gRPC APIs, REST status endpoints) closely enough for the
project's tests, with real OpenVINO inference. See README.md for what it does and does not do.
Only relative imports are used so the package runs from any directory on PYTHONPATH.
"""

BANNER = "OVMS TEST DOUBLE — not OpenVINO Model Server (a Python stand-in for tests, see its README.md)"
