"""Validation rules of remote mode: profile sources, models only on servers, reachable servers, TLS vars."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from launcher.validate import validate

SHA = "a" * 64
URL = "https://example.com/p.tar.gz"
GIT = "https://example.com/p.git"
MODELS = [{"name": "person-detection"}]


def _write(root: Path, hosts: dict, host_vars: dict | None = None, group_vars: dict | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": hosts}}))
    for folder, entries in (("host_vars", host_vars or {}), ("group_vars", group_vars or {})):
        for name, data in entries.items():
            (root / folder).mkdir(exist_ok=True)
            (root / folder / f"{name}.yml").write_text(yaml.safe_dump(data))
    return root


def _remote(tmp_path: Path, client_vars: dict | None = None, server_vars: dict | None = None, **kw) -> Path:
    hosts = {
        "ovms_servers": {"hosts": {"srv": {"ansible_host": "192.0.2.10", **(server_vars or {})}}},
        "ovms_clients": {"hosts": {"cam": {"ansible_host": "192.0.2.20", **(client_vars or {})}}},
    }
    group_vars = {"all": {"ovms_server_models": MODELS}}
    return _write(tmp_path / "inv", hosts, group_vars=group_vars, **kw)


def _problems(inventory: Path, extravars: dict | None = None) -> list:
    return validate([inventory], extravars).problems


def test_a_plain_remote_inventory_is_valid(tmp_path):
    inventory = _remote(tmp_path, {"ovms_client_profiles": MODELS})
    report = validate([inventory])
    assert report.ok, [p.to_dict() for p in report.problems]
    assert report.assignments == {"cam": "srv"}


def test_url_and_git_sources_are_fetched_on_the_host_not_looked_up_here(tmp_path):
    profiles = [
        {
            "name": "remote-only",
            "source": {"type": "url", "url": URL, "sha256": SHA},
        },
        {
            "name": "from-git",
            "source": {"type": "git", "repo": GIT, "version": "v1.2", "commit": "a" * 40},
        },
        {
            "name": "by-commit",
            "source": {"type": "git", "repo": "git@example.com:p.git", "version": "b" * 40},
        },
    ]
    assert _problems(_remote(tmp_path, {"ovms_client_profiles": profiles})) == []


def test_a_url_source_needs_a_sha256_and_http_or_https(tmp_path):
    profiles = [
        {"name": "a", "source": {"type": "url", "url": URL}},
        {"name": "b", "source": {"type": "url", "url": "ftp://example.com/p.tar.gz", "sha256": SHA}},
        {"name": "c", "source": {"type": "url", "url": URL, "sha256": "abc"}},
    ]
    problems = _problems(_remote(tmp_path, {"ovms_client_profiles": profiles}))
    keys = sorted(p.key for p in problems)
    assert keys == [
        "ovms_client_profiles[0].source.sha256",
        "ovms_client_profiles[1].source.url",
        "ovms_client_profiles[2].source.sha256",
    ]
    assert all(p.file.endswith("hosts.yml") and p.hosts == ("cam",) for p in problems)


@pytest.mark.parametrize(
    ("source", "key", "words"),
    [
        ({"version": "HEAD"}, "source", "version 'HEAD' does not pin the profile"),
        ({"version": "main"}, "source", "whoever controls a branch"),
        ({"version": "v1", "commit": "abc"}, "source.commit", "full 40-character commit id"),
        ({"version": "-v1", "commit": "a" * 40}, "source.version", "a commit id or a tag name"),
        ({"repo": "--upload-pack=touch x", "commit": "a" * 40}, "source.repo", "never starting with '-'"),
        ({"repo": "-oProxyCommand=x@h:p", "commit": "a" * 40}, "source.repo", "never starting with '-'"),
        ({"repo": "/srv/p.git", "commit": "a" * 40}, "source.repo", "file:///"),
        ({"repo": "ext::sh -c x", "commit": "a" * 40}, "source.repo", "https://"),
    ],
)
def test_a_git_source_must_be_pinned_and_inert(tmp_path, source, key, words):
    profiles = [{"name": "a", "source": {"type": "git", "repo": GIT, "version": "v1", **source}}]
    (problem,) = _problems(_remote(tmp_path, {"ovms_client_profiles": profiles}))
    assert problem.key == f"ovms_client_profiles[0].{key}"
    assert words in problem.message


def test_a_profile_path_is_a_controller_folder_not_a_url(tmp_path):
    profiles = [{"name": "a", "path": "https://example.com/profile"}]
    (problem,) = _problems(_remote(tmp_path, {"ovms_client_profiles": profiles}))
    assert problem.key == "ovms_client_profiles[0].path"


def test_a_client_host_gets_no_models_path(tmp_path):
    inventory = _remote(tmp_path, host_vars={"cam": {"ovms_models_dir": "/srv/models"}})
    (problem,) = _problems(inventory)
    assert problem.key == "ovms_models_dir"
    assert problem.file.endswith("host_vars/cam.yml")
    assert "models stay on the servers" in problem.message
    assert "ovms_servers" in problem.fix


def test_a_client_host_gets_no_models_of_its_own(tmp_path):
    inventory = _remote(tmp_path, {"ovms_server_models": [{"name": "face-detection"}]})
    (problem,) = _problems(inventory)
    assert problem.key == "ovms_server_models" and problem.hosts == ("cam",)


def test_models_shared_by_all_hosts_are_fine(tmp_path):
    # group_vars/all gives ovms_server_models to the client too: it is the servers' setting
    assert _problems(_remote(tmp_path)) == []


def test_a_server_advertising_loopback_to_another_machine_is_refused(tmp_path):
    inventory = _remote(tmp_path, server_vars={"ovms_advertise_address": "127.0.0.1"})
    (problem,) = _problems(inventory)
    assert problem.key == "ovms_advertise_address"
    assert "would dial itself" in problem.message and "launcher certs generate" in problem.fix


def test_loopback_is_fine_when_the_clients_share_the_machine(tmp_path):
    hosts = {
        "ovms_servers": {"hosts": {"srv": {"ovms_advertise_address": "127.0.0.1"}}},
        "ovms_clients": {"hosts": {"cam": {"ovms_client_server": "srv"}}},
    }
    inventory = _write(
        tmp_path / "inv",
        hosts,
        group_vars={"all": {"ansible_connection": "local", "ovms_server_models": MODELS}},
    )
    assert _problems(inventory) == []


def test_tls_variables_are_checked(tmp_path):
    inventory = _remote(tmp_path)
    problems = _problems(
        inventory, {"ovms_tls_port": 70000, "ovms_tls_allow_tls12": "maybe", "ovms_tls_prot": 1}
    )
    keys = sorted(p.key for p in problems)
    assert keys == ["ovms_tls_allow_tls12", "ovms_tls_port", "ovms_tls_prot"]
    unknown = next(p for p in problems if p.key == "ovms_tls_prot")
    assert "ovms_tls_port" in unknown.fix


def test_the_rest_tls_port_needs_its_own_port(tmp_path):
    problems = _problems(_remote(tmp_path), {"ovms_tls_port": 9443, "ovms_tls_rest_port": 9443})
    assert problems and all("give REST its own port" in p.message for p in problems)
