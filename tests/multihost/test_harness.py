"""The harness itself: three hosts, each with its own engine and the images it needs, reached by
Ansible over SSH with the run's key (and by nothing else)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import ansible_runner

from launcher.runner.execute import runner_envvars
from multihost.conftest import GROUPS, LAYOUT, MONITORING_LAYOUT
from testbed.archives import IMAGES_BY_ROLE, MONITORED_IMAGES, MONITORED_ROLES
from testbed.dockerutil import logs
from testbed.keys import generate_key_pair
from testbed.paths import PROJECT_ROOT
from testbed.remote import HttpServer, tcp_connect
from testbed.ssh import SshTarget


def test_every_host_answers_ansible_ping_over_ssh_with_the_key(multihost, tmp_path):
    inventory = multihost.inventory(tmp_path / "hosts.yml", LAYOUT)
    (tmp_path / "runner").mkdir()
    runner = ansible_runner.run(
        private_data_dir=str(tmp_path / "runner"),
        host_pattern="all",
        module="ping",
        inventory=str(inventory),
        envvars=runner_envvars(PROJECT_ROOT / "ansible.cfg"),
        quiet=True,
    )
    assert runner.status == "successful", runner.stdout.read()
    pongs = {
        e["event_data"]["host"]
        for e in runner.events
        if e["event"] == "runner_on_ok" and e["event_data"]["res"].get("ping") == "pong"
    }
    assert pongs == {"host1", "host2", "host3"}
    for host in multihost.hosts:
        # sshd logs each login: Ansible came in as root with the generated key, over the network
        log = logs(host.container)
        assert "Accepted publickey for root from" in log, f"{host.name}: no key login in sshd's log"


def test_root_logs_in_by_the_harness_key_only(multihost, tmp_path):
    host = multihost.host("host1")
    assert host.ssh.run("id -u").stdout.strip() == "0"
    stranger = generate_key_pair(tmp_path / "other")
    refused = SshTarget(host.ip, stranger.private_key).run("true", check=False)
    assert refused.returncode == 255
    assert "Permission denied" in refused.stderr
    config = host.ssh.run("sshd -T").stdout
    assert "passwordauthentication no" in config
    assert "permitrootlogin without-password" in config or "permitrootlogin prohibit-password" in config


def test_each_host_has_its_own_engine_and_address_ranges(multihost):
    engines = {}
    for host in multihost.hosts:
        info = json.loads(host.ssh.run(["docker", "info", "--format", "{{json .}}"]).stdout)
        engines[host.name] = info["ID"]
        bridge = host.ssh.run(["ip", "-4", "-o", "addr", "show", "docker0"]).stdout
        assert host.dockerd_bip in bridge, f"{host.name}: docker0 is not {host.dockerd_bip}: {bridge}"
        # the host's own address on the harness network stays reachable (no overlap with docker0)
        route = host.ssh.run(["ip", "-4", "route", "get", multihost.hosts[0].ip]).stdout
        assert "docker0" not in route
    assert len(set(engines.values())) == len(multihost.hosts), engines


def _wanted(host: str) -> set[str]:
    """The images the session's layout gives `host`: its groups' (IMAGES_BY_ROLE) and, the session's
    hosts running the monitoring exporters, MONITORED_IMAGES on servers and clients."""
    wanted: set[str] = set()
    for role, images in IMAGES_BY_ROLE.items():
        if host in MONITORING_LAYOUT.get(GROUPS[role], []):
            wanted |= set(images)
            if role in MONITORED_ROLES:
                wanted |= set(MONITORED_IMAGES)
    return wanted


def test_each_host_has_exactly_the_images_its_role_needs(multihost, multihost_archive_dir: Path):
    manifest = {
        e["name"]: e for e in json.loads((multihost_archive_dir / "images.json").read_text())["images"]
    }
    assert _wanted("host1") >= {"ovms-double", "tls-proxy"} and "monitoring" in _wanted("host3")
    for host in multihost.hosts:
        wanted = _wanted(host.name)
        for name, entry in manifest.items():
            proc = host.ssh.run(
                ["docker", "image", "inspect", "--format", "{{.Id}}", entry["tag"]], check=False
            )
            if name in wanted:
                assert proc.stdout.strip() == entry["id"], f"{host.name}: {entry['tag']} not loaded"
            else:
                assert proc.returncode != 0, f"{host.name} got {entry['tag']}, which it does not need"
        # the copied archives were removed after loading
        leftovers = host.ssh.run("ls -A /var/tmp/ovms-images 2>/dev/null || true").stdout.split()
        assert leftovers == []
    loaded = {(r.host, r.name) for r in multihost.loaded}
    assert loaded == {(h.name, n) for h in multihost.hosts for n in _wanted(h.name)}


def test_a_second_load_skips_images_the_hosts_already_have(multihost, multihost_archive_dir: Path):
    again = multihost.load_images(multihost_archive_dir, MONITORING_LAYOUT, monitoring=True)
    assert again and not any(r.loaded for r in again)


def test_a_host_serves_files_to_another_host_over_the_private_network(multihost, tmp_path):
    server, client = multihost.host("host1"), multihost.host("host2")
    payload = tmp_path / "blob.bin"
    payload.write_bytes(os.urandom(4096))
    server.ssh.run(["mkdir", "-p", "/root/mh-share-test"])
    server.ssh.put(payload, "/root/mh-share-test/blob.bin")
    http = HttpServer(server, "/root/mh-share-test", 8089)
    http.start()
    try:
        fetch = (
            "import hashlib,sys,urllib.request\n"
            "print(hashlib.sha256(urllib.request.urlopen(sys.argv[1], timeout=10).read()).hexdigest())"
        )
        got = client.ssh.run(["python3", "-c", fetch, http.url("blob.bin")]).stdout.strip()
    finally:
        http.stop()
        server.ssh.run(["rm", "-rf", "/root/mh-share-test"])
    assert got == hashlib.sha256(payload.read_bytes()).hexdigest()
    assert tcp_connect(client, server.ip, 8089) != "open"  # stopped
