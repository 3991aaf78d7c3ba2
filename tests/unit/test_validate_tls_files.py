"""launcher/validate/tls.py: what `launcher validate` says of each host's certificate and key files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from launcher.cli import main
from launcher.pki import Kind, PkiLayout
from launcher.validate import validate
from testbed.paths import PROJECT_ROOT

INVENTORY = PROJECT_ROOT / "inventories" / "example-remote"


@pytest.fixture
def certs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PkiLayout:
    directory = tmp_path / "certs"
    made = CliRunner().invoke(main, ["certs", "generate", "--dir", str(directory), "-i", str(INVENTORY)])
    assert made.exit_code == 0, made.output
    monkeypatch.setenv("OVMS_LAUNCHER_CERTS_DIR", str(directory))
    return PkiLayout(directory)


def messages(layout: PkiLayout) -> dict[Path, list[str]]:
    """Each file's problems (every host's files have the same names, in a folder of their own)."""
    found: dict[Path, list[str]] = {}
    for problem in validate([INVENTORY], certificates=True).problems:
        found.setdefault(Path(problem.file), []).append(problem.message)
    return found


def test_a_generated_pki_has_no_problem(certs):
    assert messages(certs) == {}


def test_a_key_of_another_host_or_unusable_or_a_folder(certs):
    one = certs.leaf_key(Kind.CLIENT, "camera-client-1")
    two = certs.leaf_key(Kind.CLIENT, "camera-client-2")
    server = certs.leaf_key(Kind.SERVER, "ovms-server-1")
    one.write_bytes(two.read_bytes())
    two.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    server.unlink()
    server.mkdir()
    found = messages(certs)
    assert found[one] == ["the private key does not match the certificate"]
    [unusable] = found[two]
    assert unusable.startswith("the private key is unusable: ")
    assert found[server] == ["the private key is not a regular file"]


def test_a_missing_key_or_certificate_is_left_to_the_run(certs):
    """A missing file fails that host alone in the run (asking for `launcher certs generate`)."""
    certs.leaf_key(Kind.CLIENT, "camera-client-1").unlink()
    cert = certs.leaf_cert(Kind.CLIENT, "camera-client-2")
    cert.unlink()
    cert.symlink_to(cert.parent / "nowhere.pem")  # a broken link reads as missing
    assert messages(certs) == {}


def test_a_certificate_that_is_not_a_file_or_not_pem(certs):
    fifo = certs.leaf_cert(Kind.CLIENT, "camera-client-1")
    fifo.unlink()
    os.mkfifo(fifo)  # never opened: a FIFO would block the read
    garbage = certs.leaf_cert(Kind.CLIENT, "camera-client-2")
    garbage.write_bytes(b"garbage")
    found = messages(certs)
    assert found[fifo] == ["the client certificate is not a regular file"]
    assert found[garbage] == ["the client certificate is not a PEM certificate"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_key(certs):
    key = certs.leaf_key(Kind.CLIENT, "camera-client-1")
    key.chmod(0)
    assert messages(certs)[key] == ["the private key cannot be read (permissions)"]


def test_a_path_with_a_nul_reads_as_missing():
    from launcher.validate.tls import _read

    assert _read(Path("/tmp/a\0b")) == (None, "is missing")
