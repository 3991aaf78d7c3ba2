"""Filters of the ovms_server role: OVMS config.json, expected model versions, readiness."""

from __future__ import annotations

from typing import Any

_MODEL_KEYS = ("target_device", "nireq", "batch_size", "shape", "layout", "plugin_config")


def ovms_config(models: list[dict], pipelines: list | None = None, mediapipe: list | None = None) -> dict:
    """config.json as OVMS reads it: one model_config_list entry per model, base_path /models/<name>."""
    entries = []
    for model in models:
        config: dict[str, Any] = {"name": model["name"], "base_path": f"/models/{model['name']}"}
        for key in _MODEL_KEYS:
            if model.get(key) is not None:
                config[key] = model[key]
        if model.get("version_policy"):
            config["model_version_policy"] = model["version_policy"]
        entries.append({"config": config})
    result: dict[str, Any] = {"model_config_list": entries}
    if pipelines:
        result["pipeline_config_list"] = list(pipelines)
    if mediapipe:
        result["mediapipe_config_list"] = list(mediapipe)
    return result


def ovms_expected_versions(models: list[dict], version_dirs: list[str]) -> dict[str, list[str]]:
    """The versions OVMS should serve per model: version folders present, filtered by the policy."""
    present: dict[str, list[int]] = {}
    for path in version_dirs:
        parts = path.rstrip("/").split("/")
        present.setdefault(parts[-2], []).append(int(parts[-1]))
    expected = {}
    for model in models:
        versions = sorted(present.get(model["name"], []))
        policy = model.get("version_policy") or {"latest": {"num_versions": 1}}
        if "all" in policy:
            chosen = versions
        elif "specific" in policy:
            chosen = sorted(int(v) for v in policy["specific"].get("versions", []))
        else:
            count = int(policy.get("latest", {}).get("num_versions", 1))
            chosen = versions[-count:] if versions else []
        expected[model["name"]] = [str(v) for v in chosen]
    return expected


def ovms_pending(status: dict | None, expected: dict[str, list[str]]) -> list[str]:
    """'name vN: STATE' for every expected version not AVAILABLE in GET /v1/config's answer."""
    status = status if isinstance(status, dict) else {}
    pending = []
    for name, versions in expected.items():
        if not versions:
            pending.append(f"{name}: no version folder to serve")
            continue
        entries = (status.get(name) or {}).get("model_version_status") or []
        states = {str(e.get("version")): e for e in entries}
        for version in versions:
            entry = states.get(version)
            if entry is None:
                pending.append(f"{name} v{version}: not loaded")
            elif entry.get("state") != "AVAILABLE":
                detail = (entry.get("status") or {}).get("error_message") or ""
                pending.append(f"{name} v{version}: {entry.get('state')} {detail}".rstrip())
    return pending


def ovms_model_states(status: dict | None) -> dict[str, dict[str, str]]:
    """{name: {version: state}} from GET /v1/config's answer."""
    status = status if isinstance(status, dict) else {}
    return {
        name: {
            str(e.get("version")): str(e.get("state")) for e in (body or {}).get("model_version_status", [])
        }
        for name, body in status.items()
    }


def ovms_device_paths(models: list[dict], device_map: dict[str, list[str]]) -> list[str]:
    """Host device paths needed by the models' target devices (GPU -> /dev/dri, NPU -> /dev/accel)."""
    paths: list[str] = []
    for model in models:
        device = str(model.get("target_device") or "CPU").upper()
        for family, family_paths in device_map.items():
            if family.upper() in device:
                paths += [p for p in family_paths if p not in paths]
    return paths


class FilterModule:
    def filters(self) -> dict:
        return {
            "ovms_config": ovms_config,
            "ovms_expected_versions": ovms_expected_versions,
            "ovms_pending": ovms_pending,
            "ovms_model_states": ovms_model_states,
            "ovms_device_paths": ovms_device_paths,
        }
