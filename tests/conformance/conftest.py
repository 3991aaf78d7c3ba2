"""Conformance suite fixtures: shared servers per session, the double in its container by default.

`target`: the server of today's API (the double emulates the current OVMS release; or an operator's
real OVMS with OVMS_CONFORMANCE_TARGET / OVMS_CONFORMANCE_REST), driven with tritonclient (KServe).
`tfs_target`: a server of a release before 2026.3, for the TensorFlow Serving API through ovmsclient
(the double with OVMS_DOUBLE_RELEASE; or OVMS_CONFORMANCE_TFS_TARGET / OVMS_CONFORMANCE_TFS_REST;
skipped when an external target has none)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ovmsclient
import pytest
import tritonclient.grpc as grpcclient
from conformance_support import (
    FACE,
    PERSON,
    TFS_RELEASE,
    external_target,
    external_tfs_target,
    model_entry,
    write_config,
)
from double_harness import DoubleFactory, DoubleServer, copy_model, local_mode

REWRITES_CONFIG = "rewrites_config"
OWN_SERVER = "own_server"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{REWRITES_CONFIG}: rewrites config.json or the model repository of a server it starts; "
        "skipped when the suite targets an external OVMS",
    )
    config.addinivalue_line(
        "markers",
        f"{OWN_SERVER}: starts its own server to check start-up behaviour (flags, exit codes, user); "
        "skipped when the suite targets an external OVMS",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here not in Path(str(item.fspath)).parents:
            continue
        if external_target() is not None and REWRITES_CONFIG in item.keywords:
            item.add_marker(
                pytest.mark.skip(reason="needs to rewrite config.json: not possible on an external OVMS")
            )
        if external_target() is not None and OWN_SERVER in item.keywords:
            item.add_marker(
                pytest.mark.skip(reason="starts its own server: not applicable to an external OVMS")
            )
        if not local_mode() and external_target() is None:
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def prepared_models() -> dict[str, Path]:
    """Version directories of the project's prepared models (launcher.models, idempotent)."""
    from launcher.models import prepare_models

    return {m.name: m.path for m in prepare_models(names=[PERSON, FACE])}


def build_repository(factory: DoubleFactory, prepared: dict[str, Path], names: list[str]) -> Path:
    """A test-owned repository: copies of the prepared models plus a config.json serving `names`."""
    repo = factory.new_repository()
    for name, path in prepared.items():
        copy_model(path, repo, name, 1)
    write_config(repo, [model_entry(name, name) for name in names])
    return repo


@pytest.fixture
def make_repository(ovms_double: DoubleFactory, prepared_models: dict[str, Path]):
    """make_repository(names) -> a fresh test-owned repository serving `names` (removed at teardown)."""

    def make(names: list[str]) -> Path:
        return build_repository(ovms_double, prepared_models, names)

    return make


@dataclass
class Target:
    grpc_address: str
    rest_url: str
    server: DoubleServer | None  # None for an external OVMS

    def kserve(self) -> grpcclient.InferenceServerClient:
        return grpcclient.InferenceServerClient(self.grpc_address)

    def tfs(self) -> object:
        return ovmsclient.make_grpc_client(self.grpc_address)


def _double_target(request: pytest.FixtureRequest, env: dict[str, str] | None = None) -> Iterator[Target]:
    """The double serving person-detection and face-detection, with metrics on."""
    prepared = request.getfixturevalue("prepared_models")
    factory = DoubleFactory()
    try:
        repo = build_repository(factory, prepared, [PERSON, FACE])
        server = factory(repo, "--metrics_enable", env=env)
        yield Target(server.grpc_address, server.rest_url, server)
    finally:
        factory.close()


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """The server of today's API the read-only conformance tests talk to."""
    external = external_target()
    if external is not None:
        yield Target(external[0], external[1], None)
        return
    yield from _double_target(request)


@pytest.fixture(scope="session")
def tfs_target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """A server that still serves the TensorFlow Serving API (a release before 2026.3)."""
    external = external_tfs_target()
    if external is not None:
        yield Target(external[0], external[1], None)
        return
    if external_target() is not None:
        pytest.skip(
            "the external target's release serves no TFS API: set OVMS_CONFORMANCE_TFS_TARGET for one"
        )
    yield from _double_target(request, {"OVMS_DOUBLE_RELEASE": TFS_RELEASE})


@pytest.fixture(scope="session")
def client(tfs_target: Target) -> object:
    """ovmsclient (TFS gRPC) on the TFS target."""
    return tfs_target.tfs()


@pytest.fixture(scope="session")
def kserve(target: Target) -> Iterator[grpcclient.InferenceServerClient]:
    """tritonclient (KServe v2 gRPC) on the target."""
    client = target.kserve()
    yield client
    client.close()
