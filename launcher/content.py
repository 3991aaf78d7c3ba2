"""Where the launcher finds the Ansible collection it runs, and the content shipped with it.

The collection (galaxy.yml: roles/, playbooks/, plugins/, the profiles, the models manifest, the example
inventories, ansible.cfg) is found in one of two places:

- installed from the wheel: package data, `launcher/data/ansible_collections/NAMESPACE/NAME/`, a
  collections path of its own, with the image build files beside it in `launcher/data/images/`
  (setup.py puts both there when it builds the wheel);
- a source checkout (an editable install, the tests): the checkout's root is the collection, and
  `.ansible/collections/ansible_collections/NAMESPACE/NAME` links to it (the place ansible-lint uses
  too), made here when missing.

Ansible runs the collection's playbooks by path with ANSIBLE_COLLECTIONS_PATH set to
`collections_path` (the bundled community collections of the `ansible` package are found on sys.path).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from launcher.errors import LauncherError

PACKAGE_DATA = Path(__file__).resolve().parent / "data"
COLLECTIONS = "ansible_collections"


@dataclass(frozen=True)
class Content:
    """The collection's root, the collections path that holds it, and the checkout (if any)."""

    root: Path
    collections_path: Path
    checkout: Path | None = None

    @property
    def roles(self) -> Path:
        return self.root / "roles"

    @property
    def playbooks(self) -> Path:
        return self.root / "playbooks"

    @property
    def profiles(self) -> Path:
        return self.root / "profiles"

    @property
    def inventories(self) -> Path:
        return self.root / "inventories"

    @property
    def manifest(self) -> Path:
        return self.root / "models" / "manifest.yaml"

    @property
    def images(self) -> Path:
        """The image build files: `images/` of the checkout, or `launcher/data/images/` beside the
        packaged collection (they are not part of the collection: not in galaxy.yml's manifest)."""
        return (self.checkout or self.collections_path) / "images"

    @property
    def ansible_cfg(self) -> Path:
        return self.root / "ansible.cfg"

    @property
    def fqcn(self) -> str:
        """NAMESPACE.NAME, from galaxy.yml (a checkout) or the folder names (installed)."""
        if self.checkout is None:
            return f"{self.root.parent.name}.{self.root.name}"
        return _galaxy_fqcn(self.root)

    def playbook(self, action: str) -> Path:
        return self.playbooks / f"{action}.yml"


def _galaxy_fqcn(root: Path) -> str:
    import yaml

    path = root / "galaxy.yml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return f"{data['namespace']}.{data['name']}"
    except (OSError, yaml.YAMLError, TypeError, KeyError) as exc:
        raise LauncherError(
            f"cannot read the collection's namespace and name: {exc}", file=path, fix="restore it from git"
        ) from exc


def _packaged() -> Content | None:
    base = PACKAGE_DATA / COLLECTIONS
    if not base.is_dir():
        return None
    roots = sorted(p.parent for p in base.glob("*/*/galaxy.yml"))
    if len(roots) != 1:
        raise LauncherError(
            f"expected one collection in the package data, found {len(roots)}",
            file=base,
            fix="reinstall the ovms-launcher package",
        )
    return Content(root=roots[0], collections_path=PACKAGE_DATA)


def _checkout() -> Content | None:
    root = Path(__file__).resolve().parent.parent
    if not ((root / "galaxy.yml").is_file() and (root / "pyproject.toml").is_file()):
        return None
    namespace, name = _galaxy_fqcn(root).split(".", 1)
    collections_path = root / ".ansible" / "collections"
    ensure_link(collections_path / COLLECTIONS / namespace / name, root)
    return Content(root=root, collections_path=collections_path, checkout=root)


def ensure_link(link: Path, target: Path) -> None:
    """`link` -> `target` (a symbolic link, replaced atomically when it points elsewhere)."""
    try:
        if link.is_symlink() and link.resolve() == target.resolve():
            return
        link.parent.mkdir(parents=True, exist_ok=True)
        temporary = link.with_name(f".{link.name}.{os.getpid()}")
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(target, target_is_directory=True)
        temporary.replace(link)
    except OSError as exc:
        raise LauncherError(
            f"cannot link the collection into its collections path: {exc}",
            file=link,
            fix="make the checkout's .ansible folder writable, or remove what is at that path",
        ) from exc


@cache
def content() -> Content:
    """The collection the launcher runs: the installed package's data, else the checkout it runs from."""
    found = _packaged() or _checkout()
    if found is None:
        raise LauncherError(
            "the launcher's Ansible collection is missing",
            file=PACKAGE_DATA,
            fix="reinstall the ovms-launcher package (pip install ovms_launcher-*.whl)",
        )
    return found
