"""Private keys: ECDSA P-256 by default, RSA 3072 as an option."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class KeyType(StrEnum):
    ECDSA_P256 = "ecdsa-p256"
    RSA_3072 = "rsa3072"


DEFAULT_KEY_TYPE = KeyType.ECDSA_P256


def generate_key(key_type: KeyType) -> PrivateKey:
    if key_type is KeyType.RSA_3072:
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    return ec.generate_private_key(ec.SECP256R1())


def key_type_of(public_key: object) -> KeyType | None:
    """The KeyType of a public or private key, None for anything this PKI does not issue."""
    if isinstance(public_key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return KeyType.ECDSA_P256 if isinstance(public_key.curve, ec.SECP256R1) else None
    if isinstance(public_key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return KeyType.RSA_3072 if public_key.key_size == 3072 else None
    return None


def private_key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key(path: Path) -> PrivateKey:
    """Raises ValueError (unparsable, encrypted or unsupported key) or OSError (unreadable)."""
    return parse_private_key(path.read_bytes())


def parse_private_key(data: bytes) -> PrivateKey:
    """A PEM private key; ValueError when it is unparsable, encrypted or of a type this PKI does not use."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:  # encrypted key
        raise ValueError(f"encrypted private keys are not supported: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"unsupported private key type {type(key).__name__}")
    return key


def key_matches(cert: x509.Certificate, key: PrivateKey) -> bool:
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert.public_key().public_bytes(*fmt) == key.public_key().public_bytes(*fmt)
