"""The launcher as an ordinary package: the wheel holds the product (`launcher`, `client`) and, as package
data, the collection and the product's image build files; installed into a fresh virtual environment
outside the checkout, it validates and deploys the localhost setup with the collection it ships, and
keeps its run artifacts and PKI in the user's folders (launcher/paths.py).

One wheel and one virtual environment for the module; one deployment (the test double as the server,
named after a tag of its own by testbed.isolation, so a deployment already on the machine is never
touched), destroyed even when the test fails. The models come from the launcher's real cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from launcher.paths import cache_dir
from testbed.dockerutil import docker
from testbed.isolation import write_isolation
from testbed.paths import PROJECT_ROOT

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.collection, pytest.mark.timeout(1500)]

DOUBLE = "ovms-launcher/ovms-double:dev"
# what setup.py leaves out of the collection that `ansible-galaxy collection build` packs
WHEEL_OMITS = ("docs/",)
# the variables that would point an installed launcher at other folders than the user's
FOLDER_VARIABLES = (
    "OVMS_LAUNCHER_RUNS",
    "OVMS_LAUNCHER_RUNS_DIR",
    "OVMS_LAUNCHER_CERTS_DIR",
    "XDG_DATA_HOME",
    "XDG_STATE_HOME",
    "XDG_CONFIG_HOME",
    "PYTHONPATH",
)


def _run(args: list[str], timeout: float = 600, **kwargs: object) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    assert proc.returncode == 0, (
        f"{' '.join(args)}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc


def build_wheel(out: Path) -> Path:
    """`pip wheel . --no-deps` of the checkout into `out`: the one ovms_launcher wheel."""
    _run(
        [sys.executable, "-m", "pip", "wheel", str(PROJECT_ROOT), "--no-deps", "-q", "-w", str(out)], cwd=out
    )
    (wheel,) = out.glob("ovms_launcher-*-py3-none-any.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    start = time.monotonic()
    built = build_wheel(tmp_path_factory.mktemp("dist"))
    print(f"wheel built in {time.monotonic() - start:.1f}s: {built.name} ({built.stat().st_size} bytes)")
    return built


def test_the_wheel_holds_the_product_and_the_collection(wheel: Path, tmp_path: Path):
    names = zipfile.ZipFile(wheel).namelist()
    version = yaml.safe_load((PROJECT_ROOT / "galaxy.yml").read_text())["version"]
    assert wheel.name == f"ovms_launcher-{version}-py3-none-any.whl"
    assert {n.split("/")[0] for n in names} == {"launcher", "client", f"ovms_launcher-{version}.dist-info"}
    assert not [n for n in names if "molecule" in n.split("/") or n.startswith(("ovms_double", "testbed"))]
    assert "launcher/cli.py" in names and "client/__main__.py" in names

    # the collection: what `ansible-galaxy collection build` packs, galaxy.yml, less the documentation
    prefix = "launcher/data/ansible_collections/ovms/edge/"
    packed = {n.removeprefix(prefix) for n in names if n.startswith(prefix)}
    galaxy = Path(sys.executable).parent / "ansible-galaxy"
    _run(
        [str(galaxy), "collection", "build", "--output-path", str(tmp_path), str(PROJECT_ROOT)], cwd=tmp_path
    )
    (tarball,) = tmp_path.glob("ovms-edge-*.tar.gz")
    with tarfile.open(tarball) as archive:
        built = {m.name for m in archive.getmembers() if m.isfile()} - {"MANIFEST.json", "FILES.json"}
    expected = {n for n in built if not n.startswith(WHEEL_OMITS)} | {"galaxy.yml"}
    assert packed == expected, (sorted(packed - expected), sorted(expected - packed))
    for needed in ("playbooks/deploy.yml", "models/manifest.yaml", "inventories/localhost/hosts.yml"):
        assert needed in packed
    assert any(n.startswith("profiles/person-detection/") for n in packed)

    # the product's image build files beside it; not the double's (it builds from a checkout only)
    images = {n.split("/")[3] for n in names if n.startswith("launcher/data/images/")}
    shipped = {p.name for p in (PROJECT_ROOT / "images").iterdir() if p.is_dir()} - {"ovms-double"}
    assert images == shipped


@dataclass
class Installed:
    venv: Path
    home: Path
    cwd: Path
    install_seconds: float

    @property
    def launcher(self) -> Path:
        return self.venv / "bin" / "launcher"

    @property
    def collection(self) -> Path:
        site = (
            self.venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
        )
        return site / "launcher" / "data" / "ansible_collections" / "ovms" / "edge"

    def env(self) -> dict[str, str]:
        """A user whose home is a scratch folder, the real model cache, nothing of the checkout."""
        env = {k: v for k, v in os.environ.items() if k not in FOLDER_VARIABLES}
        return {**env, "HOME": str(self.home), "OVMS_LAUNCHER_CACHE": str(cache_dir()), "COLUMNS": "200"}

    def run(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.launcher), *args],
            capture_output=True, text=True, timeout=timeout, cwd=self.cwd, env=self.env(), check=False,
        )  # fmt: skip


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("installed")
    assert PROJECT_ROOT not in root.parents
    venv = root / "venv"
    start = time.monotonic()
    _run([sys.executable, "-m", "venv", str(venv)])
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], timeout=1200, cwd=root)
    took = time.monotonic() - start
    print(f"fresh venv + pip install of the wheel: {took:.1f}s")
    (root / "home").mkdir()
    (root / "work").mkdir()
    return Installed(venv, root / "home", root / "work", took)


def _summary(proc: subprocess.CompletedProcess) -> dict:
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            obj = json.loads(line)
            if "hosts" in obj:
                return obj
    raise AssertionError(f"no JSON summary in output:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


@pytest.fixture
def deployment(installed: Installed) -> Iterator[tuple[str, list[str]]]:
    tag = f"ovms-wheel-{uuid.uuid4().hex[:6]}"
    data = installed.home / "deploy-data"
    override = write_isolation(installed.home / "override", tag, data, ovms_server_image=DOUBLE)
    inventory = ["-i", str(installed.collection / "inventories" / "localhost"), "-i", str(override)]
    try:
        yield tag, inventory
    finally:
        installed.run("destroy", *inventory, "--yes")
        for name in docker("ps", "-aq", "--filter", f"name={tag}", check=False).stdout.split():
            docker("rm", "-f", name, check=False)
        docker("network", "rm", tag, check=False)


def test_an_installed_launcher_validates_and_deploys_outside_the_checkout(installed, deployment):
    tag, inventory = deployment
    # the collection it runs is its package data, not this checkout
    where = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-c", "from launcher.content import content; c = content(); "
         "print(c.root, c.checkout)"],
        capture_output=True, text=True, cwd=installed.cwd, env=installed.env(), check=True,
    ).stdout.split()  # fmt: skip
    assert where == [str(installed.collection), "None"]

    # no inventory: the packaged localhost inventory
    valid = installed.run("validate")
    assert valid.returncode == 0, valid.stdout[-3000:] + valid.stderr[-3000:]
    assert "localhost" in valid.stdout

    start = time.monotonic()
    deployed = installed.run("deploy", *inventory, "--json")
    print(f"deploy from the installed launcher: {time.monotonic() - start:.1f}s")
    assert deployed.returncode == 0, deployed.stdout[-4000:] + deployed.stderr[-4000:]
    host = _summary(deployed)["hosts"][0]
    assert host["models"]["person-detection"]["1"] == "AVAILABLE"
    assert {c["name"] for c in host["containers"]} == {f"{tag}-server", f"{tag}-client-person-detection-1"}

    # run artifacts in the user's state folder; the PKI folder the roles were given: the user's data folder
    runs = installed.home / ".local" / "state" / "ovms-launcher" / "runs"
    (run,) = [p for p in runs.iterdir() if p.name.endswith("-deploy")]
    envvars = yaml.safe_load((run / "env" / "envvars").read_text())
    assert envvars["OVMS_LAUNCHER_CERTS_DIR"] == str(
        installed.home / ".local" / "share" / "ovms-launcher" / "certs"
    )
    assert envvars["ANSIBLE_COLLECTIONS_PATH"] == str(installed.collection.parent.parent.parent)
    assert not (PROJECT_ROOT / "runs" / run.name).exists()

    gone = installed.run("destroy", *inventory, "--yes")
    assert gone.returncode == 0, gone.stdout[-3000:] + gone.stderr[-3000:]
    assert docker("ps", "-aq", "--filter", f"name={tag}", check=False).stdout.split() == []


def test_an_installed_launcher_leaves_the_double_out_of_its_images(installed):
    refused = installed.run("images", "build", "ovms-double")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "only from a source checkout" in refused.stderr
