"""The repository root as the Ansible collection ovms.edge (docs/collection.md): galaxy.yml passes
Galaxy's rules and carries the launcher's version; `ansible-galaxy collection build` ships the
collection's content and nothing of the checkout's Python packages, tests or state; every role,
module, filter and lookup of ours is called by its FQCN; nothing depends on `playbook_dir` or imports
the launcher; and `ansible-test sanity` passes on the built collection.

ansible-test runs on the collection installed from the tarball (what ships), with community.docker and
community.crypto linked beside it from the `ansible` package (ansible-test looks for dependencies in
the same collection root only). The tests that need no virtual environment of their own run offline,
always; the others (ansible-doc, import, pep8, pylint, runtime-metadata, validate-modules, yamllint)
install their pinned requirements from the package index into virtual environments cached under
`<cache>/ansible-test` (once per machine, about 40 s), see `sanity_home`.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import launcher
from launcher.paths import cache_dir
from testbed.paths import PROJECT_ROOT
from testbed.plugins import load_plugin

pytestmark = pytest.mark.collection

BIN = Path(sys.executable).parent
GALAXY = PROJECT_ROOT / "galaxy.yml"
NAMESPACE, NAME = "ovms", "edge"
FQCN = f"{NAMESPACE}.{NAME}"
CONTENT = ("roles", "playbooks", "plugins")
SCANNED = (*CONTENT, "meta")
# what the tarball must hold, and path parts it must never hold
SHIPPED = {"roles", "playbooks", "plugins", "meta", "profiles", "README.md", "CHANGELOG.md", "models"}
NEVER = {
    ".venv",
    ".git",
    ".ansible",
    ".pytest_cache",
    ".ruff_cache",
    "tests",
    "testbed",
    "bench",
    "ovms_double",
    "launcher",
    "client",
    "runs",
    "certs",
    "molecule",
    "__pycache__",
    "scripts",
    "images",
    "pyproject.toml",
}
OUR_PACKAGES = {"launcher", "client", "ovms_double", "testbed"}
SANITY_SHIPPED = {
    "tests",
    "tests/sanity",
    *(f"tests/sanity/{p.name}" for p in (PROJECT_ROOT / "tests" / "sanity").glob("*.txt")),
}
# Galaxy's names: lowercase letters, digits and underscores, starting with a letter, no "__"
# (galaxy-importer's NAME_REGEXP), at most 64 characters
GALAXY_NAME = re.compile(r"^(?!.*__)[a-z][a-z0-9_]{1,63}$")
GALAXY_TAG = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
# ansible-test sanity tests that need no virtual environment of their own (no package index)
OFFLINE_SANITY = (
    "action-plugin-docs",
    "changelog",
    "compile",
    "empty-init",
    "ignores",
    "line-endings",
    "no-assert",
    "no-get-exception",
    "no-illegal-filenames",
    "no-smart-quotes",
    "pslint",
    "replace-urlopen",
    "shebang",
    "shellcheck",
    "symlinks",
    "use-argspec-type-path",
    "use-compat-six",
)
SANITY_IGNORE = PROJECT_ROOT / "tests" / "sanity"


def galaxy() -> dict[str, Any]:
    return yaml.safe_load(GALAXY.read_text())


def build(dest: Path) -> Path:
    """`ansible-galaxy collection build` of the checkout into `dest`; returns the tarball."""
    proc = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(dest), str(PROJECT_ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (tarball,) = dest.glob(f"{NAMESPACE}-{NAME}-*.tar.gz")
    return tarball


def install(tarball: Path, collections: Path) -> Path:
    """Install the tarball into the (empty) collections path `collections`, offline: the dependencies
    are the collections the `ansible` package bundles. Returns the installed collection's root."""
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(collections)}
    proc = subprocess.run(
        [
            str(BIN / "ansible-galaxy"),
            "collection",
            "install",
            "--offline",
            "-p",
            str(collections),
            str(tarball),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    root = collections / "ansible_collections" / NAMESPACE / NAME
    assert (root / "MANIFEST.json").is_file(), proc.stdout + proc.stderr
    return root


def bundled_collections() -> Path:
    """The `ansible_collections` folder of the `ansible` package (community.docker, community.crypto)."""
    spec = importlib.util.find_spec("ansible_collections")
    assert spec is not None and spec.submodule_search_locations
    for folder in map(Path, spec.submodule_search_locations):
        if (folder / "community" / "docker").is_dir():
            return folder
    raise AssertionError("the ansible package's community.docker is not installed")


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("collection-build"))


@pytest.fixture(scope="module")
def tar_names(tarball: Path) -> list[str]:
    with tarfile.open(tarball) as tar:
        return tar.getnames()


# --- galaxy.yml ----------------------------------------------------------------------------------


def test_galaxy_names_pass_galaxys_rules():
    meta = galaxy()
    assert (meta["namespace"], meta["name"]) == (NAMESPACE, NAME)
    for key in ("namespace", "name"):
        assert GALAXY_NAME.match(meta[key]), f"galaxy.yml {key} {meta[key]!r} breaks Galaxy's naming rules"
    for key in ("version", "readme", "authors", "description", "license", "repository"):
        assert meta.get(key), f"galaxy.yml has no {key}"
    assert SEMVER.match(str(meta["version"])), meta["version"]
    assert (PROJECT_ROOT / meta["readme"]).is_file()
    tags = meta.get("tags") or []
    assert 0 < len(tags) <= 20 and all(GALAXY_TAG.match(t) for t in tags), tags
    assert set(meta["dependencies"]) == {"community.docker", "community.crypto"}


def test_galaxy_version_is_the_launchers():
    assert str(galaxy()["version"]) == launcher.__version__


def test_runtime_requires_the_ansible_core_we_test_with():
    runtime = yaml.safe_load((PROJECT_ROOT / "meta" / "runtime.yml").read_text())
    assert runtime["requires_ansible"].startswith(">=2.19"), runtime


# --- the tarball ---------------------------------------------------------------------------------


def test_build_ships_the_collection_and_nothing_of_the_checkout(tar_names: list[str]):
    top = {name.split("/")[0] for name in tar_names}
    assert top >= SHIPPED, SHIPPED - top
    assert {"MANIFEST.json", "FILES.json"} <= top
    # tests/sanity/ignore-*.txt ships (ansible-test reads it from the installed collection); no other test
    leaked = sorted(
        n
        for n in tar_names
        if (NEVER & set(n.split("/")) and n not in SANITY_SHIPPED) or n.endswith((".pyc", ".egg-info"))
    )
    assert not leaked, leaked
    for role in (PROJECT_ROOT / "roles").iterdir():
        if role.is_dir():
            assert any(n.startswith(f"roles/{role.name}/tasks/") for n in tar_names), role.name
    for playbook in ("deploy", "status", "destroy"):
        assert f"playbooks/{playbook}.yml" in tar_names


# files a user may leave in a checkout (keys, certificates, an inventory of their own, vault and .env
# files, build leftovers): galaxy.yml's manifest lists what ships, so none of them is packed, in the
# collection tarball or in the launcher's wheel (setup.py processes the same directives)
DECOYS = (
    "inventories/mysite/hosts.yml",
    "inventories/mysite/group_vars/all.yml",
    "inventories/localhost/id_ed25519",
    "inventories/localhost/group_vars/secret.pem",
    ".env",
    ".vault_pass",
    "roles/ovms_client/files.key",
    "roles/ovms_client/tasks/leftover.pem",
    "plugins/modules/foo.pem",
    "profiles/person-detection/server.key",
    "context/_build/x.yml",
    "certs/ca/ca.key",
    "runs/deploy/artifacts/stdout",
)


def test_files_left_in_a_checkout_are_never_packed(tmp_path: Path):
    tracked = (
        subprocess.run(["git", "-C", str(PROJECT_ROOT), "ls-files", "-z"], capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    copy = tmp_path / "checkout"
    for rel in filter(None, tracked):
        source = PROJECT_ROOT / rel
        if source.is_file() and not source.is_symlink():
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            (copy / rel).write_bytes(source.read_bytes())
    for rel in DECOYS:
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (copy / rel).write_text("decoy\n")
    proc = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path), str(copy)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (built,) = tmp_path.glob(f"{NAMESPACE}-{NAME}-*.tar.gz")
    with tarfile.open(built) as tar:
        packed = set(tar.getnames())
    assert "roles/ovms_client/tasks/main.yml" in packed
    assert not packed & set(DECOYS), sorted(packed & set(DECOYS))
    spec = importlib.util.spec_from_file_location("ovms_setup_t", PROJECT_ROOT / "setup.py")
    assert spec is not None and spec.loader is not None
    setup = importlib.util.module_from_spec(spec)
    source = (PROJECT_ROOT / "setup.py").read_text(encoding="utf-8")
    # the module's functions without running setup(): everything above the call
    exec(compile(source.split("\nsetup(")[0], "setup.py", "exec"), setup.__dict__)
    _, wheel_files = setup.collection_files(copy)
    assert "roles/ovms_client/tasks/main.yml" in wheel_files
    assert not set(wheel_files) & set(DECOYS), sorted(set(wheel_files) & set(DECOYS))


def test_manifest_names_the_collection_and_its_dependencies(tarball: Path):
    with tarfile.open(tarball) as tar:
        handle = tar.extractfile("MANIFEST.json")
        assert handle is not None
        info = json.load(handle)["collection_info"]
    assert (info["namespace"], info["name"], info["version"]) == (NAMESPACE, NAME, launcher.__version__)
    assert set(info["dependencies"]) == {"community.docker", "community.crypto"}


# --- FQCN, playbook_dir, imports -----------------------------------------------------------------


def _files(*suffixes: str) -> Iterator[Path]:
    for folder in SCANNED:
        for path in sorted((PROJECT_ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in suffixes and "__pycache__" not in path.parts:
                yield path


def _rel(path: Path) -> str:
    return str(path.relative_to(PROJECT_ROOT))


def our_roles() -> set[str]:
    return {p.name for p in (PROJECT_ROOT / "roles").iterdir() if (p / "tasks").is_dir()}


def our_modules() -> set[str]:
    return {p.stem for p in (PROJECT_ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__"}


def our_lookups() -> set[str]:
    return {p.stem for p in (PROJECT_ROOT / "plugins" / "lookup").glob("*.py") if p.stem != "__init__"}


def our_filters() -> set[str]:
    names: set[str] = set()
    for path in (PROJECT_ROOT / "plugins" / "filter").glob("*.py"):
        names |= set(load_plugin(path).FilterModule().filters())
    return names


def _walk(node: Any) -> Iterator[dict]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _role_refs(path: Path, data: Any) -> Iterator[str]:
    """Role names a YAML file refers to: include_role/import_role, a play's roles, meta dependencies."""
    for mapping in _walk(data):
        for key, value in mapping.items():
            if str(key).split(".")[-1] in ("include_role", "import_role") and isinstance(value, dict):
                yield str(value.get("name", ""))
        if "hosts" in mapping and isinstance(mapping.get("roles"), list):
            for entry in mapping["roles"]:
                yield str(entry if isinstance(entry, str) else entry.get("role", entry.get("name", "")))
    if path.parent.name == "meta" and path.name == "main.yml" and isinstance(data, dict):
        for entry in data.get("dependencies") or []:
            yield str(entry if isinstance(entry, str) else entry.get("role", entry.get("name", "")))


def _yaml_files() -> Iterator[tuple[Path, Any]]:
    for path in _files(".yml", ".yaml"):
        yield path, yaml.safe_load(path.read_text())


def test_every_role_reference_is_fqcn():
    roles = our_roles()
    wrong = []
    for path, data in _yaml_files():
        for ref in _role_refs(path, data):
            if "{{" in ref:
                continue  # a variable (molecule scenarios pass the FQCN in one)
            if not (ref.startswith(f"{FQCN}.") and ref.removeprefix(f"{FQCN}.") in roles):
                wrong.append(f"{_rel(path)}: role {ref!r}")
    assert not wrong, "\n".join(wrong)


def test_every_module_of_ours_is_called_by_fqcn():
    modules = our_modules()
    wrong = []
    for path, data in _yaml_files():
        for mapping in _walk(data):
            for key, value in mapping.items():
                if key in modules:
                    wrong.append(f"{_rel(path)}: module {key}")
                if key in ("action", "local_action") and str(value).split()[:1] in ([m] for m in modules):
                    wrong.append(f"{_rel(path)}: {key}: {value}")
    assert not wrong, "\n".join(wrong)


def test_every_filter_and_lookup_of_ours_is_called_by_fqcn():
    filters, lookups = our_filters(), our_lookups()
    assert filters and lookups
    names = "|".join(sorted(map(re.escape, filters)))
    bare_filter = re.compile(
        rf"\|[ \t]*({names})\b"
        rf"|\b(?:map|select|reject|selectattr|rejectattr)\(\s*(?:'[^']*',\s*)?['\"]({names})['\"]"
    )
    looks = "|".join(sorted(map(re.escape, lookups)))
    bare_lookup = re.compile(rf"\b(?:lookup|query|q)\(\s*['\"]({looks})['\"]|\bwith_({looks})\s*:")
    wrong = []
    for path in _files(".yml", ".yaml", ".j2"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for match in [*bare_filter.finditer(line), *bare_lookup.finditer(line)]:
                wrong.append(f"{_rel(path)}:{number}: {match.group(0)}")
    assert not wrong, "\n".join(wrong)


def test_nothing_depends_on_playbook_dir():
    wrong = [
        f"{_rel(path)}:{number}"
        for path in _files(".yml", ".yaml", ".j2", ".py", ".md", ".cfg")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "playbook_dir" in line
    ]
    assert not wrong, "playbook_dir is not the collection's folder once installed:\n" + "\n".join(wrong)


def test_no_content_imports_or_runs_our_python_packages():
    wrong = []
    for path in _files(".py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found = [a.name for a in node.names if a.name.split(".")[0] in OUR_PACKAGES]
            elif isinstance(node, ast.ImportFrom):
                found = [node.module] if (node.module or "").split(".")[0] in OUR_PACKAGES else []
            else:
                continue
            wrong += [f"{_rel(path)}:{node.lineno}: imports {name}" for name in found]
    packages = "|".join(sorted(OUR_PACKAGES))
    run_module = re.compile(rf"-m['\",\s]+({packages})\b|\bimport ({packages})\b")
    for path in _files(".yml", ".yaml", ".j2"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if run_module.search(line) and not line.lstrip().startswith("#"):
                wrong.append(f"{_rel(path)}:{number}: {line.strip()}")
    assert not wrong, "\n".join(wrong)


# --- ansible-test sanity -------------------------------------------------------------------------

# Stand-in for the pip bootstrap script ansible-test downloads from ci-files.testing.ansible.com (a
# host this network does not resolve): pip from the interpreter's ensurepip, then the packages
# ansible-test asks for from the configured index. ansible-test names its cache path for it.
GET_PIP = '''"""ansible-test's pip bootstrap, offline: ensurepip, then the requested packages."""
import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
'''


def _ansible_test_pip_version() -> str:
    source = (
        Path(importlib.util.find_spec("ansible_test").origin).parent / "_internal" / "python_requirements.py"  # type: ignore[arg-type, union-attr]
    ).read_text()
    found = re.search(r"pip='([0-9.]+)'", source)
    assert found, "ansible-test's pinned pip version not found"
    return found.group(1)


@pytest.fixture(scope="module")
def sanity_home() -> Path:
    """HOME of the ansible-test runs: its virtual environments (~/.ansible/test/venv) are kept in the
    launcher's cache between sessions, not in the user's home."""
    home = cache_dir() / "ansible-test"
    script = (
        home / ".ansible" / "test" / "cache" / f"get_pip_{_ansible_test_pip_version().replace('.', '_')}.py"
    )
    script.parent.mkdir(parents=True, exist_ok=True)
    if not script.is_file() or script.read_text() != GET_PIP:
        script.write_text(GET_PIP)
    return home


@pytest.fixture(scope="module")
def sanity_root(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built collection installed at <tmp>/ansible_collections/ovms/edge, its ignore file (not
    shipped too, tests/sanity/), community.* linked from the ansible package."""
    collections = tmp_path_factory.mktemp("sanity")
    root = install(tarball, collections)
    (root / "tests" / "sanity").mkdir(parents=True, exist_ok=True)
    for ignore in SANITY_IGNORE.glob("ignore-*.txt"):
        (root / "tests" / "sanity" / ignore.name).write_text(ignore.read_text())
    bundled = bundled_collections()
    for namespace in ("community",):
        for collection in (bundled / namespace).iterdir():
            link = collections / "ansible_collections" / namespace / collection.name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(collection, target_is_directory=True)
    return root


def ansible_test(root: Path, home: Path, tests: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    selection = [arg for test in tests for arg in ("--test", test)]
    return subprocess.run(
        [str(BIN / "ansible-test"), "sanity", "--local", "--python", python, *selection],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def _findings(proc: subprocess.CompletedProcess[str]) -> str:
    """ansible-test's findings (its pip output left out), or the tail of its output."""
    lines = (proc.stdout + proc.stderr).splitlines()
    found = [line for line in lines if line.startswith(("ERROR", "FATAL", "[ERROR]", ">>>"))]
    return "\n".join(found or lines[-60:])


def test_sanity_ignores_only_the_gpl_header_of_our_modules():
    """Apache-2.0 modules carry no GPLv3 header: that is the one finding ignored (ansible-lint's
    sanity rule permits it), once per module or lookup file."""
    plugins = sorted(
        f"plugins/{kind}/{p.name}"
        for kind in ("modules", "lookup")
        for p in (PROJECT_ROOT / "plugins" / kind).glob("*.py")
    )
    for ignore in SANITY_IGNORE.glob("ignore-*.txt"):
        lines = [line for line in ignore.read_text().splitlines() if line.strip()]
        assert lines == [f"{p} validate-modules:missing-gplv3-license" for p in plugins], ignore.name


def test_ansible_test_sanity_offline_subset(sanity_root: Path, tmp_path: Path):
    """The sanity tests that run with no package index: file hygiene, compile, no-assert, ..."""
    proc = ansible_test(sanity_root, tmp_path, OFFLINE_SANITY)
    assert proc.returncode == 0, _findings(proc)


@pytest.mark.slow
def test_ansible_test_sanity_all(sanity_root: Path, sanity_home: Path):
    """Every sanity test, validate-modules, ansible-doc, pylint, pep8, import and yamllint included; the
    first run on a machine installs their requirements from the package index (about 40 s)."""
    if (
        os.environ.get("OVMS_TEST_OFFLINE") == "1"
        and not (sanity_home / ".ansible" / "test" / "venv").is_dir()
    ):
        pytest.skip("OVMS_TEST_OFFLINE=1 and no ansible-test virtual environment is cached")
    proc = ansible_test(sanity_root, sanity_home)
    assert proc.returncode == 0, _findings(proc)
