"""Issue 22: the alert rules (roles/ovms_monitoring/templates/alerts.yml.j2) rendered as ansible-core's
template action renders them, with the shipped defaults of ovms_monitoring and ovms_common, then
`promtool check rules` and `promtool test rules` in the monitoring image (ovms-launcher/monitoring:dev),
both in one container run as the role runs its containers: user 5005, read-only root, no network.

The unit tests are written here from the same defaults: every alert fires on its condition and stays
quiet on a healthy series; OvmsClientDown fires within 3 minutes of a client stopping with the shipped
scrape and evaluation intervals and not before its `for`; OvmsClientFpsLow ignores streams without a
target; OvmsCertificateNotRenewed fires below the renewal window minus the margin (window read from
ovms_common_pki_lifetimes) and not a day past the window; OvmsDiskFull fires at 95 % and not at 80 %;
OvmsMonitoringTargetDown fires for an exporter down (nginx, node, blackbox) or a failing TLS probe, and
not for a client or server target (their own alerts).
Expected annotations are the rendered ones with the labels and values of each case filled in."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from typing import Any

import pytest
import yaml

from testbed.dockerutil import TEST_LABEL, docker, engine_available, image_exists, readable_tmpdir
from testbed.paths import PROJECT_ROOT

pytestmark = [pytest.mark.observability, pytest.mark.docker, pytest.mark.timeout(180)]

IMAGE = "ovms-launcher/monitoring:dev"
UID = "5005:5005"
ROLES = PROJECT_ROOT / "roles"
TEMPLATE = ROLES / "ovms_monitoring" / "templates" / "alerts.yml.j2"
MONITORING_DEFAULTS = ROLES / "ovms_monitoring" / "defaults" / "main.yml"
COMMON_DEFAULTS = ROLES / "ovms_common" / "defaults" / "main.yml"
ALERTS = {
    "OvmsClientDown",
    "OvmsClientFpsLow",
    "OvmsServerDown",
    "OvmsInferenceFailures",
    "OvmsCertificateNotRenewed",
    "OvmsDiskFull",
    "OvmsMonitoringTargetDown",
}


def _defaults() -> dict[str, Any]:
    common = yaml.safe_load(COMMON_DEFAULTS.read_text(encoding="utf-8"))
    monitoring = yaml.safe_load(MONITORING_DEFAULTS.read_text(encoding="utf-8"))
    return {**common, **monitoring}


VARS = _defaults()

# --- rendering, as the template action does (trim_blocks, trusted template text) -------------------

_RENDER = """
import json, sys
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar, trust_as_template

init_plugin_loader([])
text, variables = json.load(sys.stdin)
templar = Templar(loader=DataLoader(), variables=variables)
overrides = {"trim_blocks": True}  # the template action's default
print(templar.template(trust_as_template(text), escape_backslashes=False, overrides=overrides), end="")
"""


def render(variables: dict[str, Any]) -> str:
    """alerts.yml.j2 rendered by ansible-core (in a process of its own, like the other tests)."""
    proc = subprocess.run(
        [sys.executable, "-c", _RENDER],
        input=json.dumps([TEMPLATE.read_text(encoding="utf-8"), variables]),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def rendered() -> str:
    return render({**VARS, "ansible_managed": "Ansible managed: alerts.yml.j2"})


@pytest.fixture(scope="module")
def rules(rendered: str) -> list[dict[str, Any]]:
    [group] = yaml.safe_load(rendered)["groups"]
    assert group["name"] == "ovms"
    return group["rules"]


# --- what Prometheus' templates print, for the annotations this file expects ------------------------


def seconds(duration: str | int | float) -> float:
    """A Prometheus duration ("15s", "1m30s", "2h") in seconds."""
    if isinstance(duration, int | float):
        return float(duration)
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a duration: {duration!r}"
    return sum(int(n) * units[u] for n, u in parts)


def dur(value: float) -> str:
    return f"{int(value)}s" if value == int(value) else f"{int(value * 1000)}ms"


def humanize(value: float) -> str:
    """Prometheus' `humanize` for the values used here (1 <= v < 1000: 4 significant digits)."""
    assert 1 <= abs(value) < 1000, value
    return f"{value:.4g}"


def humanize_duration(value: float) -> str:
    """Prometheus' `humanizeDuration` for whole seconds of at least a minute."""
    total = int(value)
    assert total >= 60, value
    days, hours, minutes, secs = total // 86400, total // 3600 % 24, total // 60 % 60, total % 60
    if days:
        return f"{days}d {hours}h {minutes}m {secs}s"
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    return f"{minutes}m {secs}s"


_GO = re.compile(r"\{\{\s*\$(?:labels\.(?P<label>\w+)|value(?:\s*\|\s*(?P<fn>\w+))?)\s*\}\}")
_FORMAT = {
    "humanize": humanize,
    "humanizePercentage": lambda v: humanize(v * 100) + "%",
    "humanizeDuration": humanize_duration,
}


def annotations(rule: dict[str, Any], labels: dict[str, str], value: float | None) -> dict[str, str]:
    def fill(match: re.Match) -> str:
        if match["label"]:
            return labels[match["label"]]
        assert value is not None and match["fn"] in _FORMAT, match.group(0)
        return _FORMAT[match["fn"]](value)

    filled = {key: _GO.sub(fill, text) for key, text in rule["annotations"].items()}
    assert not any("{{" in text for text in filled.values()), filled
    return filled


def series(metric: str, labels: dict[str, str]) -> str:
    return metric + "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


# --- the unit tests --------------------------------------------------------------------------------

GATEWAY = "ovms-monitoring-gateway:9444"
CLIENT = {"job": "ovms_client", "instance": GATEWAY, "host": "edge-1", "profile": "people"}
SERVER = {"job": "ovms_server", "instance": "edge-1.example:9443", "host": "edge-1"}


class Cases:
    """promtool test groups built from the rendered rules and the defaults."""

    def __init__(self, rules: list[dict[str, Any]]):
        self.rules = rules
        self.scrape = seconds(VARS["ovms_monitoring_scrape_interval"])
        self.evaluation = seconds(VARS["ovms_monitoring_evaluation_interval"])
        self.groups: list[dict[str, Any]] = []

    def rule(self, name: str, metric: str = "") -> dict[str, Any]:
        [rule] = [r for r in self.rules if r["alert"] == name and metric in r["expr"]]
        return rule

    def expect(self, name: str, labels: dict[str, str], value: float | None = None, metric: str = "") -> dict:
        rule = self.rule(name, metric)
        exp = {"exp_labels": {**labels, **rule["labels"]}}
        exp["exp_annotations"] = annotations(rule, {**labels, **rule["labels"]}, value)
        return exp

    def group(self, name: str, inputs: list[tuple[str, str]], checks: list[tuple[float, str, list]]) -> None:
        self.groups.append(
            {
                "name": name,
                "interval": dur(self.scrape),
                "input_series": [{"series": s, "values": v} for s, v in inputs],
                "alert_rule_test": [
                    {"eval_time": dur(at), "alertname": alert, "exp_alerts": exp} for at, alert, exp in checks
                ],
            }
        )

    def samples(self, until: float) -> int:
        """A repeat count (the `x` of series notation) whose samples reach `until` seconds at least."""
        return math.ceil(until / self.scrape) + 1


def client_down(c: Cases) -> None:
    """A client stops after the last scrape that saw it: with the shipped scrape interval, evaluation
    interval and `for`, the alert fires within 3 minutes of that moment, and not before its `for`."""
    down_for = seconds(VARS["ovms_monitoring_client_down_for"])
    assert seconds(c.rule("OvmsClientDown")["for"]) == down_for
    # the clock promtool does not model: the stop falls just after a scrape, the first failed scrape
    # waits up to a scrape interval and its timeout (Prometheus' default 10 s, at most the interval),
    # the rule sees it at the next evaluation, and fires at the first evaluation after its `for`
    worst = c.scrape + min(10.0, c.scrape) + c.evaluation + down_for + c.evaluation
    assert worst <= 180, f"OvmsClientDown can take {worst:.0f}s after a client stops"
    labels = {**CLIENT, "container": "ovms-client-people-1"}
    running = {**CLIENT, "container": "ovms-client-people-2"}
    ups = c.samples(120)  # the client runs two minutes, then stops
    last_up = (ups - 1) * c.scrape
    first_down = last_up + c.scrape
    more = c.samples(300)
    fired = c.expect("OvmsClientDown", labels)
    c.group(
        "OvmsClientDown: within 3 minutes of a client stopping, not before its for",
        [
            (series("up", labels), f"1x{ups - 1} 0x{more}"),
            (series("up", running), f"1x{ups + more}"),
        ],
        [
            (last_up, "OvmsClientDown", []),
            (first_down + down_for - c.evaluation, "OvmsClientDown", []),
            (math.ceil((first_down + down_for) / c.evaluation) * c.evaluation, "OvmsClientDown", [fired]),
            (last_up + 180, "OvmsClientDown", [fired]),
        ],
    )


def client_fps(c: Cases) -> None:
    ratio, fps_for = float(VARS["ovms_monitoring_fps_ratio"]), seconds(VARS["ovms_monitoring_fps_for"])
    target = 15.0
    slow, fine = target * ratio / 2, target * ratio + target * (1 - ratio) / 2
    base = {**CLIENT, "container": "ovms-client-people-1"}
    streams = {"slow": (slow, target), "fine": (fine, target), "idle": (0.0, 0.0)}
    inputs = []
    for stream, (fps, goal) in streams.items():
        labels = {**base, "stream": stream}
        count = c.samples(fps_for + 120)
        inputs += [(series("ovms_client_fps", labels), f"{fps}x{count}")]
        inputs += [(series("ovms_client_target_fps", labels), f"{goal}x{count}")]
    fired = c.expect("OvmsClientFpsLow", {**base, "stream": "slow"}, slow)
    c.group(
        "OvmsClientFpsLow: below ratio x target for its for; never where the target is 0",
        inputs,
        [
            (fps_for - c.evaluation, "OvmsClientFpsLow", []),
            (fps_for + c.evaluation, "OvmsClientFpsLow", [fired]),
        ],
    )


def server_down(c: Cases) -> None:
    down_for = seconds(c.rule("OvmsServerDown")["for"])
    other = {**SERVER, "instance": "edge-2.example:9443", "host": "edge-2"}
    count = c.samples(down_for + 120)
    c.group(
        "OvmsServerDown: a server target down for its for",
        [(series("up", SERVER), f"0x{count}"), (series("up", other), f"1x{count}")],
        [
            (down_for - c.evaluation, "OvmsServerDown", []),
            (down_for + c.evaluation, "OvmsServerDown", [c.expect("OvmsServerDown", SERVER)]),
        ],
    )


def inference_failures(c: Cases) -> None:
    """Failures rising fire at once (OVMS per model, a client per stream) and clear 5 minutes after
    they stop; flat counters never fire."""
    model = {**SERVER, "name": "person-detection", "version": "1", "interface": "grpc", "method": "Predict"}
    quiet_model = {**model, "name": "face-detection"}
    stream = {**CLIENT, "container": "ovms-client-people-1", "stream": "cam1"}
    quiet_stream = {**stream, "stream": "cam2"}
    rising, flat = c.samples(180), c.samples(900)
    inputs = [
        (series("ovms_requests_fail", model), f"0+2x{rising} {2 * rising}x{flat}"),
        (series("ovms_requests_fail", quiet_model), f"3x{rising + flat}"),
        (series("ovms_client_errors_total", stream), f"0+1x{rising} {rising}x{flat}"),
        (series("ovms_client_errors_total", quiet_stream), f"0x{rising + flat}"),
    ]
    firing = [
        c.expect("OvmsInferenceFailures", model, metric="ovms_requests_fail"),
        c.expect("OvmsInferenceFailures", stream, metric="ovms_client_errors_total"),
    ]
    c.group(
        "OvmsInferenceFailures: rising failures of a model or a client stream",
        inputs,
        [(120, "OvmsInferenceFailures", firing), (900, "OvmsInferenceFailures", [])],
    )


def certificate(c: Cases) -> None:
    """The threshold is the PKI's renewal window minus the margin: an hour inside it fires, an hour
    outside it and a day past the window do not."""
    window = int(VARS["ovms_common_pki_lifetimes"]["server_renew_within_days"])
    margin = int(VARS["ovms_monitoring_cert_margin_days"])
    threshold = (window - margin) * 86400
    at = 10 * c.evaluation  # time() at the evaluation
    left = {
        "edge-1": threshold - 3600,  # inside the threshold: not renewed
        "edge-2": threshold + 3600,
        "edge-3": (window + 1) * 86400,  # a day before the deploy would renew it
    }
    inputs, labels = [], {}
    for host, seconds_left in left.items():
        labels[host] = {"job": "ovms_tls_expiry", "instance": f"{host}.example:9443", "host": host}
        expiry = at + seconds_left
        inputs.append((series("probe_ssl_earliest_cert_expiry", labels[host]), f"{expiry}x{c.samples(at)}"))
    fired = c.expect("OvmsCertificateNotRenewed", labels["edge-1"], left["edge-1"])
    c.group(
        f"OvmsCertificateNotRenewed: below {window} - {margin} days, not at {window} + 1",
        inputs,
        [(at, "OvmsCertificateNotRenewed", [fired])],
    )


def disk_full(c: Cases) -> None:
    full_for = seconds(c.rule("OvmsDiskFull")["for"])
    used = {"/data/results": 0.95, "/data/models": 0.80, "/": 0.99}  # "/" is no data folder
    node = {"job": "ovms_node", "instance": "127.0.0.1:9100", "host": "mon-1", "fstype": "ext4"}
    size, count = 1000.0, c.samples(full_for + 120)
    inputs, labels = [], {}
    for mount, ratio in used.items():
        labels[mount] = {**node, "device": "/dev/vda1", "mountpoint": mount}
        inputs.append((series("node_filesystem_size_bytes", labels[mount]), f"{size}x{count}"))
        inputs.append(
            (series("node_filesystem_avail_bytes", labels[mount]), f"{size * (1 - ratio):.0f}x{count}")
        )
    avail = round(size * (1 - used["/data/results"]))
    fired = c.expect("OvmsDiskFull", labels["/data/results"], 1 - avail / size)
    c.group(
        "OvmsDiskFull: a data folder at 95 % for its for, not one at 80 %",
        inputs,
        [(full_for - c.evaluation, "OvmsDiskFull", []), (full_for + c.evaluation, "OvmsDiskFull", [fired])],
    )


def monitoring_target_down(c: Cases) -> None:
    """An exporter target down (nginx's, a node exporter, the blackbox exporter: `up` of their jobs) or a
    TLS probe failing, for its `for`; a client or server target down is not one (their own alerts), nor
    an exporter or probe that answers."""
    down_for = seconds(c.rule("OvmsMonitoringTargetDown", "up{")["for"])
    assert seconds(c.rule("OvmsMonitoringTargetDown", "probe_success")["for"]) == down_for
    count = c.samples(down_for + 120)
    nginx = {"job": "ovms_nginx", "instance": "edge-1.example:9443", "host": "edge-1"}
    node = {"job": "ovms_node", "instance": "edge-2.example:9444", "host": "edge-2"}
    blackbox = {"job": "ovms_tls_expiry", "instance": "edge-3.example:9443", "host": "edge-3"}
    probe = {"job": "ovms_tls_expiry", "instance": "edge-1.example:9444", "host": "edge-1"}
    fine_probe = {**probe, "instance": "edge-2.example:9443", "host": "edge-2"}
    inputs = [
        (series("up", nginx), f"0x{count}"),
        (series("up", node), f"1x{count}"),
        (series("up", {**node, "instance": "127.0.0.1:9100", "host": "mon-1"}), f"0x{count}"),
        (series("up", blackbox), f"0x{count}"),
        (series("up", probe), f"1x{count}"),
        (series("up", fine_probe), f"1x{count}"),
        (series("probe_success", probe), f"0x{count}"),
        (series("probe_success", fine_probe), f"1x{count}"),
        (series("up", SERVER), f"0x{count}"),
        (series("up", {**CLIENT, "container": "ovms-client-people-1"}), f"0x{count}"),
    ]
    mon = {**node, "instance": "127.0.0.1:9100", "host": "mon-1"}
    fired = [
        c.expect("OvmsMonitoringTargetDown", nginx, metric="up{"),
        c.expect("OvmsMonitoringTargetDown", mon, metric="up{"),
        c.expect("OvmsMonitoringTargetDown", blackbox, metric="up{"),
        c.expect("OvmsMonitoringTargetDown", probe, metric="probe_success"),
    ]
    c.group(
        "OvmsMonitoringTargetDown: an exporter down or a TLS probe failing for its for; "
        "not a client or server",
        inputs,
        [
            (down_for - c.evaluation, "OvmsMonitoringTargetDown", []),
            (down_for + c.evaluation, "OvmsMonitoringTargetDown", fired),
        ],
    )


def healthy(c: Cases) -> None:
    """A healthy deployment for ten minutes: no alert at all."""
    count = c.samples(600)
    client = {**CLIENT, "container": "ovms-client-people-1", "stream": "cam1"}
    node = {"job": "ovms_node", "instance": "127.0.0.1:9100", "host": "edge-1", "device": "/dev/vda1"}
    disk = {**node, "fstype": "ext4", "mountpoint": "/data/results"}
    probe = {"job": "ovms_tls_expiry", "instance": "edge-1.example:9443", "host": "edge-1"}
    server_days = int(VARS["ovms_common_pki_lifetimes"]["server_days"])
    scraped = {k: v for k, v in node.items() if k != "device"}
    inputs = [
        (series("up", {k: v for k, v in client.items() if k != "stream"}), f"1x{count}"),
        (series("up", SERVER), f"1x{count}"),
        (series("ovms_client_fps", client), f"15x{count}"),
        (series("ovms_client_target_fps", client), f"15x{count}"),
        (series("ovms_client_errors_total", client), f"4x{count}"),
        (series("ovms_requests_fail", {**SERVER, "name": "person-detection"}), f"2x{count}"),
        (series("probe_ssl_earliest_cert_expiry", probe), f"{server_days * 86400}x{count}"),
        (series("probe_success", probe), f"1x{count}"),
        (series("up", probe), f"1x{count}"),
        (series("up", {**scraped, "job": "ovms_node"}), f"1x{count}"),
        (series("up", {**scraped, "job": "ovms_nginx", "instance": "edge-1.example:9443"}), f"1x{count}"),
        (series("node_filesystem_size_bytes", disk), f"1000x{count}"),
        (series("node_filesystem_avail_bytes", disk), f"500x{count}"),
    ]
    c.group("a healthy deployment fires nothing", inputs, [(600, alert, []) for alert in sorted(ALERTS)])


def unit_tests(rules: list[dict[str, Any]]) -> dict[str, Any]:
    cases = Cases(rules)
    builds = (client_down, client_fps, server_down, inference_failures, certificate, disk_full)
    for build in (*builds, monitoring_target_down, healthy):
        build(cases)
    return {
        "rule_files": ["alerts.yml"],
        "evaluation_interval": dur(cases.evaluation),
        "tests": cases.groups,
    }


@pytest.fixture(scope="module")
def promtool(rendered: str, rules: list[dict[str, Any]]) -> dict[str, tuple[int, str]]:
    """`promtool check rules` and `promtool test rules`, in one run of the monitoring image."""
    if not engine_available():
        pytest.skip("no Docker engine")
    if not image_exists(IMAGE):
        pytest.fail(f"{IMAGE} missing: run `launcher images build monitoring`")
    with readable_tmpdir("ovms-test-rules-") as folder:
        (folder / "alerts.yml").write_text(rendered, encoding="utf-8")
        tests = yaml.safe_dump(unit_tests(rules), sort_keys=False)
        (folder / "tests.yml").write_text(tests, encoding="utf-8")
        for path in folder.iterdir():
            path.chmod(0o644)
        script = (
            'exec 2>&1; cd /work; promtool check rules alerts.yml; echo "@@check $?"; '
            'promtool test rules tests.yml; echo "@@test $?"'
        )
        proc = docker(
            "run", "--rm", "--label", TEST_LABEL, "--network", "none", "--read-only",
            # `promtool test rules` keeps its scratch storage in a temporary folder
            "--tmpfs", "/tmp:size=64m", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--user", UID, "-v", f"{folder}:/work:ro", IMAGE, "sh", "-c", script,
            check=False, timeout=120,
        )  # fmt: skip
    output = proc.stdout + proc.stderr
    # "<check's output>@@check N\n<test's output>@@test N\n": each command's output, then its code
    parts = re.split(r"(?m)^@@(\w+) (\d+)$", output)
    results = {parts[i + 1]: (int(parts[i + 2]), parts[i]) for i in range(0, len(parts) - 1, 3)}
    assert set(results) == {"check", "test"}, output
    return results


# --- the tests -------------------------------------------------------------------------------------


def test_the_rules_are_the_contracts(rendered: str, rules: list[dict[str, Any]]):
    assert rendered.startswith("# Ansible managed: alerts.yml.j2\n")
    # no Jinja left: what remains between braces is Prometheus' own templating
    assert "{%" not in rendered and re.findall(r"\{\{(?!\s*\$)", rendered) == []
    assert {r["alert"] for r in rules} == ALERTS
    # the durations the contract fixes (the others are variables: next test)
    durations = {r["alert"]: r.get("for") for r in rules}
    assert (durations["OvmsServerDown"], durations["OvmsDiskFull"]) == ("1m", "5m")
    assert [r.get("for") for r in rules if r["alert"] == "OvmsMonitoringTargetDown"] == ["2m", "2m"]
    for rule in rules:
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert set(rule["annotations"]) == {"summary", "description"}, rule["alert"]
        text = " ".join(rule["annotations"].values())
        assert "$labels.host" in text, rule["alert"]
        if "ovms_client" in rule["expr"]:
            assert "$labels.container" in text, rule["alert"]
        if "node_filesystem" in rule["expr"]:
            assert "$labels.mountpoint" in text, rule["alert"]


def test_thresholds_come_from_the_variables():
    """Rendered with other values, the rules carry them (nothing fixed in the template)."""
    lifetimes = {**VARS["ovms_common_pki_lifetimes"], "server_renew_within_days": 20}
    other = {
        **VARS,
        "ansible_managed": "x",
        "ovms_common_pki_lifetimes": lifetimes,
        "ovms_monitoring_client_down_for": "3m",
        "ovms_monitoring_fps_for": "7m",
        "ovms_monitoring_fps_ratio": 0.75,
        "ovms_monitoring_disk_ratio": 0.8,
        "ovms_monitoring_cert_margin_days": 5,
    }
    [group] = yaml.safe_load(render(other))["groups"]
    by_name = {r["alert"]: r for r in group["rules"]}
    assert by_name["OvmsClientDown"]["for"] == "3m"
    assert by_name["OvmsClientFpsLow"]["for"] == "7m"
    assert "< 0.75 * ovms_client_target_fps" in by_name["OvmsClientFpsLow"]["expr"]
    assert by_name["OvmsDiskFull"]["expr"].endswith("> 0.8")
    assert by_name["OvmsCertificateNotRenewed"]["expr"].endswith(f"< {(20 - 5) * 86400}")
    assert "80 %" in by_name["OvmsDiskFull"]["annotations"]["description"]


def test_promtool_checks_the_rules(promtool):
    code, output = promtool["check"]
    assert code == 0, output
    assert "SUCCESS: 9 rules found" in output, output


def test_promtool_unit_tests_pass(promtool):
    code, output = promtool["test"]
    assert code == 0, output
    assert "SUCCESS" in output, output
