"""What the remote end-to-end tests do on the harness hosts: read client results, inspect containers,
probe ports and the mTLS proxy from a client host, serve a profile over HTTP from a test host."""

from __future__ import annotations

import json
import shlex
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from launcher.inventory import CLIENTS_GROUP, SERVERS_GROUP
from launcher.paths import cache_dir
from testbed.harness import Host
from testbed.launcher_cli import Launcher

CLIENT_DATA = "/var/lib/ovms-launcher/client"
MODEL = PROFILE = "person-detection"


def group_vars(media_dir: Path, client_env: dict[str, str] | None = None) -> dict[str, Any]:
    """The remote deployments' group vars: the person detector on the servers, one instance of its
    profile on each client, the sample media from `media_dir` (and `client_env`, when given)."""
    clients: dict[str, Any] = {
        "ovms_client_profiles": [{"name": PROFILE, "instances": 1}],
        # only the video the profile plays: Ansible copies a folder file by file
        "ovms_client_media_dir": str(media_dir),
    }
    if client_env:
        clients["ovms_client_env"] = dict(client_env)
    return {SERVERS_GROUP: {"ovms_server_models": [{"name": MODEL}]}, CLIENTS_GROUP: clients}


PROBE_DIR = "/root/mh-probe"
PROBE_SCRIPT = Path(__file__).resolve().parent / "tls_probe.py"
CLIENT_IMAGE = "ovms-launcher/client:dev"


def prepare_inputs(launcher: Launcher, workdir: Path, models: tuple[str, ...] = ()) -> Path:
    """The models prepared and the sample video rendered in the controller cache (seconds when they
    are there), the sample copied to `workdir/media`, the clients' media folder, with the media.json
    `launcher media manifest` writes (the role ships only the files it lists); returns that folder."""
    launcher.ok(["models", "prepare", *models], timeout=900)
    launcher.ok(["media", "sample"])
    media = workdir / "media"
    media.mkdir(exist_ok=True)
    shutil.copy2(cache_dir() / "media" / "sample.mp4", media / "sample.mp4")
    launcher.ok(["media", "manifest", str(media)])
    return media


def results_dir(instance: str) -> str:
    return f"{CLIENT_DATA}/results/{instance}"


def json_lines(host: Host, path: str, lines: str) -> list[dict[str, Any]]:
    """Complete JSON lines of a file on the host; `lines` as `tail -n` takes it ("50": the last 50,
    "+N": from line N on). A line still being written is skipped."""
    return parse_json_lines(host.ssh.run(["tail", "-n", lines, path], check=False).stdout)


def parse_json_lines(text: str) -> list[dict[str, Any]]:
    """The complete JSON lines of text: an unterminated last line (still being written) is left out,
    and so is a line that does not parse."""
    records = []
    for line in text[: text.rfind("\n") + 1].splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def detection_records(host: Host, instance: str, lines: int = 50) -> list[dict[str, Any]]:
    return json_lines(host, f"{results_dir(instance)}/detections.jsonl", str(lines))


def person_detections(records: list[dict[str, Any]], min_score: float = 0.5) -> list[dict[str, Any]]:
    return [
        d
        for r in records
        if r.get("status") == "ok"
        for d in r.get("detections", [])
        if d.get("label") == "person" and float(d.get("score", 0)) >= min_score
    ]


def wait_for_person(host: Host, instance: str, timeout: float = 60) -> list[dict[str, Any]]:
    """Person detections in the instance's latest results, waiting (bounded) for the first ones."""
    deadline = time.monotonic() + timeout
    while True:
        found = person_detections(detection_records(host, instance))
        if found or time.monotonic() > deadline:
            return found
        time.sleep(2)


def wait_for_stats(
    host: Host, instance: str, condition: Callable[[dict[str, Any]], bool], timeout: float = 90
) -> list[dict[str, Any]]:
    """The instance's latest stats lines (stats.jsonl), waiting (bounded) until the newest one meets
    `condition`; returns them either way (the caller asserts)."""
    deadline = time.monotonic() + timeout
    while True:
        records = json_lines(host, f"{results_dir(instance)}/stats.jsonl", "5")
        if (records and condition(records[-1])) or time.monotonic() > deadline:
            return records
        time.sleep(2)


def line_count(host: Host, path: str) -> int:
    proc = host.ssh.run(f"wc -l < {shlex.quote(path)}", check=False)
    return int(proc.stdout.strip() or 0) if proc.returncode == 0 else 0


def wait_for_growth(host: Host, instance: str, timeout: float = 45) -> tuple[int, int]:
    """(before, after) line counts of detections.jsonl; returns as soon as it grew (bounded wait)."""
    path = f"{results_dir(instance)}/detections.jsonl"
    before = line_count(host, path)
    deadline = time.monotonic() + timeout
    after = before
    while after <= before and time.monotonic() < deadline:
        time.sleep(2)
        after = line_count(host, path)
    return before, after


def container(host: Host, name: str) -> dict[str, Any] | None:
    proc = host.ssh.run(["docker", "inspect", name], check=False)
    return json.loads(proc.stdout)[0] if proc.returncode == 0 else None


def container_env(info: dict[str, Any]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in info["Config"]["Env"] if "=" in item)


def managed_objects(host: Host) -> dict[str, list[str]]:
    """Containers and networks of the deployment left on a host."""
    containers = host.ssh.run(
        ["docker", "ps", "--all", "--filter", "label=ovms-launcher.managed=true", "--format", "{{.Names}}"]
    ).stdout.split()
    networks = host.ssh.run(
        ["docker", "network", "ls", "--filter", "name=ovms-launcher", "--format", "{{.Name}}"]
    ).stdout.split()
    return {"containers": containers, "networks": networks}


def tcp_connect(host: Host, address: str, port: int, user: str | None = None) -> str:
    """From `host` (as `user`, else root): 'open', or the error a TCP connect to address:port gets
    (3 s bound)."""
    code = (
        "import socket,sys\n"
        "try:\n"
        f"    socket.create_connection(({address!r}, {port}), timeout=3).close(); print('open')\n"
        "except OSError as e:\n"
        "    print(type(e).__name__)\n"
    )
    as_user = ["runuser", "-u", user, "--"] if user else []
    return host.ssh.run([*as_user, "python3", "-c", code]).stdout.strip()


def push_probe(host: Host, files: dict[str, Path]) -> None:
    """The probe script and the given certificate files (name on the host -> controller path)."""
    host.ssh.run(["rm", "-rf", PROBE_DIR])
    host.ssh.run(["mkdir", "-p", PROBE_DIR])
    host.ssh.put(PROBE_SCRIPT, f"{PROBE_DIR}/tls_probe.py")
    for name, path in files.items():
        host.ssh.put(path, f"{PROBE_DIR}/{name}")


def probe(host: Host, address: str, model: str, *, cert: str | None = None, key: str | None = None) -> dict:
    """KServe ModelMetadata through address (the mTLS port) from a container of the client image on host,
    trusting PROBE_DIR/ca-bundle.pem and presenting cert/key (names under PROBE_DIR) when given."""
    args = ["docker", "run", "--rm", "--user", "0", "--entrypoint", "/opt/venv/bin/python",
            "--volume", f"{PROBE_DIR}:/probe:ro", CLIENT_IMAGE, "/probe/tls_probe.py", address, model,
            "--ca", "/probe/ca-bundle.pem"]  # fmt: skip
    if cert:
        args += ["--cert", f"/probe/{cert}", "--key", f"/probe/{key}"]
    proc = host.ssh.run(args, timeout=90)
    return json.loads(proc.stdout.strip().splitlines()[-1])


class HttpServer:
    """`python3 -m http.server` on a test host, serving one folder on the harness network."""

    def __init__(self, host: Host, folder: str, port: int) -> None:
        self.host, self.folder, self.port = host, folder, port
        self.pid: int | None = None

    def start(self) -> None:
        command = (
            f"setsid nohup python3 -m http.server {self.port} --bind {self.host.ip} "
            f"--directory {shlex.quote(self.folder)} >/var/log/mh-http.log 2>&1 < /dev/null & echo $!"
        )
        self.pid = int(self.host.ssh.run(command).stdout.strip())
        deadline = time.monotonic() + 15
        while tcp_connect(self.host, self.host.ip, self.port) != "open":
            if time.monotonic() > deadline:
                raise RuntimeError(f"http.server on {self.host.name}:{self.port} did not start")
            time.sleep(0.5)

    def url(self, name: str) -> str:
        return f"http://{self.host.ip}:{self.port}/{name}"

    def stop(self) -> None:
        if self.pid is not None:
            self.host.ssh.run(["kill", str(self.pid)], check=False)
            self.pid = None


def diagnostics(hosts: list[Host], tail: int = 25) -> str:
    """Our containers on each host and the last log lines of each, for failure messages."""
    parts = []
    for host in hosts:
        listing = host.ssh.run(
            ["docker", "ps", "--all", "--filter", "label=ovms-launcher.managed=true",
             "--format", "{{.Names}}\t{{.Status}}\t{{.Ports}}"],
            check=False,
        ).stdout.strip()  # fmt: skip
        parts.append(f"--- {host.name} ({host.ip}) containers:\n{listing}")
        for line in listing.splitlines():
            name = line.split("\t", 1)[0]
            logs = host.ssh.run(["docker", "logs", "--tail", str(tail), name], check=False)
            parts.append(f"--- {host.name} {name} logs:\n{(logs.stdout + logs.stderr).strip()}")
    return "\n".join(parts)


def refused_by_proxy(result: dict) -> bool:
    """The probe reached the TLS port and the proxy turned the client away (gRPC reports nginx's HTTP
    400 as INTERNAL, a failed handshake as UNAVAILABLE), as opposed to a closed port or an answer."""
    return (
        not result["ok"]
        and result.get("status") in ("StatusCode.INTERNAL", "StatusCode.UNAVAILABLE")
        and "Connection refused" not in result["message"]
    )


def prometheus(host: Host, path: str, params: dict[str, str] | None = None, port: int = 9090) -> Any:
    """The `data` of Prometheus's HTTP API at `path` (e.g. "query", "targets") on `host`, asked on the
    host's loopback, where the monitoring role publishes it."""
    code = (
        "import json,sys,requests\n"
        f"r = requests.get('http://127.0.0.1:{port}/api/v1/{path}', params={params or {}!r}, timeout=10)\n"
        "r.raise_for_status(); print(json.dumps(r.json()['data']))\n"
    )
    return json.loads(host.ssh.run(["python3", "-c", code], timeout=30).stdout.strip().splitlines()[-1])


def wait_for_prometheus(
    host: Host, what: str, check: Callable[[], Any], timeout: float = 90, every: float = 3
) -> Any:
    """check() until it returns something true (its value), else fail naming `what` and its last value."""
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} on {host.name} within {timeout:.0f} s; last: {last!r}")
        time.sleep(every)
