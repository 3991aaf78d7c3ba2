"""Write the variables table of each role's README from the role's own contract.

Each role's README.md has a section between `<!-- variables:start -->` and `<!-- variables:end -->`
listing every variable with its default and description, as geerlingguy's roles do. The facts live in
`defaults/main.yml` (the default) and `meta/argument_specs.yml` (type, choices, description); this
script only copies them, so the table is never a second place to edit:

    python scripts/role_docs.py          # rewrite the sections
    python scripts/role_docs.py --check  # exit 1 when a section is out of date (tests/unit runs it)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from launcher.validate.specs import entry_point_options

ROLES = Path(__file__).resolve().parent.parent / "roles"
START, END = "<!-- variables:start -->", "<!-- variables:end -->"


def _shown(value: Any) -> str:
    if isinstance(value, str):
        text = " ".join(value.split())
        return f"`{text}`" if text else '`""`'
    if value is None or isinstance(value, bool | int | float):
        return f"`{'null' if value is None else str(value).lower() if isinstance(value, bool) else value}`"
    flow = yaml.safe_dump(value, default_flow_style=True, width=10_000)
    return f"`{flow.strip().removesuffix('...').strip()}`"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def table(role: Path) -> str:
    """The markdown table of one role's variables (its defaults, then specced variables without one)."""
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text(encoding="utf-8")) or {}
    options = entry_point_options(role.parent, role.name)
    rows = ["| variable | default | type | description |", "| --- | --- | --- | --- |"]
    names = list(defaults) + [name for name in options if name not in defaults]
    for name in names:
        spec = options.get(name) or {}
        kind = spec.get("type", "")
        if spec.get("elements"):
            kind = f"{kind} of {spec['elements']}"
        if spec.get("choices"):
            kind += " (" + ", ".join(str(c) for c in spec["choices"]) + ")"
        default = (
            _shown(defaults[name]) if name in defaults else ("required" if spec.get("required") else "-")
        )
        rows.append(f"| `{name}` | {_cell(default)} | {_cell(kind)} | {_cell(spec.get('description', ''))} |")
    return "\n".join(rows)


def render(readme: str, body: str, role: str) -> str:
    note = "<!-- written by scripts/role_docs.py from defaults/main.yml and meta/argument_specs.yml -->"
    section = f"{START}\n{note}\n{body}\n{END}"
    if START in readme and END in readme:
        head, rest = readme.split(START, 1)
        return head + section + rest.split(END, 1)[1]
    return readme.rstrip("\n") + f"\n\n## Variables of `{role}`\n\n{section}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a README is out of date")
    args = parser.parse_args(argv)
    stale = []
    for role in sorted(p for p in ROLES.iterdir() if (p / "defaults" / "main.yml").is_file()):
        readme = role / "README.md"
        text = readme.read_text(encoding="utf-8") if readme.is_file() else f"# Role `{role.name}`\n"
        wanted = render(text, table(role), role.name)
        if wanted != text:
            stale.append(str(readme))
            if not args.check:
                readme.write_text(wanted, encoding="utf-8")
    if args.check and stale:
        print("out of date (run `python scripts/role_docs.py`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
