"""Filters of the ovms_server role: OVMS config.json, expected model versions, readiness, metrics."""

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


def _families(text: str) -> dict[str, list[Any]]:
    """Samples of a Prometheus text page by metric name (prometheus-client's parser)."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            # the parser names counter samples <name>_total; OVMS's counters have no such suffix
            name = sample.name.removesuffix("_total") if family.type == "counter" else sample.name
            samples.setdefault(name, []).append(sample)
    return samples


def _per_model(samples: dict[str, list[Any]], name: str, **match: str) -> dict[str, float]:
    """Sum of one metric's samples per model (over versions and interfaces), for the labels in match."""
    totals: dict[str, float] = {}
    for sample in samples.get(name, []):
        if all(sample.labels.get(k) == v for k, v in match.items()):
            model = sample.labels.get("name", "")
            totals[model] = totals.get(model, 0.0) + sample.value
    return totals


def ovms_metrics_summary(pages: list[str], seconds: float) -> dict[str, dict[str, Any]]:
    """Per model, from OVMS's /metrics read once or twice `seconds` apart: inferences served (total, and
    per second over the interval), failed inferences (total, and in the interval), and the mean
    inference time in ms (over the interval; over the server's life when nothing ran in it).
    Families the server does not expose (--metrics_list) give None."""
    parsed = [_families(page) for page in pages if page]
    if not parsed:
        return {}
    first, last = parsed[0], parsed[-1]
    interval = float(seconds) if len(parsed) > 1 else 0.0

    def view(samples: dict[str, list[Any]]) -> dict[str, dict[str, float]]:
        return {
            "ok": _per_model(samples, "ovms_requests_success", method="ModelInfer"),
            "fail": _per_model(samples, "ovms_requests_fail", method="ModelInfer"),
            "time": _per_model(samples, "ovms_inference_time_us_sum"),
            "count": _per_model(samples, "ovms_inference_time_us_count"),
        }

    before, after = view(first), view(last)
    names = sorted({n for totals in after.values() for n in totals})
    summary: dict[str, dict[str, Any]] = {}
    for model in names:
        ok, fail = after["ok"].get(model), after["fail"].get(model)
        row: dict[str, Any] = {
            "requests": int(ok) if ok is not None else None,
            "failures": int(fail) if fail is not None else None,
            "rate": None,
            "failures_in_interval": None,
            "inference_ms": None,
        }
        if interval > 0 and ok is not None:
            row["rate"] = round((ok - before["ok"].get(model, 0.0)) / interval, 2)
        if interval > 0 and fail is not None:
            row["failures_in_interval"] = int(fail - before["fail"].get(model, 0.0))
        count, total = after["count"].get(model), after["time"].get(model)
        if count:
            ran = count - before["count"].get(model, 0.0) if interval > 0 else 0.0
            spent = total - before["time"].get(model, 0.0) if ran else total
            row["inference_ms"] = round(spent / (ran or count) / 1000.0, 2)
        summary[model] = row
    return summary


class FilterModule:
    def filters(self) -> dict:
        return {
            "ovms_config": ovms_config,
            "ovms_expected_versions": ovms_expected_versions,
            "ovms_pending": ovms_pending,
            "ovms_model_states": ovms_model_states,
            "ovms_device_paths": ovms_device_paths,
            "ovms_metrics_summary": ovms_metrics_summary,
        }
