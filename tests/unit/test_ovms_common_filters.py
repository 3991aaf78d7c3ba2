"""The ovms_common role's rules (filter plugins every role and the launcher apply)."""

from __future__ import annotations

import pytest

from launcher.validate.safety import unsafe_dir


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/", "root folder"),
        ("//", "root folder"),
        ("/var/lib/../..", "'..'"),
        ("var/lib/ovms", "not an absolute path"),
        ("", "not an absolute path"),
        ("/etc", "system folder /etc"),
        ("/usr/", "system folder /usr"),
        ("/var/lib", "system folder /var/lib"),
        ("/var/lib/docker", "system folder /var/lib/docker"),
    ],
)
def test_unsafe_data_dirs_are_named_with_the_reason(path, words):
    assert words in unsafe_dir(path)


@pytest.mark.parametrize("path", ["/var/lib/ovms-launcher/server", "/srv/ovms/client", "/tmp/ovms-test/x"])
def test_folders_of_their_own_are_accepted(path):
    assert unsafe_dir(path) == ""
