"""Issue 21, L3: `launcher destroy --purge` deletes a data folder only where this deployment's own
marker is. Each role that creates a data folder writes `.ovms-launcher` in it on every deploy
(roles/ovms_common/tasks/marker.yml); roles/ovms_common/tasks/purge.yml removes a folder only when it
holds that file as a regular, root-owned file with the deployment's label, and leaves and reports any
other folder without stopping destroy. Run for real: ansible-playbook on localhost over tmp folders."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from testbed.paths import PROJECT_ROOT
from testbed.playbook import run_playbook

pytestmark = [pytest.mark.contract]

ROLES = PROJECT_ROOT / "roles"
LABEL = "ovms-launcher.managed"  # ovms_common_label's default


def _playbook(tmp_path: Path, tasks: list[dict], **variables: object) -> subprocess.CompletedProcess:
    play = {"name": "Purge", "hosts": "localhost", "gather_facts": False, "vars": variables, "tasks": tasks}
    return run_playbook(tmp_path, play)


def _common(tasks_from: str, **variables: object) -> dict:
    return {
        "name": f"ovms_common {tasks_from}",
        "ansible.builtin.import_role": {"name": "ovms.edge.ovms_common", "tasks_from": tasks_from},
        "vars": variables,
    }


def _folder(path: Path) -> Path:
    (path / "results").mkdir(parents=True)
    (path / "results" / "stats.jsonl").write_text("{}\n")
    return path


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    """Data folders: one marked by the role's own marker task, and every kind of folder purge must leave."""
    data = tmp_path / "data"
    made = {name: _folder(data / name) for name in ("marked", "old", "foreign", "linked", "others", "dotted")}
    made["missing"] = data / "missing"
    marking = [_common("marker", ovms_common_marker_dir=str(made[n]), ovms_common_marker_role="ovms_client")
               for n in ("marked", "foreign", "others", "dotted")]  # fmt: skip
    run = _playbook(tmp_path, marking)
    assert run.returncode == 0, run.stdout[-3000:]
    marker = (made["marked"] / ".ovms-launcher").read_text()
    assert "role: ovms_client" in marker and f"label: {LABEL}" in marker.splitlines()
    # another deployment's label; a link to a good marker; a marker not written by root; a label
    # whose dots would match any character as a pattern
    (made["foreign"] / ".ovms-launcher").write_text(marker.replace(LABEL, "someone.else"))
    (made["linked"] / ".ovms-launcher").symlink_to(made["marked"] / ".ovms-launcher")
    os.chown(made["others"] / ".ovms-launcher", 65534, 65534)
    (made["dotted"] / ".ovms-launcher").write_text(marker.replace(LABEL, LABEL.replace(".", "x")))
    return made


def _purge_dirs(folders: dict[str, Path]) -> list[dict]:
    return [{"path": str(path), "variable": f"ovms_{name}_dir"} for name, path in folders.items()]


def test_purge_removes_only_the_folders_holding_this_deployments_marker(tmp_path, folders):
    run = _playbook(
        tmp_path, [_common("purge", ovms_common_purge_dirs=_purge_dirs(folders))], ovms_destroy_purge=True
    )
    assert run.returncode == 0, run.stdout[-4000:]  # the folders left do not stop destroy
    assert not folders["marked"].exists()
    for name in ("old", "foreign", "linked", "others", "dotted"):
        assert (folders[name] / "results" / "stats.jsonl").is_file(), name
        assert f"ovms_{name}_dir {folders[name]} was left as it is" in run.stdout, (name, run.stdout[-4000:])
    assert "deploy once more, then purge, or check it and remove it by hand" in run.stdout
    assert (
        "ovms_missing_dir" not in run.stdout.split("TASK [ovms.edge.ovms_common : Report")[-1]
    )  # gone already


def test_without_purge_nothing_is_removed(tmp_path, folders):
    run = _playbook(
        tmp_path, [_common("purge", ovms_common_purge_dirs=_purge_dirs(folders))], ovms_destroy_purge=False
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert (folders["marked"] / ".ovms-launcher").is_file()


def test_a_marker_in_a_system_folder_does_not_make_it_purgeable(tmp_path):
    run = _playbook(
        tmp_path,
        [_common("purge", ovms_common_purge_dirs=[{"path": "/etc", "variable": "ovms_client_data_dir"}])],
        ovms_destroy_purge=True,
    )
    assert run.returncode != 0 and "nothing was removed" in run.stdout, run.stdout[-3000:]
    assert Path("/etc/hostname").exists() or Path("/etc/passwd").exists()


def _tasks(path: Path) -> list[dict]:
    return yaml.safe_load(path.read_text()) or []


def _is_marker(task: dict) -> bool:
    return (task.get("ansible.builtin.import_role") or {}).get("tasks_from") == "marker"


def test_every_purged_data_folder_is_marked_by_its_roles_deploy():
    """Each role's absent.yml purges folders; a deploy entry point of the role (main.yml, or the
    monitoring's gateway.yml) writes the marker in each of them, right after creating them."""
    purged: dict[str, set[str]] = {}
    for absent in ROLES.glob("*/tasks/absent.yml"):
        for task in _tasks(absent):
            target = task.get("ansible.builtin.import_role") or {}
            if target.get("tasks_from") == "purge":
                paths = {d["path"] for d in task["vars"]["ovms_common_purge_dirs"]}
                purged.setdefault(absent.parts[-3], set()).update(paths)
    assert set(purged) == {"ovms_server", "ovms_client", "ovms_camera", "ovms_models", "ovms_monitoring"}, (
        purged
    )
    for role, paths in purged.items():
        marked: set[str] = set()
        for path in sorted((ROLES / role / "tasks").glob("*.yml")):
            if path.name == "absent.yml":
                continue
            tasks = _tasks(path)
            marks = [i for i, t in enumerate(tasks) if _is_marker(t)]
            if not marks:
                continue
            marked |= {tasks[i]["vars"]["ovms_common_marker_dir"] for i in marks}
            created = [
                i
                for i, t in enumerate(tasks)
                if (t.get("ansible.builtin.file") or {}).get("state") == "directory"
                and any(p.strip("{} ") in str(t["ansible.builtin.file"]["path"]) for p in paths)
            ]
            if not created:  # the folder comes from a loop variable: the task creating it names one of them
                created = [
                    i
                    for i, t in enumerate(tasks)
                    if (t.get("ansible.builtin.file") or {}).get("state") == "directory"
                    and any(p.strip("{} ") in str(t.get("loop", "")) for p in paths)
                ]
            assert created and marks[0] == created[0] + 1, (
                f"roles/{role}/tasks/{path.name}: mark right after creating"
            )
        assert paths <= marked, (
            f"roles/{role}: {sorted(paths - marked)} purged by absent.yml but never marked"
        )


def test_a_marked_folder_inside_a_sensitive_folder_is_not_purged(tmp_path):
    """The re-check right before the deletion applies ovms_common_sensitive_dirs too (the review: it
    passed the system folders only): a marked folder inside one is refused and nothing is removed."""
    precious = tmp_path / "precious"
    data = _folder(precious / "app" / "data")
    run = _playbook(
        tmp_path, [_common("marker", ovms_common_marker_dir=str(data), ovms_common_marker_role="ovms_client")]
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert (data / ".ovms-launcher").is_file()
    purge = [
        _common("purge", ovms_common_purge_dirs=[{"path": str(data), "variable": "ovms_client_data_dir"}])
    ]
    run = _playbook(tmp_path, purge, ovms_destroy_purge=True, ovms_common_sensitive_dirs=[str(precious)])
    assert run.returncode != 0, run.stdout[-3000:]
    assert (
        f"nothing was removed on localhost: ovms_client_data_dir: '{data}' is inside {precious}" in run.stdout
    )
    assert (data / "results" / "stats.jsonl").is_file()
    # the same folder, the sensitive list not naming its parent: removed (it holds the marker)
    run = _playbook(tmp_path, purge, ovms_destroy_purge=True, ovms_common_sensitive_dirs=["/etc"])
    assert run.returncode == 0, run.stdout[-3000:]
    assert not data.exists()


def test_the_default_sensitive_folders_are_refused_by_the_purge(tmp_path):
    """With the role's defaults: a folder under /root or /home (not a system folder itself) is refused
    before anything is looked at."""
    purge = [
        _common(
            "purge",
            ovms_common_purge_dirs=[
                {"path": "/root/ovms-contract-purge-test", "variable": "ovms_client_data_dir"},
                {"path": "/home/ovms-contract-purge-test/data", "variable": "ovms_server_data_dir"},
            ],
        )
    ]
    run = _playbook(tmp_path, purge, ovms_destroy_purge=True)
    assert run.returncode != 0, run.stdout[-3000:]
    assert "ovms_client_data_dir: '/root/ovms-contract-purge-test' is inside /root" in run.stdout
    assert "ovms_server_data_dir: '/home/ovms-contract-purge-test/data' is inside /home" in run.stdout
