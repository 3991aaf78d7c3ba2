"""Shared pytest fixtures. Each section names its owner; keep additions small and additive."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

# --- OVMS server double (owner: double helper) ---------------------------------------------------
from double_harness import DoubleFactory

import launcher  # noqa: F401  (before any test module imports grpc: it turns gRPC's fork handlers off)


@pytest.fixture
def ovms_double() -> Iterator[DoubleFactory]:
    """Factory: `ovms_double(repo, *flags)` starts the OVMS double on a model repository holding
    config.json and returns a server with `.grpc_address`, `.rest_url`, `.container`, `.network`,
    `.stop()`, `.start()`, `.logs()`. Runs the `ovms-launcher/ovms-double:dev` container on a labelled
    private network; with OVMS_DOUBLE_LOCAL=1 a local subprocess instead (development only).
    Everything it started is removed at teardown."""
    factory = DoubleFactory()
    try:
        yield factory
    finally:
        factory.close()
