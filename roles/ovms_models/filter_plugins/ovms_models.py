"""Filters of the ovms_models role."""

from __future__ import annotations


def ovms_models_parse_sums(text: str) -> dict[str, str]:
    """{file name: sha256} from a sha256sum-format file ("<hex>  <name>" or "<hex> *<name>")."""
    sums = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        digest, _, name = line.partition(" ")
        name = name.strip().lstrip("*")
        if len(digest) != 64 or not name or "/" in name or name in (".", ".."):
            raise ValueError(f"not a sha256sum line: {line!r}")
        sums[name] = digest.lower()
    if not sums:
        raise ValueError("checksums.sha256 lists no file")
    return sums


class FilterModule:
    def filters(self) -> dict:
        return {"ovms_models_parse_sums": ovms_models_parse_sums}
