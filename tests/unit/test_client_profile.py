"""Profile validation: the shipped profiles load; every bad profile names the file, key and expectation."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from client.errors import ClientError
from client.profile import (
    BlazefacePostprocess,
    HttpInput,
    ImagesInput,
    RtspInput,
    SsdPostprocess,
    VideoInput,
    load_profile,
    split_inputs,
)
from client.settings import TlsFiles, deployment_from_env

PROFILES = Path(__file__).resolve().parents[2] / "profiles"
GOOD = yaml.safe_load((PROFILES / "person-detection" / "profile.yaml").read_text())


def write_profile(directory: Path, data: object, env: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    text = data if isinstance(data, str) else yaml.safe_dump(data)
    (directory / "profile.yaml").write_text(text)
    if env is not None:
        (directory / "profile.env").write_text(env)
    return directory


def mutated(change) -> dict:
    data = copy.deepcopy(GOOD)
    change(data)
    return data


def error_of(directory: Path, environ: dict | None = None) -> str:
    with pytest.raises(ClientError) as info:
        load_profile(directory, environ or {})
    assert info.value.exit_code == 2
    return info.value.render()


@pytest.mark.parametrize("name", ["person-detection", "face-detection"])
def test_shipped_profiles_are_valid(name):
    loaded = load_profile(PROFILES / name, {})
    assert loaded.name == name
    assert loaded.profile.model.name == name
    assert loaded.profile.streams >= 1


def test_good_profile_values_and_defaults():
    loaded = load_profile(PROFILES / "person-detection", {})
    profile = loaded.profile
    assert profile.model.input == "image_tensor:0"
    assert (profile.model.size.width, profile.model.size.height, profile.model.dtype) == (300, 300, "uint8")
    assert isinstance(profile.postprocess, SsdPostprocess)
    assert profile.postprocess.labels == {1: "person"}
    assert profile.inputs == [VideoInput(type="video", path="/media/sample.mp4", loop=True)]
    assert profile.outputs.stats_file == "stats.jsonl"
    face = load_profile(PROFILES / "face-detection", {}).profile
    assert isinstance(face.postprocess, BlazefacePostprocess)
    assert (face.model.mean, face.model.std) == (127.5, 127.5)


def test_short_input_forms(tmp_path):
    (tmp_path / "frames").mkdir()
    data = mutated(
        lambda d: d.update(inputs=["rtsp://cam/stream", str(tmp_path / "frames"), "/dev/video2", "clip.mp4"])
    )
    profile = load_profile(write_profile(tmp_path / "p", data), {}).profile
    kinds = [source.type for source in profile.inputs]
    assert kinds == ["rtsp", "images", "device", "video"]
    assert isinstance(profile.inputs[0], RtspInput) and profile.inputs[0].transport == "tcp"
    assert (profile.inputs[0].stall_timeout_s, profile.inputs[0].open_timeout_s) == (5.0, 10.0)
    assert isinstance(profile.inputs[1], ImagesInput)


def test_http_inputs_are_network_streams_not_files(tmp_path):
    data = mutated(
        lambda d: d.update(
            inputs=[
                "http://cam.local:8080/video.mjpg",
                "https://cdn.example/live/index.m3u8",
                {"type": "http", "url": "http://cam/x", "stall_timeout_s": 2, "open_timeout_s": 3},
            ]
        )
    )
    profile = load_profile(write_profile(tmp_path / "p", data), {}).profile
    assert all(isinstance(source, HttpInput) for source in profile.inputs)
    assert profile.inputs[0].url == "http://cam.local:8080/video.mjpg"
    assert (profile.inputs[2].stall_timeout_s, profile.inputs[2].open_timeout_s) == (2.0, 3.0)
    profile = load_profile(
        write_profile(tmp_path / "q", GOOD), {"CLIENT_INPUT": "https://cam/s.mjpg"}
    ).profile
    assert profile.inputs == [HttpInput(type="http", url="https://cam/s.mjpg")]


BAD_PROFILES = [
    (
        "dtype",
        lambda d: d["model"].update(dtype="int7"),
        "model.dtype: expected 'uint8' or 'float32' (got 'int7')",
    ),
    ("missing input", lambda d: d["model"].pop("input"), "model.input: required key is missing"),
    (
        "unknown key",
        lambda d: d["model"].update(colour="rgb"),
        "model.colour: unknown key; expected one of: name, version, input, layout, size, dtype, color",
    ),
    (
        "unknown postprocess",
        lambda d: d["postprocess"].update(type="yolo"),
        "postprocess: unknown type 'yolo'; expected one of 'ssd', 'blazeface', 'raw'",
    ),
    (
        "threshold range",
        lambda d: d["postprocess"].update(threshold=1.5),
        "postprocess.threshold: input should be less than or equal to 1 (got 1.5)",
    ),
    (
        "rtsp url",
        lambda d: d["inputs"].append({"type": "rtsp", "url": "http://camera/stream"}),
        "inputs[1].url: expected an rtsp:// or rtsps:// URL (got 'http://camera/stream')",
    ),
    (
        "device path",
        lambda d: d["inputs"].append({"type": "device", "path": "/dev/sda"}),
        "inputs[1].path: expected a video device path /dev/videoN (got '/dev/sda')",
    ),
    ("no inputs", lambda d: d.update(inputs=[]), "inputs: list should have at least 1 item"),
    ("streams", lambda d: d.update(streams=0), "streams: input should be greater than or equal to 1 (got 0)"),
    (
        "http url",
        lambda d: d["inputs"].append({"type": "http", "url": "ftp://camera/stream"}),
        "inputs[1].url: expected an http:// or https:// URL (got 'ftp://camera/stream')",
    ),
    (
        "rtsp key on an http input",
        lambda d: d["inputs"].append({"type": "http", "url": "http://c/x", "transport": "udp"}),
        "inputs[1].transport: unknown key; expected one of: type, url, stall_timeout_s, open_timeout_s",
    ),
    (
        "unknown key on an rtsp input",
        lambda d: d["inputs"].append({"type": "rtsp", "url": "rtsp://c/x", "timeout": 3}),
        "inputs[1].timeout: unknown key; expected one of: type, url, transport, stall_timeout_s",
    ),
    (
        "stall timeout",
        lambda d: d["inputs"].append({"type": "rtsp", "url": "rtsp://c/x", "stall_timeout_s": 0}),
        "inputs[1].stall_timeout_s: input should be greater than 0 (got 0)",
    ),
    (
        "url without a host",
        lambda d: d["inputs"].append({"type": "rtsp", "url": "rtsp:///x"}),
        "inputs[1].url: the URL names no host",
    ),
    (
        "reopen backoff below the first delay",
        lambda d: d["resilience"].update(backoff_initial_s=5, backoff_max_s=6, reopen_backoff_max_s=1),
        "resilience: reopen_backoff_max_s must be at least backoff_initial_s",
    ),
    (
        "size type",
        lambda d: d["model"]["size"].update(width="wide"),
        "model.size.width: input should be a valid integer",
    ),
    (
        "mean on uint8",
        lambda d: d["model"].update(mean=3),
        "model: mean/std apply to float32 inputs only",
    ),
    (
        "backoff order",
        lambda d: d["resilience"].update(backoff_initial_s=5, backoff_max_s=1),
        "resilience: backoff_max_s must be at least backoff_initial_s",
    ),
    (
        "unknown key on a video input",
        lambda d: d["inputs"][0].update(fps=3),
        "inputs[0].fps: unknown key; expected one of: type, path, loop",
    ),
    (
        "output file escaping the results dir",
        lambda d: d["outputs"].update(stats_file="../stats.jsonl"),
        "outputs.stats_file: expected a plain file name",
    ),
    (
        "input without type",
        lambda d: d["inputs"].append({"path": "x.mp4"}),
        "inputs[1]: missing the 'type' key",
    ),
    (
        "labels keys",
        lambda d: d["postprocess"].update(labels={"one": "person"}),
        "postprocess.labels.one: expected integer keys (class ids)",
    ),
    (
        "layout",
        lambda d: d["model"].update(layout="HWC"),
        "model.layout: expected 'NHWC' or 'NCHW' (got 'HWC')",
    ),
    (
        "max_in_flight",
        lambda d: d["pipeline"].update(max_in_flight=0),
        "pipeline.max_in_flight: input should be greater than or equal to 1 (got 0)",
    ),
]


@pytest.mark.parametrize(
    ("change", "expected"), [b[1:] for b in BAD_PROFILES], ids=[b[0] for b in BAD_PROFILES]
)
def test_bad_profile_names_file_key_and_expectation(tmp_path, change, expected):
    directory = write_profile(tmp_path / "bad", mutated(change))
    message = error_of(directory)
    assert message.startswith(f"{directory / 'profile.yaml'}: ")
    assert expected in message


def test_two_problems_are_both_reported(tmp_path):
    data = mutated(lambda d: (d["model"].update(dtype="int7"), d.update(streams=0)))
    message = error_of(write_profile(tmp_path / "bad", data))
    assert "2 problems" in message and "model.dtype" in message and "streams" in message


def test_yaml_syntax_error_names_the_line(tmp_path):
    message = error_of(write_profile(tmp_path / "bad", "model:\n  name: [unclosed\n"))
    assert "profile.yaml" in message and "not valid YAML" in message and "line" in message


def test_top_level_must_be_a_mapping(tmp_path):
    assert "expected a mapping of profile keys" in error_of(write_profile(tmp_path / "bad", "- a\n- b\n"))


def test_missing_profile_file_and_directory(tmp_path):
    assert "missing profile.yaml" in error_of(tmp_path)
    assert "the profile directory does not exist" in error_of(tmp_path / "nope")


# --- env file and environment overrides --------------------------------------------------------


def test_env_file_overrides_yaml_and_environment_overrides_env_file(tmp_path):
    directory = write_profile(
        tmp_path / "p",
        GOOD,
        env="# comment\n\nCLIENT_STREAMS=3\nexport CLIENT_TARGET_FPS='7.5'\nCLIENT_MODE=\"sync\"\n",
    )
    profile = load_profile(directory, {}).profile
    assert (profile.streams, profile.target_fps, profile.pipeline.mode) == (3, 7.5, "sync")
    profile = load_profile(directory, {"CLIENT_STREAMS": "2"}).profile
    assert profile.streams == 2


def test_env_input_replaces_inputs_and_loop_applies_to_them(tmp_path):
    directory = write_profile(
        tmp_path / "p", GOOD, env="CLIENT_INPUT=a.mp4,rtsp://cam/1\nCLIENT_INPUT_LOOP=false\n"
    )
    profile = load_profile(directory, {}).profile
    assert profile.inputs[0] == VideoInput(type="video", path="a.mp4", loop=False)
    assert profile.inputs[1] == RtspInput(type="rtsp", url="rtsp://cam/1")


def test_env_value_error_names_the_env_line_variable_and_profile_key(tmp_path):
    directory = write_profile(tmp_path / "p", GOOD, env="CLIENT_STREAMS=2\nCLIENT_MAX_IN_FLIGHT=lots\n")
    message = error_of(directory)
    assert message.startswith(f"{directory / 'profile.env'}:2: CLIENT_MAX_IN_FLIGHT: ")
    assert "valid integer" in message and "(got 'lots')" in message and "pipeline.max_in_flight" in message


def test_env_from_process_environment_is_named(tmp_path):
    message = error_of(write_profile(tmp_path / "p", GOOD), {"CLIENT_TARGET_FPS": "-1"})
    assert message.startswith("environment: CLIENT_TARGET_FPS: ")
    assert "greater than or equal to 0" in message


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            "OVMS_ADDRESS=server:9000\n",
            "profile.env:1: OVMS_ADDRESS: set by the deployment, never by a profile",
        ),
        (
            "CLIENT_STREAMZ=2\n",
            "profile.env:1: CLIENT_STREAMZ: unknown setting; expected one of CLIENT_INPUT",
        ),
        ("CLIENT_STREAMS\n", "line 1: expected KEY=VALUE"),
        ("client_streams=2\n", "is not a valid variable name"),
        ("CLIENT_STREAMS=1\nCLIENT_STREAMS=2\n", "CLIENT_STREAMS: line 2: set twice (first at line 1)"),
        ("CLIENT_LOG_LEVEL=chatty\n", "CLIENT_LOG_LEVEL: expected one of DEBUG, INFO, WARNING, ERROR"),
        ("CLIENT_INPUT='x.mp4\n", "unterminated quote"),
        (
            "OVMS_CAMERA_CREDENTIALS=/tmp/c.json\n",
            "profile.env:1: OVMS_CAMERA_CREDENTIALS: set by the deployment, never by a profile",
        ),
    ],
)
def test_bad_env_files(tmp_path, env, expected):
    message = error_of(write_profile(tmp_path / "p", GOOD, env=env))
    assert "profile.env" in message
    assert expected in message


def test_threshold_override_on_raw_profile_is_rejected(tmp_path):
    data = mutated(lambda d: d.update(postprocess={"type": "raw"}))
    message = error_of(write_profile(tmp_path / "p", data, env="CLIENT_THRESHOLD=0.3\n"))
    assert "CLIENT_THRESHOLD: postprocess type 'raw' has no threshold" in message


# --- streams follow the inputs --------------------------------------------------------------------


def test_streams_default_to_one_per_input_and_more_cycle(tmp_path):
    two = ["a.mp4", "rtsp://cam/1"]
    profile = load_profile(write_profile(tmp_path / "a", mutated(lambda d: d.update(inputs=two))), {}).profile
    assert profile.streams == 2
    data = mutated(lambda d: d.update(inputs=two, streams=5))
    assert load_profile(write_profile(tmp_path / "b", data), {}).profile.streams == 5
    # the shipped profiles leave streams to the inputs, so CLIENT_INPUT with several inputs reads each
    loaded = load_profile(PROFILES / "person-detection", {"CLIENT_INPUT": "a.mp4,b.mp4,c/"})
    assert loaded.profile.streams == 3


def test_fewer_streams_than_inputs_is_refused_with_a_fix(tmp_path):
    data = mutated(lambda d: d.update(inputs=["a.mp4", "rtsp://cam/1", "/dev/video0"], streams=2))
    directory = write_profile(tmp_path / "p", data)
    message = error_of(directory)
    assert message.startswith(
        f"{directory / 'profile.yaml'}: streams: 2 stream(s) cannot read 3 inputs: every input needs a stream"
    )
    assert "fix: remove `streams` (it defaults to one stream per input) or set it to 3 or more" in message


def test_fewer_streams_from_the_environment_names_the_variables(tmp_path):
    directory = write_profile(tmp_path / "p", mutated(lambda d: d.update(streams=1)))
    message = error_of(directory, {"CLIENT_INPUT": "a.mp4,b.mp4"})
    assert message.startswith(f"{directory / 'profile.yaml'}: streams: 1 stream(s) cannot read 2 inputs")
    assert "the inputs come from CLIENT_INPUT (environment)" in message and "fix: " in message
    directory = write_profile(tmp_path / "q", GOOD, env="CLIENT_INPUT=a.mp4,b.mp4\nCLIENT_STREAMS=1\n")
    message = error_of(directory)
    assert message.startswith(f"{directory / 'profile.env'}:2: CLIENT_STREAMS: 1 stream(s) cannot read 2")
    assert "(sets profile key streams)" in message


def test_a_camera_password_is_never_repeated_in_an_error(tmp_path):
    secret = "s3cr@t:/pw"
    for index, url in enumerate(
        [
            f"rtsp://op:{secret}@cam:554/x",
            "rtsp://op:s3cr%40t@cam:99999/x",
            f"ftp://op:{secret}@cam/x",
            f"rtsp://op:{secret}@/x",
        ]
    ):
        data = mutated(lambda d, url=url: d["inputs"].append({"type": "rtsp", "url": url}))
        message = error_of(write_profile(tmp_path / f"p{index}", data))
        assert "inputs[1].url" in message
        assert "s3cr" not in message and "pw" not in message.replace("percent-encode", "")


# --- deployment environment --------------------------------------------------------------------


def test_deployment_settings(tmp_path):
    ca, cert, key = (tmp_path / n for n in ("ca.pem", "client.pem", "client.key"))
    for path in (ca, cert, key):
        path.write_text("x")
    env = {
        "OVMS_ADDRESS": "ovms.example:9000",
        "OVMS_TLS_CA": str(ca),
        "OVMS_TLS_CERT": str(cert),
        "OVMS_TLS_KEY": str(key),
        "OVMS_RESULTS_DIR": str(tmp_path / "r"),
    }
    deployment = deployment_from_env(env)
    assert deployment.address == "ovms.example:9000"
    assert deployment.tls == TlsFiles(ca=str(ca), cert=str(cert), key=str(key))
    assert deployment.results_dir == tmp_path / "r"
    assert deployment_from_env({"OVMS_ADDRESS": "[::1]:9000"}).tls is None
    assert deployment.camera_credentials is None
    (tmp_path / "cameras.json").write_text('{"cameras": []}')
    env["OVMS_CAMERA_CREDENTIALS"] = str(tmp_path / "cameras.json")
    assert deployment_from_env(env).camera_credentials == tmp_path / "cameras.json"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "environment: OVMS_ADDRESS: not set"),
        ({"OVMS_ADDRESS": "server"}, "OVMS_ADDRESS: expected host:port"),
        (
            {"OVMS_ADDRESS": "server:70000"},
            "OVMS_ADDRESS: expected host:port with a port between 1 and 65535",
        ),
        ({"OVMS_ADDRESS": "s:1", "OVMS_TLS_CERT": "c"}, "OVMS_TLS_CA: required when OVMS_TLS_CERT"),
        (
            {"OVMS_ADDRESS": "s:1", "OVMS_TLS_CA": "/nonexistent/ca.pem"},
            "OVMS_TLS_CA: file /nonexistent/ca.pem",
        ),
        (
            {"OVMS_ADDRESS": "s:1", "OVMS_TLS_CA": "/x", "OVMS_TLS_CERT": "/y"},
            "OVMS_TLS_KEY: the client certificate and its key go together",
        ),
        (
            {"OVMS_ADDRESS": "s:1", "OVMS_CAMERA_CREDENTIALS": "/nonexistent/cameras.json"},
            "environment: OVMS_CAMERA_CREDENTIALS: file /nonexistent/cameras.json does not exist",
        ),
    ],
)
def test_bad_deployment_settings(env, expected):
    with pytest.raises(ClientError) as info:
        deployment_from_env(env)
    assert expected in info.value.render()


# --- API and encoding ----------------------------------------------------------------------------


def test_api_and_encoding_defaults_and_short_form(tmp_path):
    profile = load_profile(PROFILES / "person-detection", {}).profile
    assert (profile.api, profile.encoding.format) == ("kserve", "raw")
    loaded = load_profile(write_profile(tmp_path / "p", mutated(lambda d: d.update(encoding="jpeg"))), {})
    assert (loaded.profile.encoding.format, loaded.profile.encoding.jpeg_quality) == ("jpeg", 90)


def test_env_chooses_api_and_encoding(tmp_path):
    directory = write_profile(tmp_path / "p", GOOD, env="CLIENT_ENCODING=png\n")
    loaded = load_profile(directory, {"CLIENT_API": "kserve"})
    assert loaded.profile.encoding.format == "png"
    assert load_profile(directory, {"CLIENT_API": "tfs", "CLIENT_ENCODING": "raw"}).profile.api == "tfs"


@pytest.mark.parametrize(
    ("change", "key", "expected"),
    [
        (lambda d: d.update(api="tfs"), "api", "encoding jpeg needs api: kserve"),
        (lambda d: d["model"].update(color="rgb"), "model.color", "OVMS decodes images into BGR"),
        (lambda d: d["model"].update(layout="NCHW"), "model.layout", "needs layout NHWC"),
        (
            lambda d: d["model"].update(dtype="float32", mean=127.5),
            "model.mean",
            "cannot apply mean/std",
        ),
    ],
)
def test_encoded_frames_need_a_model_that_takes_what_ovms_decodes(tmp_path, change, key, expected):
    data = mutated(lambda d: (d.update(encoding={"format": "jpeg"}), change(d)))
    message = error_of(write_profile(tmp_path / "p", data))
    assert f"profile.yaml: {key}: " in message
    assert expected in message
    assert "fix: " in message


def test_encoding_set_from_env_names_the_variable(tmp_path):
    data = mutated(lambda d: d["model"].update(color="rgb"))
    message = error_of(write_profile(tmp_path / "p", data, env="CLIENT_ENCODING=jpeg\n"))
    assert "profile.env:1: CLIENT_ENCODING: " in message
    assert "sets profile key model.color" in message


def test_unknown_api_is_refused(tmp_path):
    message = error_of(write_profile(tmp_path / "p", mutated(lambda d: d.update(api="rest"))))
    assert "api: expected 'kserve' or 'tfs'" in message


# --- schemes, unknown schemes, CLIENT_INPUT with commas in a password ---------------------------------


def test_url_schemes_are_case_insensitive_and_written_in_lower_case(tmp_path):
    data = mutated(
        lambda d: d.update(
            inputs=[
                "RTSP://op:S3cret@cam/a",
                "Rtsps://cam/b",
                "HTTP://cam/c.mjpg",
                {"type": "rtsp", "url": "rTsP://cam/d"},
                {"type": "http", "url": "Https://cam/e.m3u8"},
            ]
        )
    )
    profile = load_profile(write_profile(tmp_path / "p", data), {}).profile
    assert [(s.type, s.url) for s in profile.inputs] == [  # type: ignore[union-attr]
        ("rtsp", "rtsp://op:S3cret@cam/a"),
        ("rtsp", "rtsps://cam/b"),
        ("http", "http://cam/c.mjpg"),
        ("rtsp", "rtsp://cam/d"),
        ("http", "https://cam/e.m3u8"),
    ]
    profile = load_profile(
        write_profile(tmp_path / "q", GOOD), {"CLIENT_INPUT": "RTSP://op:pw@cam/a"}
    ).profile
    assert profile.inputs == [RtspInput(type="rtsp", url="rtsp://op:pw@cam/a")]


@pytest.mark.parametrize(
    "url", ["rstp://admin:S3cretPw@cam/a", "rtps://admin:S3cretPw@cam/a", "ftp://admin:S3cretPw@cam/a"]
)
def test_an_unknown_scheme_is_refused_naming_the_key_not_the_password(tmp_path, url):
    data = mutated(lambda d: d.update(inputs=["a.mp4", url]))
    message = error_of(write_profile(tmp_path / "p", data))
    scheme = url.partition("://")[0]
    assert message.startswith(
        f"{tmp_path / 'p' / 'profile.yaml'}: inputs[1]: unknown URL scheme '{scheme}': expected rtsp://, "
        "rtsps://, http:// or https://"
    )
    assert "S3cret" not in message and f"(got '{scheme}://admin:***@cam/a')" in message
    message = error_of(write_profile(tmp_path / "q", GOOD), {"CLIENT_INPUT": f"b.mp4,{url}"})
    assert message.startswith(f"environment: CLIENT_INPUT: unknown URL scheme '{scheme}'")
    assert message.endswith("(sets profile key inputs[1])") and "S3cret" not in message


def test_a_file_path_that_is_a_url_is_refused(tmp_path):
    for index, source in enumerate(
        [
            {"type": "video", "path": "rtsp://op:S3cret@cam/x"},
            {"type": "images", "path": "http://op:S3cret@c/"},
        ]
    ):
        data = mutated(lambda d, source=source: d.update(inputs=[source]))
        message = error_of(write_profile(tmp_path / f"p{index}", data))
        assert "inputs[0].path: expected a file or folder path, not a URL" in message
        assert "S3cret" not in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a.mp4,b.mp4,c/", ["a.mp4", "b.mp4", "c/"]),
        ("a.mp4,rtsp://cam/1", ["a.mp4", "rtsp://cam/1"]),
        # a comma in a password does not split the URL
        ("rtsp://admin:Pa,ss@cam/a,rtsp://cam/2", ["rtsp://admin:Pa,ss@cam/a", "rtsp://cam/2"]),
        (
            "rtsp://admin:Pa,ss,w@cam/a, /dev/video0 ,./b.mp4,~/c/",
            ["rtsp://admin:Pa,ss,w@cam/a", "/dev/video0", "./b.mp4", "~/c/"],
        ),
        ("http://cam/a?ch=1,2,HTTP://cam/b", ["http://cam/a?ch=1,2", "HTTP://cam/b"]),
        ("rtsp://cam/1,,rtsp://cam/2,", ["rtsp://cam/1", "rtsp://cam/2"]),
    ],
)
def test_client_input_splits_where_an_input_clearly_starts(value, expected):
    assert split_inputs(value) == expected


def test_a_comma_in_a_password_never_leaks_half_of_it(tmp_path):
    directory = write_profile(tmp_path / "p", GOOD)
    profile = load_profile(directory, {"CLIENT_INPUT": "rtsp://admin:Pa,ss@cam/a,rtsp://cam/2"}).profile
    assert profile.inputs == [
        RtspInput(type="rtsp", url="rtsp://admin:Pa,ss@cam/a"),
        RtspInput(type="rtsp", url="rtsp://cam/2"),
    ]
    # an input that is refused never shows the password, whole or cut
    for value in ("rtsp://admin:Pa,ss@/a", "rtsp://admin:Pa,ss@cam:99999/a", "rtsp://admin:Pa,s s@cam/a"):
        message = error_of(directory, {"CLIENT_INPUT": value})
        assert (
            "CLIENT_INPUT" in message and "Pa" not in message and "ss" not in message.replace("sets", "")
        ), message


@pytest.mark.parametrize(
    ("outputs", "key", "expected"),
    [
        (
            {"stats_file": "detections.jsonl.1"},
            "outputs.stats_file",
            "a rotated name of outputs.detections_file ('detections.jsonl')",
        ),
        (
            {"detections_file": "d.jsonl", "stats_file": "D.jsonl"},
            "outputs.stats_file",
            "the same name as outputs.detections_file ('d.jsonl')",
        ),
        (
            {"snapshot_dir": "stats.jsonl.3"},
            "outputs.snapshot_dir",
            "a rotated name of outputs.stats_file ('stats.jsonl')",
        ),
        (
            {"snapshot_dir": "detections.jsonl"},
            "outputs.snapshot_dir",
            "the same name as outputs.detections_file",
        ),
        (
            {"detections_file": "results.2"},
            "outputs.detections_file",
            "a name ending in '.<digits>' is taken by the rotated files",
        ),
        ({"snapshot_dir": ".."}, "outputs.snapshot_dir", "'..' is not a file name"),
        ({"stats_file": "."}, "outputs.stats_file", "'.' is not a file name"),
    ],
)
def test_output_names_that_collide_with_each_other_or_a_rotation_are_refused(
    tmp_path, outputs, key, expected
):
    """Issue 22: `stats_file: detections.jsonl.1` was accepted, and each rotation of the detections
    then replaced the stats file (20 stats records written, none kept)."""
    directory = write_profile(tmp_path / "p", mutated(lambda d: d.setdefault("outputs", {}).update(outputs)))
    message = error_of(directory)
    assert message.startswith(f"{directory / 'profile.yaml'}: {key}: "), message
    assert expected in message, message
    assert "\n  fix: " in message


def test_distinct_output_names_are_accepted(tmp_path):
    names = {"detections_file": "det.jsonl", "stats_file": "det.jsonl.stats", "snapshot_dir": "snaps.1"}
    directory = write_profile(tmp_path / "p", mutated(lambda d: d.setdefault("outputs", {}).update(names)))
    outputs = load_profile(directory, {}).profile.outputs
    assert (outputs.detections_file, outputs.stats_file, outputs.snapshot_dir) == tuple(names.values())
