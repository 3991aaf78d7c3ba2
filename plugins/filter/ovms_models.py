"""Filters of the ovms_models role."""

from __future__ import annotations


def ovms_models_parse_sums(text: str) -> dict[str, str]:
    """{file name: sha256} from a sha256sum-format file ("<hex>  <name>" or "<hex> *<name>")."""
    sums = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        digest, _sep, name = line.partition(" ")
        name = name.strip().lstrip("*")
        if len(digest) != 64 or not name or "/" in name or name in (".", ".."):
            raise ValueError(f"not a sha256sum line: {line!r}")
        sums[name] = digest.lower()
    if not sums:
        raise ValueError("checksums.sha256 lists no file")
    return sums


def ovms_models_mismatches(results: list[dict]) -> list[str]:
    """'<file>: expected sha256 <hex>, actual sha256 <hex> (<size> bytes)' for every file of a looped
    `stat` (loop_var ovms_models_file = {key: name, value: expected sha256}) that does not match."""
    problems = []
    for result in results or []:
        item = result.get("ovms_models_file") or {}
        name, expected = item.get("key", "?"), str(item.get("value", "")).lower()
        stat = result.get("stat") or {}
        if not stat.get("exists"):
            problems.append(f"{name}: expected sha256 {expected}, actual: the file is missing")
            continue
        actual = str(stat.get("checksum", "")).lower()
        if actual != expected:
            problems.append(
                f"{name}: expected sha256 {expected}, actual sha256 {actual} ({stat.get('size', '?')} bytes)"
            )
    return problems


def ovms_models_stale(prepared: list[dict], server_sums: dict[str, str]) -> list[dict]:
    """The prepared versions ({name, version, src, sums}) whose checksums.sha256 on the server is
    missing or differs: the ones to copy."""
    return [
        entry
        for entry in prepared or []
        if (server_sums or {}).get(f"{entry['name']}/{entry['version']}", "").strip() != entry["sums"].strip()
    ]


def ovms_models_dirs(prepared: list[dict], models_dir: str, present: list[str]) -> list[str]:
    """The version folders on the server once the prepared versions are placed: those it had, and
    <models_dir>/<name>/<version> of every prepared one."""
    placed = {
        f"{models_dir}/{e['name']}/{e['version']}" for e in prepared or [] if e.get("version") is not None
    }
    return sorted(set(present or []) | placed)


class FilterModule:
    def filters(self) -> dict:
        return {
            "ovms_models_parse_sums": ovms_models_parse_sums,
            "ovms_models_mismatches": ovms_models_mismatches,
            "ovms_models_stale": ovms_models_stale,
            "ovms_models_dirs": ovms_models_dirs,
        }
