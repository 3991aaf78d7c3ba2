"""Filters of the ovms_client role."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

from ansible.module_utils.parsing.convert_bool import boolean


def _results_rules() -> ModuleType:
    """module_utils ovms_results (which file of a client container status reads, and its labels): imported
    as Ansible runs this file, by its path when a test loads this file by path."""
    try:
        return importlib.import_module("ansible_collections.ovms.edge.plugins.module_utils.ovms_results")
    except ImportError:
        path = Path(__file__).resolve().parents[1] / "module_utils" / "ovms_results.py"
        spec = importlib.util.spec_from_file_location("ovms_edge_results_filter", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}") from None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


RESULTS = _results_rules()

# client/profile.py FileName: a plain file name, never a path (the results files a profile names, as
# the client's check reports them)
_FILE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")  # the client's text: read with fullmatch


# The keys of a client's latest stats line that `launcher status` shows (client/app.py writes them),
# besides `sources`, the per-stream state of its cameras and files, `stages` and `models`.
STATS_KEYS = (
    "fps",
    "latency_p50_ms",
    "latency_p95_ms",
    "dropped",
    "errors",
    "frames",
    "reconnects",
    "stalls",
    "drops",
    "ts",
)
# The keys of each stage's entry in `stages` of a stats line (client/stats.py: requests and failures
# since the start, latency percentiles over the window, the stage's model or null for a stage run in
# the client).
STAGE_STATS_KEYS = ("requests", "failures", "latency_p50_ms", "latency_p95_ms", "model")

# client/profile.py DeviceInput: the only device paths a profile can name
_DEVICE = re.compile(r"^/dev/video[0-9]+\Z")


def _instances(profile: dict) -> list[str]:
    """<profile>-<n> of each instance of a profile, n from 1: results folder and container name suffix."""
    return [
        RESULTS.instance_folder(profile["name"], n) for n in range(1, int(profile.get("instances", 1)) + 1)
    ]


def ovms_client_instances(profiles: list[dict]) -> list[str]:
    """<profile>-<n> of every profile instance (_instances)."""
    return [instance for profile in profiles for instance in _instances(profile)]


def _container_names(profile: dict, prefix: str) -> list[str]:
    """<prefix>-<profile>-<n> of each instance of a profile, n from 1."""
    return [f"{prefix}-{instance}" for instance in _instances(profile)]


def _results_dir(instance: str) -> str:
    """An instance's results folder, below the client data folder."""
    return f"results/{instance}"


def ovms_client_profile_dir(data_dir: str, name: str) -> str:
    """Where a host holds profile `name` (pushed or fetched): <data>/profiles/<name>."""
    return f"{data_dir}/profiles/{name}"


def ovms_client_results_dirs(profiles: list[dict], uid: int | str, gid: int | str) -> list[dict]:
    """The results folder of each profile instance, results/<profile>-<n>, the client's (it writes
    them): {name, owner, group, mode} as the role's folders task creates them."""
    return [
        {"name": _results_dir(instance), "owner": uid, "group": gid, "mode": "0750"}
        for instance in ovms_client_instances(profiles)
    ]


def ovms_client_instance_specs(
    service: dict, profiles: list[dict], prefix: str, data_dir: str, prepared: dict, renewed: list[str]
) -> list[dict]:
    """The container specs of every instance of `profiles` (roles/ovms_common/tasks/container.yml, one
    task for the host): `service` with, for instance n of a profile, its name <prefix>-<profile>-<n>,
    the profile's folder at /profile, its own results folder at /results, the video devices and groups
    the profile's reading found (`prepared`, tasks/profile.yml), its profile and instance labels, the
    label naming its stats file (from the reading's outputs; none when the profile was not read: a dry
    run of a host without its copy), and
    `recreate` when the service says so, the profile's copy changed or its model files did
    (`renewed`)."""
    specs = []
    for profile in profiles:
        name = profile["name"]
        if name not in prepared:
            raise ValueError(f"profile {name} was not placed and read on this host (tasks/profile.yml)")
        read = prepared[name]
        # a templated boolean may be a string ("False"): read as ansible-core reads one
        recreate = (
            boolean(service.get("recreate"), strict=False)
            or boolean(read.get("changed"), strict=False)
            or name in renewed
        )
        placed = {"type": "bind", "source": ovms_client_profile_dir(data_dir, name), "target": "/profile",
                  "read_only": True}  # fmt: skip
        for n, instance in enumerate(_instances(profile), start=1):
            results = {"type": "bind", "source": f"{data_dir}/{_results_dir(instance)}", "target": "/results"}
            profile_label, instance_label = RESULTS.INSTANCE_LABELS
            labels = {**service.get("labels", {}), profile_label: name, instance_label: str(n)}
            if read.get("outputs"):
                labels[RESULTS.STATS_LABEL] = read["outputs"]["stats_file"]
            specs.append(
                {
                    **service,
                    "name": f"{prefix}-{instance}",
                    "mounts": [placed, *service.get("mounts", []), results],
                    "devices": list(read.get("devices") or []),
                    "groups": list(read.get("groups") or []),
                    "labels": labels,
                    "recreate": recreate,
                }
            )
    return specs


def ovms_client_metrics_sd(profiles: list[dict], prefix: str, port: int | str) -> str:
    """The Prometheus http_sd document of a host's client containers (metrics/sd.json, served by the
    clients' metrics gateway of role ovms_monitoring): one entry per instance container of these
    profiles (ovms_client_profiles), `<container>:<port>` and its profile, as JSON text."""
    entries = [
        {"targets": [f"{name}:{int(port)}"], "labels": {"profile": str(profile["name"])}}
        for profile in profiles
        for name in _container_names(profile, prefix)
    ]
    return json.dumps(entries, indent=1, sort_keys=True) + "\n"


def ovms_client_stats(reads: list[dict]) -> list[dict]:
    """One entry per client from status.yml's read of each stats file (module ovms_client_status, its
    `stats`: {name, stdout: the last line; none for a missing or refused file, and msg: why}): latest
    fps, p95, dropped, frames, sources, stages, models, and `note` when no line was read."""
    clients = []
    for result in reads:
        entry: dict = {"name": result.get("name")}
        line = (result.get("stdout") or "").strip()
        try:
            stats = json.loads(line) if line else {}
        except ValueError:
            stats = {}
        for key in STATS_KEYS:
            entry[key] = stats.get(key)
        sources = stats.get("sources")
        sources = sources if isinstance(sources, list) else []
        entry["sources"] = [dict(s) for s in sources if isinstance(s, dict)]
        entry["stages"] = _stage_stats(stats.get("stages"))
        models = stats.get("models")
        entry["models"] = [m for m in models if isinstance(m, str)] if isinstance(models, list) else []
        if result.get("msg"):  # why no line was read (`launcher status --json` shows it)
            entry["note"] = str(result["msg"])
        clients.append(entry)
    return clients


def _stage_stats(stages: object) -> dict[str, dict]:
    """{stage name: {requests, failures, latency_p50_ms, latency_p95_ms, model}} of a stats line, in
    the profile's order (a line written before stages existed has none: {})."""
    if not isinstance(stages, dict):
        return {}
    return {
        str(name): {key: row.get(key) for key in STAGE_STATS_KEYS}
        for name, row in stages.items()
        if isinstance(row, dict)
    }


def ovms_client_containers(containers: list[dict]) -> list[dict]:
    """Summary rows (name, state, health, image, status) from the engine's container list."""
    rows = []
    for container in containers:
        status = str(container.get("Status") or "")
        health = None
        for word in ("healthy", "unhealthy", "starting"):
            if f"({word})" in status or f"(health: {word})" in status:
                health = word
        rows.append(
            {
                "name": (container.get("Names") or ["?"])[0].lstrip("/"),
                "state": container.get("State"),
                "health": health,
                "image": container.get("Image"),
                "status": status,
            }
        )
    return rows


def ovms_client_verify_files(profiles: list[dict], prepared: dict) -> list[dict]:
    """{instance, file} for each instance of `profiles` (ovms_client_profiles), `file` the one a working
    client writes to first: its detections, or its stats when the profile turns detections off, under
    the names the client's own reading of the profile on this host gave (`prepared`, tasks/profile.yml).
    A profile this run did not read on the host is an error naming it."""
    files = []
    for profile in profiles:
        outputs = (prepared.get(profile["name"]) or {}).get("outputs")
        if not outputs:
            raise ValueError(
                f"profile {profile['name']} was not placed and read on this host in this run "
                "(tasks/profile.yml records it): run the role's main entry point before verify.yml"
            )
        first = outputs["detections_file"] if outputs["detections"] else outputs["stats_file"]
        files.extend({"instance": name, "file": first} for name in ovms_client_instances([profile]))
    return files


def ovms_client_checked(output: object, profile: str) -> dict:
    """The client's own reading of a profile (`python -m client --profile DIR --check --json`): the
    JSON object on the last line of the check container's output that holds one. `devices`, `stages`
    and `outputs` are checked here too, as the role renders them into the container's device list,
    into the paths of model files and into the paths of the results files verify.yml waits for and a
    label status reads (a profile fetched by the host is untrusted)."""
    lines = str(output or "").splitlines()
    for line in reversed(lines):
        line = line.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict):
                devices = data.get("devices")
                if not isinstance(devices, list) or not all(
                    isinstance(d, str) and _DEVICE.match(d) for d in devices
                ):
                    raise ValueError(f"profile {profile}: the client's check gave devices {devices!r}")
                data["stages"] = _checked_stages(data.get("stages", []), profile)
                data["outputs"] = _checked_outputs(data.get("outputs"), profile)
                return data
    tail = " | ".join(lines[-5:])
    raise ValueError(f"profile {profile}: the client's check printed no result ({tail or 'no output'})")


def _checked_outputs(outputs: object, profile: str) -> dict:
    """The `outputs` of a check ({detections, detections_file, stats_file}): a bool and two plain file
    names (a client image without them is older than the role: it is rebuilt with the launcher)."""
    if not isinstance(outputs, dict):
        raise ValueError(
            f"profile {profile}: the client's check gave no outputs ({outputs!r}): the client image is older "
            "than this launcher; rebuild it (`launcher images build`) and deploy again"
        )
    checked: dict = {"detections": outputs.get("detections")}
    if not isinstance(checked["detections"], bool):
        raise ValueError(
            f"profile {profile}: the client's check gave outputs.detections {checked['detections']!r}"
        )
    for key in ("detections_file", "stats_file"):
        name = outputs.get(key)
        if not (isinstance(name, str) and _FILE_NAME.fullmatch(name) and name not in (".", "..")):
            raise ValueError(f"profile {profile}: the client's check gave outputs.{key} {name!r}")
        checked[key] = name
    return checked


# A model or file name that becomes a path on the controller and the host: a plain name
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\Z")


def _checked_stages(stages: object, profile: str) -> list[dict]:
    """The `stages` of a check ([{name, model, version, model_files}]; a client from before stages
    gives none): a model whose files are read, and each file, must be plain names."""
    if not isinstance(stages, list):
        raise ValueError(f"profile {profile}: the client's check gave stages {stages!r}")
    checked = []
    for stage in stages:
        name = stage.get("name") if isinstance(stage, dict) else None
        if not isinstance(name, str):
            raise ValueError(f"profile {profile}: the client's check gave a stage {stage!r}")
        model, files = stage.get("model"), stage.get("model_files", [])
        if model is not None and not isinstance(model, str):
            raise ValueError(f"profile {profile}, stage {name}: the client's check gave model {model!r}")
        if not isinstance(files, list) or not all(
            isinstance(f, str) and _MODEL_NAME.match(f) and f not in (".", "..") for f in files
        ):
            raise ValueError(
                f"profile {profile}, stage {name}: the client's check gave model files {files!r}"
            )
        if files and not (isinstance(model, str) and _MODEL_NAME.match(model)):
            raise ValueError(
                f"profile {profile}, stage {name}: model {model!r} reads model files {files} but is not a "
                "plain model name (letters, digits, '.', '_', '-')"
            )
        version = stage.get("version", 0)
        checked.append(
            {
                "name": name,
                "model": model,
                "version": version if isinstance(version, int) and not isinstance(version, bool) else 0,
                "model_files": list(files),
            }
        )
    return checked


def ovms_client_model_needs(prepared: dict, profiles: list[dict]) -> list[dict]:
    """{profile, stage, model, file} for each model file a stage of these profiles (ovms_client_profiles
    entries) reads, from their checks as recorded in ovms_client_prepared (profile -> {stages})."""
    needs = []
    for entry in profiles:
        for stage in (prepared.get(entry["name"]) or {}).get("stages") or []:
            for name in stage.get("model_files") or []:
                needs.append(
                    {"profile": entry["name"], "stage": stage["name"], "model": stage["model"], "file": name}
                )
    return needs


def ovms_client_model_file_dirs(files: list[dict]) -> list[str]:
    """<model> and <model>/<version> of every file found (lookup ovms_client_model_files), parents first."""
    dirs = set()
    for entry in files:
        if entry.get("version") is not None:
            dirs.update((entry["model"], f"{entry['model']}/{entry['version']}"))
    return sorted(dirs)


def ovms_client_model_files_stale(found: list[dict], root: str, files: list[dict]) -> list[str]:
    """What of the host's model files folder `root` (module ovms_client_survey's model_files) no profile
    reads any more: the topmost such paths (removing a folder removes what it holds)."""
    root = root.rstrip("/")
    wanted = {f"{root}/{d}" for d in ovms_client_model_file_dirs(files)}
    wanted |= {
        f"{root}/{f['model']}/{f['version']}/{f['file']}" for f in files if f.get("version") is not None
    }
    stale = sorted(str(entry["path"]) for entry in found if str(entry["path"]) not in wanted)
    return [path for path in stale if not any(path.startswith(f"{other}/") for other in stale)]


def ovms_client_model_files_changed(copies: list[dict], prepared: dict, profiles: list[dict]) -> list[str]:
    """The profiles (of ovms_client_profiles) one of whose stages reads a model file that was just copied
    (the results of the copy task, looping over ovms_client_model_file): their clients are recreated."""
    models = {
        result[result.get("ansible_loop_var", "item")]["model"] for result in copies if result.get("changed")
    }
    return [
        entry["name"]
        for entry in profiles
        if any(
            stage.get("model") in models and stage.get("model_files")
            for stage in (prepared.get(entry["name"]) or {}).get("stages") or []
        )
    ]


def ovms_client_credentials_json(credentials: object) -> str:
    """The credentials file every client container reads (OVMS_CAMERA_CREDENTIALS, client/sources.py):
    {"cameras": [{"match", "username", "password"}, ...]}, sorted by match for a stable file."""
    entries = [
        {"match": match, "username": entry["username"], "password": entry["password"]}
        for match, entry in sorted((credentials or {}).items())
    ]
    return json.dumps({"cameras": entries}, indent=1, sort_keys=True) + "\n"


def ovms_media_stale(found: list[dict], root: str, media: dict) -> list[str]:
    """The paths under a host's media folder `root` (ansible.builtin.find's `files`, links not followed)
    that the media to ship (lookup ovms_media: its `dirs` and `files`) do not list, or list as the
    other kind (a folder where a file goes, a link anywhere): removed before the copy, so the folder
    holds exactly what is listed. A path inside one already listed is left out (it goes with it)."""
    dirs = set(media.get("dirs") or [])
    files = {entry["name"] for entry in media.get("files") or []}
    prefix = root.rstrip("/") + "/"
    stale: list[str] = []
    for entry in sorted(found, key=lambda e: str(e.get("path", ""))):
        path = str(entry.get("path", ""))
        if not path.startswith(prefix):
            continue
        name = path[len(prefix) :]
        if any(name.startswith(s[len(prefix) :] + "/") for s in stale):
            continue
        if name in dirs and entry.get("isdir") and not entry.get("islnk"):
            continue
        if name in files and entry.get("isreg") and not entry.get("islnk"):
            continue
        stale.append(path)
    return stale


class FilterModule:
    def filters(self) -> dict:
        return {
            "ovms_client_instances": ovms_client_instances,
            "ovms_client_instance_specs": ovms_client_instance_specs,
            "ovms_client_profile_dir": ovms_client_profile_dir,
            "ovms_client_results_dirs": ovms_client_results_dirs,
            "ovms_client_metrics_sd": ovms_client_metrics_sd,
            "ovms_client_stats": ovms_client_stats,
            "ovms_client_containers": ovms_client_containers,
            "ovms_client_verify_files": ovms_client_verify_files,
            "ovms_client_checked": ovms_client_checked,
            "ovms_client_model_needs": ovms_client_model_needs,
            "ovms_client_model_file_dirs": ovms_client_model_file_dirs,
            "ovms_client_model_files_stale": ovms_client_model_files_stale,
            "ovms_client_model_files_changed": ovms_client_model_files_changed,
            "ovms_client_credentials_json": ovms_client_credentials_json,
            "ovms_media_stale": ovms_media_stale,
        }
