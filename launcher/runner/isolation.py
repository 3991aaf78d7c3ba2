"""`--ee IMAGE`: the playbook runs inside an execution environment image through ansible-runner's
container mode (process isolation), as AWX and Ansible Automation Platform run jobs.

ansible-runner starts `docker run --rm IMAGE ansible-playbook …` as the calling user, with the run's
private data dir mounted at /runner; Ansible's events come back on the container's output, so the
launcher's live progress and summary work as in a plain run. The playbooks, roles and plugins are the
collection installed in the image (`launcher images build ee`), not this launcher's copy.

Only what a run reads is mounted, read-only (docs/ee.md):

- the certificates hosts receive (the CA bundle, the CRL, `servers/`, `clients/`), never the CA
  folder and its keys, at /ovms/certs (OVMS_LAUNCHER_CERTS_DIR);
- the prepared models and the sample media of the cache, at /ovms/cache (OVMS_LAUNCHER_CACHE);
- the launcher's shipped profiles, over the installed collection's `profiles/`;
- at their own paths: the inventories (with the group_vars/ and host_vars/ beside an inventory
  file), and the files and folders the inventory names for the controller (SSH private keys, a
  profiles folder, profile paths, a media folder, a models cache, the image archive folder);
- the user's SSH known_hosts and default identities, in HOME (/home/runner, a tmpfs of the user's);
  the SSH agent's socket when SSH_AUTH_SOCK is set.

An inventory host with `ansible_connection: local` is refused (exit 2): inside the container, "local"
is the container itself, not the machine the launcher runs on.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher.content import content
from launcher.errors import LauncherError
from launcher.paths import cache_dir, default_certs_dir
from launcher.pki.layout import CERTS_DIR_ENV, Kind, PkiLayout
from launcher.runner.strategy import wanted_strategy

if TYPE_CHECKING:
    from launcher.inventory import Inventory

DEFAULT_NETWORK = "host"
# where the image has the collections (ansible-builder's place; images/ee/Dockerfile uses it too)
EE_COLLECTIONS = "/usr/share/ansible/collections"
IN_HOME = "/home/runner"
IN_CERTS = "/ovms/certs"
IN_CACHE = "/ovms/cache"
# the run's private data dir inside the container (ansible-runner's fixed mount point)
IN_RUNNER = "/runner"
CACHE_PARTS = ("models", "media")
SSH_IDENTITIES = ("id_ed25519", "id_ecdsa", "id_rsa")
# host variables naming a controller file or folder the run reads: mounted at the same path
PATH_VARS = (
    "ansible_ssh_private_key_file",
    "ansible_private_key_file",
    "ovms_client_profiles_src",
    "ovms_client_media_dir",
    "ovms_models_cache_dir",
    # `launcher images save DIR`'s archives a deploy with prechecks_images_ship sends (role prechecks)
    "prechecks_images_archive_dir",
)
_NETWORK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/:@-]*$")


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool = True

    def volume(self) -> str:
        return f"{self.source}:{self.target}" + (":ro" if self.read_only else "")


@dataclass(frozen=True)
class ExecutionEnvironment:
    """How a run goes into the container: the image, the network, what is mounted."""

    image: str
    network: str = DEFAULT_NETWORK
    mounts: tuple[Mount, ...] = ()
    # the inventory sources, mounted at their own paths and given to ansible-playbook as `-i`
    inventories: tuple[Path, ...] = ()
    # extra environment inside the container (e.g. SSH_AUTH_SOCK)
    env: Mapping[str, str] = field(default_factory=dict)

    def runner_settings(self, run_dir: Path, ansible_config: Path) -> dict[str, Any]:
        """ansible-runner keyword arguments for the container mode, and the run's environment inside it.
        Copies the launcher's ansible.cfg into the run dir (mounted at /runner).

        In container mode ansible-runner always passes `-i /runner/inventory` (the run dir's
        `inventory/`): that folder holds an empty inventory, and the real sources follow as more `-i`
        options (`inventory_args`), so their group_vars/ and host_vars/ apply as in a plain run."""
        shutil.copyfile(ansible_config, run_dir / "ansible.cfg")
        placeholder = run_dir / "inventory"
        placeholder.mkdir(exist_ok=True)
        (placeholder / "launcher.ini").write_text(
            "# empty: the inventories are the -i sources after this folder\n", encoding="utf-8"
        )
        uid, gid = os.getuid(), os.getgid()
        options = [
            f"--network={self.network}",
            # reaps the SSH ControlPersist masters and Mitogen's children; ends them with the run
            "--init",
            f"--tmpfs={IN_HOME}:rw,exec,uid={uid},gid={gid},mode=0700",
            "--label=ovms-launcher.ee=1",
        ]
        return {
            "process_isolation": True,
            "process_isolation_executable": "docker",
            "container_image": self.image,
            "container_volume_mounts": [m.volume() for m in self.mounts],
            "container_options": options,
            "envvars": {**ee_envvars(), **self.env},
        }

    def inventory_args(self) -> list[str]:
        return [arg for source in self.inventories for arg in ("-i", str(source))]


def ee_envvars() -> dict[str, str]:
    """The run's environment inside the container: in-container paths only (no PATH of this machine)."""
    envvars = {
        "HOME": IN_HOME,
        "ANSIBLE_CONFIG": f"{IN_RUNNER}/ansible.cfg",
        "ANSIBLE_COLLECTIONS_PATH": EE_COLLECTIONS,
        "OVMS_LAUNCHER_CACHE": IN_CACHE,
        CERTS_DIR_ENV: IN_CERTS,
    }
    # the image links Mitogen's strategies into Ansible's default strategy path
    envvars["ANSIBLE_STRATEGY"] = wanted_strategy()
    return envvars


def ee_playbook(action: str) -> str:
    """The playbook by its collection name (the image's installed collection): ovms.edge.deploy."""
    return f"{content().fqcn}.{action}"


def collection_dir() -> str:
    namespace, name = content().fqcn.split(".", 1)
    return f"{EE_COLLECTIONS}/ansible_collections/{namespace}/{name}"


def check_options(image: str, network: str) -> None:
    if not _IMAGE.match(image):
        raise LauncherError(
            f"not an image name: {image!r}", key="--ee", fix="name a local image, e.g. ovms-launcher/ee:dev"
        )
    if not _NETWORK.match(network):
        raise LauncherError(
            f"not a Docker network name: {network!r}",
            key="--ee-network",
            fix="`host` (the default) or the name of the hosts' Docker network",
        )


def check_no_local_connection(inventory: Inventory) -> None:
    """Exit 2 when a host of the inventory is reached with the local connection."""
    for host in inventory.hosts.values():
        connection = host.vars.get("ansible_connection")
        if isinstance(connection, str) and connection.strip() == "local":
            raise LauncherError(
                f"host {host.name} has ansible_connection: local, which --ee cannot run: inside the "
                "execution environment 'local' is the container, not this machine, so the deploy "
                "would change the container and never reach the host",
                file=inventory.source_label,
                key=f"{host.name}: ansible_connection",
                fix="reach the host over SSH (ansible_connection: ssh, ansible_host, ansible_user), "
                "or run without --ee",
            )


def _inventory_mounts(sources: Iterable[Path]) -> list[Mount]:
    found = []
    for source in sources:
        found.append(Mount(source, str(source)))
        if source.is_file():
            for folder in ("group_vars", "host_vars"):
                beside = source.parent / folder
                if beside.is_dir():
                    found.append(Mount(beside, str(beside)))
    return found


def _path_values(variables: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    for key in PATH_VARS:
        value = variables.get(key)
        if isinstance(value, str) and value:
            yield key, value
    profiles = variables.get("ovms_client_profiles")
    if isinstance(profiles, list):
        for index, profile in enumerate(profiles):
            if isinstance(profile, Mapping) and isinstance(profile.get("path"), str) and profile["path"]:
                yield f"ovms_client_profiles[{index}].path", str(profile["path"])


def _inventory_path_mounts(inventory: Inventory) -> list[Mount]:
    """The controller files and folders the inventory names, at their own paths."""
    found: dict[Path, Mount] = {}
    for host in inventory.hosts.values():
        for key, value in _path_values(host.vars):
            if "{{" in value or "{%" in value:
                raise LauncherError(
                    f"--ee mounts the controller paths an inventory names, and {key} is a template "
                    f"({value!r})",
                    file=inventory.source_label,
                    key=f"{host.name}: {key}",
                    fix="write the path itself, or run without --ee",
                )
            path = Path(value).expanduser()
            if path.is_absolute() and path.exists():
                found.setdefault(path, Mount(path, str(path)))
    return list(found.values())


def certificate_mounts(certs_dir: Path) -> list[Mount]:
    """What hosts receive from the PKI folder (CA bundle, CRL, servers/, clients/); never the CA's
    folder (its key) nor revoked/."""
    layout = PkiLayout(certs_dir)
    found = []
    for path in (layout.bundle, layout.crl, layout.kind_dir(Kind.SERVER), layout.kind_dir(Kind.CLIENT)):
        if path.exists():
            found.append(Mount(path, f"{IN_CERTS}/{path.relative_to(certs_dir).as_posix()}"))
    return found


def _ssh_mounts(home: Path) -> tuple[list[Mount], dict[str, str]]:
    found = []
    ssh = home / ".ssh"
    for name in ("known_hosts", *SSH_IDENTITIES):
        if (ssh / name).is_file():
            found.append(Mount(ssh / name, f"{IN_HOME}/.ssh/{name}"))
    env = {}
    agent = os.environ.get("SSH_AUTH_SOCK", "")
    if agent and Path(agent).exists():
        found.append(Mount(Path(agent), "/run/ssh-agent.sock", read_only=False))
        env["SSH_AUTH_SOCK"] = "/run/ssh-agent.sock"
    return found, env


def prepare(
    image: str,
    inventories: Iterable[Path],
    inventory: Inventory | None,
    *,
    network: str = DEFAULT_NETWORK,
    certs_dir: Path | None = None,
    cache: Path | None = None,
    home: Path | None = None,
) -> ExecutionEnvironment:
    """Check the options and the inventory (exit 2) and list what the run mounts."""
    check_options(image, network)
    sources = tuple(Path(p).resolve() for p in inventories)
    if inventory is None:
        from launcher.inventory import load_inventory

        inventory = load_inventory(sources)
    check_no_local_connection(inventory)
    certs = (certs_dir or default_certs_dir()).expanduser().resolve()
    cache = (cache or cache_dir()).resolve()
    mounts = certificate_mounts(certs)
    mounts += [Mount(cache / part, f"{IN_CACHE}/{part}") for part in CACHE_PARTS if (cache / part).is_dir()]
    if content().profiles.is_dir():
        mounts.append(Mount(content().profiles.resolve(), f"{collection_dir()}/profiles"))
    mounts += _inventory_mounts(sources)
    mounts += _inventory_path_mounts(inventory)
    ssh_mounts, env = _ssh_mounts((home or Path.home()).expanduser())
    mounts += ssh_mounts
    unique: dict[str, Mount] = {}
    for mount in mounts:  # a target mounted once (the first wins)
        if ":" in str(mount.source):
            raise LauncherError(
                f"--ee cannot mount {mount.source}: Docker's volume syntax has no room for a ':' in a path",
                fix="rename or move it, or run without --ee",
            )
        unique.setdefault(mount.target, mount)
    return ExecutionEnvironment(
        image=image, network=network, mounts=tuple(unique.values()), inventories=sources, env=env
    )
