"""Server faults while the clients stream, and sustained load, on three real hosts (issue 8).

One deployment for the module (host1: OVMS behind the mTLS proxy; host2 and host3: a client of
CLIENT_STREAMS streams each, 8 streams in all), torn down at the end. In file order:

1. sustained load: the 8 streams through mTLS for OVMS_RELIABILITY_LOAD_S seconds (default a short CI
   run; the issue's full run is 120): zero errors, and the anonymous memory of every client, the proxy
   and the server grows less than 10 % (or less than MEMORY_GROWTH_FLOOR bytes, for processes of a few
   MiB) between the first and the last quarter of the run (windows of at least
   10 s; measured after a warm-up: every stream has produced results and WARMUP_S more have passed,
   so model loading, thread pools and connection buffers are not counted as growth);
2. faults, each while the clients stream: OVMS's process crashes, the proxy's process crashes, the
   server host's Docker engine restarts. Each time the restart policy brings the service back without
   the launcher, no client container exits or restarts, every stream of every client has results
   again within RESUME_S of the service's return, the dropped frames are counted in stats.jsonl, and
   the bytes of detections.jsonl and stats.jsonl written before the fault are still there. The engine
   restart also stands for a reboot: the local-access rule is deleted first, and the guard the engine
   starts again puts it back (users other than root are refused at OVMS's plain port, root is not).
"""

from __future__ import annotations

import os
import shlex
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from multihost.conftest import LAYOUT
from testbed import faults
from testbed import remote as rm
from testbed.harness import Harness, Host
from testbed.launcher_cli import Launcher

pytestmark = [pytest.mark.reliability]

SERVER, CLIENTS = "host1", ("host2", "host3")
MODEL = PROFILE = "person-detection"
INSTANCE = f"{PROFILE}-1"
CLIENT_CONTAINER = f"ovms-client-{INSTANCE}"
SERVER_CONTAINER = "ovms-server"
PROXY_CONTAINER = "ovms-server-tls"
# the local-access guard (roles/ovms_server/tasks/local_access.yml): puts the OUTPUT rule back
GUARD_CONTAINER = "ovms-server-local-access"
TLS_PORT = 9443
REST_PORT = 8000
STREAMS_PER_CLIENT = 4  # 8 streams over the two client hosts
DEPLOY = ["-e", "ovms_server_image=ovms-launcher/ovms-double:dev", "--json"]

LOAD_ENV = "OVMS_RELIABILITY_LOAD_S"
DEFAULT_LOAD_S = 40.0
WARMUP_S = 10.0
MEMORY_GROWTH_LIMIT = 0.10
# A leak grows without bound; a small process (nginx: a few MiB) also grows by allocator arenas and
# connection buffers that settle. Growth counts when it passes both the ratio and this many bytes of
# anonymous memory (a leak of this size in the short CI run is several times larger in the full run).
MEMORY_GROWTH_FLOOR = 4 << 20
RESUME_S = 10.0  # the issue: every client resumes within 10 s of the service's return
SERVICE_TIMEOUT_S = 180.0  # bounded waits, generous for a busy 2-core machine
STREAMING_TIMEOUT_S = 120.0


def load_seconds() -> float:
    raw = os.environ.get(LOAD_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_LOAD_S
    except ValueError as exc:
        raise pytest.UsageError(f"{LOAD_ENV}={raw!r}: give the load duration in seconds") from exc
    if value < 20:
        raise pytest.UsageError(f"{LOAD_ENV}={raw}: at least 20 s (two windows of 10 s)")
    return value


def results_file(name: str) -> str:
    return f"{rm.results_dir(INSTANCE)}/{name}"


DETECTIONS, STATS = results_file("detections.jsonl"), results_file("stats.jsonl")


@dataclass
class Deployment:
    harness: Harness
    workdir: Path
    inventory: Path
    launcher: Launcher

    @property
    def server(self) -> Host:
        return self.harness.host(SERVER)

    def clients(self) -> list[Host]:
        return [self.harness.host(name) for name in CLIENTS]

    @property
    def service(self) -> faults.Service:
        return faults.Service(self.server, SERVER_CONTAINER, PROXY_CONTAINER, MODEL, REST_PORT, TLS_PORT)

    def diagnostics(self) -> str:
        return rm.diagnostics(self.harness.hosts)


def group_vars(media_dir: Path) -> dict:
    return rm.group_vars(media_dir, {"CLIENT_STREAMS": str(STREAMS_PER_CLIENT)})


@pytest.fixture(scope="module")
def deployment(multihost: Harness, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """certs generate + deploy once; destroy at the end, also when a test failed."""
    workdir = tmp_path_factory.mktemp("reliability-faults")
    launcher = Launcher(workdir / "certs", workdir / "runs")
    media = rm.prepare_inputs(launcher, workdir)
    inventory = multihost.inventory(workdir / "hosts.yml", LAYOUT, group_vars=group_vars(media))
    state = Deployment(multihost, workdir, inventory, launcher)
    try:
        launcher.ok(["certs", "generate", "-i", str(inventory), "--dir", str(workdir / "certs")])
        run = launcher.run(["deploy", "-i", str(inventory), *DEPLOY])
        assert run.returncode == 0, run.describe() + "\n" + state.diagnostics()
        yield state
    finally:
        destroyed = launcher.run(["destroy", "-i", str(inventory), "--json"])
        leftovers = {h.name: rm.managed_objects(h) for h in multihost.hosts}
        if destroyed.returncode != 0 or any(v["containers"] or v["networks"] for v in leftovers.values()):
            pytest.fail(f"destroy left the hosts unclean: {leftovers}\n{destroyed.describe()}")


# --- helpers -----------------------------------------------------------------------------------------


def wait_streaming(dep: Deployment, since: float, timeout: float = STREAMING_TIMEOUT_S) -> dict[str, dict]:
    """Until every client wrote a stats line after `since` with results from each of its streams and
    the server up; returns those lines by host."""
    deadline = time.monotonic() + timeout
    latest: dict[str, dict | None] = {}
    while True:
        for host in dep.clients():
            line = faults.last_stats(host, STATS)
            latest[host.name] = line
        ready = {
            name: line
            for name, line in latest.items()
            if line
            and line["ts"] >= since
            and line.get("server") == "up"
            and len(line.get("stream_fps", [])) == STREAMS_PER_CLIENT
            and all(fps > 0 for fps in line["stream_fps"])
        }
        if len(ready) == len(CLIENTS):
            return ready
        if time.monotonic() > deadline:
            pytest.fail(
                f"the clients did not all stream within {timeout:.0f}s; latest stats: {latest}\n"
                + dep.diagnostics()
            )
        time.sleep(2)


def wait_stats_after(host: Host, ts: float, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        line = faults.last_stats(host, STATS)
        if line and line["ts"] >= ts:
            return line
        if time.monotonic() > deadline:
            pytest.fail(f"{host.name} wrote no stats line after {ts:.1f} within {timeout:.0f}s; last: {line}")
        time.sleep(1)


def fault_while_streaming(
    dep: Deployment, inject: Callable[[], float], restarted: tuple[str, ...]
) -> dict[str, object]:
    """Inject a fault on the server host while the clients stream and check everything the issue asks
    after it. `restarted`: the server-host containers the fault stops (brought back by their policy)."""
    wait_streaming(dep, since=time.time() - 6)  # a stats line every 5 s
    server = dep.server
    before_server = {name: faults.ContainerState.of(server, name) for name in restarted}
    clients = dep.clients()
    before_clients = {h.name: faults.ContainerState.of(h, CLIENT_CONTAINER) for h in clients}
    before_stats = {h.name: faults.last_stats(h, STATS) for h in clients}
    prefixes = {h.name: [faults.capture_prefix(h, path) for path in (DETECTIONS, STATS)] for h in clients}

    fault_ts = inject()

    # 1. the restart policy brings the service back (nothing here starts anything)
    up_at, missing = dep.service.wait_up(SERVICE_TIMEOUT_S)
    assert up_at is not None, (
        f"the service did not come back within {SERVICE_TIMEOUT_S:.0f}s of the fault: {missing}\n"
        + dep.diagnostics()
    )
    for name, old in before_server.items():
        now = faults.ContainerState.of(server, name)
        assert now.running and now.id == old.id, f"{name} was not restarted in place: {old} -> {now}"
        assert now.started_at != old.started_at, f"{name} did not restart: {now}"

    # 2. every stream of every client has results again within RESUME_S of the service's return
    resumed: dict[str, dict[int, faults.StreamOutage]] = {}
    deadline = up_at + RESUME_S + 30  # read on a little longer than allowed, for a useful message
    for host in clients:
        offset = prefixes[host.name][0].size
        while True:
            records = faults.read_records(host, DETECTIONS, offset)
            found = faults.outages(records, fault_ts, STREAMS_PER_CLIENT)
            if all(s.resumed_at is not None for s in found.values()) or time.time() > deadline:
                break
            time.sleep(1)
        resumed[host.name] = found
    late = {
        f"{name} stream {s.stream}": (
            "no drop after the fault" if s.first_drop_ts is None
            else "no result yet" if s.resumed_at is None
            else f"{s.resumed_at - up_at:.1f}s after the service's return"
        )
        for name, streams in resumed.items()
        for s in streams.values()
        if s.resumed_at is None or s.resumed_at - up_at > RESUME_S
    }  # fmt: skip
    assert not late, (
        f"fault at {fault_ts:.1f}, service back at {up_at:.1f} ({up_at - fault_ts:.1f}s later); "
        f"streams not resumed within {RESUME_S:.0f}s: {late}\n" + dep.diagnostics()
    )

    # 3. no client container exited or restarted
    for host in clients:
        now = faults.ContainerState.of(host, CLIENT_CONTAINER)
        old = before_clients[host.name]
        assert now.running and now.same_run(old), f"{CLIENT_CONTAINER} on {host.name}: {old} -> {now}"

    # 4. the dropped frames are counted in stats.jsonl; the server is reported up again
    last_resume = max(s.resumed_at or 0.0 for streams in resumed.values() for s in streams.values())
    for host in clients:
        old, line = before_stats[host.name], wait_stats_after(host, last_resume + 2)
        assert old is not None
        dropped_records = sum(s.dropped for s in resumed[host.name].values())
        assert line["dropped"] - old["dropped"] >= dropped_records >= 1, (
            f"{host.name}: {dropped_records} frames dropped after the fault, stats.jsonl counted "
            f"{line['dropped'] - old['dropped']} ({old['dropped']} -> {line['dropped']})"
        )
        assert line["outages"] > old["outages"], f"{host.name}: outage not counted: {old} -> {line}"
        assert line["server"] == "up", line

    # 5. the results written before the fault are intact
    for host in clients:
        for prefix in prefixes[host.name]:
            problem = faults.prefix_problem(host, prefix)
            assert problem is None, problem
    slowest = max(s.resumed_at or up_at for streams in resumed.values() for s in streams.values())
    print(
        f"service back {up_at - fault_ts:.1f}s after the fault; every stream resumed within "
        f"{slowest - up_at:.1f}s of that; dropped per client: "
        f"{ {n: sum(s.dropped for s in v.values()) for n, v in resumed.items()} }"
    )
    return {"fault_ts": fault_ts, "up_at": up_at, "resumed": resumed}


# --- tests -----------------------------------------------------------------------------------------


def test_outage_reading_finds_the_first_result_after_the_first_drop():
    """The record logic the fault tests rely on (no hosts needed): frames before the fault are
    ignored, a stream resumes at capture time + latency of its first result after a drop, and a
    stream that never dropped has not 'resumed'."""
    records = [
        {"stream": 0, "ts": 99.0, "status": "dropped"},  # before the fault: not counted
        {"stream": 0, "ts": 100.5, "status": "ok", "latency_ms": 20},  # in flight when it hit
        {"stream": 0, "ts": 101.0, "status": "dropped"},
        {"stream": 1, "ts": 101.1, "status": "ok", "latency_ms": 10},
        {"stream": 0, "ts": 102.0, "status": "dropped"},
        {"stream": 0, "ts": 105.0, "status": "ok", "latency_ms": 500},
        {"stream": 0, "ts": 106.0, "status": "dropped"},  # after the resume: not this outage
    ]
    found = faults.outages(records, fault_ts=100.0, streams=2)
    assert found[0].first_drop_ts == 101.0 and found[0].dropped == 2
    assert found[0].resumed_at == pytest.approx(105.5)
    assert found[1].first_drop_ts is None and found[1].resumed_at is None


def test_sustained_load_has_no_errors_and_flat_memory(deployment: Deployment):
    duration = load_seconds()
    window = max(10.0, duration / 4)
    wait_streaming(deployment, since=0)
    # warm-up: every stream has results; then WARMUP_S more before the first window
    warm_until = time.time() + WARMUP_S
    while time.time() < warm_until:
        time.sleep(0.5)
    clients = deployment.clients()
    before = {h.name: faults.ContainerState.of(h, CLIENT_CONTAINER) for h in clients}
    baseline = {h.name: faults.last_stats(h, STATS) or {} for h in clients}
    targets = {h.name: (h, [CLIENT_CONTAINER]) for h in clients}
    targets[SERVER] = (deployment.server, [SERVER_CONTAINER, PROXY_CONTAINER])
    sampler = faults.MemorySampler(targets, duration)
    start = time.time()
    sampler.start()
    sampler.join()
    end = start + duration
    finals = {h.name: wait_stats_after(h, end) for h in clients}

    for host in clients:
        line, base = finals[host.name], baseline[host.name]
        errors, dropped = line["errors"] - base["errors"], line["dropped"] - base["dropped"]
        # dropped frames alone are allowed (the issue: zero errors); here they only follow errors
        assert errors == 0, (
            f"{host.name}: {errors} errors, {dropped} dropped frames during the load: {base} -> {line}\n"
            + deployment.diagnostics()
        )
        assert line["frames"] > base["frames"] > 0, f"{host.name}: no results under load: {base} -> {line}"
        assert all(fps > 0 for fps in line["stream_fps"]), f"{host.name}: a stream stalled: {line}"
        now = faults.ContainerState.of(host, CLIENT_CONTAINER)
        assert now.same_run(before[host.name]), f"{host.name}: client restarted under load"

    times = [t for t, *_ in sampler.samples]
    assert times, f"no memory samples: {sampler.errors[-5:]}"
    growth: dict[str, tuple[float, float, float]] = {}  # name -> (ratio, grown bytes, first bytes)
    for label, (_host, names) in targets.items():
        for name in names:
            first = sampler.window(label, name, min(times), min(times) + window, anon=True)
            last = sampler.window(label, name, max(times) - window, max(times), anon=True)
            assert len(first) >= 3 and len(last) >= 3, (
                f"too few memory samples of {label}/{name} (first {first}, last {last}); "
                f"errors: {sampler.errors[-5:]}"
            )
            assert statistics.mean(first) > 0, f"{label}/{name}: no anonymous memory read: {first}"
            before_b, after_b = statistics.mean(first), statistics.mean(last)
            growth[f"{label}/{name}"] = (after_b / before_b - 1.0, after_b - before_b, before_b)

    def shown(ratio: float, grown: float, base: float) -> str:
        return f"{ratio:+.1%} ({grown / 2**20:+.1f} MiB of {base / 2**20:.1f})"

    everything = ", ".join(f"{k} {shown(*v)}" for k, v in growth.items())
    print(f"anonymous memory growth over {duration:.0f}s (windows {window:.0f}s): {everything}")
    grown = {
        k: shown(*v) for k, v in growth.items() if v[0] >= MEMORY_GROWTH_LIMIT and v[1] >= MEMORY_GROWTH_FLOOR
    }
    assert not grown, (
        f"memory grew by {MEMORY_GROWTH_LIMIT:.0%} and {MEMORY_GROWTH_FLOOR >> 20} MiB or more between the "
        f"first and last {window:.0f}s of {duration:.0f}s: {grown} (all: {everything})"
    )


def test_ovms_crash_is_restarted_and_clients_resume(deployment: Deployment):
    before = faults.ContainerState.of(deployment.server, SERVER_CONTAINER)
    fault_while_streaming(
        deployment, lambda: faults.crash_container(deployment.server, SERVER_CONTAINER), (SERVER_CONTAINER,)
    )
    after = faults.ContainerState.of(deployment.server, SERVER_CONTAINER)
    assert after.restart_count > before.restart_count, (before, after)


def test_proxy_crash_is_restarted_and_clients_resume(deployment: Deployment):
    before = faults.ContainerState.of(deployment.server, PROXY_CONTAINER)
    fault_while_streaming(
        deployment, lambda: faults.crash_container(deployment.server, PROXY_CONTAINER), (PROXY_CONTAINER,)
    )
    after = faults.ContainerState.of(deployment.server, PROXY_CONTAINER)
    assert after.restart_count > before.restart_count, (before, after)


def ovms_address(host: Host) -> str:
    template = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
    return host.ssh.run(["docker", "inspect", "--format", template, SERVER_CONTAINER]).stdout.strip()


def our_rules(host: Host) -> list[str]:
    """The local-access rules (ovms_server_local_access: root) of `iptables -S OUTPUT`, as -A lines."""
    listing = host.ssh.run(["iptables", "-S", "OUTPUT"]).stdout
    return [line for line in listing.splitlines() if "ovms-launcher local-access" in line]


def test_engine_restart_on_the_server_host_and_clients_resume(deployment: Deployment):
    """Also a reboot as far as the local-access rule goes: the rule is runtime state, so before the engine
    restarts the guard is stopped and the rule deleted (what a reboot leaves); the engine then starts the
    guard with the other containers and the plain ports are closed to users other than root again."""
    # with live-restore the containers would run through the restart and nothing would be tested
    server = deployment.server
    assert not faults.live_restore(server), "live-restore is on: the engine keeps containers"
    [rule] = our_rules(server)

    def reboot() -> float:
        server.ssh.run(["docker", "stop", "--time", "5", GUARD_CONTAINER])
        server.ssh.run(["iptables", *shlex.split(rule.replace("-A OUTPUT", "-D OUTPUT", 1))])
        assert our_rules(server) == []
        # the hole a reboot opened: any local user reaches OVMS's plain port
        assert rm.tcp_connect(server, ovms_address(server), REST_PORT, user="nobody") == "open"
        return faults.restart_engine(server)

    fault_while_streaming(deployment, reboot, (SERVER_CONTAINER, PROXY_CONTAINER, GUARD_CONTAINER))
    address, deadline = ovms_address(server), time.monotonic() + 30
    while (refused := rm.tcp_connect(server, address, REST_PORT, user="nobody")) == "open":
        assert time.monotonic() < deadline, (
            f"the local-access rule is not back 30s after the service: {our_rules(server)}\n"
            + deployment.diagnostics()
        )
        time.sleep(1)
    assert refused == "ConnectionRefusedError", refused
    assert rm.tcp_connect(server, address, REST_PORT) == "open"  # root (Docker's proxy, our probes) is not
    assert our_rules(server) == [rule], our_rules(server)
