"""Checks across hosts: groups, client -> server, ports and names per machine, profiles, models."""

from __future__ import annotations

import difflib
import os
import stat
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher.errors import LauncherError
from launcher.inventory import CAMERAS_GROUP, CLIENTS_GROUP, SERVERS_GROUP, Inventory
from launcher.sites import site_of
from launcher.validate import common_role
from launcher.validate.origins import VarOrigins
from launcher.validate.problems import Problem, from_error
from launcher.validate.variables import HostVars
from launcher.validate.view import View

if TYPE_CHECKING:
    from client.profile import Profile

MANUAL = "manual"


def check_groups(inventory: Inventory) -> list[Problem]:
    if inventory.servers:
        return []
    return [
        Problem(
            inventory.source_label,
            SERVERS_GROUP,
            f"no host in group {SERVERS_GROUP}: nothing would serve the models",
            f"add at least one host under `{SERVERS_GROUP}:` (see inventories/localhost/hosts.yml)",
        )
    ]


def _close(name: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=2, cutoff=0.5)
    return f"did you mean {' or '.join(close)}? " if close else ""


def port_number(entry: Any) -> int:
    """A prechecks_ports entry: a port number, or {port, variable}."""
    return int(entry["port"] if isinstance(entry, Mapping) else entry)


def remote(profile: View) -> bool:
    """A profile fetched by the client host (url or git source), not pushed from the controller."""
    return profile.source is not None and profile.source.type != "local"


def machine_of(vars_: HostVars) -> str:
    """Hosts on one machine share a Docker engine: local connections, or one address."""
    host = vars_.host
    if host.vars.get("ansible_connection") == "local":
        return "local"
    return f"{host.ansible_host}:{host.vars.get('ansible_port', '')}"


def resolve_servers(
    inventory: Inventory, hosts: Mapping[str, HostVars], origins: VarOrigins
) -> tuple[dict[str, str], list[Problem]]:
    """client host -> server host (`ovms_client_server`, default the roles' `default_server`: the first
    server of the client's own site, else the first server)."""
    problems: list[Problem] = []
    names = [s.name for s in inventory.servers]
    rule = common_role.filters()
    first_servers = rule.site_servers(names, lambda name: site_of(inventory.hosts[name]))
    assigned: dict[str, str] = {}
    for client in inventory.clients:
        checked = hosts[client.name]
        cvars = checked.get("ovms_client_")
        if "ovms_client_server" in checked.deferred:
            continue
        wanted = cvars.server if cvars is not None else None
        if wanted is None:
            if names:
                site = site_of(client)
                assigned[client.name] = rule.default_server(names, client.name, site, first_servers)
            continue
        if wanted in names:
            assigned[client.name] = wanted
            continue
        problems.append(
            Problem(
                origins.find("ovms_client_server", client.name, client.groups),
                "ovms_client_server",
                f"{wanted!r} is not a host of group {SERVERS_GROUP}",
                f"{_close(wanted, names)}use one of: {', '.join(names) or '(none: add a server)'}",
                (client.name,),
            )
        )
    return assigned, problems


def check_ports_and_names(hosts: Mapping[str, HostVars], origins: VarOrigins) -> list[Problem]:
    problems: list[Problem] = []
    by_machine: dict[str, list[tuple[str, View]]] = {}
    for name, checked in hosts.items():
        host = checked.host
        server = checked.get("ovms_server_")
        if SERVERS_GROUP in host.groups and server is not None:
            if server.grpc_port == server.rest_port:
                problems.append(
                    Problem(
                        origins.find("ovms_server_rest_port", name, host.groups),
                        "ovms_server_rest_port",
                        f"equals ovms_server_grpc_port ({server.grpc_port}); OVMS refuses port == rest_port",
                        "give the REST API another port, e.g. 8000",
                        (name,),
                    )
                )
            by_machine.setdefault(machine_of(checked), []).append((name, server))
        pre = checked.get("prechecks_")  # roles/prechecks reads prechecks_* (no ovms_ prefix)
        if pre is not None:
            twice = sorted(p for p, n in Counter(map(port_number, pre.ports)).items() if n > 1)
            if twice:
                problems.append(
                    Problem(
                        origins.find("prechecks_ports", name, host.groups),
                        "prechecks_ports",
                        f"port {', '.join(map(str, twice))} published twice on one host",
                        "list each published port once",
                        (name,),
                    )
                )
        client = checked.get("ovms_client_")
        if CLIENTS_GROUP in host.groups and client is not None:
            dup = sorted(n for n, c in Counter(p.name for p in client.profiles).items() if c > 1)
            if dup:
                problems.append(
                    Problem(
                        origins.find("ovms_client_profiles", name, host.groups),
                        "ovms_client_profiles",
                        f"profile {', '.join(dup)} listed twice on one host",
                        "list it once and set `instances: N` for several containers",
                        (name,),
                    )
                )
    problems += _client_container_clashes(hosts, origins)
    problems += _camera_checks(hosts, origins)
    for servers in by_machine.values():
        seen: dict[str, str] = {}
        for name, server in servers:
            other = seen.get(server.container_name)
            if other is not None:
                host = hosts[name].host
                problems.append(
                    Problem(
                        origins.find("ovms_server_container_name", name, host.groups),
                        "ovms_server_container_name",
                        f"{server.container_name!r} is also the server container of {other} "
                        "on the same machine",
                        "give each server on one machine its own ovms_server_container_name",
                        (name,),
                    )
                )
            seen.setdefault(server.container_name, name)
    return problems


def _camera_checks(hosts: Mapping[str, HostVars], origins: VarOrigins) -> list[Problem]:
    """Camera hosts on one machine share its Docker engine: their containers and published ports clash
    (each camera's streams: the rule `camera_streams` of roles/ovms_camera/meta/rules.yml)."""
    problems: list[Problem] = []
    names: dict[tuple[str, str], str] = {}
    ports: dict[str, list[tuple[str, int, str]]] = {}  # machine -> (bind address, port, host)
    for name, checked in hosts.items():
        camera = checked.get("ovms_camera_")
        if CAMERAS_GROUP not in checked.host.groups or camera is None:
            continue
        groups, machine = checked.host.groups, machine_of(checked)
        if "ovms_camera_container_name" not in checked.deferred:
            other = names.setdefault((machine, camera.container_name), name)
            if other != name:
                problems.append(
                    Problem(
                        origins.find("ovms_camera_container_name", name, groups),
                        "ovms_camera_container_name",
                        f"{camera.container_name!r} is also the camera container of {other} "
                        "on the same machine",
                        "give each camera on one machine its own ovms_camera_container_name",
                        (name,),
                    )
                )
        if {"ovms_camera_port", "ovms_camera_bind_address"} & checked.deferred:
            continue
        for bind, port, other in ports.get(machine, []):
            wildcard = bind in ("0.0.0.0", "::") or camera.bind_address in ("0.0.0.0", "::")
            if port == camera.port and (bind == camera.bind_address or wildcard):
                problems.append(
                    Problem(
                        origins.find("ovms_camera_port", name, groups),
                        "ovms_camera_port",
                        f"port {port} is also published by the camera of {other} on the same machine",
                        "give each camera on one machine its own ovms_camera_port "
                        "(or its own ovms_camera_bind_address)",
                        (name,),
                    )
                )
                break
        ports.setdefault(machine, []).append((camera.bind_address, camera.port, name))
    return problems


def _client_container_clashes(hosts: Mapping[str, HostVars], origins: VarOrigins) -> list[Problem]:
    """Client hosts on one machine share its Docker engine: their containers (prefix + profile) clash."""
    problems: list[Problem] = []
    seen: dict[tuple[str, str, str], str] = {}
    for name, checked in hosts.items():
        client = checked.get("ovms_client_")
        if CLIENTS_GROUP not in checked.host.groups or client is None:
            continue
        for profile in client.profiles:
            ident = (machine_of(checked), client.container_prefix, profile.name)
            other = seen.setdefault(ident, name)
            if other != name:
                problems.append(
                    Problem(
                        origins.find("ovms_client_container_prefix", name, checked.host.groups),
                        "ovms_client_container_prefix",
                        f"client containers {client.container_prefix}-{profile.name}-N of {name} and {other} "
                        "would clash: both hosts are the same machine",
                        "give one of them its own ovms_client_container_prefix, or run the profile "
                        "once with `instances: N`",
                        (name,),
                    )
                )
    return problems


@dataclass(frozen=True)
class StageInfo:
    """One stage of a profile as validation needs it: its model (None for a stage run in the client,
    e.g. barcode) and pinned version (0: the latest served), and `key`, where the profile sets that
    model (`stages[N].model`, or `model` for the one-model form)."""

    name: str
    model: str | None
    version: int
    index: int
    key: str
    model_files: tuple[str, ...] = ()  # files it reads beside its model (`{model_file: NAME}`)


@dataclass(frozen=True)
class ProfileInfo:
    name: str
    directory: Path
    file: Path
    model: str | None  # stage 1's model
    version: int
    api: str = "kserve"
    stages: tuple[StageInfo, ...] = ()
    # the camera streams one container reads (the profile's `streams`), and the host's containers of it
    streams: int = 1
    instances: int = 1

    @classmethod
    def of(cls, name: str, directory: Path, file: Path, profile: Profile) -> ProfileInfo:
        """From a loaded `client.profile.Profile` (its cascade: one stage for the one-model form)."""
        from client.profile import describe_stage

        one_model = profile.stages is None
        stages = tuple(
            StageInfo(
                stage.name,
                stage.model.name if stage.model is not None else None,
                stage.model.version if stage.model is not None else 0,
                index,
                "model" if one_model else f"stages[{index}].model",
                tuple(describe_stage(stage)["model_files"]),
            )
            for index, stage in enumerate(profile.cascade)
        )
        first = stages[0]
        return cls(name, directory, file, first.model, first.version, profile.api, stages, profile.streams)


def _client_environ(client: View) -> dict[str, str]:
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in client.env.items()}


def _unusable_profile_file(directory: Path) -> Problem | None:
    """profile.yaml / profile.env that exist but are no readable regular file (a folder, a FIFO that
    would block the read, no permission): the client's loader would crash or hang on them."""
    for name in ("profile.yaml", "profile.env"):
        path = directory / name
        if not path.exists() and not path.is_symlink():
            continue
        if not path.is_file():
            what = "a folder" if path.is_dir() else "no regular file" if path.exists() else "a broken link"
            fix = f"replace it with the {name} file itself"
            return Problem(str(path), name, f"is {what}, not a file", fix)
        if not os.access(path, os.R_OK):
            return Problem(str(path), name, "cannot be read (permissions)", "make it readable: chmod a+r")
    return _foreign_profile_entry(directory)


_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"))


def _foreign_profile_entry(directory: Path) -> Problem | None:
    """The first entry of a profile folder that is not a regular file or folder: a link would ship
    whatever it points to on the controller (a key, say) to the client hosts, a FIFO or device
    would block or leak the copy. The roles refuse them too (roles/ovms_client/tasks/profile.yml)."""
    for root, folders, files in os.walk(directory):  # never descends into a linked folder
        for entry in sorted(folders + files):
            path = Path(root) / entry
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                return Problem(
                    str(path),
                    entry,
                    f"is a symbolic link (to {path.readlink()}); a profile holds regular files and folders "
                    "only, and links are never copied to the hosts",
                    "replace the link with a copy of the file it names, or remove it",
                )
            if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
                what = next((name for test, name in _KINDS if test(mode)), "a block device")
                return Problem(
                    str(path),
                    entry,
                    f"is {what}; a profile holds regular files and folders only",
                    "remove it from the profile folder",
                )
    return None


def check_profiles(
    hosts: Mapping[str, HostVars], origins: VarOrigins, profiles_dir: Path
) -> tuple[dict[str, list[ProfileInfo]], list[Problem]]:
    """Every profile of every client exists and passes the client's own schema."""
    from client.profile import load_profile

    problems: list[Problem] = []
    found: dict[str, list[ProfileInfo]] = {}
    cache: dict[tuple[Path, tuple[tuple[str, str], ...]], ProfileInfo | Problem] = {}
    resolved: dict[Path, Path | None] = {}  # profile folder -> its real path, None when no folder
    for name, checked in hosts.items():
        host = checked.host
        client = checked.get("ovms_client_")
        if CLIENTS_GROUP not in host.groups or client is None:
            continue
        if "ovms_client_env" in checked.deferred:
            environ: dict[str, str] = {}
        else:
            environ = _client_environ(client)
        root = Path(client.profiles_src) if client.profiles_src else profiles_dir
        for index, ref in enumerate(client.profiles):
            if remote(ref):
                continue  # fetched and validated on the client host (roles/ovms_client remote_profile.yml)
            directory = Path(ref.path) if ref.path else root / ref.name
            if directory not in resolved:  # a fleet's clients share a few folders: look once each
                resolved[directory] = directory.resolve() if directory.is_dir() else None
            if resolved[directory] is None:
                key = f"ovms_client_profiles[{index}]." + ("path" if ref.path else "name")
                available = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
                problems.append(
                    Problem(
                        origins.find("ovms_client_profiles", name, host.groups),
                        key,
                        f"no profile folder {directory}",
                        f"{_close(ref.name, available)}create {directory}/profile.yaml"
                        + ("" if ref.path else f" or use one of: {', '.join(available)}"),
                        (name,),
                    )
                )
                continue
            ident = (resolved[directory] or directory, tuple(sorted(environ.items())))
            if ident not in cache and (unusable := _unusable_profile_file(directory)) is not None:
                cache[ident] = unusable
            if ident not in cache:
                try:
                    loaded = load_profile(directory, environ=environ)
                except OSError as exc:  # e.g. a file removed or made unreadable while we read it
                    cache[ident] = Problem(
                        str(exc.filename or directory),
                        "",
                        f"cannot be read: {exc.strerror}",
                        "make it a readable file (see docs/profiles.md)",
                    )
                except Exception as exc:  # ClientError, raised with file + key
                    if not hasattr(exc, "render"):
                        raise
                    fix = getattr(exc, "fix", None) or "see docs/profiles.md for the profile format"
                    cache[ident] = Problem(
                        str(getattr(exc, "file", None) or directory),
                        str(getattr(exc, "key", None) or ""),
                        str(getattr(exc, "message", exc)),
                        fix,
                    )
                else:
                    cache[ident] = ProfileInfo.of(loaded.name, directory, loaded.file, loaded.profile)
            outcome = cache[ident]
            if isinstance(outcome, Problem):
                # the file names the folder; the message names the profile as the inventory does
                message = f"profile {ref.name!r}: {outcome.message}"
                problems.append(Problem(outcome.file, outcome.key, message, outcome.fix, (name,)))
            else:
                instances = ref.instances if isinstance(ref.instances, int) else 1
                found.setdefault(name, []).append(replace(outcome, instances=instances))
    return found, problems


def check_models(
    hosts: Mapping[str, HostVars],
    origins: VarOrigins,
    manifest: Path | None,
    profiles: Mapping[str, list[ProfileInfo]],
    assigned: Mapping[str, str],
) -> list[Problem]:
    """Server models come from the manifest (or `source: manual`); profiles' models are served."""
    from launcher.models import load_manifest

    problems: list[Problem] = []
    manifest_versions: dict[str, set[int]] | None = None
    manifest_files: dict[str, set[str]] = {}  # model -> the client files a version of it writes
    manifest_file = str(manifest) if manifest else "models/manifest.yaml"
    try:
        loaded = load_manifest(manifest)
        manifest_file = str(loaded.file)
        manifest_versions = {}
        for entry in loaded.models:
            manifest_versions.setdefault(entry.name, set()).add(entry.version)
            manifest_files.setdefault(entry.name, set()).update(entry.client_files or {})
    except LauncherError as exc:
        problems.append(from_error(exc, default_file=manifest_file))

    served: dict[str, dict[str, Any]] = {}
    for name, checked in hosts.items():
        host = checked.host
        server = checked.get("ovms_server_")
        if SERVERS_GROUP not in host.groups or server is None:
            continue
        served[name] = {m.name: m for m in server.models}
        if manifest_versions is None:
            continue
        for index, model in enumerate(server.models):
            if model.source == MANUAL:
                continue
            if model.name not in manifest_versions:
                problems.append(
                    Problem(
                        origins.find("ovms_server_models", name, host.groups),
                        f"ovms_server_models[{index}].name",
                        f"model {model.name!r} is not in the models manifest {manifest_file}",
                        f"{_close(model.name, sorted(manifest_versions))}add it to the manifest, "
                        "or set `source: manual` for a model you place in the models folder by hand",
                        (name,),
                    )
                )
                continue
            policy = model.version_policy
            if policy is not None and policy.specific is not None:
                missing = sorted(set(policy.specific.versions) - manifest_versions[model.name])
                if missing:
                    problems.append(
                        Problem(
                            origins.find("ovms_server_models", name, host.groups),
                            f"ovms_server_models[{index}].version_policy.specific.versions",
                            f"version {', '.join(map(str, missing))} of {model.name!r} is not in the "
                            f"manifest (it has {', '.join(map(str, sorted(manifest_versions[model.name])))})",
                            "serve a version the manifest prepares, or add that version to the manifest",
                            (name,),
                        )
                    )

    for client, infos in profiles.items():
        server = assigned.get(client)
        if server is None or server not in served:
            continue
        for info in infos:
            for stage in info.stages:
                problems += _stage_not_served(info, stage, client, server, served[server])
                model = served[server].get(stage.model) if stage.model else None
                if model is not None and model.source != MANUAL and stage.model in manifest_files:
                    problems += _model_files_not_prepared(info, stage, client, manifest_file, manifest_files)
    return problems


def _model_files_not_prepared(
    info: ProfileInfo,
    stage: StageInfo,
    client: str,
    manifest_file: str,
    manifest_files: Mapping[str, set[str]],
) -> list[Problem]:
    """A file the stage reads beside its model that no manifest entry of that model writes."""
    assert stage.model is not None
    known = manifest_files[stage.model]
    prefix = "" if stage.key == "model" else f"stages[{stage.index}]."
    return [
        Problem(
            str(info.file),
            f"{prefix}postprocess.characters.model_file",
            f"profile {info.name!r}, stage {stage.name!r} reads {name!r} beside model {stage.model!r}, "
            f"which the models manifest {manifest_file} does not write (its client_files: "
            f"{', '.join(sorted(known)) or 'none'})",
            f"add `client_files: {{{name}: ...}}` to the model's manifest entry, or name one of its files",
            (client,),
        )
        for name in stage.model_files
        if name not in known
    ]


def _stage_not_served(
    info: ProfileInfo, stage: StageInfo, client: str, server: str, served: Mapping[str, Any]
) -> list[Problem]:
    """A problem when the server does not serve the stage's model, or not its pinned version."""
    if stage.model is None:
        return []  # runs in the client (barcode)
    said = f"model {stage.model!r} of profile {info.name!r}"
    if stage.key != "model":  # the one-model form's stage is its model
        said += f", stage {stage.name!r},"
    if stage.model not in served:
        return [
            Problem(
                str(info.file),
                f"{stage.key}.name",
                f"{said} is not served by {server} (its ovms_server_models: {', '.join(served) or 'none'})",
                f"add `- name: {stage.model}` to ovms_server_models of {server}, "
                "or set ovms_client_server to a server that serves it",
                (client,),
            )
        ]
    policy = served[stage.model].version_policy
    specific = policy.specific if policy is not None else None
    if stage.version and specific is not None and stage.version not in specific.versions:
        return [
            Problem(
                str(info.file),
                f"{stage.key}.version",
                f"version {stage.version} of {said} is not served by {server} "
                f"(it serves {specific.versions})",
                "use version 0 (latest) or one of the served versions",
                (client,),
            )
        ]
    return []


def check_rollout(
    inventory: Inventory, extravars: Mapping[str, Any], selected: set[str] | None, known: Sequence[Problem]
) -> list[Problem]:
    """What `launcher deploy` refuses when it plans the roll-out by site (launcher.rollout, H2): a value
    of ovms_deploy_serial / ovms_deploy_max_fail_percentage that differs between hosts or is templated,
    or one its rule refuses; left out when a problem of `known` already names the variable."""
    from launcher.rollout import plan_rollout, playbook_extravars

    try:
        if plan_rollout(inventory, extravars, selected) is None:
            playbook_extravars(inventory, extravars)
    except LauncherError as exc:
        problem = from_error(exc, default_file=inventory.source_label)
        name = problem.key.rsplit(" ", 1)[-1]
        if not any(name in p.key for p in known):
            return [problem]
    return []
