"""Boundaries: code shared by bench/ and tests/ lives in the installed package testbed/, both import it
from there, and no module edits sys.path to reach another folder's code."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from testbed.paths import PROJECT_ROOT

# not the project's code: environments, caches, build output, run artifacts
SKIP_DIRS = {".venv", ".git", ".cache", ".ansible", "build", "dist", "runs", "__pycache__",
             ".pytest_cache", ".ruff_cache", "node_modules"}  # fmt: skip
LIST_EDITS = {"insert", "append", "extend", "remove", "pop", "clear", "reverse", "sort",
              "__setitem__", "__delitem__", "__iadd__"}  # fmt: skip
# the non-test code: what bench/ and the product packages may import
NON_TEST_DIRS = ("bench", "testbed", "launcher", "client", "ovms_double")


def python_files(root: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info"))
        for name in sorted(files):
            if name.endswith(".py"):
                yield Path(folder) / name


def sys_path_edits(source: str, filename: str) -> list[str]:
    """`line: code` of every statement that changes sys.path (or adds a site dir)."""
    tree = ast.parse(source, filename)
    sys_names, path_names, site_names = {"sys"}, set(), {"site"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "sys":
                    sys_names.add(alias.asname or "sys")
                elif alias.name == "site":
                    site_names.add(alias.asname or "site")
        elif isinstance(node, ast.ImportFrom) and node.module == "sys" and node.level == 0:
            path_names |= {alias.asname or alias.name for alias in node.names if alias.name == "path"}

    def is_sys_path(expr: ast.expr) -> bool:
        if isinstance(expr, ast.Subscript):  # sys.path[0:0] = …, del sys.path[0]
            expr = expr.value
        if isinstance(expr, ast.Name):
            return expr.id in path_names
        return (
            isinstance(expr, ast.Attribute)
            and expr.attr == "path"
            and isinstance(expr.value, ast.Name)
            and expr.value.id in sys_names
        )

    found = []
    for node in ast.walk(tree):
        hit = False
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            func = node.func
            hit = (func.attr in LIST_EDITS and is_sys_path(func.value)) or (
                func.attr == "addsitedir" and isinstance(func.value, ast.Name) and func.value.id in site_names
            )
        elif isinstance(node, ast.Assign):
            hit = any(is_sys_path(t) for t in node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            hit = is_sys_path(node.target)
        elif isinstance(node, ast.Delete):
            hit = any(is_sys_path(t) for t in node.targets)
        if hit:
            found.append((node.lineno, f"{node.lineno}: {ast.get_source_segment(source, node)}"))
    return [text for _, text in sorted(found)]


def test_the_detector_sees_the_usual_forms():
    edits = sys_path_edits(
        "import sys\nimport site\nimport sys as s\nfrom sys import path as p\n"
        "sys.path.insert(0, 'x')\ns.path.append('x')\np.extend(['x'])\nsys.path = ['x']\n"
        "sys.path[0:0] = ['x']\nsys.path += ['x']\nsite.addsitedir('x')\ndel sys.path[0]\n"
        "print(sys.path)\nlen(sys.path)\nenv = {'PYTHONPATH': 'x'}\n",
        "example.py",
    )
    assert [e.split(":", 1)[0] for e in edits] == ["5", "6", "7", "8", "9", "10", "11", "12"], edits


def test_no_module_edits_sys_path():
    edits = {}
    for path in python_files(PROJECT_ROOT):
        found = sys_path_edits(path.read_text(encoding="utf-8"), str(path))
        if found:
            edits[str(path.relative_to(PROJECT_ROOT))] = found
    assert not edits, (
        "sys.path edited; put shared code in an installed package (testbed/ for test infrastructure) "
        f"and import it: {json.dumps(edits, indent=1)}"
    )


def test_non_test_code_imports_nothing_from_tests():
    """bench/, testbed/ and the product import no module of tests/ (those are importable only inside
    pytest, through its rootdir-based sys.path entries)."""
    tests = PROJECT_ROOT / "tests"
    test_names = {"tests"}
    for path in python_files(tests):
        test_names.add(path.parent.name if path.name == "__init__.py" else path.stem)
    found = []
    for folder in NON_TEST_DIRS:
        for path in python_files(PROJECT_ROOT / folder):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                found += [
                    f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} {name}"
                    for name in names
                    if name.split(".")[0] in test_names
                ]
    assert not found, found


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME")}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


BENCH_IMPORTS = """
import importlib, json, pkgutil, sys
from pathlib import Path

import bench

names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__))
for name in names:
    importlib.import_module(f"bench.{name}")
tests = Path.cwd().resolve() / "tests"
entries = [Path(p or ".").resolve() for p in sys.path]
on_path = [str(p) for p in entries if p == tests or tests in p.parents]
assert not on_path, f"tests/ on sys.path: {on_path}"
import testbed
print(json.dumps({"modules": names, "testbed": testbed.__file__}))
"""


def test_bench_imports_without_tests_on_the_path():
    """Every bench module imports the way `python -m bench.<name>` runs it: from the project root,
    no PYTHONPATH, tests/ nowhere on sys.path; the harness comes from the installed testbed."""
    proc = _python(BENCH_IMPORTS, PROJECT_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"fleet", "deploy", "inference"} <= set(result["modules"]), result
    assert Path(result["testbed"]).resolve() == PROJECT_ROOT / "testbed" / "__init__.py"


def test_testbed_imports_from_the_checkout_and_is_not_installed(tmp_path):
    """testbed imports from the checkout's root (as bench/ and pytest's pythonpath use it), with its host
    image context; it is not an installed package (the wheel ships launcher and client only)."""
    code = (
        "import importlib, pkgutil, testbed\n"
        "for m in pkgutil.iter_modules(testbed.__path__):\n"
        "    importlib.import_module(f'testbed.{m.name}')\n"
        "from testbed.hostimage import CONTEXT\n"
        "assert (CONTEXT / 'Dockerfile').is_file(), CONTEXT\n"
        "print(testbed.__file__)\n"
    )
    proc = _python(code, PROJECT_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    elsewhere = _python(
        "import importlib.util as u; print(u.find_spec('testbed'), u.find_spec('ovms_double'))", tmp_path
    )
    assert elsewhere.stdout.split() == ["None", "None"], elsewhere.stdout + elsewhere.stderr[-2000:]
