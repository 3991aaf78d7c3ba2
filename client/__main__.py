"""`python -m client --profile DIR [--duration S] [--max-frames N] [--sync] [--check [--json]]`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from .app import RunOptions, configure_logging, run
from .errors import ClientError
from .profile import DeviceInput, OutputsSpec, describe_stage, load_profile
from .sources import describe_input
from .urls import redact_text

# the keys of a profile's `outputs` that `--check --json` reports: which files a working client writes
REPORTED_OUTPUTS = ("detections", "detections_file", "stats_file")


def reported_outputs(outputs: OutputsSpec) -> dict[str, object]:
    """The `outputs` of `--check --json`: whether the client writes detections, and the names of its
    detections and stats files."""
    return outputs.model_dump(include=set(REPORTED_OUTPUTS))


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a whole number > 0, got {text}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m client",
        description="Video-analytics client for OpenVINO Model Server. The server address, TLS files "
        "and results directory come from OVMS_ADDRESS, OVMS_TLS_CA/CERT/KEY and OVMS_RESULTS_DIR.",
    )
    parser.add_argument("--profile", required=True, type=Path, help="profile directory (profile.yaml)")
    parser.add_argument("--duration", type=_positive_float, help="stop after S seconds (from start)")
    parser.add_argument("--max-frames", type=_positive_int, help="stop each stream after N frames")
    parser.add_argument("--sync", action="store_true", help="one request in flight (for comparison)")
    parser.add_argument(
        "--check", action="store_true", help="only validate the profile, then exit (0 valid, 2 invalid)"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="with --check: print one JSON object {name, devices, inputs, stages} (camera URLs masked)",
    )
    args = parser.parse_args(argv)
    if args.json and not args.check:
        parser.error("--json goes with --check")
    return args


def check_profile(directory: Path, environ: Mapping[str, str], as_json: bool = False) -> int:
    """Validate a profile folder without connecting anywhere (the deploy's remote-copy check).

    With `as_json`, one line: {"name", "devices": the /dev/videoN its inputs read (after profile.env
    and environment overrides; what the deployment passes into the container), "inputs": each input
    described, camera credentials masked, "stages": each stage's name, model (null for a stage run in
    the client), version and the model files it reads (`{model_file: NAME}`), "outputs": the names of
    the results files it writes and whether it writes detections (`detections`, `detections_file`,
    `stats_file`: what the deploy waits for and `status` reads)}."""
    loaded = load_profile(directory, environ=environ)
    if not as_json:
        print(f"profile ok: {loaded.name} ({loaded.file})", flush=True)
        return 0
    inputs = loaded.profile.inputs
    devices = list(dict.fromkeys(i.path for i in inputs if isinstance(i, DeviceInput)))
    report = {
        "name": loaded.name,
        "devices": devices,
        "inputs": [describe_input(i, loaded) for i in inputs],
        "stages": [describe_stage(stage) for stage in loaded.profile.cascade],
        "outputs": reported_outputs(loaded.profile.outputs),
    }
    print(json.dumps(report), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    options = RunOptions(args.profile, args.duration, args.max_frames, args.sync)
    configure_logging(os.environ.get("CLIENT_LOG_LEVEL", "INFO").upper())
    try:
        if args.check:
            return check_profile(args.profile, os.environ, as_json=args.json)
        return run(options, os.environ)
    except ClientError as exc:
        print(f"error: {redact_text(exc.render())}", file=sys.stderr, flush=True)
        return exc.exit_code
    except Exception:
        logging.getLogger("client").exception("unexpected failure")
        return 1


if __name__ == "__main__":
    sys.exit(main())
