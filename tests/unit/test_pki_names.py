"""SAN parsing and typing, host names, durations."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest
from cryptography import x509

from launcher.pki.durations import format_duration, parse_duration
from launcher.pki.names import parse_san, san_text, typed_san, unique_sans, validate_host_name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("DNS:ovms.example.com", x509.DNSName("ovms.example.com")),
        ("dns:OVMS.Example.com.", x509.DNSName("ovms.example.com")),
        ("IP:192.0.2.10", x509.IPAddress(ipaddress.ip_address("192.0.2.10"))),
        ("IP:2001:db8::1", x509.IPAddress(ipaddress.ip_address("2001:db8::1"))),
    ],
)
def test_parse_san(text, expected):
    assert parse_san(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ovms.example.com", "must look like"),
        ("DNS:", "must look like"),
        ("URI:https://x", "unsupported SAN type"),
        ("IP:192.0.2.300", "not a valid IP address"),
        ("IP:ovms.example.com", "not a valid IP address"),
        ("DNS:bad name", "not a valid DNS name"),
        ("DNS:-leading.example", "not a valid DNS name"),
        ("DNS:" + "a" * 64 + ".example", "not a valid DNS name"),
        ("DNS:*.shop.example", "is a wildcard"),
        ("DNS:*", "is a wildcard"),
    ],
)
def test_parse_san_rejects(text, message):
    with pytest.raises(ValueError, match=message):
        parse_san(text)


def test_typed_san_picks_ip_or_dns():
    assert typed_san("192.0.2.10") == x509.IPAddress(ipaddress.ip_address("192.0.2.10"))
    assert typed_san("::1") == x509.IPAddress(ipaddress.ip_address("::1"))
    assert typed_san("ovms-1") == x509.DNSName("ovms-1")
    assert typed_san("192.0.2.10.nip.example") == x509.DNSName("192.0.2.10.nip.example")
    with pytest.raises(ValueError):
        typed_san("not a name")


def test_unique_sans_keeps_first_order():
    names = [parse_san("DNS:a"), parse_san("IP:192.0.2.1"), parse_san("DNS:A"), parse_san("DNS:b")]
    assert [san_text(n) for n in unique_sans(names)] == ["DNS:a", "IP:192.0.2.1", "DNS:b"]


@pytest.mark.parametrize("name", ["ovms-server-1", "cam-2", "192.0.2.10", "camera-client-2.example.com"])
def test_valid_host_names(name):
    assert validate_host_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "../x", "a/b", ".hidden", "x" * 65, "sp ace", "cam_2", "camera-1/../launcher", "-x"],
)
def test_invalid_host_names(name):
    with pytest.raises(ValueError):
        validate_host_name(name)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("2w", timedelta(weeks=2)),
        ("12h", timedelta(hours=12)),
        ("7", timedelta(days=7)),
    ],
)
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "d", "30m", "-1d", "1.5d", "thirty days"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_format_duration():
    assert format_duration(timedelta(days=30)) == "30d"
    assert format_duration(timedelta(hours=12)) == "12h"
