"""Issue 21 (review): `launcher media manifest FOLDER` lists every regular file of FOLDER for the client
role to ship to the hosts. It refuses a FOLDER inside or holding the launcher's PKI folder
($OVMS_LAUNCHER_CERTS_DIR, else certs/ of the checkout: launcher/paths.py default_certs_dir), and a
hidden file or folder (a name starting with a dot: media are videos and images, a dotfile is a key, a
.git folder, an editor's file), naming it; nothing is written then."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from launcher.commands.media import media as media_group
from launcher.errors import LauncherError
from launcher.media import write_manifest
from launcher.paths import CERTS_DIR_ENV

pytestmark = [pytest.mark.contract]


def _pki(root: Path) -> Path:
    certs = root / "pki"
    (certs / "ca").mkdir(parents=True)
    (certs / "ca" / "ca.key").write_text("not a real key\n", encoding="utf-8")
    return certs


def _clip(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.mp4").write_bytes(b"video")
    return folder


def _refusal(folder: Path, certs: Path) -> str:
    """`launcher media manifest FOLDER`'s error (the launcher prints it with its fix)."""
    result = CliRunner().invoke(media_group, ["manifest", str(folder)], env={CERTS_DIR_ENV: str(certs)})
    assert isinstance(result.exception, LauncherError), result.output
    return str(result.exception)


@pytest.mark.parametrize("where", ["inside", "itself", "holding", "linked-inside"])
def test_a_folder_inside_or_holding_the_pki_folder_is_refused(tmp_path, where):
    certs = _pki(tmp_path / "controller")
    if where == "inside":
        folder = _clip(certs / "media")
    elif where == "itself":
        folder = certs
    elif where == "holding":
        folder = tmp_path / "controller"
    else:  # a link elsewhere to a folder inside the PKI folder
        _clip(certs / "media")
        folder = tmp_path / "media"
        folder.symlink_to(certs / "media")
    message = _refusal(folder, certs)
    relation = "holds the PKI folder" if where == "holding" else "is inside the PKI folder"
    assert f"{folder} {relation} {certs.resolve()}" in message
    assert "the PKI's keys never are" in message
    assert not list(tmp_path.rglob("media.json"))


def test_the_pki_folder_is_the_launcher_s_by_default(tmp_path, monkeypatch):
    certs = _pki(tmp_path)
    monkeypatch.setenv(CERTS_DIR_ENV, str(certs))
    with pytest.raises(LauncherError, match="is inside the PKI folder"):
        write_manifest(_clip(certs / "clips"))
    # a folder beside it is fine
    beside = _clip(tmp_path / "media")
    listed = write_manifest(beside)
    assert list(listed) == ["a.mp4"] == list(json.loads((beside / "media.json").read_text())["files"])


@pytest.mark.parametrize(
    ("plant", "name"),
    [
        ("file", ".env"),
        ("nested-file", "clips/.id_ed25519"),
        ("folder", ".git"),
        ("nested-folder", "clips/.ssh"),
    ],
)
def test_a_hidden_file_or_folder_is_refused_by_name(tmp_path, plant, name):
    certs = _pki(tmp_path)
    folder = _clip(tmp_path / "media")
    _clip(folder / "clips")
    path = folder / name
    if plant.endswith("folder"):
        path.mkdir()
        (path / "config").write_text("secret\n", encoding="utf-8")
    else:
        path.write_text("SECRET=1\n", encoding="utf-8")
    message = _refusal(folder, certs)
    assert message.startswith(f"{path}: '{name}' is hidden (its name starts with a dot)")
    assert "fix: move it out of the media folder, or remove it" in message
    assert not (folder / "media.json").exists()
