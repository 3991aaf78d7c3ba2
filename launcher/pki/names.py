"""Subject alternative names and host names: parsing `DNS:x` / `IP:y`, typing bare values correctly."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from cryptography import x509

SanName = x509.DNSName | x509.IPAddress


def validate_host_name(name: str) -> str:
    """A host name usable as a certificate CN and as a directory name of the PKI: the host rule of
    roles/ovms_common/meta/rules.yml (a DNS name), which validate and every role apply too; raises
    ValueError otherwise."""
    from launcher.validate.rules import engine, ruleset

    problems = engine().evaluate(ruleset().definitions["host_name"], name, engine().Context({}, {}))
    if problems:
        raise ValueError(f"host name {name!r} {problems[0][1]}")
    return name


def dns_name(value: str) -> x509.DNSName:
    """A `DNS:` subject alternative name: a host name (the same rule), never a wildcard."""
    value = value.strip()
    if value.startswith("*"):
        raise ValueError(
            f"{value!r} is a wildcard: a certificate for every name of a domain would let any host of it "
            "pass as this server; list each name the server is dialled by"
        )
    try:
        validate_host_name(value.rstrip("."))
    except ValueError:
        raise ValueError(f"{value!r} is not a valid DNS name") from None
    return x509.DNSName(value.rstrip(".").lower())


def ip_name(value: str) -> x509.IPAddress:
    try:
        return x509.IPAddress(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise ValueError(f"{value!r} is not a valid IP address") from None


def typed_san(value: str) -> SanName:
    """A bare address as it appears in an inventory: an IP address when it parses as one, else DNS."""
    try:
        return ip_name(value)
    except ValueError:
        return dns_name(value)


def parse_san(text: str) -> SanName:
    """`DNS:name` or `IP:address` (prefix case-insensitive); raises ValueError for anything else."""
    kind, sep, value = text.partition(":")
    if not sep or not value:
        raise ValueError(f"{text!r} must look like 'DNS:name' or 'IP:address'")
    kind = kind.strip().upper()
    if kind == "DNS":
        return dns_name(value)
    if kind in {"IP", "IP ADDRESS"}:
        return ip_name(value)
    raise ValueError(f"{text!r}: unsupported SAN type {kind!r} (use DNS or IP)")


def san_text(name: x509.GeneralName) -> str:
    if isinstance(name, x509.DNSName):
        return f"DNS:{name.value}"
    if isinstance(name, x509.IPAddress):
        return f"IP:{name.value}"
    return f"{type(name).__name__}:{name.value}"


def unique_sans(names: Iterable[SanName]) -> tuple[SanName, ...]:
    """Deduplicate while keeping the first occurrence's position."""
    seen: dict[str, SanName] = {}
    for name in names:
        seen.setdefault(san_text(name), name)
    return tuple(seen.values())


def san_set(names: Iterable[x509.GeneralName]) -> frozenset[str]:
    return frozenset(san_text(n) for n in names)
