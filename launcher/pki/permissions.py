"""Private keys that group or others may access: found by `certs check`, fixed by `certs generate`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from launcher.pki.files import PRIVATE_FILE_MODE
from launcher.pki.layout import PkiLayout

_GROUP_OTHER = 0o077


def open_bits(path: Path) -> int | None:
    """The permission bits of a private key that group or others may access (None: owner only, or absent)."""
    try:
        bits = path.stat().st_mode & 0o777
    except FileNotFoundError:
        return None
    return bits if bits & _GROUP_OTHER else None


def key_mode_problem(path: Path, what: str = "private key") -> str | None:
    bits = open_bits(path)
    if bits is None:
        return None
    return (
        f"{what} readable by others (mode {bits:o}, {PRIVATE_FILE_MODE:o} wanted): "
        f"chmod {PRIVATE_FILE_MODE:o} {path}, or run `launcher certs generate`"
    )


@dataclass(frozen=True)
class ModeFix:
    path: Path
    was: int
    ca: bool

    def describe(self) -> str:
        replace = (
            "rotate the CA (`launcher certs rotate`, docs/pki.md)"
            if self.ca
            else "replace it: `launcher certs revoke HOST`, then `launcher certs generate` (docs/pki.md)"
        )
        mode = f"mode {self.was:o} -> {PRIVATE_FILE_MODE:o}"
        return f"{self.path}: {mode} (others could read it); if it may have been copied, {replace}"


def private_keys(layout: PkiLayout) -> list[tuple[Path, bool]]:
    """Every private key of the layout that exists, with True for the CA keys."""
    keys = [(layout.ca_key, True), (layout.previous_key, True)]
    keys += [(layout.leaf_key(kind, name), False) for kind, name in layout.existing_leaves()]
    return [(path, ca) for path, ca in keys if path.is_file()]


def fix_key_modes(layout: PkiLayout) -> list[ModeFix]:
    """chmod 600 every private key of the layout that group or others may access."""
    fixed = []
    for path, ca in private_keys(layout):
        bits = open_bits(path)
        if bits is not None:
            path.chmod(PRIVATE_FILE_MODE)
            fixed.append(ModeFix(path, bits, ca))
    return fixed
