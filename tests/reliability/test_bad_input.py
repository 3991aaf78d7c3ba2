"""Bad input matrix: the real `launcher deploy` on inventories, group vars, profiles, model entries,
certificates and command-line options that are wrong in one way each.

For every case: exit code 2; the message names the file (for a command-line option: the option),
the key, and a fix (specific words of each are asserted); nothing ran on any host: no run folder
under $OVMS_LAUNCHER_RUNS (ansible-runner's private data dir is created first thing when a playbook
starts), no data folder of the inventory exists; and no container was created, changed or removed.

Containers are compared before and after each case: id, name, state, start time and restart count
of every container whose name carries this module's tag. Every inventory here renames the server,
proxy and client containers, the networks and the data folders to that tag and to tmp_path (the
isolation of tests/e2e/test_deploy_localhost.py), and the roles only create, change or remove
containers by those names (the client role's prune too only removes `<prefix>-*`): a deploy that
slipped through validation would show up here (and in the run and data folders), while a real
deployment is never touched. An all-container snapshot, or one of every `ovms-launcher.managed`
container, is not used: other suites and people on a shared engine start, stop and remove their own
launcher containers at any moment (seen while writing this test), which would fail the comparison
for reasons unrelated to the launcher call under test.

Certificate cases use a remote inventory on this machine (a server host and a client host, both
`ansible_connection: local`, so the client's server is another host and mTLS is on) with a PKI made
by `launcher certs generate` once per module and copied per case; a positive control shows that
the unchanged local and remote inventories validate.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from double_harness import free_port

from launcher.pki.authority import LeafSpec, cert_pem, crl_pem
from launcher.pki.files import PUBLIC_FILE_MODE, write_atomic
from launcher.pki.keys import DEFAULT_KEY_TYPE, generate_key, private_key_pem
from launcher.pki.layout import Kind, PkiLayout
from launcher.pki.names import typed_san
from launcher.pki.store import load_certificate, load_state
from testbed.dockerutil import docker, engine_available
from testbed.paths import PROJECT_ROOT

pytestmark = [pytest.mark.reliability, pytest.mark.docker]

LAUNCHER = str(Path(sys.executable).parent / "launcher")
TAG = f"ovms-bad-{uuid.uuid4().hex[:6]}"
PROFILES = PROJECT_ROOT / "profiles"
SERVER, CLIENT = "rt-srv", "rt-cam"


# --- inventories ------------------------------------------------------------------------------------


def _dump(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass
class Site:
    """One case's folder: an inventory, its data folders, runs folder and certificates folder."""

    root: Path
    inventory: Path
    certs: Path

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def data(self) -> list[Path]:
        return [self.root / "data"]

    def group_vars(self, group: str, **values: object) -> Path:
        path = self.inventory / "group_vars" / f"{group}.yml"
        current = yaml.safe_load(path.read_text()) if path.exists() else {}
        return _dump(path, {**(current or {}), **values})

    def host_vars(self, host: str, **values: object) -> Path:
        return _dump(self.inventory / "host_vars" / f"{host}.yml", values)

    def hosts_file(self) -> Path:
        return self.inventory / "hosts.yml"

    def edit_hosts(self, change: Callable[[dict], None]) -> Path:
        data = yaml.safe_load(self.hosts_file().read_text())
        change(data)
        return _dump(self.hosts_file(), data)

    def profile(self, name: str = "person-detection") -> Path:
        """A copy of the project's profile in this site's profiles folder (ovms_client_profiles_src)."""
        target = self.root / "profiles" / name
        if not target.exists():
            shutil.copytree(PROFILES / "person-detection", target)
        return target


def _isolation(root: Path) -> dict:
    """Names and folders of this module only (see the module docstring)."""
    return {
        "ovms_server_data_dir": str(root / "data" / "server"),
        "ovms_server_network": TAG,
        "ovms_server_container_name": f"{TAG}-server",
        "ovms_client_data_dir": str(root / "data" / "client"),
        "ovms_client_network": TAG,
        "ovms_client_container_prefix": f"{TAG}-client",
        "ovms_client_profiles_src": str(root / "profiles"),
        "ovms_client_media_dir": str(root / "data" / "media"),
    }


def local_site(root: Path) -> Site:
    """The shipped single-system inventory (inventories/localhost), isolated."""
    inventory = root / "inventory"
    shutil.copytree(PROJECT_ROOT / "inventories" / "localhost", inventory)
    site = Site(root, inventory, root / "certs")
    site.profile()
    site.group_vars("all", **_isolation(root))
    return site


def remote_site(root: Path, pki: Path | None) -> Site:
    """A server host and a client host on this machine: remote (mTLS) mode, with a copy of the PKI."""
    inventory = root / "inventory"
    _dump(
        inventory / "hosts.yml",
        {
            "all": {
                "children": {
                    "ovms_servers": {"hosts": {SERVER: {"ovms_advertise_address": f"{TAG}-server-tls"}}},
                    "ovms_clients": {"hosts": {CLIENT: {"ovms_client_server": SERVER}}},
                },
                "vars": {
                    "ansible_connection": "local",
                    "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                },
            }
        },
    )
    site = Site(root, inventory, root / "certs")
    site.profile()
    site.group_vars(
        "all",
        **_isolation(root),
        ovms_server_models=[{"name": "person-detection"}],
        ovms_client_profiles=[{"name": "person-detection"}],
        ovms_tls_port=free_port(),
        ovms_tls_bind_address="127.0.0.1",
    )
    if pki is not None:
        shutil.copytree(pki, site.certs)
    return site


# --- running the launcher and watching the engine -------------------------------------------------


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout + "\n" + self.stderr

    @property
    def fixes(self) -> list[str]:
        return [
            line.strip()[4:].strip() for line in self.text.splitlines() if line.strip().startswith("fix:")
        ]

    def describe(self) -> str:
        return f"exit {self.returncode}\nstdout:\n{self.stdout[-4000:]}\nstderr:\n{self.stderr[-4000:]}"


def launcher(site: Site, *args: str, timeout: float = 60) -> Outcome:
    env = {
        **os.environ,
        "COLUMNS": "1000",  # no wrapping: file names and fixes stay on one line
        "OVMS_LAUNCHER_RUNS": str(site.runs),
        "OVMS_LAUNCHER_CERTS_DIR": str(site.certs),
    }
    proc = subprocess.run(
        [LAUNCHER, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=site.root,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def containers() -> set[tuple[str, ...]]:
    """(id, name, state, started at, restart count) of every container named with this module's tag."""
    ids = set(docker("ps", "-aq", "--no-trunc", "--filter", f"name={TAG}").stdout.split())
    if not ids:
        return set()
    fmt = "{{.Id}}|{{.Name}}|{{.State.Status}}|{{.State.StartedAt}}|{{.RestartCount}}"
    proc = docker("inspect", "--format", fmt, *sorted(ids), check=False)
    # a container removed between the two calls is simply absent (inspect still prints the others)
    return {tuple(line.split("|")) for line in proc.stdout.splitlines() if line.strip()}


@pytest.fixture(scope="module", autouse=True)
def engine() -> None:
    if not engine_available():
        pytest.fail("no Docker engine answers: run scripts/ensure-docker.sh")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Certificates for the remote inventory, made once by `launcher certs generate -i INV`."""
    root = tmp_path_factory.mktemp("pki")
    site = remote_site(root / "site", None)
    certs = root / "certs"
    made = launcher(site, "certs", "generate", "-i", str(site.inventory), "--dir", str(certs))
    assert made.returncode == 0, made.describe()
    return certs


# --- mutations of the PKI ---------------------------------------------------------------------------


def _reissue(site: Site, kind: Kind, name: str, *, sans: list[str], start: datetime, end: datetime) -> None:
    """Re-sign a host certificate with the site's CA (same key), with the given names and dates."""
    layout = PkiLayout(site.certs)
    state = load_state(layout)
    assert state.current is not None
    key = load_certificate(layout.leaf_cert(kind, name)).public_key()
    spec = LeafSpec(kind, name, tuple(typed_san(s) for s in sans))
    cert = state.current.issue(spec, key, now=start, days=1, not_before=start, not_after=end)
    write_atomic(layout.leaf_cert(kind, name), cert_pem(cert), PUBLIC_FILE_MODE)


def _expired_client(site: Site) -> None:
    now = datetime.now(UTC)
    _reissue(
        site, Kind.CLIENT, CLIENT, sans=[CLIENT], start=now - timedelta(days=400), end=now - timedelta(days=2)
    )


def _expired_crl(site: Site) -> None:
    layout = PkiLayout(site.certs)
    state = load_state(layout)
    assert state.current is not None
    crl = state.current.sign_crl([], number=99, now=datetime.now(UTC) - timedelta(days=10), days=3)
    write_atomic(layout.ca_crl, crl_pem(crl), PUBLIC_FILE_MODE)
    write_atomic(layout.crl, crl_pem(crl), PUBLIC_FILE_MODE)


def _stranger_server_cert(site: Site) -> None:
    """server.pem and server.key from another PKI: right names, wrong CA."""
    other = site.root / "other-pki"
    made = launcher(
        site, "certs", "generate", "--dir", str(other), "--server", SERVER, "--san", f"DNS:{TAG}-server-tls"
    )
    assert made.returncode == 0, made.describe()
    for suffix in ("pem", "key"):
        shutil.copy2(other / "servers" / SERVER / f"server.{suffix}", site.certs / "servers" / SERVER)


def _mismatched_key(site: Site) -> None:
    key = site.certs / "clients" / CLIENT / "client.key"
    write_atomic(key, private_key_pem(generate_key(DEFAULT_KEY_TYPE)), 0o600)


# --- the cases -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """`build(site)` breaks one thing and returns the extra launcher arguments; the output must name
    `file(site)` and `key`, say `message`, and give a fix containing `fix`."""

    kind: str  # "local" or "remote"
    build: Callable[[Site], list[str]]
    file: Callable[[Site], str]
    key: str
    message: str
    fix: str


def _nothing(_: Site) -> list[str]:
    return []


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _fifo(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)


def _as_folder(path: Path) -> None:
    path.unlink(missing_ok=True)
    (path / "inside").mkdir(parents=True)


def _git_profile(**source: str) -> dict:
    return {
        "name": "person-detection",
        "source": {"type": "git", "repo": "https://example.invalid/p.git", "version": "v1", **source},
    }


def _then(*steps: Callable[[], object], args: list[str] | None = None) -> list[str]:
    for step in steps:
        step()
    return list(args or [])


def gv(site: Site, group: str = "all") -> str:
    return str(site.inventory / "group_vars" / f"{group}.yml")


def hv(host: str) -> Callable[[Site], str]:
    return lambda site: str(site.inventory / "host_vars" / f"{host}.yml")


def prof(name: str) -> Callable[[Site], str]:
    return lambda site: str(site.root / "profiles" / "person-detection" / name)


CASES: dict[str, Case] = {
    # --- inventory and group vars -------------------------------------------------------------------
    "unknown-key": Case(
        "local",
        lambda s: _then(lambda: s.group_vars("ovms_servers", ovms_server_grcp_port=9001)),
        lambda s: gv(s, "ovms_servers"),
        "ovms_server_grcp_port",
        "unknown variable",
        "did you mean ovms_server_grpc_port",
    ),
    "wrong-type-port": Case(
        "local",
        lambda s: _then(lambda: s.host_vars("localhost", ovms_server_grpc_port="nine-thousand")),
        hv("localhost"),
        "ovms_server_grpc_port",
        "valid integer",
        "the default is ovms_server_grpc_port: 9000",
    ),
    "wrong-type-bool": Case(
        "local",
        lambda s: _then(lambda: s.group_vars("all", ovms_tls_enabled="maybe")),
        gv,
        "ovms_tls_enabled",
        "valid boolean",
        "roles/ovms_tls_proxy/defaults/main.yml",
    ),
    "inventory-syntax": Case(
        "local",
        lambda s: _then(lambda: _write(s.hosts_file(), "all:\n  children:\n    ovms_servers: [oops\n")),
        lambda s: str(s.hosts_file()),
        "line 4, column 1",
        "not a valid Ansible inventory",
        "ansible-inventory -i FILE --list",
    ),
    "group-vars-syntax": Case(
        "local",
        lambda s: _then(
            lambda: _write(s.inventory / "group_vars" / "ovms_clients.yml", "ovms_client_env: {a: [\n")
        ),
        lambda s: gv(s, "ovms_clients"),
        "line 2, column 1",
        "ansible-core cannot load the inventory",
        "correct the YAML near line 2, column 1",
    ),
    "client-without-server": Case(
        "local",
        lambda s: _then(lambda: s.edit_hosts(lambda d: d["all"]["children"].pop("ovms_servers"))),
        lambda s: str(s.inventory),
        "ovms_servers",
        "no host in group ovms_servers",
        "add at least one host under `ovms_servers:`",
    ),
    "client-server-not-a-server": Case(
        "local",
        lambda s: _then(lambda: s.group_vars("ovms_clients", ovms_client_server="ovms-srv")),
        lambda s: gv(s, "ovms_clients"),
        "ovms_client_server",
        "'ovms-srv' is not a host of group ovms_servers",
        "use one of: localhost",
    ),
    "duplicate-ports-grpc-rest": Case(
        "local",
        lambda s: _then(lambda: s.group_vars("all", ovms_server_grpc_port=9000, ovms_server_rest_port=9000)),
        gv,
        "ovms_server_rest_port",
        "equals ovms_server_grpc_port (9000)",
        "give the REST API another port",
    ),
    "duplicate-ports-precheck": Case(
        "local",
        lambda s: _then(lambda: s.group_vars("all", prechecks_ports=[9443, 8443, 9443])),
        gv,
        "prechecks_ports",
        "port 9443 published twice on one host",
        "list each published port once",
    ),
    "duplicate-ports-two-proxies": Case(
        "local",
        lambda s: _then(
            lambda: s.edit_hosts(
                lambda d: d["all"]["children"]["ovms_servers"]["hosts"].update({"second": None})
            ),
            lambda: s.host_vars("second", ovms_server_container_name=f"{TAG}-second"),
            lambda: s.group_vars("all", ovms_tls_enabled=True, ovms_tls_port=9555),
        ),
        gv,
        "ovms_tls_port",
        "port 9555 is also published by the mTLS proxy of localhost on the same machine",
        "give each server on one machine its own ovms_tls_port",
    ),
    "duplicate-ports-tls-rest": Case(
        "local",
        lambda s: _then(lambda: s.group_vars("all", ovms_tls_port=9555, ovms_tls_rest_port=9555)),
        gv,
        "ovms_tls_rest_port",
        "ovms_tls_rest_port equals ovms_tls_port (9555)",
        "roles/ovms_tls_proxy/defaults/main.yml",
    ),
    "tls-bind-address-not-an-address": Case(
        "local",
        lambda s: _then(lambda: s.group_vars("all", ovms_tls_bind_address="0.0.0.0:9443")),
        gv,
        "ovms_tls_bind_address",
        "'0.0.0.0:9443' is not an IPv4 or IPv6 address",
        "roles/ovms_tls_proxy/defaults/main.yml",
    ),
    "tls-max-body-size-zero": Case(
        "local",
        lambda s: _then(lambda: s.group_vars("all", ovms_tls_max_body_size="0")),
        gv,
        "ovms_tls_max_body_size",
        "'0' is no limit for nginx",
        "roles/ovms_tls_proxy/defaults/main.yml",
    ),
    "client-memory-below-docker-minimum": Case(
        "local",
        lambda s: _then(lambda: s.group_vars("all", ovms_client_memory="1k")),
        gv,
        "ovms_client_memory",
        "'1k' is below the 6m Docker accepts",
        "roles/ovms_client/defaults/main.yml",
    ),
    # --- models (ovms_server_models entries against models/manifest.yaml) ---------------------------
    "model-not-in-manifest": Case(
        "local",
        lambda s: _then(lambda: s.group_vars("all", ovms_server_models=[{"name": "persn-detection"}])),
        gv,
        "ovms_server_models[0].name",
        "model 'persn-detection' is not in the models manifest",
        "did you mean person-detection",
    ),
    "model-version-not-in-manifest": Case(
        "local",
        lambda s: _then(
            lambda: s.group_vars(
                "all",
                ovms_server_models=[
                    {"name": "person-detection", "version_policy": {"specific": {"versions": [3]}}}
                ],
            )
        ),
        gv,
        "ovms_server_models[0].version_policy.specific.versions",
        "version 3 of 'person-detection' is not in the manifest (it has 1)",
        "serve a version the manifest prepares",
    ),
    "model-entry-unknown-key": Case(
        "local",
        lambda s: _then(
            lambda: s.group_vars("all", ovms_server_models=[{"name": "person-detection", "nireqs": 2}])
        ),
        gv,
        "ovms_server_models[0].nireqs",
        "is not a known key",
        "roles/ovms_server/defaults/main.yml",
    ),
    "model-not-served-for-profile": Case(
        "local",
        lambda s: _then(lambda: s.group_vars("all", ovms_server_models=[{"name": "face-detection"}])),
        prof("profile.yaml"),
        "model.name",
        "is not served by localhost (its ovms_server_models: face-detection)",
        "add `- name: person-detection` to ovms_server_models of localhost",
    ),
    # --- profiles --------------------------------------------------------------------------------------
    "profile-missing": Case(
        "local",
        lambda s: _then(lambda: s.group_vars("all", ovms_client_profiles=[{"name": "person-detectoin"}])),
        gv,
        "ovms_client_profiles[0].name",
        "no profile folder",
        "did you mean person-detection",
    ),
    "profile-wrong-type": Case(
        "local",
        lambda s: _then(
            lambda: _write(
                s.profile() / "profile.yaml",
                (s.profile() / "profile.yaml").read_text().replace("dtype: uint8", "dtype: int8"),
            )
        ),
        prof("profile.yaml"),
        "model.dtype",
        "expected 'uint8' or 'float32' (got 'int8')",
        "docs/profiles.md",
    ),
    "profile-unknown-key": Case(
        "local",
        lambda s: _then(
            lambda: _write(
                s.profile() / "profile.yaml",
                (s.profile() / "profile.yaml")
                .read_text()
                .replace("target_fps: 15\n", "target_fps: 15\nstreemz: 2\n"),
            )
        ),
        prof("profile.yaml"),
        "streemz",
        "unknown key",
        "docs/profiles.md",
    ),
    "profile-env-bad-value": Case(
        "local",
        lambda s: _then(
            lambda: _write(
                s.profile() / "profile.env",
                (s.profile() / "profile.env").read_text() + "CLIENT_STREAMS=many\n",
            )
        ),
        prof("profile.env"),
        "CLIENT_STREAMS",
        "'many'",
        "docs/profiles.md",
    ),
    "profile-file-is-a-folder": Case(
        "local",
        lambda s: _then(lambda: _as_folder(s.profile() / "profile.yaml")),
        prof("profile.yaml"),
        "profile.yaml",
        "is a folder, not a file",
        "replace it with the profile.yaml file itself",
    ),
    "profile-file-is-a-fifo": Case(
        "local",
        lambda s: _then(lambda: _fifo(s.profile() / "profile.env")),
        prof("profile.env"),
        "profile.env",
        "is no regular file, not a file",
        "replace it with the profile.env file itself",
    ),
    "profile-url-source-bad-sha256": Case(
        "local",
        lambda s: _then(
            lambda: s.group_vars(
                "all",
                ovms_client_profiles=[
                    {
                        "name": "person-detection",
                        "source": {"type": "url", "url": "http://127.0.0.1/p.tgz", "sha256": "abc"},
                    }
                ],
            )
        ),
        gv,
        "ovms_client_profiles[0].source.sha256",
        "should match pattern",
        "roles/ovms_client/defaults/main.yml",
    ),
    "profile-git-source-unpinned": Case(
        "local",
        lambda s: _then(
            lambda: s.group_vars(
                "all",
                ovms_client_profiles=[
                    {
                        "name": "person-detection",
                        "source": {"type": "git", "repo": "file:///srv/p.git", "version": "HEAD"},
                    }
                ],
            )
        ),
        gv,
        "ovms_client_profiles[0].source",
        "version 'HEAD' does not pin the profile",
        "roles/ovms_client/defaults/main.yml",
    ),
    "profile-git-source-branch": Case(
        "local",
        lambda s: _then(lambda: s.group_vars("all", ovms_client_profiles=[_git_profile(version="main")])),
        gv,
        "ovms_client_profiles[0].source",
        "version 'main' does not pin the profile: whoever controls a branch",
        "roles/ovms_client/defaults/main.yml",
    ),
    "profile-git-source-option-repo": Case(
        "local",
        lambda s: _then(
            lambda: s.group_vars(
                "all", ovms_client_profiles=[_git_profile(repo="--upload-pack=touch /tmp/pwned")]
            )
        ),
        gv,
        "ovms_client_profiles[0].source.repo",
        "never starting with '-' (git would read it as an option)",
        "roles/ovms_client/defaults/main.yml",
    ),
    "profile-holds-a-link": Case(
        "local",
        lambda s: _then(lambda: (s.profile() / "notes.txt").symlink_to(s.root / "certs" / "ca" / "ca.key")),
        prof("notes.txt"),
        "notes.txt",
        "is a symbolic link (to ",
        "replace the link with a copy of the file it names",
    ),
    # issue 21 M1: a hard link shares the file's content (tarfile.extractall makes them from archives)
    "profile-holds-a-hard-link": Case(
        "local",
        lambda s: _then(
            lambda: (s.root / "ca.key").write_text("-----BEGIN PRIVATE KEY-----\n", encoding="utf-8"),
            lambda: (s.profile() / "notes.txt").hardlink_to(s.root / "ca.key"),
        ),
        prof("notes.txt"),
        "notes.txt",
        "'notes.txt': a hard link (2 names for one file)",
        "cp --remove-destination",
    ),
    "profile-holds-a-fifo": Case(
        "local",
        lambda s: _then(
            lambda: (s.profile() / "extra").mkdir(), lambda: _fifo(s.profile() / "extra" / "pipe")
        ),
        prof("extra/pipe"),
        "pipe",
        "is a FIFO; a profile holds regular files and folders only",
        "remove it from the profile folder",
    ),
    # --- data folders, names and values the hosts would act on ----------------------------------
    "data-dir-root": Case(
        "local",
        lambda s: _then(lambda: s.host_vars("localhost", ovms_server_data_dir="/")),
        hv("localhost"),
        "ovms_server_data_dir",
        "'/' is the root folder",
        "the default is ovms_server_data_dir",
    ),
    "data-dir-dotdot": Case(
        "local",
        lambda s: _then(lambda: s.host_vars("localhost", ovms_client_data_dir=f"{s.root}/data/../../../etc")),
        hv("localhost"),
        "ovms_client_data_dir",
        "has a '..' part",
        "the default is ovms_client_data_dir",
    ),
    "data-dir-system-folder": Case(
        "local",
        lambda s: _then(lambda: s.host_vars("localhost", ovms_server_data_dir="/var/lib")),
        hv("localhost"),
        "ovms_server_data_dir",
        "is the system folder /var/lib",
        "the default is ovms_server_data_dir",
    ),
    "host-named-launcher": Case(
        "local",
        lambda s: _then(
            lambda: s.edit_hosts(
                lambda d: d["all"]["children"]["ovms_clients"]["hosts"].update({"launcher": None})
            )
        ),
        lambda s: str(s.inventory),
        "launcher",
        "a host named 'launcher' would receive the controller's own client certificate",
        "rename the host in the inventory",
    ),
    # issue 21 M2: the certificate copy builds paths from the host name
    "host-name-leaves-its-folder": Case(
        "local",
        lambda s: _then(
            lambda: s.edit_hosts(
                lambda d: d["all"]["children"]["ovms_clients"]["hosts"].update({"camera-1/../launcher": None})
            )
        ),
        lambda s: str(s.inventory),
        "camera-1/../launcher",
        "must be a DNS name",
        "rename the host in the inventory",
    ),
    # issue 21 L3: inside a sensitive folder (a deploy chowns there, --purge deletes)
    "data-dir-sensitive-folder": Case(
        "local",
        lambda s: _then(lambda: s.host_vars("localhost", ovms_client_data_dir="/etc/ssh")),
        hv("localhost"),
        "ovms_client_data_dir",
        "inside /etc",
        "the default is ovms_client_data_dir",
    ),
    # issue 21 M1: a media folder in the PKI folder would ship the CA key to every client host
    "media-dir-in-the-pki": Case(
        "remote",
        lambda s: _then(lambda: s.group_vars("all", ovms_client_media_dir=str(s.certs / "ca"))),
        gv,
        "ovms_client_media_dir",
        "the controller's PKI folder: its keys would be copied to the hosts",
        "roles/ovms_client/defaults/main.yml",
    ),
    # issue 21 M2: values pasted into nginx's config
    "tls-upstream-host-injection": Case(
        "remote",
        lambda s: _then(
            lambda: s.group_vars(
                "all", ovms_tls_upstream_host="x:9000; } server { listen 9444 ssl; ssl_verify_client off"
            )
        ),
        gv,
        "ovms_tls_upstream_host",
        "must be a container name, a host name or an IPv4 address",
        "roles/ovms_tls_proxy/defaults/main.yml",
    ),
    "tls-grpc-buffer-size-injection": Case(
        "remote",
        lambda s: _then(lambda: s.group_vars("all", ovms_tls_grpc_buffer_size="1m; ssl_verify_client off")),
        gv,
        "ovms_tls_grpc_buffer_size",
        "must be a size",
        "roles/ovms_tls_proxy/defaults/main.yml",
    ),
    # issue 21 L5: a wildcard SAN would let any host of the domain pass as this server
    "tls-extra-san-wildcard": Case(
        "remote",
        lambda s: _then(lambda: s.host_vars(SERVER, ovms_tls_extra_sans=["DNS:*.shop.example"])),
        hv(SERVER),
        "ovms_tls_extra_sans",
        "is a wildcard",
        "roles/ovms_tls_proxy/defaults/main.yml",
    ),
    "image-with-a-space": Case(
        "local",
        lambda s: _then(
            lambda: s.group_vars("all", ovms_server_image="openvino/model_server:2026.4.1 --privileged")
        ),
        gv,
        "ovms_server_image",
        "should match pattern",
        "roles/ovms_server/defaults/main.yml",
    ),
    # --- certificates (remote mode) -----------------------------------------------------------------
    "missing-ca": Case(
        "remote",
        lambda s: _then(lambda: shutil.rmtree(s.certs), lambda: s.certs.mkdir()),
        lambda s: str(s.certs / "ca-bundle.pem"),
        "OVMS_LAUNCHER_CERTS_DIR",
        "ca-bundle.pem is missing",
        "launcher certs generate -i INVENTORY --dir",
    ),
    "ca-bundle-unreadable": Case(
        "remote",
        lambda s: _then(lambda: _as_folder(s.certs / "ca-bundle.pem")),
        lambda s: str(s.certs / "ca-bundle.pem"),
        "OVMS_LAUNCHER_CERTS_DIR",
        "ca-bundle.pem is not a regular file",
        "launcher certs generate -i INVENTORY --dir",
    ),
    "san-not-the-dialled-address": Case(
        "remote",
        lambda s: _then(
            lambda: s.edit_hosts(
                lambda d: d["all"]["children"]["ovms_servers"]["hosts"][SERVER].update(
                    {"ovms_advertise_address": "127.0.0.5"}
                )
            )
        ),
        lambda s: str(s.certs / "servers" / SERVER / "server.pem"),
        "subjectAltName",
        "does not name '127.0.0.5', the address its clients dial (ovms_advertise_address of rt-srv)",
        "re-issues the certificate with the inventory's addresses",
    ),
    "expired-client-certificate": Case(
        "remote",
        lambda s: _then(lambda: _expired_client(s)),
        lambda s: str(s.certs / "clients" / CLIENT / "client.pem"),
        "notAfter",
        f"the client certificate of {CLIENT} expired on",
        "it re-issues the certificate",
    ),
    "certificate-of-another-ca": Case(
        "remote",
        lambda s: _then(lambda: _stranger_server_cert(s)),
        lambda s: str(s.certs / "servers" / SERVER / "server.pem"),
        "issuer",
        "not issued by a CA of",
        "it re-issues the certificate",
    ),
    "key-not-matching-certificate": Case(
        "remote",
        lambda s: _then(lambda: _mismatched_key(s)),
        lambda s: str(s.certs / "clients" / CLIENT / "client.key"),
        "client.key",
        "the private key does not match the certificate",
        "it re-issues the certificate",
    ),
    "expired-crl": Case(
        "remote",
        lambda s: _then(lambda: _expired_crl(s)),
        lambda s: str(s.certs / "crl.pem"),
        "nextUpdate",
        "the proxy would refuse every client",
        "it re-signs the CRL",
    ),
    "loopback-advertised-to-a-remote-client": Case(
        "remote",
        lambda s: _then(
            lambda: s.edit_hosts(
                lambda d: d["all"]["children"]["ovms_clients"]["hosts"][CLIENT].update(
                    {"ansible_connection": "ssh", "ansible_host": "127.0.0.2"}
                )
            ),
            lambda: s.host_vars(SERVER, ovms_advertise_address="127.0.0.1"),
        ),
        hv(SERVER),
        "ovms_advertise_address",
        "advertises '127.0.0.1', but its client rt-cam is another machine",
        "set ovms_advertise_address of rt-srv to an address its clients reach",
    ),
    # --- command-line options -----------------------------------------------------------------------
    "extra-vars-not-key-value": Case(
        "local",
        lambda s: ["-e", "ovms_server_grpc_port"],
        lambda s: "--extra-vars",
        "--extra-vars",
        "'ovms_server_grpc_port' is not name=value",
        "write -e name=value",
    ),
    "extra-vars-file-unreadable": Case(
        "local",
        lambda s: _then(lambda: (s.root / "vars.yml").mkdir(), args=["-e", f"@{s.root / 'vars.yml'}"]),
        lambda s: str(s.root / "vars.yml"),
        "--extra-vars",
        "cannot read the extra-vars file: Is a directory",
        "check the path",
    ),
    "limit-unknown-host": Case(
        "local",
        lambda s: ["--limit", "localhots"],
        lambda s: str(s.inventory),
        "--limit",
        "'localhots' matches no host or group of the inventory",
        "did you mean localhost",
    ),
    "tags-unknown": Case(
        "local",
        lambda s: ["--tags", "certs"],
        lambda s: str(PROJECT_ROOT / "playbooks" / "deploy.yml"),
        "--tags",
        "no play, role or task has the tag 'certs'",
        "drop --tags",
    ),
}


def test_the_matrix_is_large_enough():
    assert len(CASES) >= 25
    kinds = {name.split("-")[0] for name in CASES}
    assert {"unknown", "wrong", "duplicate", "model", "profile", "extra", "limit", "tags"} <= kinds


@pytest.mark.parametrize("kind", ["local", "remote"])
def test_the_unbroken_inventories_validate(kind, tmp_path, pki):
    """Positive control: every case below changes one thing of an inventory that is valid."""
    site = local_site(tmp_path) if kind == "local" else remote_site(tmp_path, pki)
    result = launcher(site, "validate", "-i", str(site.inventory), "--json")
    assert result.returncode == 0, result.describe()
    assert json.loads(result.stdout.strip().splitlines()[-1])["valid"] is True


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_names_file_key_fix_and_touches_nothing(name, tmp_path, pki):
    case = CASES[name]
    site = local_site(tmp_path) if case.kind == "local" else remote_site(tmp_path, pki)
    extra = case.build(site)
    before = containers()
    result = launcher(site, "deploy", "-i", str(site.inventory), *extra)
    after = containers()

    assert result.returncode == 2, result.describe()
    one_line = " ".join(result.text.split())
    assert case.file(site) in result.text, f"the file is not named\n{result.describe()}"
    assert case.key in one_line, f"the key is not named\n{result.describe()}"
    assert case.message in one_line, result.describe()
    assert any(case.fix in fix for fix in result.fixes), f"no fix with {case.fix!r}\n{result.describe()}"
    assert "Traceback" not in result.text, result.describe()

    assert not site.runs.exists() or not any(site.runs.iterdir()), "a run folder was created"
    assert not any(d.exists() for d in site.data), "a data folder of the inventory was created"
    assert before == after, f"containers changed:\nbefore {sorted(before)}\nafter {sorted(after)}"


@pytest.mark.parametrize(
    ("data_dir", "words"), [("/", "'/' is the root folder"), ("/var/lib/../lib", "has a '..' part")]
)
def test_destroy_purge_refuses_an_unsafe_data_folder_before_running(data_dir, words, tmp_path):
    """`destroy --purge` deletes the data folders: an inventory naming / (or a system folder, or a
    path with ..) exits 2 before any playbook runs, whatever the profiles or certificates."""
    site = local_site(tmp_path)
    site.host_vars("localhost", ovms_client_data_dir=data_dir)
    before = containers()
    result = launcher(site, "destroy", "-i", str(site.inventory), "--purge", "--yes")
    assert result.returncode == 2, result.describe()
    one_line = " ".join(result.text.split())
    assert "ovms_client_data_dir" in one_line and words in one_line, result.describe()
    assert str(site.inventory / "host_vars" / "localhost.yml") in result.text
    assert "give it a folder of its own" in one_line, result.describe()
    assert any("the default is ovms_client_data_dir" in fix for fix in result.fixes), result.describe()
    assert not site.runs.exists() or not any(site.runs.iterdir()), "a run folder was created"
    assert before == containers()


@pytest.mark.contract
@pytest.mark.parametrize(
    ("group", "values", "key", "words"),
    [
        ("all", {"ovms_server_data_dir": "{{ '/etc/' ~ 'ssh' }}"}, "ovms_server_data_dir", "inside /etc"),
        (
            "ovms_clients",
            {"ovms_client_profiles": [{"name": "{{ '../../../../' ~ 'etc' }}"}]},
            "ovms_client_profiles[0].name",
            "must be a profile name",
        ),
    ],
    ids=["data-dir", "profile-name"],
)
def test_a_templated_bad_value_is_refused_by_the_role_before_anything_is_created(
    group, values, key, words, tmp_path
):
    """Issue 21: `launcher validate` cannot evaluate a template (it defers it); the role's first task
    (ovms.edge.ovms_check) sees the templated value and refuses it before anything is created."""
    site = local_site(tmp_path)
    site.group_vars(group, **values)
    etc = Path("/etc/ssh")
    etc_before = etc.stat() if etc.exists() else None
    before = containers()
    double = ["-e", "ovms_server_image=ovms-launcher/ovms-double:dev"]  # the real OVMS cannot be pulled here
    result = launcher(site, "deploy", "-i", str(site.inventory), *double, timeout=300)
    after = containers()

    assert result.returncode != 0, result.describe()
    one_line = " ".join(result.text.split())
    assert key in one_line and words in one_line, result.describe()
    assert not any(d.exists() for d in site.data), "a data folder of the inventory was created"
    assert before == after, f"containers changed:\nbefore {sorted(before)}\nafter {sorted(after)}"
    if etc_before is not None:
        now = etc.stat()
        assert (now.st_uid, now.st_gid, now.st_mode) == (
            etc_before.st_uid,
            etc_before.st_gid,
            etc_before.st_mode,
        )
