"""`certs check`: the report, its JSON form and its exit code."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from launcher.cli import main
from launcher.pki import GenerateOptions, Kind, PkiLayout, check, generate
from launcher.pki.plan import client_spec, server_spec
from testbed.paths import PROJECT_ROOT

SPECS = [server_spec("srv", ["192.0.2.10"], ["DNS:ovms.example.com"]), client_spec("cam-1")]


def run(*args: str):
    return CliRunner().invoke(main, ["certs", *args], env={"COLUMNS": "220"})


def problems(report, name: str) -> list[str]:
    return next(r.problems for r in report.rows if r.name == name)


@pytest.fixture
def layout(tmp_path: Path) -> PkiLayout:
    layout = PkiLayout(tmp_path / "certs")
    generate(layout, SPECS)
    return layout


def test_example_inventory_generate_then_check(tmp_path):
    """Acceptance: generate, then check on inventories/example-remote exits 0 and shows every host."""
    inventory = str(PROJECT_ROOT / "inventories" / "example-remote")
    directory = str(tmp_path / "certs")
    generated = run("generate", "--dir", directory, "-i", inventory)
    assert generated.exit_code == 0, generated.output
    checked = run("check", "--dir", directory, "-i", inventory, "--json")
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.output)
    assert report["ok"] is True
    leaves = {(c["kind"], c["name"]): c for c in report["certificates"] if c["kind"] in {"server", "client"}}
    assert set(leaves) == {
        ("server", "ovms-server-1"),
        ("client", "camera-client-1"),
        ("client", "camera-client-2"),
        ("client", "launcher"),  # the controller's own client certificate (launcher status)
    }
    assert leaves[("server", "ovms-server-1")]["sans"] == [
        "DNS:ovms-server-1",
        "IP:192.0.2.10",
        "DNS:ovms.example.com",
    ]
    for row in leaves.values():
        assert row["key_match"] is True and row["chain_valid"] is True and row["revoked"] is False
        # server certificates are short-lived (launcher deploy renews them), client ones are not
        assert row["days_left"] >= (29 if row["kind"] == "server" else 824)
        assert "ovms-launcher CA" in row["issuer"]
    table = run("check", "--dir", directory, "-i", inventory)
    assert table.exit_code == 0
    for name in ("ovms-server-1", "camera-client-1", "camera-client-2"):
        assert name in table.output
    assert "all certificates ok" in table.output


def test_report_rows(layout):
    report = check(layout)
    assert report.ok
    assert [(r.kind, r.name) for r in report.rows] == [
        ("ca", "ca"),
        ("crl", "ca/crl.pem"),
        ("trust", "ca-bundle.pem"),
        ("trust", "crl.pem"),
        ("server", "srv"),
        ("client", "cam-1"),
    ]


def test_expiring_within_window_fails(tmp_path):
    layout = PkiLayout(tmp_path / "certs")
    generate(layout, SPECS, GenerateOptions(days=20))
    report = check(layout)
    assert not report.ok
    assert any("within the renewal window" in p for p in problems(report, "cam-1"))
    assert check(layout, renew_within=timedelta(days=7)).ok
    result = run("check", "--dir", str(layout.root))
    assert result.exit_code == 1 and "problems found" in result.output
    assert run("check", "--dir", str(layout.root), "--renew-within", "7d").exit_code == 0


def test_expired_fails(layout):
    report = check(layout, now=datetime.now(UTC) + timedelta(days=900))
    assert any(p.startswith("expired on") for p in problems(report, "srv"))
    assert check(layout, now=datetime.now(UTC) + timedelta(days=900)).rows[4].chain_valid is False


def test_inventory_mismatch_and_missing_hosts(layout):
    wanted = [server_spec("srv", ["192.0.2.99"], []), client_spec("cam-1"), client_spec("cam-2")]
    report = check(layout, wanted)
    assert not report.ok
    assert any("SANs differ" in p and "IP:192.0.2.99" in p for p in problems(report, "srv"))
    assert problems(report, "cam-2") == ["certificate missing"]
    assert problems(report, "cam-1") == []
    only_server = check(layout, SPECS[:1])
    cam = next(r for r in only_server.rows if r.name == "cam-1")
    assert cam.ok and "not in the inventory" in cam.notes


def test_key_mismatch_and_permissions(layout):
    other = PkiLayout(layout.root.parent / "other")
    generate(other, [client_spec("cam-1")])
    shutil.copy(other.leaf_key(Kind.CLIENT, "cam-1"), layout.leaf_key(Kind.CLIENT, "cam-1"))
    layout.leaf_key(Kind.SERVER, "srv").chmod(0o644)
    report = check(layout)
    cam = next(r for r in report.rows if r.name == "cam-1")
    assert cam.key_match is False and "private key does not match the certificate" in cam.problems
    assert any("readable by others" in p for p in problems(report, "srv"))


def test_certificate_from_another_ca(layout):
    other = PkiLayout(layout.root.parent / "other")
    generate(other, [client_spec("cam-1")])
    for source in (other.leaf_cert(Kind.CLIENT, "cam-1"), other.leaf_key(Kind.CLIENT, "cam-1")):
        shutil.copy(source, layout.leaf_dir(Kind.CLIENT, "cam-1"))
    cam = next(r for r in check(layout).rows if r.name == "cam-1")
    assert cam.chain_valid is False and cam.key_match is True
    assert "not issued by a trusted CA" in cam.problems


def test_stale_trust_files_and_crl(layout):
    layout.bundle.write_text("")
    layout.crl.unlink()
    report = check(layout)
    assert problems(report, "ca-bundle.pem") == ["out of date: run `launcher certs generate`"]
    assert problems(report, "crl.pem") == ["missing: run `launcher certs generate`"]
    generate(layout, SPECS)
    assert check(layout).ok
    crl_end = check(layout).rows[1].days_left
    assert crl_end is not None
    late = check(layout, now=datetime.now(UTC) + timedelta(days=crl_end - 5))
    assert any("CRL expires" in p for p in problems(late, "ca/crl.pem"))


def test_empty_directory(tmp_path):
    result = run("check", "--dir", str(tmp_path / "none"), "--json")
    assert result.exit_code == 1
    assert json.loads(result.output)["certificates"][0]["problems"] == [
        "no CA: run `launcher certs generate`"
    ]


def test_ca_key_readable_by_others_is_a_problem(layout):
    layout.ca_key.chmod(0o644)
    ca = next(r for r in check(layout).rows if r.kind == "ca")
    assert ca.problems == [
        f"CA key readable by others (mode 644, 600 wanted): chmod 600 {layout.ca_key}, "
        "or run `launcher certs generate`"
    ]
    result = run("check", "--dir", str(layout.root), "--json")
    assert result.exit_code == 1
    assert json.loads(result.output)["ok"] is False
    layout.ca_key.chmod(0o600)
    assert run("check", "--dir", str(layout.root)).exit_code == 0


def test_leaf_key_mode_problem_names_the_fix(layout):
    key = layout.leaf_key(Kind.CLIENT, "cam-1")
    key.chmod(0o640)
    assert problems(check(layout), "cam-1") == [
        f"private key readable by others (mode 640, 600 wanted): chmod 600 {key}, "
        "or run `launcher certs generate`"
    ]


def test_server_certificates_have_their_own_window(tmp_path):
    layout = PkiLayout(tmp_path / "certs")
    now = datetime.now(UTC)
    generate(layout, SPECS, now=now)
    # The server certificate lives 30 days: with 25 left it is inside the 30-day client window but
    # outside its own 10-day window; with 5 left it is inside its own.
    assert check(layout, now=now + timedelta(days=5)).ok
    late = check(layout, now=now + timedelta(days=25))
    assert any("within the renewal window" in p for p in problems(late, "srv"))
    assert problems(late, "cam-1") == []
    directory = str(layout.root)
    assert run("check", "--dir", directory, "--server-renew-within", "31d").exit_code == 1
    assert run("check", "--dir", directory).exit_code == 0
