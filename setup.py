"""The wheel's build hook: the Ansible collection and the image build files go in as package data.

pyproject.toml holds the project's metadata; this file only extends setuptools' `build_py` so that a
wheel (`pip wheel . --no-deps -w dist`, `python -m build --wheel`) carries, under `launcher/data/`:

- `ansible_collections/<namespace>/<name>/`: the collection of this repository (galaxy.yml), the files
  `ansible-galaxy collection build` packs (the list of galaxy.yml's manifest directives, processed
  with distlib as ansible-galaxy does) plus galaxy.yml itself (launcher/content.py finds the
  collection by it), less the documentation (WHEEL_OMITS);
- `images/<name>/`: the Dockerfile folders of the product's images (not the test double's: its image
  builds from a checkout only, launcher/images/specs.py).

Everything is copied into setuptools' build folder, never into the source tree; an editable install
(`pip install -e .`) copies nothing: the launcher then runs the checkout itself (launcher/content.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# top-level packages of the wheel (pyproject.toml's packages.find says the same)
PACKAGES = ("launcher", "client")
# the Dockerfile folders left out of the wheel
IMAGES_OMITTED = ("ovms-double",)
# in the collection tarball, not needed by the launcher
WHEEL_OMITS = ("docs/",)


def collection_files(root: Path) -> tuple[dict, list[str]]:
    """galaxy.yml's data and the collection's files (paths relative to `root`): the files its
    `manifest.directives` name, processed by distlib as `ansible-galaxy collection build` processes
    them, plus galaxy.yml (launcher/content.py finds the collection by it), less WHEEL_OMITS."""
    from distlib.manifest import Manifest

    galaxy = yaml.safe_load((root / "galaxy.yml").read_text(encoding="utf-8"))
    control = galaxy.get("manifest") or {}
    if not control.get("omit_default_directives") or not control.get("directives"):
        raise SystemExit(f"{root / 'galaxy.yml'}: manifest.directives must list the collection's files")
    manifest = Manifest(str(root))
    for directive in control["directives"]:
        manifest.process_directive(directive)
    files = sorted(
        rel
        for rel in (Path(path).relative_to(root).as_posix() for path in manifest.files)
        if not rel.startswith(WHEEL_OMITS)
    )
    return galaxy, ["galaxy.yml", *files]


class BuildWithCollection(build_py):
    """setuptools' build_py, then the collection and the image build files into the build folder."""

    def run(self) -> None:
        build_lib = Path(self.build_lib)
        if build_lib.resolve() != ROOT and not getattr(self, "editable_mode", False):
            # a build folder reused from an older layout may hold packages no longer shipped
            # (ovms_double, testbed): whatever is in it goes into the wheel
            for entry in build_lib.glob("*"):
                if entry.is_dir() and entry.name not in PACKAGES:
                    shutil.rmtree(entry)
        super().run()
        if getattr(self, "editable_mode", False):
            return
        data = build_lib / "launcher" / "data"
        if data.exists():
            shutil.rmtree(data)
        if not (ROOT / "galaxy.yml").is_file():
            # an sdist holds the Python packages only: build the wheel from the checkout
            raise SystemExit(f"{ROOT}: no galaxy.yml; build the wheel from a checkout (pip wheel .)")
        galaxy, files = collection_files(ROOT)
        collection = data / "ansible_collections" / galaxy["namespace"] / galaxy["name"]
        for rel in files:
            self._place(ROOT / rel, collection / rel)
        images = ROOT / "images"
        for folder in sorted(images.iterdir()):
            if not folder.is_dir() or folder.name in IMAGES_OMITTED:
                continue
            for path in sorted(folder.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                    self._place(path, data / "images" / path.relative_to(images))

    def _place(self, source: Path, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest)


setup(cmdclass={"build_py": BuildWithCollection})
