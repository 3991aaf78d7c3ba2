"""Lookup ovms_client_profile_odd (roles/ovms_client/tasks/profile.yml): what a local profile folder holds
besides folders and regular files with one name, found on the controller without following a link."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ansible.errors import AnsibleLookupError

from testbed.plugins import load_plugin

LOOKUP = load_plugin("plugins/lookup/ovms_client_profile_odd.py")


def _profile(tmp_path: Path) -> Path:
    profile = tmp_path / "profiles" / "person-detection"
    (profile / "sub" / ".hidden").mkdir(parents=True)
    (profile / "profile.yaml").write_text("name: x\n")
    (profile / "sub" / ".hidden" / "notes.txt").write_text("ok\n")
    return profile


def test_folders_and_one_name_files_are_fine(tmp_path):
    assert LOOKUP.profile_odd(_profile(tmp_path)) == []


def test_links_and_special_files_are_named_anywhere_in_the_folder(tmp_path):
    profile = _profile(tmp_path)
    secret = tmp_path / "ca.key"
    secret.write_text("key\n")
    (profile / "sub" / ".hidden" / "key").symlink_to(secret)
    (profile / "certs").symlink_to(tmp_path)  # a link to a folder is not walked into
    (profile / "shared.txt").hardlink_to(secret)
    os.mkfifo(profile / "sub" / "pipe")
    assert LOOKUP.profile_odd(profile) == [
        f"{profile}/certs (a symbolic link)",
        f"{profile}/shared.txt (a hard link, 2 names for one file)",
        f"{profile}/sub/.hidden/key (a symbolic link)",
        f"{profile}/sub/pipe (a special file)",
    ]


def test_the_folder_itself_may_be_a_link_and_a_missing_one_holds_nothing(tmp_path):
    profile = _profile(tmp_path)
    (profile / "odd").symlink_to(profile / "profile.yaml")
    link = tmp_path / "link-to-profile"
    link.symlink_to(profile)
    assert LOOKUP.profile_odd(link) == [f"{link}/odd (a symbolic link)"]
    assert LOOKUP.profile_odd(tmp_path / "absent") == []


def test_the_lookup_takes_one_folder(tmp_path):
    assert LOOKUP.LookupModule().run([str(_profile(tmp_path))]) == []
    with pytest.raises(AnsibleLookupError, match="one profile folder, not 2 terms"):
        LOOKUP.LookupModule().run(["a", "b"])
