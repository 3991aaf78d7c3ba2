"""The roles' variables as pydantic models, mirroring `roles/<role>/defaults/main.yml`.

Each model's fields are the variable names without their role prefix. A variable with a known
prefix that is not a field is an error (with close matches); a value of the wrong type is an error
naming the variable and the path inside it (e.g. `ovms_server_models[0].nireq`).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationInfo,
    field_validator,
    model_validator,
)

from launcher.paths import PROJECT_ROOT

Port = Annotated[int, Field(ge=1, le=65535)]
# A container image reference: Docker's name[:tag][@digest] characters, no space, never starting
# with "-" (a tool could read it as an option)
Size = Annotated[str, Field(pattern=r"^[0-9]+[kKmMgG]?$")]
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def _docker_memory(value: str) -> str:
    """Docker refuses a memory limit under 6 MiB when it creates the container."""
    if (
        value
        and int(value.rstrip("kKmMgG")) * _UNITS[value[-1].lower() if value[-1].isalpha() else ""] < 6 << 20
    ):
        raise ValueError(
            f'{value!r} is below the 6m Docker accepts: give e.g. 512m or 2g, or "" for no limit'
        )
    return value


# a container's memory limit as Docker reads it ("" none), its most processes/threads, its CPUs
MemoryLimit = Annotated[str, Field(pattern=r"^([1-9][0-9]*[kKmMgG]?|)$"), AfterValidator(_docker_memory)]
PidsLimit = Annotated[int, Field(ge=0)]
CpuLimit = Annotated[float, Field(ge=0)]
ImageRef = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$", max_length=512)]


def _absolute(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"must be an absolute path (starting with /), got {value!r}")
    return value


AbsPath = Annotated[str, Field(min_length=1), AfterValidator(_absolute)]
Name = Annotated[str, Field(min_length=1)]
ContainerName = Annotated[str, Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")]
ModelName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
EnvValue = str | int | float | bool
RestartPolicy = Literal["no", "always", "unless-stopped", "on-failure"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _SpecificVersions(_Strict):
    versions: Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=1)]


class _LatestVersions(_Strict):
    num_versions: Annotated[int, Field(ge=1)]


class VersionPolicy(_Strict):
    """OVMS `model_version_policy`: exactly one of all / specific / latest."""

    all: dict[str, Any] | None = None
    specific: _SpecificVersions | None = None
    latest: _LatestVersions | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> VersionPolicy:
        given = [k for k in ("all", "specific", "latest") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "must have exactly one of all, specific, latest "
                '(e.g. {"specific": {"versions": [1]}} or {"latest": {"num_versions": 1}})'
            )
        if self.all:
            raise ValueError("`all` takes an empty mapping: {all: {}}")
        return self


Shape = str | list[int] | dict[str, str | list[int]]


class ServerModel(_Strict):
    name: ModelName
    source: Literal["manifest", "manual"] = "manifest"
    version_policy: VersionPolicy | None = None
    nireq: Annotated[int, Field(ge=0)] | None = None
    target_device: Name | None = None
    plugin_config: dict[str, str | int | float] | None = None
    shape: Shape | None = None
    layout: str | dict[str, str] | None = None
    batch_size: Annotated[int, Field(ge=1)] | Literal["auto"] | None = None


class ServerVars(_Strict):
    # defaults come from roles/ovms_server/defaults/main.yml (check_host merges them in first)
    image: ImageRef | None = None
    grpc_port: Port = 9000
    rest_port: Port = 8000
    data_dir: AbsPath = "/var/lib/ovms-launcher/server"
    network: Name = "ovms-launcher"
    tls: StrictBool | None = None  # computed by the role (remote mode) unless forced
    internal_network: Name | None = None
    container_name: ContainerName = "ovms-server"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    file_system_poll_wait_seconds: Annotated[int, Field(ge=0)] = 1
    grpc_workers: Annotated[int, Field(ge=1)] = 1
    local_access: Literal["root", "any"] = "root"
    metrics_enable: StrictBool = True
    metrics_list: list[Name] = Field(default_factory=list)
    status_interval: Annotated[float, Field(ge=0, le=60)] = 2
    ready_timeout: Annotated[int, Field(ge=1)] = 120
    wait: StrictBool = True
    models: list[ServerModel] = Field(default_factory=list)
    pipelines: list[dict[str, Any]] = Field(default_factory=list)
    mediapipe: list[dict[str, Any]] = Field(default_factory=list)
    extra_args: list[str] = Field(default_factory=list)
    env: dict[str, EnvValue] = Field(default_factory=dict)
    restart_policy: RestartPolicy = "unless-stopped"
    memory: MemoryLimit = ""
    pids_limit: PidsLimit = 4096
    cpus: CpuLimit = 0
    device_paths: dict[str, list[AbsPath]] = Field(
        default_factory=lambda: {"GPU": ["/dev/dri"], "NPU": ["/dev/accel"]}
    )


# Filesystems the models role refuses for the models folder (models must stay local to the server).
NETWORK_FS_TYPES = (
    *("nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "ceph", "glusterfs", "9p", "afs"),
    *("lustre", "gpfs", "fuse", "fuseblk", "fuse.sshfs"),
)


class ModelsVars(_Strict):
    cache_dir: AbsPath | None = None
    dir: AbsPath | None = None
    list_: list[dict[str, Any]] | None = Field(default=None, alias="list")
    allow_network_fs: StrictBool | Literal["true", "false", "yes", "no"] = False
    network_fs_types: list[Name] = Field(default_factory=lambda: list(NETWORK_FS_TYPES))


def _no_scheme(value: str) -> str:
    if "://" in value:
        raise ValueError(
            f"must be a folder on the controller, got {value!r}; "
            "use `source: {type: url, url: …, sha256: …}` for a profile fetched by the client host"
        )
    return value


class LocalSource(_Strict):
    type: Literal["local"]


class UrlSource(_Strict):
    """A profile archive (tar/zip) fetched on the client host and checked against its sha256."""

    type: Literal["url"]
    url: Annotated[str, Field(pattern=r"^https?://[^\s/]+(/\S*)?$")]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]


def _git_patterns() -> dict[str, str]:
    """The git source rules the ovms_client role checks on the host too (roles/ovms_client/vars)."""
    data = yaml.safe_load((PROJECT_ROOT / "roles/ovms_client/vars/main.yml").read_text(encoding="utf-8"))
    return {key: data[f"ovms_client_git_{key}_pattern"] for key in ("repo", "ref", "commit")}


_GIT = _git_patterns()


class GitSource(_Strict):
    """A git repository checked out on the client host at a pinned commit: `version` a full commit id,
    or a tag with `commit` the full commit id it must resolve to (the host checks it)."""

    type: Literal["git"]
    repo: str
    version: Annotated[str, Field(max_length=255)]
    commit: str | None = None

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str) -> str:
        if not re.fullmatch(_GIT["repo"], value):
            raise ValueError(
                "must be an https://, ssh://, user@host:path or file:/// repository, never starting with "
                "'-' (git would read it as an option)"
            )
        return value

    @field_validator("version")
    @classmethod
    def _ref(cls, value: str) -> str:
        if not re.fullmatch(_GIT["ref"], value):
            raise ValueError(
                "must be a commit id or a tag name: letters, digits, '.', '_', '/', '-', not first"
            )
        return value

    @field_validator("commit")
    @classmethod
    def _commit(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(_GIT["commit"], value):
            raise ValueError("must be a full 40-character commit id (lowercase hexadecimal)")
        return value

    @model_validator(mode="after")
    def _pinned(self) -> GitSource:
        if self.commit is None and not re.fullmatch(_GIT["commit"], self.version):
            raise ValueError(
                f"version {self.version!r} does not pin the profile: whoever controls a branch (or moves a "
                "tag) changes it on every deploy; give a full 40-character commit id as version, or add "
                "`commit:` with the full commit id the tag must resolve to"
            )
        return self


ProfileSource = Annotated[LocalSource | UrlSource | GitSource, Field(discriminator="type")]


class ClientProfileRef(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    instances: Annotated[int, Field(ge=1)] = 1
    path: Annotated[AbsPath, AfterValidator(_no_scheme)] | None = None
    source: ProfileSource | None = None

    @model_validator(mode="after")
    def _path_only_local(self) -> ClientProfileRef:
        if self.path is not None and self.source is not None and self.source.type != "local":
            raise ValueError(f"`path` is a controller folder: it cannot go with a {self.source.type} source")
        return self

    @property
    def remote(self) -> bool:
        return self.source is not None and self.source.type != "local"


class ClientVars(_Strict):
    image: ImageRef = "ovms-launcher/client:dev"
    data_dir: AbsPath = "/var/lib/ovms-launcher/client"
    server: Name | None = None
    tls: StrictBool | None = None  # computed by the role (remote mode)
    server_address: (
        Annotated[str, Field(pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):[0-9]{1,5}$")] | None
    ) = None
    profiles: list[ClientProfileRef] = Field(default_factory=list)
    profiles_src: AbsPath | None = None
    container_prefix: ContainerName = "ovms-client"
    network: Name = "ovms-launcher"
    env: dict[str, EnvValue] = Field(default_factory=dict)
    media_dir: AbsPath | Literal[""] | None = None
    restart_policy: RestartPolicy = "unless-stopped"
    memory: MemoryLimit = "2g"
    pids_limit: PidsLimit = 512
    cpus: CpuLimit = 0
    results_timeout: Annotated[int, Field(ge=0)] = 60


class PrechecksVars(_Strict):
    min_docker_api: Annotated[str, Field(pattern=r"^[0-9]+\.[0-9]+$")] = "1.41"
    min_free_disk_mb: Annotated[int, Field(ge=0)] = 1024
    ports: list[Port] = Field(default_factory=list)
    architectures: list[Name] = Field(default_factory=lambda: ["x86_64", "aarch64"])
    images: list[dict[str, Any]] = Field(default_factory=list)
    data_dir: AbsPath = "/var/lib/ovms-launcher"


DnsName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]


class TlsVars(_Strict):
    """roles/ovms_tls_proxy: the mTLS proxy of remote mode (and the PKI's extra SANs)."""

    enabled: StrictBool = False
    proxy_enabled: StrictBool | None = None  # computed by the role
    certs_dir: AbsPath | None = None
    extra_sans: list[Annotated[str, Field(pattern=r"^(DNS|IP):\S+$")]] = Field(default_factory=list)
    image: ImageRef = "ovms-launcher/tls-proxy:dev"
    container_name: ContainerName | None = None
    port: Port = 9443
    bind_address: str = "0.0.0.0"
    rest_port: Annotated[int, Field(ge=0, le=65535)] = 0
    allow_tls12: StrictBool = False
    grpc_buffer_size: Size = "1m"
    keepalive: Annotated[int, Field(ge=1)] = 16
    max_body_size: Size = "64m"
    limit_conn: Annotated[int, Field(ge=0)] = 512
    limit_req_rate: Annotated[int, Field(ge=0)] = 1000
    limit_req_burst: Annotated[int, Field(ge=0)] = 2000
    dir: AbsPath | None = None
    conf_dir: AbsPath | None = None
    network: Name | None = None
    internal_network: Name | None = None
    aliases: list[DnsName] = Field(default_factory=list)
    upstream_host: Name | None = None
    upstream_grpc_port: Port | None = None
    upstream_rest_port: Port | None = None
    probe_address: Name | None = None
    restart_policy: RestartPolicy = "unless-stopped"
    memory: MemoryLimit = "1g"
    pids_limit: PidsLimit = 256
    cpus: CpuLimit = 0

    @field_validator("rest_port")
    @classmethod
    def _ports_differ(cls, rest_port: int, info: ValidationInfo) -> int:
        """Reported on ovms_tls_rest_port itself, so the message names the file that sets it."""
        if rest_port and rest_port == info.data.get("port"):
            raise ValueError(f"ovms_tls_rest_port equals ovms_tls_port ({rest_port}): give REST its own port")
        return rest_port

    @field_validator("bind_address")
    @classmethod
    def _ip_address(cls, value: str) -> str:
        """Docker publishes ports on an address only; a loose pattern let `999.1.1.1` or `:::` through."""
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an IPv4 or IPv6 address: give one of the host's addresses "
                "(0.0.0.0 or :: for all of them)"
            ) from None
        return value

    @field_validator("max_body_size")
    @classmethod
    def _body_limited(cls, value: str) -> str:
        """nginx reads client_max_body_size 0 as no limit at all."""
        if int(value.rstrip("kKmMgG")) == 0:
            raise ValueError(f"{value!r} is no limit for nginx: give a size of at least 1, e.g. 64m")
        return value


# prefix -> (model, role whose defaults/main.yml holds the defaults)
ROLE_VARS: dict[str, tuple[type[BaseModel], str]] = {
    "ovms_server_": (ServerVars, "ovms_server"),
    "ovms_models_": (ModelsVars, "ovms_models"),
    "ovms_client_": (ClientVars, "ovms_client"),
    "prechecks_": (PrechecksVars, "prechecks"),
    "ovms_tls_": (TlsVars, "ovms_tls_proxy"),
}

# Prefixes whose every variable must be known. The prechecks role reads `prechecks_*`: an
# `ovms_prechecks_*` variable would be silently ignored, so it is reported with the right name.
CHECKED_PREFIXES: tuple[str, ...] = (*ROLE_VARS, "ovms_prechecks_")


def field_names(model: type[BaseModel]) -> list[str]:
    """The variable names (without prefix) a model takes: a field's alias when it has one."""
    return [info.alias or name for name, info in model.model_fields.items()]


def known_variables() -> list[str]:
    return sorted(prefix + name for prefix, (model, _) in ROLE_VARS.items() for name in field_names(model))


def prefix_of(variable: str) -> str | None:
    return next((p for p in CHECKED_PREFIXES if variable.startswith(p)), None)
