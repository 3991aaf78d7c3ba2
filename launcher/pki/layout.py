"""The documented file layout under certs/ (see certs/README.md) and what each host receives."""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from launcher.content import content

CERTS_DIR_ENV = "OVMS_LAUNCHER_CERTS_DIR"


class Kind(StrEnum):
    SERVER = "server"
    CLIENT = "client"


def default_certs_dir() -> Path:
    """`$OVMS_LAUNCHER_CERTS_DIR`, else `certs/` in the project checkout."""
    env = os.environ.get(CERTS_DIR_ENV)
    return Path(env).expanduser() if env else content().root / "certs"


@dataclass(frozen=True)
class PkiLayout:
    root: Path

    # --- certificate authorities (controller only) ---
    @property
    def ca_dir(self) -> Path:
        return self.root / "ca"

    @property
    def ca_cert(self) -> Path:
        return self.ca_dir / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.ca_dir / "ca.key"

    @property
    def ca_crl(self) -> Path:
        return self.ca_dir / "crl.pem"

    @property
    def previous_dir(self) -> Path:
        """The CA being rotated out; present only during a rotation overlap."""
        return self.ca_dir / "previous"

    @property
    def previous_cert(self) -> Path:
        return self.previous_dir / "ca.pem"

    @property
    def previous_key(self) -> Path:
        return self.previous_dir / "ca.key"

    @property
    def previous_crl(self) -> Path:
        return self.previous_dir / "crl.pem"

    @property
    def retired_dir(self) -> Path:
        """Certificates (never keys) of CAs whose rotation finished, for the record."""
        return self.ca_dir / "retired"

    # --- what hosts receive ---
    @property
    def crl(self) -> Path:
        """One CRL per trusted CA, concatenated: servers load it (nginx `ssl_crl`)."""
        return self.root / "crl.pem"

    @property
    def bundle(self) -> Path:
        """Trusted CA certificates: the current CA, plus the previous one during a rotation."""
        return self.root / "ca-bundle.pem"

    def kind_dir(self, kind: Kind) -> Path:
        return self.root / f"{kind.value}s"

    def leaf_dir(self, kind: Kind, name: str) -> Path:
        return self.kind_dir(kind) / name

    def leaf_cert(self, kind: Kind, name: str) -> Path:
        return self.leaf_dir(kind, name) / f"{kind.value}.pem"

    def leaf_key(self, kind: Kind, name: str) -> Path:
        return self.leaf_dir(kind, name) / f"{kind.value}.key"

    @property
    def revoked_dir(self) -> Path:
        """Revoked leaf certificates moved out of the active layout (`revoked/<kind>s/<host>-<serial>/`)."""
        return self.root / "revoked"

    def existing_leaves(self) -> list[tuple[Kind, str]]:
        """Every `servers/<host>/` and `clients/<host>/` directory, sorted."""
        found: list[tuple[Kind, str]] = []
        for kind in Kind:
            base = self.kind_dir(kind)
            if base.is_dir():
                found.extend((kind, p.name) for p in sorted(base.iterdir()) if p.is_dir())
        return found

    def host_files(self, kind: Kind, name: str) -> dict[str, Path]:
        """The only files a host of this kind needs, by the name they get on the host.

        Servers: their certificate and key, the CA bundle (to verify clients) and the CRL.
        Clients: their certificate and key and the CA bundle (to verify the server).
        The CA key is never part of it.
        """
        files = {
            f"{kind.value}.pem": self.leaf_cert(kind, name),
            f"{kind.value}.key": self.leaf_key(kind, name),
            "ca-bundle.pem": self.bundle,
        }
        if kind is Kind.SERVER:
            files["crl.pem"] = self.crl
        return files
