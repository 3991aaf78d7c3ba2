"""Issue 21, L5: after a reload (new certificates or CRL) the proxy's old nginx workers close what they
still hold after ovms_tls_worker_shutdown_timeout, so a stream opened before a revocation does not
survive the reload beyond it. Debian's nginx on loopback with the tls-proxy image's own nginx.conf
(paths moved under a temporary prefix) and the role's main-context template (conf.d/*.main); a request
held by an upstream that never answers stands for a long gRPC stream. Without the directive (the
config before issue 21) the held request outlives the reload."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import jinja2
import pytest
import yaml
from test_pki_handshake import free_port, nginx_binary

from testbed.paths import PROJECT_ROOT

pytestmark = [pytest.mark.contract, pytest.mark.nginx]

ROLE = PROJECT_ROOT / "roles" / "ovms_tls_proxy"
IMAGE_CONF = PROJECT_ROOT / "images" / "tls-proxy" / "nginx.conf"
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())


def render_main(timeout: str) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(ROLE / "templates")), undefined=jinja2.StrictUndefined
    )
    return env.get_template("ovms-proxy.main.j2").render(
        ansible_managed="test", ovms_tls_worker_shutdown_timeout=timeout
    )


class Held:
    """An upstream that accepts connections and never answers."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.arrived = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.accepted.append(conn)
            self.arrived.set()

    def close(self) -> None:
        self.server.close()
        for conn in self.accepted:
            conn.close()


class Proxy:
    """nginx with the image's nginx.conf, conf.d under the prefix."""

    def __init__(self, prefix: Path, main: str, upstream: int) -> None:
        self.prefix, self.port = prefix, free_port()
        confd = prefix / "conf.d"
        confd.mkdir(parents=True)
        (prefix / "tmp").mkdir()
        (confd / "ovms-proxy.main").write_text(main)
        (confd / "site.conf").write_text(
            f"server {{\n    listen 127.0.0.1:{self.port};\n"
            f"    location / {{ proxy_pass http://127.0.0.1:{upstream}; proxy_read_timeout 60s; }}\n}}\n"
        )
        text = IMAGE_CONF.read_text().replace("/etc/nginx/conf.d", str(confd))
        assert "/tmp/nginx" in text
        self.conf = prefix / "nginx.conf"
        self.conf.write_text(text.replace("/tmp/nginx", str(prefix / "tmp")))
        self.process: subprocess.Popen | None = None

    def command(self, *args: str) -> list[str]:
        return [nginx_binary(), "-p", str(self.prefix), "-c", str(self.conf), "-e", "stderr", *args]

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.command("-g", "daemon off;"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert self.process.poll() is None, self.process.stderr.read().decode()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "nginx did not listen"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


@pytest.fixture
def held() -> Iterator[Held]:
    upstream = Held()
    yield upstream
    upstream.close()


def test_the_default_is_valid_in_the_main_context_of_the_image_config(tmp_path):
    assert DEFAULTS["ovms_tls_worker_shutdown_timeout"] == "10s"
    proxy = Proxy(tmp_path, render_main(DEFAULTS["ovms_tls_worker_shutdown_timeout"]), free_port())
    result = subprocess.run(proxy.command("-T"), capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "worker_shutdown_timeout 10s;" in result.stdout


def _held_request_after_reload(prefix: Path, main: str, held: Held, wait: float) -> float | None:
    """Seconds from the reload until the proxy closed a request in progress, or None within `wait`."""
    proxy = Proxy(prefix, main, held.port)
    proxy.start()
    try:
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        client.sendall(b"GET /stream HTTP/1.1\r\nHost: ovms\r\n\r\n")
        assert held.arrived.wait(10), "the request did not reach the upstream"
        subprocess.run(proxy.command("-s", "reload"), check=True, capture_output=True, timeout=30)
        reloaded = time.monotonic()
        client.settimeout(0.2)
        while time.monotonic() - reloaded < wait:
            try:
                data = client.recv(65536)
            except TimeoutError:
                continue
            except ConnectionError:
                return time.monotonic() - reloaded
            if not data or b"HTTP/1.1 5" in data:  # closed, or nginx's error answer as it goes
                return time.monotonic() - reloaded
        return None
    finally:
        proxy.stop()


def test_a_request_in_progress_is_closed_after_the_timeout_of_a_reload(tmp_path, held):
    closed = _held_request_after_reload(tmp_path, render_main("1s"), held, wait=8)
    assert closed is not None, "the request held before the reload was still open 8 s after it"
    assert 0.5 < closed < 5, closed


def test_without_the_timeout_a_request_in_progress_outlives_the_reload(tmp_path, held):
    """The failure the directive fixes (the config before issue 21): the old worker keeps the request."""
    assert _held_request_after_reload(tmp_path, "", held, wait=4) is None
