"""Filters of the ovms_models role: checksum files and the controller-side verification message."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.paths import PROJECT_ROOT
from testbed.plugins import load_plugin

_PLUGIN = PROJECT_ROOT / "plugins" / "filter" / "ovms_models.py"
filters = load_plugin(_PLUGIN)

XML, BIN = "a" * 64, "b" * 64


def _stat(name: str, expected: str, *, exists: bool = True, checksum: str = "", size: int = 10) -> dict:
    stat = {"exists": exists, "checksum": checksum, "size": size} if exists else {"exists": False}
    return {"ovms_models_file": {"key": name, "value": expected}, "stat": stat}


def test_parse_sums_reads_both_sha256sum_forms():
    text = f"{XML}  model.xml\n{BIN.upper()} *model.bin\n\n# comment\n"
    assert filters.ovms_models_parse_sums(text) == {"model.xml": XML, "model.bin": BIN}


@pytest.mark.parametrize("text", ["", "nonsense  model.xml\n", f"{XML}  ../model.xml\n"])
def test_parse_sums_refuses_what_is_not_a_checksums_file(text: str):
    with pytest.raises(ValueError):
        filters.ovms_models_parse_sums(text)


def test_mismatches_name_the_file_and_both_checksums():
    results = [
        _stat("model.xml", XML, checksum=XML),
        _stat("model.bin", BIN, checksum="c" * 64, size=123),
    ]
    assert filters.ovms_models_mismatches(results) == [
        f"model.bin: expected sha256 {BIN}, actual sha256 {'c' * 64} (123 bytes)"
    ]


def test_mismatches_report_a_missing_file_and_nothing_for_intact_ones():
    assert filters.ovms_models_mismatches([_stat("model.xml", XML, checksum=XML.upper())]) == []
    missing = filters.ovms_models_mismatches([_stat("model.bin", BIN, exists=False)])
    assert missing == [f"model.bin: expected sha256 {BIN}, actual: the file is missing"]


def test_plugin_file_is_where_the_role_loads_it():
    assert Path(filters.__file__).parent.name == "filter"
    assert set(filters.FilterModule().filters()) == {
        "ovms_models_parse_sums",
        "ovms_models_mismatches",
        "ovms_models_stale",
        "ovms_models_dirs",
    }
