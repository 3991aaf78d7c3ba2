"""Issue 21 (review): roles/ovms_client/tasks/verify.yml waits for a client's first results file, in
the results folder the client's container writes. The host looks at that file without hashing it,
reading its type or following a link: only a non-empty regular file counts (a link to a non-empty file
elsewhere on the host, or a FIFO, is no result). verify.yml runs by ansible-playbook on this machine
(connection local, no container), its wait cut to one try."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from client.__main__ import reported_outputs
from client.profile import OutputsSpec
from testbed.playbook import run_playbook, task_results

pytestmark = [pytest.mark.contract]

ROLE = "ovms.edge.ovms_client"
INCLUDE = {"name": ROLE, "tasks_from": "verify.yml"}
WAIT = "Wait for the first results of every client"


def _verify(tmp_path: Path, data: Path, **changed: object) -> dict:
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "vars": {
            "ovms_client_data_dir": str(data),
            "ovms_client_profiles": [{"name": "cams"}],
            # this run's reading of the profile (tasks/profile.yml): the client's defaults
            "ovms_client_prepared": {"cams": {"outputs": reported_outputs(OutputsSpec())}},
            "ovms_client_results_timeout": 1,
            **changed,
        },
        "tasks": [{"name": "Run verify.yml", "ansible.builtin.include_role": INCLUDE}],
    }
    run = run_playbook(tmp_path, play, json_callback=True, timeout=120)
    results = task_results(run)
    wait = results[WAIT]
    assert (run.returncode == 0) != bool(wait.get("failed")), run.stdout[-3000:]
    return wait


def _data(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "data"
    results = data / "results" / "cams-1"
    results.mkdir(parents=True)
    return data, results / "detections.jsonl"


@pytest.mark.slow
@pytest.mark.parametrize("plant", ["link", "fifo", "empty"])
def test_verify_counts_no_link_fifo_or_empty_file_as_results(tmp_path, plant):
    data, detections = _data(tmp_path)
    if plant == "link":
        elsewhere = tmp_path / "elsewhere.jsonl"
        elsewhere.write_text('{"frame": 1}\n', encoding="utf-8")
        detections.symlink_to(elsewhere)
    elif plant == "fifo":
        os.mkfifo(detections)
    else:
        detections.touch()
    wait = _verify(tmp_path, data)
    assert wait.get("failed"), wait
    attempt = wait["results"][0]
    # looked at, not read: no checksum, no mime type, no attributes
    assert not {"checksum", "mimetype", "attributes"} & set(attempt["stat"]), attempt["stat"]
    assert attempt["stat"]["exists"]
    assert attempt["stat"]["size"] == 0 if plant == "empty" else not attempt["stat"]["isreg"]


@pytest.mark.slow
def test_verify_passes_on_a_regular_results_file(tmp_path):
    data, detections = _data(tmp_path)
    detections.write_text('{"frame": 1}\n', encoding="utf-8")
    wait = _verify(tmp_path, data)
    assert not wait.get("failed"), wait
    assert wait["results"][0]["stat"]["isreg"]


@pytest.mark.slow
def test_verify_waits_for_nothing_when_its_timeout_is_0(tmp_path):
    """ovms_client_results_timeout 0: the wait is skipped, even where no profile was read in this run."""
    data, _detections = _data(tmp_path)
    wait = _verify(tmp_path, data, ovms_client_results_timeout=0, ovms_client_prepared={})
    assert wait.get("skipped") and not wait.get("failed"), wait
