"""The harness's SSH key pair: ed25519, generated per harness run into a private temp folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass(frozen=True)
class KeyPair:
    private_key: Path
    public_key: Path

    @property
    def public_line(self) -> str:
        """The `ssh-ed25519 AAAA… comment` line hosts put in authorized_keys."""
        return self.public_key.read_text(encoding="ascii").strip()


def generate_key_pair(folder: Path, comment: str = "ovms-launcher-multihost") -> KeyPair:
    """Write `id_ed25519` (mode 0600, OpenSSH format, no passphrase) and `id_ed25519.pub` to folder."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    private = folder / "id_ed25519"
    private.touch(mode=0o600)
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )
    public_bytes = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    public = folder / "id_ed25519.pub"
    public.write_text(f"{public_bytes.decode('ascii')} {comment}\n", encoding="ascii")
    return KeyPair(private, public)
