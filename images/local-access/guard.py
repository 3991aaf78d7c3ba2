"""The local-access guard: keeps the iptables OUTPUT rules that reject users of this host other than root
on the bridges of ovms-launcher's private networks (the module ovms_local_access applies them at deploy;
they are runtime state, gone after a reboot). The Docker engine starts this container again with OVMS
(restart policy unless-stopped), so the rules come back with the containers; between starts it checks
them every INTERVAL seconds and puts back one that was removed.

    guard.py --backend nft|legacy [--interval S] NETWORK=BRIDGE...

The rule and the reading of `iptables -S` are the module's own (ovms_local_access.py beside this file,
copied from the collection's plugins/module_utils). Runs as root in the host's network namespace with
only NET_ADMIN and NET_RAW (roles/ovms_server/tasks/local_access.yml); it never removes a rule when it
stops (destroy does, after removing this container).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

from ovms_local_access import BACKENDS, IptablesError, bad_bridges, enforce

# after a failure (the engine still setting up its own rules at boot, a busy xtables lock): try again soon
RETRY_S = 1.0


def run(argv: Sequence[str]) -> tuple[int, str, str]:
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, "", str(exc)
    return proc.returncode, proc.stdout, proc.stderr


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="local-access-guard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=sorted(BACKENDS), required=True)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between checks (default 10)")
    parser.add_argument("bridges", nargs="+", metavar="NETWORK=BRIDGE")
    args = parser.parse_args(argv)
    problems = [f"{item!r} is not NETWORK=BRIDGE" for item in args.bridges if not item.partition("=")[2]]
    args.bridges = dict(item.partition("=")[::2] for item in args.bridges)
    problems += bad_bridges(args.bridges)
    if problems or not 0 < args.interval <= 3600:
        parser.error("; ".join(problems) or "--interval: between 0 and 3600 seconds")
    return args


def guard_once(run: Callable, iptables: str, bridges: dict[str, str], log: Callable[[str], None]) -> bool:
    """One check: True when the rules are all in place afterwards."""
    try:
        removed, added = enforce(run, iptables, bridges)
    except IptablesError as exc:
        log(f"error: {exc}")
        return False
    for rule in removed:
        log(f"removed the stale rule of {rule['network']} on {rule['interface']}")
    for rule in added:
        log(f"added the rule of {rule['network']} on {rule['interface']}")
    return True


def main(argv: Sequence[str] | None = None, *, sleep: Callable[[float], None] = time.sleep) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)

    def log(message: str) -> None:
        print(f"local-access-guard: {message}", flush=True)

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(0)

    # PID 1 of the container: without handlers SIGTERM would be ignored until Docker's SIGKILL
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    iptables = BACKENDS[args.backend]
    shown = ", ".join(f"{n} on {b}" for n, b in sorted(args.bridges.items()))
    log(f"keeping users other than root off {shown} ({iptables}, every {args.interval:g}s)")
    while True:
        ok = guard_once(run, iptables, args.bridges, log)
        sleep(args.interval if ok else min(RETRY_S, args.interval))


if __name__ == "__main__":
    sys.exit(main())
