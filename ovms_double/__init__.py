"""OVMS TEST DOUBLE — not OpenVINO Model Server.

A small Python server that honours the interface of OpenVINO Model Server (command line,
config.json, reload, KServe gRPC and REST APIs, metrics; the TFS API when it emulates a release
before 2026.3) closely enough for the project's tests, with real OpenVINO inference. See README.md
for what it does and does not do, and release.py for the release it emulates.
Only relative imports are used so the package runs from any directory on PYTHONPATH.
"""

BANNER = "OVMS TEST DOUBLE — not OpenVINO Model Server (a Python stand-in for tests, see its README.md)"
