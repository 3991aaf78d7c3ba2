"""The proxy's nginx site as the role renders it (TLS resumption off, AEAD-only TLS 1.2, per-address
limits), and the values refused before a deploy: by the launcher's validation, and by the role's own
assert when it runs without the launcher."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench import inference_setup
from launcher.content import content
from launcher.pki import KeyType
from launcher.validate import validate
from testbed.plugins import load_plugin

ROLE = inference_setup.ROLE_DIR
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
MONITORING = load_plugin("plugins/filter/ovms_monitoring.py")


def render_site(tmp: Path, **changed: object) -> list[str]:
    """The role's site template, rendered by the benchmark's function from the role defaults with
    `changed` ones; its lines without comments and blanks."""
    role = tmp / "role"
    (role / "defaults").mkdir(parents=True)
    (role / "templates").symlink_to(ROLE / "templates")
    (role / "defaults" / "main.yml").write_text(yaml.safe_dump({**DEFAULTS, **changed}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(inference_setup, "ROLE_DIR", role)
        text, _ = inference_setup.render_proxy_config("ovms-server")
    return [code for line in text.splitlines() if (code := line.split("#", 1)[0].strip())]


def test_no_tls_session_is_resumed_and_tls12_has_aead_suites_only(tmp_path):
    lines = render_site(tmp_path, ovms_tls_allow_tls12=True)
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in lines
    for directive in (
        "ssl_session_cache off;",
        "ssl_session_tickets off;",
        "ssl_conf_command NumTickets 0;",
        "ssl_prefer_server_ciphers on;",
    ):
        assert directive in lines
    assert not [line for line in lines if line.startswith("ssl_session_timeout") or "shared:" in line]
    [ciphers] = [line for line in lines if line.startswith("ssl_ciphers ")]
    suites = ciphers.removeprefix("ssl_ciphers ").rstrip(";").split(":")
    aead = re.compile(r"^ECDHE-(ECDSA|RSA)-(AES128-GCM-SHA256|AES256-GCM-SHA384|CHACHA20-POLY1305)$")
    assert all(aead.match(suite) for suite in suites), suites
    # suites for every key type the PKI issues (launcher/pki/keys.py)
    for key_type in KeyType:
        signer = "ECDSA" if key_type.value.startswith("ecdsa") else "RSA"
        assert any(suite.startswith(f"ECDHE-{signer}-") for suite in suites), key_type


def test_limits_per_client_address_with_the_defaults(tmp_path):
    lines = render_site(tmp_path)
    conn, rate, burst = (DEFAULTS[f"ovms_tls_limit_{n}"] for n in ("conn", "req_rate", "req_burst"))
    assert conn > 0 and rate > 0
    assert "limit_conn_zone $binary_remote_addr zone=ovms_tls_conn:1m;" in lines
    assert f"limit_conn ovms_tls_conn {conn};" in lines
    assert "limit_conn_status 429;" in lines
    assert f"limit_req_zone $binary_remote_addr zone=ovms_tls_req:1m rate={rate}r/s;" in lines
    assert f"limit_req zone=ovms_tls_req burst={burst} nodelay;" in lines
    assert "limit_req_status 429;" in lines


@pytest.mark.parametrize(
    ("changed", "gone", "kept"),
    [
        ({"ovms_tls_limit_conn": 0}, "limit_conn", "limit_req"),
        ({"ovms_tls_limit_req_rate": 0}, "limit_req", "limit_conn"),
    ],
)
def test_a_limit_of_0_is_off(tmp_path, changed, gone, kept):
    lines = render_site(tmp_path, **changed)
    assert not [line for line in lines if line.startswith(gone)]
    assert len([line for line in lines if line.startswith(kept)]) == 3


def _inventory(tmp_path: Path, **variables: object) -> Path:
    inv = tmp_path / "hosts.yml"
    hosts = {"all": {"children": {"ovms_servers": {"hosts": {"localhost": None}}}, "vars": variables}}
    inv.write_text(yaml.safe_dump(hosts))
    return inv


@pytest.mark.parametrize("address", ["999.1.1.1", ":::", "1.2.3", "10.0.0.0/8", "localhost", ""])
def test_validation_refuses_a_bind_address_that_is_no_ip_address(tmp_path, address):
    inv = _inventory(tmp_path, ovms_tls_bind_address=address)
    [problem] = validate([inv]).problems
    assert problem.key == "ovms_tls_bind_address" and problem.file == str(inv)
    assert f"{address!r} is not an IPv4 or IPv6 address" in problem.message


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.168.10.5", "fd00::5"])
def test_validation_accepts_ip_addresses(tmp_path, address):
    report = validate([_inventory(tmp_path, ovms_tls_bind_address=address)])
    assert report.ok, [p.render() for p in report.problems]


@pytest.mark.parametrize("size", ["0", "0m", "00k"])
def test_validation_refuses_a_body_size_of_0(tmp_path, size):
    inv = _inventory(tmp_path, ovms_tls_max_body_size=size)
    [problem] = validate([inv]).problems
    assert problem.key == "ovms_tls_max_body_size"
    assert "is no limit for nginx: give a size of at least 1" in problem.message


@pytest.mark.parametrize("size", ["1", "512k", "64m", "1g"])
def test_validation_accepts_body_sizes(tmp_path, size):
    report = validate([_inventory(tmp_path, ovms_tls_max_body_size=size)])
    assert report.ok, [p.render() for p in report.problems]


@pytest.mark.parametrize(
    "variable", ["ovms_tls_limit_conn", "ovms_tls_limit_req_rate", "ovms_tls_limit_req_burst"]
)
def test_validation_refuses_negative_limits(tmp_path, variable):
    [problem] = validate([_inventory(tmp_path, **{variable: -1})]).problems
    assert problem.key == variable
    assert "greater than or equal to 0" in problem.message


@pytest.mark.slow
def test_the_role_refuses_them_itself_without_the_launcher(tmp_path):
    """Run from AWX or plain ansible-playbook, the role's first task (its rule file, after templating)
    stops a host with a bad bind address or body size before anything happens, naming the variable."""
    tasks = yaml.safe_load((ROLE / "tasks" / "main.yml").read_text())
    check = tasks[0]  # before the role does anything
    assert "ovms.edge.ovms_check" in check, check
    playbook = tmp_path / "check.yml"
    play = {
        "hosts": "all",
        "gather_facts": False,
        "tasks": [{**check, "ovms.edge.ovms_check": {"role": "ovms_tls_proxy"}}],
    }
    playbook.write_text(yaml.safe_dump([play]))
    inventory = tmp_path / "hosts.yml"
    bad = {"ovms_tls_bind_address": "999.1.1.1", "ovms_tls_max_body_size": "{{ '0' }}"}
    good = {k: DEFAULTS[k] for k in ("ovms_tls_bind_address", "ovms_tls_max_body_size")}
    hosts = {"good": good, "v6": {**good, "ovms_tls_bind_address": "::"}, "bad": bad}
    inventory.write_text(yaml.safe_dump({"all": {"vars": {"ansible_connection": "local"}, "hosts": hosts}}))
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), str(playbook)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(content().collections_path)},
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert re.search(r"ok: \[good\]", result.stdout) and re.search(r"ok: \[v6\]", result.stdout)
    [failed] = [line for line in result.stdout.splitlines() if line.startswith("fatal: [bad]")]
    assert (
        "ovms_tls_bind_address" in failed
        and "999.1.1.1" in failed
        and "is not an IPv4 or IPv6 address" in failed
    )
    assert "ovms_tls_max_body_size" in failed and "no limit for nginx" in failed


# --- the monitoring (issue 22): nginx's counters and the node exporter through the proxy --------------


def _site_with_monitoring(**variables: object) -> str:
    """The site as the role renders it with ovms_monitoring_enabled and the node placement given."""
    import jinja2

    common = yaml.safe_load((ROLE.parent / "ovms_common" / "defaults" / "main.yml").read_text())
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(ROLE / "templates")),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # an nginx config, not HTML
    )
    env.filters["bool"] = lambda value: str(value).strip().lower() in ("1", "true", "yes", "on")
    # the sidecars' addresses: the monitoring's filter (plugins/filter/ovms_monitoring.py)
    env.filters["ovms.edge.ovms_monitoring_listen"] = MONITORING.ovms_monitoring_listen
    values = {
        **{k: v for k, v in DEFAULTS.items() if not (isinstance(v, str) and "{{" in v)},
        "ansible_managed": "test",
        "ovms_tls_port": 9443,
        "ovms_tls_upstream_host": "ovms-server",
        "ovms_tls_upstream_grpc_port": 9000,
        "ovms_tls_upstream_rest_port": 8000,
        "ovms_common_pki_layout": common["ovms_common_pki_layout"],
        **variables,
    }
    return env.get_template("ovms-proxy.conf.j2").render(**values)


def _block(text: str, start: str) -> str:
    """The lines of the block opened by the line `start` (up to its closing brace)."""
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip() == start)
    depth, block = 0, []
    for line in lines[first:]:
        block.append(line.strip())
        depth += line.count("{") - line.count("}")
        if depth == 0:
            return "\n".join(block)
    raise AssertionError(f"{start} is not closed")


@pytest.mark.observability
def test_without_the_monitoring_the_site_is_unchanged():
    site = _site_with_monitoring(ovms_monitoring_enabled=False, ovms_tls_proxy_monitoring_node=True)
    text = "\n".join(line.split("#", 1)[0] for line in site.splitlines())
    assert "stub_status" not in text and "/metrics/nginx" not in text and "/metrics/node" not in text


@pytest.mark.observability
@pytest.mark.parametrize("node", [True, False])
def test_the_monitoring_reads_nginx_and_the_node_exporter_over_mtls_only(node):
    text = _site_with_monitoring(ovms_monitoring_enabled=True, ovms_tls_proxy_monitoring_node=node)
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    # nginx's counters on the proxy's loopback only (the exporter beside it reads them)
    servers = code.split("\nserver {")[1:]
    [loopback] = [s for s in servers if "listen 127.0.0.1:8081;" in s]
    assert "stub_status;" in loopback and "ssl" not in loopback
    # the mTLS server passes the exporters' metrics, GET only
    [mtls] = [s for s in servers if "listen 9443 ssl http2;" in s]
    nginx = _block(mtls, "location = /metrics/nginx {")
    assert "proxy_pass http://127.0.0.1:9113/metrics;" in nginx and "limit_except GET {" in nginx
    assert ("location = /metrics/node {" in mtls) is node
    if node:
        assert "proxy_pass http://127.0.0.1:9100/metrics;" in _block(mtls, "location = /metrics/node {")
    # nothing listens elsewhere in plain text
    listens = sorted(line.strip() for line in code.splitlines() if line.strip().startswith("listen "))
    assert listens == ["listen 127.0.0.1:8081;", "listen 9443 ssl http2;"]
