"""Fixtures of the multi-host tests: one harness of three hosts per session, images loaded once.

Every test under tests/multihost/ is marked `multihost` here, so `pytest -m multihost` runs exactly
them and `-m "not multihost"` skips the harness entirely.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from launcher.inventory import load_groups
from launcher.paths import cache_dir
from testbed.dockerutil import engine_available, image_exists
from testbed.harness import Harness
from testbed.hostimage import BASE_IMAGE

N_HOSTS = 3
GROUPS = load_groups()
# The topology: one server, two clients, each on its own host.
LAYOUT = {GROUPS["servers"]: ["host1"], GROUPS["clients"]: ["host2", "host3"]}
# The same with the camera simulator on host3: a camera on one host, the client reading it (host2) on a
# second, the server on a third (test_remote_e2e.py). The images are loaded for this layout.
CAMERA_LAYOUT = {**LAYOUT, GROUPS["cameras"]: ["host3"]}
# The same with Prometheus on host3 (test_remote_e2e.py enables the monitoring on every host): the
# images are loaded for this layout, monitoring's included.
MONITORING_LAYOUT = {**CAMERA_LAYOUT, GROUPS["monitoring"]: ["host3"]}
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.multihost)


@pytest.fixture(scope="session")
def multihost_archive_dir() -> Path:
    """Controller folder of the image archives (`launcher images save`); kept between sessions, so an
    unchanged image is not saved again."""
    return cache_dir() / "multihost" / "images"


@pytest.fixture(scope="session")
def multihost(multihost_archive_dir: Path) -> Iterator[Harness]:
    """Three hosts (host1 server, host2 and host3 clients, host3 the camera and Prometheus) with the
    images each needs loaded through the archive path. Torn down at the end of the session, also when a
    test failed."""
    if not engine_available():
        pytest.fail("no Docker engine answers: run scripts/ensure-docker.sh")
    if not image_exists(BASE_IMAGE):
        pytest.fail(f"{BASE_IMAGE} is missing: run `launcher images build` (it builds the offline base)")
    harness = Harness(N_HOSTS)
    try:
        harness.start()
        harness.load_images(multihost_archive_dir, MONITORING_LAYOUT, monitoring=True)
        yield harness
    finally:
        harness.close()
