"""`python -m client`: exit codes for configuration errors, waiting for an absent server, SIGUSR1
(stacks), SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from client.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "profiles" / "person-detection"


@pytest.fixture
def frames_dir(tmp_path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.jpg"), np.full((48, 64, 3), 60 * i, np.uint8))
    return folder


@pytest.fixture
def env(monkeypatch, tmp_path, frames_dir):
    for key in list(os.environ):
        if key.startswith(("OVMS_", "CLIENT_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("OVMS_ADDRESS", "127.0.0.1:1")
    monkeypatch.setenv("OVMS_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("CLIENT_INPUT", str(frames_dir))
    return monkeypatch


def test_bad_profile_exits_2_with_the_message(env, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    data = yaml.safe_load((PROFILE / "profile.yaml").read_text())
    data["streams"] = "many"
    (bad / "profile.yaml").write_text(yaml.safe_dump(data))
    assert main(["--profile", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"error: {bad / 'profile.yaml'}: streams: input should be a valid integer" in err


def test_missing_server_address_exits_2(env, capsys):
    env.delenv("OVMS_ADDRESS")
    assert main(["--profile", str(PROFILE)]) == 2
    assert "error: environment: OVMS_ADDRESS: not set" in capsys.readouterr().err


def test_source_that_cannot_be_opened_exits_2(env, tmp_path, capsys):
    env.setenv("CLIENT_INPUT", str(tmp_path / "missing.mp4"))
    assert main(["--profile", str(PROFILE)]) == 2
    err = capsys.readouterr().err
    assert "inputs[0].path: video file" in err and "missing.mp4 does not exist" in err


def test_check_json_reports_devices_and_masked_inputs(env, tmp_path, capsys):
    profile = tmp_path / "p"
    profile.mkdir()
    data = yaml.safe_load((PROFILE / "profile.yaml").read_text())
    (profile / "profile.yaml").write_text(yaml.safe_dump(data))
    (profile / "profile.env").write_text("CLIENT_INPUT=/dev/video4,rtsp://op:p%40ss@cam/x,/dev/video9\n")
    # the environment wins over profile.env; the devices need not exist to be checked
    env.setenv("CLIENT_INPUT", "/dev/video2,rtsp://op:p%40ss@cam/x,/dev/video0,/dev/video2,http://cam/v.mjpg")
    assert main(["--profile", str(profile), "--check", "--json"]) == 0
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1
    assert json.loads(out) == {
        "name": "person-detection",
        "devices": ["/dev/video2", "/dev/video0"],
        "inputs": [
            "device /dev/video2",
            "rtsp rtsp://op:***@cam/x",
            "device /dev/video0",
            "device /dev/video2",
            "http http://cam/v.mjpg",
        ],
        "stages": [
            {"name": "person-detection", "model": "person-detection", "version": 0, "model_files": []}
        ],
        "outputs": {"detections": True, "detections_file": "detections.jsonl", "stats_file": "stats.jsonl"},
    }
    assert "p%40ss" not in out
    # plain --check is unchanged
    assert main(["--profile", str(profile), "--check"]) == 0
    assert capsys.readouterr().out == f"profile ok: person-detection ({profile / 'profile.yaml'})\n"


def test_credentials_typed_without_a_scheme_are_masked_too(env, capsys):
    # a camera URL without its scheme (or with one the client does not know) is no camera: it must
    # not be shown, in --check --json or in the error at start, with its password
    env.setenv("CLIENT_INPUT", "admin:S3cretPw@cam/a")
    assert main(["--profile", str(PROFILE), "--check", "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["inputs"] == [f"video {PROFILE}/***@cam/a"]
    assert main(["--profile", str(PROFILE)]) == 2
    err = capsys.readouterr().err
    assert f"video file {PROFILE}/***@cam/a does not exist" in err
    env.setenv("CLIENT_INPUT", "Rstp://admin:S3cretPw@cam/a")
    assert main(["--profile", str(PROFILE), "--check", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "CLIENT_INPUT: unknown URL scheme 'Rstp'" in captured.err
    assert "S3cret" not in out + err + captured.err


def test_check_json_of_a_bad_profile_exits_2_without_json(env, tmp_path, capsys):
    env.setenv("CLIENT_STREAMS", "1")
    env.setenv("CLIENT_INPUT", "a.mp4,b.mp4")
    assert main(["--profile", str(PROFILE), "--check", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "CLIENT_STREAMS: 1 stream(s) cannot read 2 inputs" in captured.err


def test_json_needs_check(env, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--profile", str(PROFILE), "--json"])
    assert info.value.code == 2
    assert "--json goes with --check" in capsys.readouterr().err


def test_bad_command_line_exits_2(env):
    with pytest.raises(SystemExit) as info:
        main(["--profile", str(PROFILE), "--duration", "-3"])
    assert info.value.code == 2


def test_waits_for_an_absent_server_and_exits_0_on_sigterm(env, tmp_path):
    log_path = tmp_path / "client.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "client", "--profile", str(PROFILE)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "CLIENT_LOG_LEVEL": "INFO"},
            cwd=ROOT,
        )
    try:
        deadline = time.monotonic() + 60
        while "waiting for model 'person-detection'" not in log_path.read_text():
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        assert proc.poll() is None  # still waiting, not exited
        proc.send_signal(signal.SIGUSR1)  # a stack dump, and the client carries on
        while "Current thread" not in log_path.read_text():
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        assert "wait_for_metadata" in log_path.read_text() and proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log_path.read_text()
    assert "SIGTERM" in text and "stopped before the server answered" in text
