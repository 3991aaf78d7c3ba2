"""`python -m ovms_double --config_path /models/config.json --port 9000 --rest_port 8000`."""

from __future__ import annotations

import sys

from .cli import parse
from .logsetup import configure
from .release import ReleaseError, current
from .server import serve


def main(argv: list[str] | None = None) -> int:
    try:
        release = current()
    except ReleaseError as exc:
        sys.stderr.write(f"OVMS TEST DOUBLE: {exc}\n")
        return 64
    settings = parse(sys.argv[1:] if argv is None else argv, release)
    configure(settings.log_level, settings.log_path)
    return serve(settings, release)


if __name__ == "__main__":
    sys.exit(main())
