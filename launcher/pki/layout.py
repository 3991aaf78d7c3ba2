"""The file layout of the certificates folder (see certs/README.md) and what each host receives.

The names are the roles': `ovms_common_pki_layout` in roles/ovms_common/defaults/main.yml, read here
(as launcher/validate/safety.py reads the system folders), and what a host receives is the filter
`pki_host_files` of plugins/filter/ovms_common.py, which the roles apply too."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

from launcher import paths
from launcher.common_defaults import common_default

LAYOUT_VAR = "ovms_common_pki_layout"

CERTS_DIR_ENV = paths.CERTS_DIR_ENV


class Kind(StrEnum):
    SERVER = "server"
    CLIENT = "client"


@cache
def role_layout() -> Mapping[str, Any]:
    """`ovms_common_pki_layout` of roles/ovms_common/defaults/main.yml (plain names, no templates)."""
    layout = common_default(LAYOUT_VAR)
    assert isinstance(layout, dict) and {"server", "client"} <= set(layout["leaves"]), LAYOUT_VAR
    return layout


def controller_client() -> str:
    """The name of the controller's own client certificate (`launcher status` reads remote servers
    with it): `controller` of the roles' layout."""
    return str(role_layout()["controller"])


def default_certs_dir() -> Path:
    """`$OVMS_LAUNCHER_CERTS_DIR`, else `certs/` of the checkout, else the user's data folder
    (the rule lives in launcher.paths)."""
    return paths.default_certs_dir()


@dataclass(frozen=True)
class PkiLayout:
    root: Path

    # --- certificate authorities (controller only) ---
    @property
    def ca_dir(self) -> Path:
        return self.root / role_layout()["ca_dir"]

    @property
    def ca_cert(self) -> Path:
        return self.ca_dir / role_layout()["ca_cert"]

    @property
    def ca_key(self) -> Path:
        return self.ca_dir / role_layout()["ca_key"]

    @property
    def ca_crl(self) -> Path:
        return self.ca_dir / role_layout()["ca_crl"]

    @property
    def previous_dir(self) -> Path:
        """The CA being rotated out; present only during a rotation overlap."""
        return self.ca_dir / role_layout()["previous_dir"]

    @property
    def previous_cert(self) -> Path:
        return self.previous_dir / role_layout()["ca_cert"]

    @property
    def previous_key(self) -> Path:
        return self.previous_dir / role_layout()["ca_key"]

    @property
    def previous_crl(self) -> Path:
        return self.previous_dir / role_layout()["ca_crl"]

    @property
    def retired_dir(self) -> Path:
        """Certificates (never keys) of CAs whose rotation finished, for the record."""
        return self.ca_dir / role_layout()["retired_dir"]

    # --- what hosts receive ---
    @property
    def crl(self) -> Path:
        """One CRL per trusted CA, concatenated: servers load it (nginx `ssl_crl`)."""
        return self.root / role_layout()["crl"]

    @property
    def bundle(self) -> Path:
        """Trusted CA certificates: the current CA, plus the previous one during a rotation."""
        return self.root / role_layout()["bundle"]

    def kind_dir(self, kind: Kind) -> Path:
        return self.root / kind_folder(kind)

    def leaf_dir(self, kind: Kind, name: str) -> Path:
        return self.kind_dir(kind) / name

    def leaf_cert(self, kind: Kind, name: str) -> Path:
        return self.leaf_dir(kind, name) / role_layout()["leaves"][kind.value]["cert"]

    def leaf_key(self, kind: Kind, name: str) -> Path:
        return self.leaf_dir(kind, name) / role_layout()["leaves"][kind.value]["key"]

    @property
    def revoked_dir(self) -> Path:
        """Revoked leaf certificates moved out of the active layout (`revoked/<kind>s/<host>-<serial>/`)."""
        return self.root / role_layout()["revoked_dir"]

    def existing_leaves(self) -> list[tuple[Kind, str]]:
        """Every `servers/<host>/` and `clients/<host>/` directory, sorted."""
        found: list[tuple[Kind, str]] = []
        for kind in Kind:
            base = self.kind_dir(kind)
            if base.is_dir():
                found.extend((kind, p.name) for p in sorted(base.iterdir()) if p.is_dir())
        return found

    def host_files(self, kind: Kind, name: str) -> dict[str, Path]:
        """The only files a host of this kind needs, by the name they get on the host, exactly as the
        roles copy them (the filter `ovms_pki_host_files` of plugins/filter/ovms_common.py).

        Servers: their certificate and key, the CA bundle (to verify clients) and the CRL.
        Clients: their certificate and key and the CA bundle (to verify the server).
        The CA key is never part of it.
        """
        from launcher.validate import common_role  # the validate package imports this module

        files = common_role.filters().pki_host_files(role_layout(), str(self.root), kind.value, name)
        return {host_name: Path(source) for host_name, source in files.items()}


def kind_folder(kind: Kind) -> str:
    """The folder of a kind's leaves, relative to the certificates folder (`servers`, `clients`)."""
    return str(role_layout()["leaves"][kind.value]["dir"])
