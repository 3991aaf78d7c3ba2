"""Images reach the harness hosts the air-gapped way: `launcher images save` on the controller once,
then per host an SSH copy of each archive it needs, a sha256 check against images.json on the host,
and `docker load` there. Hosts work in parallel; an image already present (same id) is skipped."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from testbed.ssh import SshError, SshTarget

REMOTE_DIR = "/var/tmp/ovms-images"
# local-access: the guard of ovms_server_local_access: root (roles/ovms_server/tasks/local_access.yml)
SERVER_IMAGES = ("ovms-double", "tls-proxy", "local-access")
CLIENT_IMAGES = ("client",)
CAMERA_IMAGES = ("camera-sim",)
# Prometheus (monitoring), its node exporter (tls-proxy)
MONITORING_IMAGES = ("monitoring", "tls-proxy")
# the images each of the launcher's groups needs, by role (playbooks/vars/groups.yml names the groups)
IMAGES_BY_ROLE = {
    "servers": SERVER_IMAGES,
    "clients": CLIENT_IMAGES,
    "cameras": CAMERA_IMAGES,
    "monitoring": MONITORING_IMAGES,
}
# what server and client hosts need besides, with ovms_monitoring_enabled: the exporters and the
# clients' metrics gateway run the tls-proxy image
MONITORED_ROLES = ("servers", "clients")
MONITORED_IMAGES = ("tls-proxy",)


def images_by_host(
    layout: Mapping[str, Sequence[str]], groups: Mapping[str, str], *, monitoring: bool = False
) -> dict[str, list[str]]:
    """The images each host of `layout` (group -> hosts) needs for its groups (`groups`: role -> group,
    playbooks/vars/groups.yml); with `monitoring` (ovms_monitoring_enabled) MONITORED_IMAGES too on the
    hosts of MONITORED_ROLES."""
    needs: dict[str, list[str]] = {}
    for role, images in IMAGES_BY_ROLE.items():
        extra = MONITORED_IMAGES if monitoring and role in MONITORED_ROLES else ()
        for name in layout.get(groups[role], ()):
            needs.setdefault(name, [])
            needs[name] += [i for i in (*images, *extra) if i not in needs[name]]
    return needs


@dataclass(frozen=True)
class LoadResult:
    host: str
    name: str
    tag: str
    loaded: bool  # False: the host already had this image id
    seconds: float


def launcher_bin() -> Path:
    return Path(sys.executable).parent / "launcher"


def _launcher(args: Sequence[str], timeout: float) -> None:
    proc = subprocess.run(
        [str(launcher_bin()), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"launcher {' '.join(args[:2])} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}"
        )


def save_archives(folder: Path, names: Sequence[str], timeout: float = 1800) -> dict[str, dict]:
    """`launcher images build NAMES…` (seconds when the images match their sources; CI built them
    already) so no stale image reaches the hosts, then `launcher images save FOLDER NAMES…` (unchanged
    archives are kept). Returns the images.json entries by name."""
    _launcher(["images", "build", *names], timeout)
    _launcher(["images", "save", str(folder), *names], timeout)
    manifest = json.loads((folder / "images.json").read_text(encoding="utf-8"))
    return {entry["name"]: entry for entry in manifest["images"]}


def remote_image_id(target: SshTarget, tag: str) -> str | None:
    proc = target.run(["docker", "image", "inspect", "--format", "{{.Id}}", tag], check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def _load_one(host: str, target: SshTarget, folder: Path, entry: Mapping[str, str]) -> LoadResult:
    start = time.monotonic()
    if remote_image_id(target, entry["tag"]) == entry["id"]:
        return LoadResult(host, entry["name"], entry["tag"], False, time.monotonic() - start)
    target.run(["mkdir", "-p", REMOTE_DIR])
    remote = f"{REMOTE_DIR}/{entry['file']}"
    target.put(folder / entry["file"], remote)
    name, digest = shlex.quote(entry["file"]), shlex.quote(entry["sha256"])
    script = (
        f"cd {shlex.quote(REMOTE_DIR)} && "
        f"if ! printf '%s  %s\\n' {digest} {name} | sha256sum --check --status -; then "
        f"echo 'checksum mismatch: {entry['file']} is not the archive images.json describes' >&2; "
        f"rm -f {name}; exit 3; fi; "
        f"docker load --quiet --input {name}; rc=$?; rm -f {name}; exit $rc"
    )
    target.run(script, timeout=600)
    loaded_id = remote_image_id(target, entry["tag"])
    if loaded_id != entry["id"]:
        raise SshError(
            f"{host}: after docker load, {entry['tag']} has id {loaded_id}, expected {entry['id']}"
        )
    return LoadResult(host, entry["name"], entry["tag"], True, time.monotonic() - start)


def distribute(
    folder: Path,
    manifest: Mapping[str, Mapping[str, str]],
    needs: Mapping[str, tuple[SshTarget, Sequence[str]]],
) -> list[LoadResult]:
    """Load on each host (name -> (target, image names)) what it needs; hosts in parallel."""
    for host, (_, names) in needs.items():
        unknown = [n for n in names if n not in manifest]
        if unknown:
            raise ValueError(f"{host} needs {unknown}, which {folder}/images.json does not list")

    def per_host(host: str) -> list[LoadResult]:
        target, names = needs[host]
        return [_load_one(host, target, folder, manifest[name]) for name in names]

    with ThreadPoolExecutor(max_workers=max(1, len(needs))) as pool:
        futures = [pool.submit(per_host, host) for host in needs]
        return [result for future in futures for result in future.result()]
