"""Images to a store without a registry (issue 23, part 5): a DinD host with no images at all receives
them from the controller during `launcher deploy` (prechecks_images_ship) and runs; a corrupted archive
is refused by its sha256 on the host with nothing loaded.

One deployment for the module: a single-system site on host2 (its server and its client, the local
access left to `any` so the server needs only the double's image), from a private archive folder made of
the session's archives (hard links; `launcher images save` when the session's folder lacks one). In file
order:

1. every image is removed from host2, then the deploy ships the double's and the client's archives
   (nothing else: the host's roles name what they run) and the client detects the person; the staging
   folder is gone after the loads.
2. destroyed, the client image removed again, and the deploy runs from a copy of the folder whose
   client archive has bytes flipped (the manifest kept): host2 fails naming client.tar and the fix, the
   image is not on host2, and no archive is left in its staging folder.

At the end host2 is destroyed (--purge) and given back exactly the images conftest loaded on it (from
the session's archive folder, as conftest's harness.load_images sends them).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from multihost.conftest import GROUPS, MONITORING_LAYOUT
from testbed import archives
from testbed import remote as rm
from testbed.harness import Harness, Host
from testbed.launcher_cli import Launcher, LauncherRun

pytestmark = [pytest.mark.fleet]

HOST = "host2"
LAYOUT = {GROUPS["servers"]: [HOST], GROUPS["clients"]: [HOST]}
# what the site's roles run on HOST (ovms_server_local_access: any: no guard image)
SHIPPED = ("ovms-double", "client")
INSTANCE = f"{rm.PROFILE}-1"
STAGING = "/var/lib/ovms-launcher/image-staging"
DEPLOY = ["-e", "ovms_server_image=ovms-launcher/ovms-double:dev", "--json"]


@dataclass
class Store:
    harness: Harness
    workdir: Path
    archive_dir: Path
    inventory: Path
    launcher: Launcher
    manifest: dict[str, dict]
    first: LauncherRun | None = None

    @property
    def host(self) -> Host:
        return self.harness.host(HOST)

    def deploy(self, archive_dir: Path) -> LauncherRun:
        return self.launcher.run(
            [
                "deploy",
                "-i",
                str(self.inventory),
                *DEPLOY,
                "-e",
                f"prechecks_images_archive_dir={archive_dir}",
            ]
        )

    def image_ids(self) -> dict[str, str]:
        """tag -> image ID of every tagged image on the host."""
        out = self.harness.docker_exec(
            self.host, "docker", "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"
        )
        return dict(line.split(" ", 1) for line in out.stdout.split("\n") if line.strip())

    def remove_images(self, *tags: str) -> None:
        """docker rmi inside the host: the given tags, or every image."""
        if not tags:
            out = self.harness.docker_exec(self.host, "docker", "images", "--quiet", "--all")
            tags = tuple(sorted(set(out.stdout.split())))
        if tags:
            self.harness.docker_exec(self.host, "docker", "rmi", "--force", *tags)


def _private_folder(source: Path, dest: Path) -> dict[str, dict]:
    """The archives of SHIPPED in `dest` with their manifest: hard links of the session's archives
    (`source`, written by conftest's `launcher images save`), or a save of their own when the session's
    manifest lacks one. Returns the entries by name."""
    dest.mkdir(parents=True)
    listed = {e["name"]: e for e in json.loads((source / "images.json").read_text())["images"]}
    if not all(n in listed and (source / listed[n]["file"]).is_file() for n in SHIPPED):
        return archives.save_archives(dest, SHIPPED)
    entries = [listed[n] for n in SHIPPED]
    for entry in entries:
        try:
            os.link(source / entry["file"], dest / entry["file"])
        except OSError:
            shutil.copy2(source / entry["file"], dest / entry["file"])
    (dest / "images.json").write_text(json.dumps({"images": entries}), encoding="utf-8")
    return {e["name"]: e for e in entries}


@pytest.fixture(scope="module")
def store(
    multihost: Harness, multihost_archive_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store]:
    workdir = tmp_path_factory.mktemp("fleet-images")
    launcher = Launcher(workdir / "certs", workdir / "runs")
    media = rm.prepare_inputs(launcher, workdir, (rm.MODEL,))
    manifest = _private_folder(multihost_archive_dir, workdir / "archives")
    variables = rm.group_vars(media)
    variables[GROUPS["servers"]]["ovms_server_local_access"] = "any"
    variables["all"] = {"prechecks_images_ship": True}
    inventory = multihost.inventory(workdir / "hosts.yml", LAYOUT, group_vars=variables)
    state = Store(multihost, workdir, workdir / "archives", inventory, launcher, manifest)
    try:
        yield state
    finally:
        launcher.run(["destroy", "-i", str(inventory), "--purge", "--yes", "--json"])
        # back to what conftest loaded on the host: its images and no others
        wanted = archives.images_by_host(MONITORING_LAYOUT, GROUPS, monitoring=True).get(HOST, [])
        tags = {
            archives_tag for archives_tag in state.image_ids() if archives_tag.startswith("ovms-launcher/")
        }
        extra = sorted(tags - {f"ovms-launcher/{name}:dev" for name in wanted})
        if extra:
            state.remove_images(*extra)
        _restore(multihost, multihost_archive_dir, wanted)


def _restore(harness: Harness, archive_dir: Path, wanted: list[str]) -> None:
    """HOST's images as conftest loaded them (its layout's, from the session's archive folder): only
    what is missing is sent; harness.load_images (which builds and saves every image of the layout
    first) when the folder's manifest lacks one."""
    listed = {e["name"]: e for e in json.loads((archive_dir / "images.json").read_text())["images"]}
    if all(name in listed for name in wanted):
        harness.loaded += archives.distribute(archive_dir, listed, {HOST: (harness.host(HOST).ssh, wanted)})
    else:
        harness.load_images(archive_dir, MONITORING_LAYOUT, monitoring=True)


def test_a_host_with_no_images_receives_them_during_the_deploy_and_runs(store: Store):
    store.remove_images()
    assert store.image_ids() == {}, "host2 still has images"
    run = store.deploy(store.archive_dir)
    store.first = run
    assert run.returncode == 0, run.describe() + rm.diagnostics([store.host])
    ids = store.image_ids()
    for name in SHIPPED:
        entry = store.manifest[name]
        assert ids.get(entry["tag"]) == entry["id"][len("sha256:") :][:12], (
            f"{entry['tag']} not loaded: {ids}"
        )
    # nothing the site does not run: the local-access guard, the proxy, the camera were not shipped
    assert sorted(ids) == sorted(store.manifest[n]["tag"] for n in SHIPPED)
    assert rm.wait_for_person(store.host, INSTANCE), rm.diagnostics([store.host])
    gone = store.harness.docker_exec(store.host, "test", "-e", STAGING, check=False)
    assert gone.returncode != 0, f"{STAGING} is left on {HOST}"


def test_a_corrupted_archive_is_refused_by_its_sha256_with_nothing_loaded(store: Store):
    if store.first is None or store.first.returncode != 0:
        pytest.skip("the module's first deploy failed")
    store.launcher.ok(["destroy", "-i", str(store.inventory), "--yes", "--json"])
    client = store.manifest["client"]
    store.remove_images(client["tag"])
    damaged = store.workdir / "damaged"
    damaged.mkdir()
    shutil.copy2(store.archive_dir / "images.json", damaged / "images.json")
    for entry in store.manifest.values():
        if entry is not client:
            os.link(store.archive_dir / entry["file"], damaged / entry["file"])
    shutil.copyfile(store.archive_dir / client["file"], damaged / client["file"])
    with (damaged / client["file"]).open("r+b") as archive:
        archive.seek(archive.seek(0, os.SEEK_END) // 2)
        chunk = archive.read(4096)
        archive.seek(-len(chunk), os.SEEK_CUR)
        archive.write(bytes(b ^ 0xFF for b in chunk))

    run = store.deploy(damaged)
    assert run.returncode != 0, run.describe()
    failure = json.dumps(run.host(HOST))
    assert client["file"] in failure and "sha256" in failure, run.describe()
    assert "launcher images save DIR" in failure, run.describe()
    assert client["tag"] not in store.image_ids()
    left = store.harness.docker_exec(store.host, "ls", "-A", STAGING, check=False).stdout.split()
    assert client["file"] not in left
