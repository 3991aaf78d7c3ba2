"""Short-lived server certificates: their lifetime, their renewal window, and renewal by `launcher deploy`."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509

from launcher.cli import main
from launcher.pki import GenerateOptions, Kind, PkiLayout, check, generate
from launcher.pki import files as pki_files
from launcher.pki.deploy_renewal import renew_before_deploy
from launcher.pki.inspection import leaf_sans
from launcher.pki.keys import key_matches, load_private_key
from launcher.pki.plan import client_spec, server_spec
from launcher.pki.renew import due_server_certificates, renew_server_certificates
from testbed.paths import PROJECT_ROOT

deploy_module = importlib.import_module("launcher.commands.deploy")

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
EXAMPLE = PROJECT_ROOT / "inventories" / "example-remote"
SPECS = [server_spec("srv", ["192.0.2.10"], ["DNS:ovms.example.com"]), client_spec("cam-1")]


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def state(root: Path) -> dict[str, tuple[bytes, int]]:
    """Bytes and mtime of every file, the lock file aside."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture
def layout(tmp_path: Path) -> PkiLayout:
    layout = PkiLayout(tmp_path / "certs")
    generate(layout, SPECS, now=NOW)
    return layout


def test_server_certificates_are_short_lived_and_client_ones_are_not(layout):
    server = load(layout.leaf_cert(Kind.SERVER, "srv"))
    client = load(layout.leaf_cert(Kind.CLIENT, "cam-1"))
    assert server.not_valid_after_utc == NOW + timedelta(days=30)
    assert client.not_valid_after_utc == NOW + timedelta(days=825)
    assert check(layout, now=NOW).ok


def test_server_options_of_generate(tmp_path):
    layout = PkiLayout(tmp_path / "certs")
    options = GenerateOptions(server_days=60, server_renew_within=timedelta(days=20))
    generate(layout, SPECS, options, now=NOW)
    assert load(layout.leaf_cert(Kind.SERVER, "srv")).not_valid_after_utc == NOW + timedelta(days=60)
    # 25 days left: outside the 20-day server window (the 30-day client window is not theirs) ...
    later = NOW + timedelta(days=35)
    assert {a.action for a in generate(layout, SPECS, options, now=later).leaves} == {"unchanged"}
    # ... 15 days left: inside it; only the server certificate is re-issued.
    latest = NOW + timedelta(days=45)
    actions = {a.name: a for a in generate(layout, SPECS, options, now=latest).leaves}
    assert actions["srv"].action == "reissued" and "within the renewal window" in actions["srv"].reasons[0]
    assert actions["cam-1"].action == "unchanged"


def test_cli_server_days_and_window(tmp_path):
    directory = tmp_path / "pki"
    base = ["certs", "generate", "--dir", str(directory), "--server", "edge-1", "--client", "cam-9"]
    result = CliRunner().invoke(main, [*base, "--server-days", "14", "--server-renew-within", "5d"])
    assert result.exit_code == 0, result.output
    layout = PkiLayout(directory)
    server = load(layout.leaf_cert(Kind.SERVER, "edge-1"))
    lived = server.not_valid_after_utc - server.not_valid_before_utc
    assert timedelta(days=14) < lived < timedelta(days=14, hours=1)  # 14 days, plus the 5-minute backdate
    client = load(layout.leaf_cert(Kind.CLIENT, "cam-9"))
    assert client.not_valid_after_utc - client.not_valid_before_utc > timedelta(days=825)
    # A window as long as the life would renew on every run: refused before anything is written.
    for days, window in (
        (["--server-days", "10"], ["--server-renew-within", "10d"]),
        (["--days", "20"], []),  # the default --renew-within is 30d
        (["--crl-days", "30"], ["--renew-within", "30d"]),
    ):
        refused = CliRunner().invoke(main, [*base, *days, *window])
        assert refused.exit_code == 2, refused.output
        assert days[0] in refused.output and "renew-within" in refused.output
    assert load(layout.leaf_cert(Kind.SERVER, "edge-1")).serial_number == server.serial_number


def test_a_long_lived_server_certificate_is_shortened(tmp_path):
    """Server certificates issued before they became short-lived are re-issued by generate and
    reported by check (the same condition for both)."""
    layout = PkiLayout(tmp_path / "certs")
    generate(layout, SPECS, GenerateOptions(server_days=825), now=NOW)
    report = check(layout, now=NOW)
    srv = next(r for r in report.rows if r.name == "srv")
    assert any("longer than the 30 days" in p for p in srv.problems)
    assert check(layout, server_days=825, now=NOW).ok
    actions = {a.name: a.action for a in generate(layout, SPECS, now=NOW).leaves}
    assert actions == {"srv": "reissued", "cam-1": "unchanged"}
    assert load(layout.leaf_cert(Kind.SERVER, "srv")).not_valid_after_utc == NOW + timedelta(days=30)


def test_renewal_inside_the_window(layout):
    before = state(layout.root)
    old = load(layout.leaf_cert(Kind.SERVER, "srv"))
    later = NOW + timedelta(days=25)  # 5 days left, inside the 10-day window

    renewed = renew_server_certificates(layout, ["srv"], now=later)

    assert [(r.name, r.not_after) for r in renewed] == [("srv", old.not_valid_after_utc)]
    new = load(layout.leaf_cert(Kind.SERVER, "srv"))
    assert new.serial_number != old.serial_number
    assert new.not_valid_after_utc == later + timedelta(days=30) == renewed[0].new_not_after
    assert new.issuer == old.issuer
    new.verify_directly_issued_by(load(layout.ca_cert))
    assert leaf_sans(new) == leaf_sans(old)
    key = load_private_key(layout.leaf_key(Kind.SERVER, "srv"))
    assert key_matches(new, key) and not key_matches(old, key)
    assert layout.leaf_key(Kind.SERVER, "srv").stat().st_mode & 0o777 == 0o600
    after = state(layout.root)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"servers/srv/server.pem", "servers/srv/server.key"}
    assert "expires in 5 days" in renewed[0].describe(later)
    # Renewed, it is outside its window again: a second call changes nothing.
    assert renew_server_certificates(layout, ["srv"], now=later) == []
    assert check(layout, now=later).ok


def test_no_renewal_outside_the_window(layout):
    before = state(layout.root)
    assert renew_server_certificates(layout, ["srv"], now=NOW + timedelta(days=5)) == []
    assert due_server_certificates(layout, ["srv"], now=NOW + timedelta(days=5)) == []
    assert state(layout.root) == before  # same bytes, same mtimes


def test_clients_unknown_names_and_the_ca_are_never_touched(layout):
    before = state(layout.root)
    much_later = NOW + timedelta(days=820)  # the client certificate is inside its own window too
    assert renew_server_certificates(layout, ["cam-1", "nope", "../ca"], now=much_later) == []
    assert state(layout.root) == before


def test_expired_server_certificate_is_renewed(layout):
    later = NOW + timedelta(days=40)
    (renewal,) = renew_server_certificates(layout, ["srv"], now=later)
    assert renewal.describe(later).startswith(
        "renewed the server certificate of srv: it expired on 2026-02-14"
    )
    assert load(layout.leaf_cert(Kind.SERVER, "srv")).not_valid_after_utc == later + timedelta(days=30)


def test_dry_run_reports_without_writing(layout):
    before = state(layout.root)
    later = NOW + timedelta(days=25)
    (due,) = due_server_certificates(layout, ["srv"], now=later)
    assert due.new_not_after is None and due.describe(later).startswith("would renew")
    assert state(layout.root) == before


def test_renewal_keeps_the_lifetime_and_caps_the_window(tmp_path):
    layout = PkiLayout(tmp_path / "certs")
    generate(layout, SPECS, GenerateOptions(server_days=60, server_renew_within=timedelta(days=20)), now=NOW)
    later = NOW + timedelta(days=55)
    renew_server_certificates(layout, ["srv"], now=later)
    assert load(layout.leaf_cert(Kind.SERVER, "srv")).not_valid_after_utc == later + timedelta(days=60)
    # A 7-day certificate with 6 days left is not renewed by a 10-day window (capped at half its life).
    short = PkiLayout(tmp_path / "short")
    generate(short, SPECS, GenerateOptions(server_days=7, server_renew_within=timedelta(days=2)), now=NOW)
    assert renew_server_certificates(short, ["srv"], now=NOW + timedelta(days=1)) == []
    assert len(renew_server_certificates(short, ["srv"], now=NOW + timedelta(days=4))) == 1


def test_renewal_holds_the_pki_lock(layout, monkeypatch):
    held: list[Path] = []
    real = pki_files.locked

    def spy(root: Path):
        held.append(root)
        return real(root)

    monkeypatch.setattr(pki_files, "locked", spy)
    renew_server_certificates(layout, ["srv"], now=NOW + timedelta(days=25))
    assert held == [layout.root]


# --- launcher deploy ----------------------------------------------------------------------------


def remote_inventory(tmp_path: Path, server_vars: str = "") -> Path:
    path = tmp_path / "inventory" / "hosts.yml"
    path.parent.mkdir()
    path.write_text(
        "all:\n  children:\n"
        "    ovms_servers:\n      hosts:\n        srv:\n          ansible_host: 192.0.2.10\n"
        f"{server_vars}"
        "    ovms_clients:\n      hosts:\n        cam-1:\n          ansible_host: 192.0.2.21\n"
    )
    return path


def test_deploy_renews_the_servers_of_its_mtls_proxies(tmp_path, monkeypatch, capsys):
    layout = PkiLayout(tmp_path / "certs")
    monkeypatch.setenv("OVMS_LAUNCHER_CERTS_DIR", str(layout.root))
    generate(layout, SPECS, now=NOW)
    inventory = remote_inventory(tmp_path)
    before = state(layout.root)

    assert renew_before_deploy([inventory], {}, now=NOW + timedelta(days=5)) == []
    assert state(layout.root) == before and capsys.readouterr().out == ""

    assert renew_before_deploy([inventory], {}, limit="cam-1", now=NOW + timedelta(days=25)) == []
    assert state(layout.root) == before

    later = NOW + timedelta(days=25)
    (renewal,) = renew_before_deploy([inventory], {}, now=later)
    assert renewal.name == "srv"
    assert "renewed the server certificate of srv: it expires in 5 days" in capsys.readouterr().out
    after = state(layout.root)
    assert {n for n in before if before[n] != after[n]} == {
        "servers/srv/server.pem",
        "servers/srv/server.key",
    }


def test_deploy_goes_on_to_validation_when_it_cannot_renew(tmp_path, monkeypatch, capsys):
    layout = PkiLayout(tmp_path / "certs")
    monkeypatch.setenv("OVMS_LAUNCHER_CERTS_DIR", str(layout.root))
    generate(layout, SPECS, now=NOW)
    layout.ca_key.unlink()
    before = state(layout.root)
    assert renew_before_deploy([remote_inventory(tmp_path)], {}, now=NOW + timedelta(days=25)) == []
    err = " ".join(capsys.readouterr().err.split())
    assert f"cannot renew the server certificates in {layout.root}" in err and "ca.key" in err
    assert state(layout.root) == before


def test_deploy_uses_the_certificates_folder_of_the_host(tmp_path, monkeypatch):
    layout = PkiLayout(tmp_path / "elsewhere")
    monkeypatch.setenv("OVMS_LAUNCHER_CERTS_DIR", str(tmp_path / "unused"))
    generate(layout, SPECS, now=NOW)
    inventory = remote_inventory(tmp_path, f"          ovms_tls_certs_dir: {layout.root}\n")
    (renewal,) = renew_before_deploy([inventory], {}, now=NOW + timedelta(days=25))
    assert renewal.new_not_after == NOW + timedelta(days=55)
    assert not (tmp_path / "unused").exists()


def test_deploy_renews_nothing_without_an_mtls_proxy(tmp_path, monkeypatch):
    """Server and client on one host, no ovms_tls_enabled: single-system mode, no proxy, no renewal."""
    layout = PkiLayout(tmp_path / "certs")
    monkeypatch.setenv("OVMS_LAUNCHER_CERTS_DIR", str(layout.root))
    generate(layout, [server_spec("box", [], [])], now=NOW)
    path = tmp_path / "hosts.yml"
    path.write_text(
        "all:\n  children:\n"
        "    ovms_servers:\n      hosts:\n        box:\n          ansible_connection: local\n"
        "    ovms_clients:\n      hosts:\n        box:\n"
    )
    before = state(layout.root)
    assert renew_before_deploy([path], {}, now=NOW + timedelta(days=25)) == []
    assert state(layout.root) == before
    # ovms_tls_enabled forces the proxy on (here as an extra var): then the certificate is renewed.
    extra = {"ovms_tls_enabled": True}
    assert [r.name for r in renew_before_deploy([path], extra, now=NOW + timedelta(days=25))] == ["box"]


def test_deploy_command_renews_before_it_validates(monkeypatch):
    calls: list[tuple[str, object]] = []

    def renew(inventories, extravars, **kwargs):
        calls.append(("renew", kwargs))
        return []

    def validated(*args, **kwargs):
        calls.append(("validate", None))
        raise SystemExit(2)

    monkeypatch.setattr(deploy_module, "renew_before_deploy", renew)
    monkeypatch.setattr(deploy_module, "_validated", validated)
    result = CliRunner().invoke(main, ["deploy", "-i", str(EXAMPLE), "--check", "-l", "srv"])
    assert result.exit_code == 2
    assert [name for name, _ in calls] == ["renew", "validate"]
    assert calls[0][1] == {"limit": "srv", "dry_run": True, "json_output": False}
