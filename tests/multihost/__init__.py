"""The multi-host tests: fixtures (conftest.py) and tests on the harness of testbed/ (docs/testing.md)."""
