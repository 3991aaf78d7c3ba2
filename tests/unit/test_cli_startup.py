"""`launcher --help` imports no heavy module: subcommands are listed from launcher.commands.COMMANDS
and their modules are imported only when a subcommand runs or shows its own help.

No timing here (timed assertions are flaky on a shared machine); bench/deploy.py records the wall time
of `launcher --help` as `cli_help_s`. The modules below were chosen with `python -X importtime`: each
costs from about 10 ms (yaml) to over 200 ms (ansible's inventory, openvino) when imported on its
own, while the whole of `launcher --help` needs only click (about 15 ms) beyond the interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from launcher.cli import LazyGroup, main
from launcher.commands import COMMANDS

HEAVY_MODULES = (
    "ansible",
    "ansible_runner",
    "pydantic",
    "pydantic_core",
    "cryptography",
    "yaml",
    "jsonschema",
    "requests",
    "urllib3",
    "numpy",
    "cv2",
    "openvino",
    "tritonclient",
    "ovmsclient",
    "grpc",
    "google.protobuf",
    "prometheus_client",
    "rich",
    "launcher.validate",
    "launcher.pki",
    "launcher.runner",
    "launcher.inventory",
    "launcher.models",
    "launcher.images",
    "launcher.media",
)

# Runs the installed `launcher` console script's entry point, as the shell would, in a fresh interpreter.
_START_CLI = """
import contextlib, io, json, sys
from importlib.metadata import entry_points

(entry_point,) = entry_points(group="console_scripts", name="launcher")
out = io.StringIO()
sys.argv = ["launcher", *sys.argv[1:]]
with contextlib.redirect_stdout(out):
    try:
        entry_point.load()()
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
print(json.dumps({"code": code, "out": out.getvalue(), "modules": sorted(sys.modules)}))
"""


def _start_cli(*args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _START_CLI, *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _heavy(modules: list[str]) -> list[str]:
    """The heavy modules (and command modules) among `modules`, each named once by its entry above."""
    found = {name for name in modules if name.startswith("launcher.commands.")}
    for heavy in HEAVY_MODULES:
        if any(name == heavy or name.startswith(heavy + ".") for name in modules):
            found.add(heavy)
    return sorted(found)


@pytest.mark.parametrize("args", [("--help",), ("-h",), ("--version",)])
def test_starting_the_cli_imports_no_heavy_module(args):
    result = _start_cli(*args)
    assert result["code"] in (0, None)
    assert _heavy(result["modules"]) == []


def test_help_lists_every_command_with_its_short_help():
    out = _start_cli("--help")["out"]
    commands = out.split("Commands:\n", 1)[1]
    listed = [line.split()[0] for line in commands.splitlines() if line.strip()]
    assert listed == sorted(spec.name for spec in COMMANDS)
    for spec in COMMANDS:
        assert spec.short_help.split()[0] in commands


def test_a_command_help_imports_only_its_own_module():
    result = _start_cli("media", "--help")
    assert result["code"] == 0
    assert "sample" in result["out"]
    assert "launcher.commands.media" in result["modules"]
    assert "launcher.commands.deploy" not in result["modules"]
    assert "launcher.validate" not in result["modules"]


def test_the_command_list_has_one_entry_per_name_and_each_target_is_that_command():
    names = [spec.name for spec in COMMANDS]
    assert len(names) == len(set(names))
    for spec in COMMANDS:
        command = spec.load()
        assert command.name == spec.name
        # the listing shows the spec's short help: it is the command's own, whatever the width
        stand_in = click.Command(spec.name, help=spec.short_help)
        for limit in (30, 45, 74, 1000):
            assert stand_in.get_short_help_str(limit) == command.get_short_help_str(limit), spec.name


def test_the_listing_is_the_same_before_and_after_the_commands_are_loaded():
    def listing(group: click.Group) -> str:
        return CliRunner().invoke(group, ["--help"], terminal_width=80).output

    fresh = LazyGroup("launcher", lazy_commands=COMMANDS, help=main.help)
    before = listing(fresh)
    assert fresh.commands == {}  # listed without importing a command
    for name in fresh.list_commands(click.Context(fresh)):
        fresh.get_command(click.Context(fresh), name)
    assert set(fresh.commands) == {spec.name for spec in COMMANDS}
    assert listing(fresh) == before


def test_a_mistyped_command_is_suggested_from_every_command():
    fresh = LazyGroup("launcher", lazy_commands=COMMANDS)
    result = CliRunner().invoke(fresh, ["deplyo"])
    assert result.exit_code == 2
    assert "Did you mean 'deploy'?" in result.output
    assert fresh.commands == {}


@pytest.mark.parametrize("args", [["deploy", "--help"], ["certs", "--help"], ["certs", "generate", "--help"]])
def test_subcommand_help_still_works(args):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output
