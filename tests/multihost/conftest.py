"""Fixtures of the multi-host tests: one harness of three hosts per session, images loaded once.

Every test under tests/multihost/ is marked `multihost` here, so `pytest -m multihost` runs exactly
them and `-m "not multihost"` skips the harness entirely.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from launcher.paths import cache_dir
from testbed.dockerutil import engine_available, image_exists
from testbed.harness import Harness
from testbed.hostimage import BASE_IMAGE

N_HOSTS = 3
# The topology: one server, two clients, each on its own host.
LAYOUT = {"ovms_servers": ["host1"], "ovms_clients": ["host2", "host3"]}
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
    """Three hosts (host1 server, host2 and host3 clients) with the images each needs loaded through
    the archive path. Torn down at the end of the session, also when a test failed."""
    if not engine_available():
        pytest.fail("no Docker engine answers: run scripts/ensure-docker.sh")
    if not image_exists(BASE_IMAGE):
        pytest.fail(f"{BASE_IMAGE} is missing: run `launcher images build` (it builds the offline base)")
    harness = Harness(N_HOSTS)
    try:
        harness.start()
        harness.load_images(multihost_archive_dir, LAYOUT)
        yield harness
    finally:
        harness.close()
