"""The cascade sample profiles end to end on the real engine: `launcher deploy -i inventories/localhost
-i inventories/localhost-models` serves the stage models (three of them ONNX as-is) and runs
price-label (text detection -> text angle -> text recognition, plus the barcode reader, on the retail
sample) and face-mesh (face detection -> face landmarks -> iris landmarks, on the person sample).

One deployment for the module, in file order: price-label reads the price and the barcode → face-mesh
puts 468 landmarks on the face and an iris in each eye → `launcher status` shows every stage → the
server stops serving text-recognition (its config.json loses the model, as an operator's edit would):
the frames keep their text boxes with failed recognitions, counted by stage, and recognition comes
back when the model does.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from launcher.media import RETAIL_EAN13, RETAIL_TEXTS
from testbed.dockerutil import docker
from testbed.isolation import write_isolation
from testbed.launcher_cli import Launcher, LauncherRun
from testbed.paths import PROJECT_ROOT
from testbed.remote import parse_json_lines

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.models]

DOUBLE = "ovms-launcher/ovms-double:dev"
PRICE, MESH = "price-label-1", "face-mesh-1"
PRICE_TEXT = RETAIL_TEXTS[1]  # "2.49"
# the first frames of each client are left out of the rates (the pipeline filling up)
SKIP_FIRST = 5
# frames each check reads at least (both profiles run at 5 FPS: a few seconds)
MIN_FRAMES = 20
WAIT_S = 90.0
# The acceptance's "face box grown by 25 %": by 25 % of its width and of its height on each side (a box
# 1.5 times as large), the crop face-mesh's face-landmarks stage is cut from (`padding: 0.25`, the
# way MediaPipe crops faces). The mesh covers the forehead above BlazeFace's box (up to about 20 % of
# the box's height on the sample), so 25 % in total (12.5 % a side) would fail on a correct mesh.
FACE_GROWTH = 0.25
FACE_POINTS = 468
# Each eye's landmark region: the bounding box of its contour landmarks in the face mesh (MediaPipe's
# corners and the middle of each lid), by the corner pair the profile crops the eye around, grown by
# a quarter of the eye's width on each side. The other eye is more than an eye's width away.
EYE_CONTOURS = {frozenset((33, 133)): (33, 133, 159, 145), frozenset((362, 263)): (362, 263, 386, 374)}
EYE_GROWTH = 0.25


@dataclass
class Site:
    tag: str
    root: Path
    inventory: list[str]
    launcher: Launcher
    runs: list[LauncherRun] = field(default_factory=list)

    @property
    def server(self) -> str:
        return f"{self.tag}-server"

    @property
    def config(self) -> Path:
        """The server's config.json (roles/ovms_server: <data dir>/config, mounted at /config)."""
        return self.root / "server" / "config" / "config.json"

    def run(self, command: str, *args: str) -> LauncherRun:
        result = self.launcher.run([command, *self.inventory, *args])
        self.runs.append(result)
        return result

    def lines(self, instance: str, name: str) -> list[dict[str, Any]]:
        path = self.root / "client" / "results" / instance / name
        return parse_json_lines(path.read_text()) if path.exists() else []

    def records(self, instance: str) -> list[dict[str, Any]]:
        return self.lines(instance, "detections.jsonl")

    def wait_records(
        self,
        instance: str,
        count: int,
        what: str,
        condition: Callable[[dict[str, Any]], bool] = lambda r: True,
        after: int = 0,
    ) -> list[dict[str, Any]]:
        """The records from index `after` on, once `count` of them meet `condition` (bounded wait)."""
        deadline = time.monotonic() + WAIT_S
        while True:
            records = self.records(instance)[after:]
            if sum(1 for r in records if condition(r)) >= count:
                return records
            if time.monotonic() > deadline:
                tail = json.dumps(records[-2:], indent=1)[:3000]
                raise AssertionError(
                    f"{instance}: fewer than {count} records {what} within {WAIT_S:.0f} s "
                    f"({len(records)} records); last ones:\n{tail}"
                )
            time.sleep(0.5)

    def wait_stats(self, instance: str, condition: Callable[[dict[str, Any]], bool], what: str) -> dict:
        """The first stats line of `instance` written after this call that meets `condition`."""
        seen = len(self.lines(instance, "stats.jsonl"))
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            for line in self.lines(instance, "stats.jsonl")[seen:]:
                if condition(line):
                    return line
            time.sleep(0.5)
        tail = json.dumps(self.lines(instance, "stats.jsonl")[-2:], indent=1)[:3000]
        raise AssertionError(f"{instance}: no stats line showed {what} within {WAIT_S:.0f} s:\n{tail}")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("models")
    tag = f"ovms-models-{uuid.uuid4().hex[:6]}"
    override = write_isolation(root / "override", tag, root)
    inventory = [
        "-i",
        str(PROJECT_ROOT / "inventories" / "localhost"),
        "-i",
        str(PROJECT_ROOT / "inventories" / "localhost-models"),
        "-i",
        str(override),
    ]
    state = Site(tag, root, inventory, Launcher(root / "certs", root / "runs"))
    try:
        yield state
    finally:
        state.launcher.run(["destroy", *inventory, "--yes", "--json"])
        names = docker("ps", "-aq", "--filter", f"name={tag}", check=False).stdout.split()
        if names:
            docker("rm", "-f", *names, check=False)
        docker("network", "rm", tag, check=False)


@pytest.fixture(scope="module")
def deployed(site: Site) -> Site:
    run = site.run("deploy", "-e", f"ovms_server_image={DOUBLE}", "--json")
    assert run.returncode == 0, run.describe()
    return site


def _later(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    later = records[SKIP_FIRST:]
    assert len(later) >= MIN_FRAMES, f"only {len(later)} records after the first {SKIP_FIRST}"
    return later


def _results(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item for item in items if item.get("status") != "failed"]


def _texts(record: dict[str, Any]) -> list[str]:
    """Every text-recognition text of a price-label record, spaces removed."""
    return [
        result["text"].replace(" ", "")
        for box in record.get("detections", [])
        for result in _results(box.get("stages", {}).get("text-recognition", []))
    ]


def _reads_price(record: dict[str, Any]) -> bool:
    return record.get("status") == "ok" and PRICE_TEXT.replace(" ", "") in _texts(record)


def test_price_label_reads_the_price_and_the_barcode(deployed: Site):
    records = _later(deployed.wait_records(PRICE, SKIP_FIRST + MIN_FRAMES, "in all"))
    ok = [r for r in records if r["status"] == "ok"]
    assert len(ok) >= 0.9 * len(records), f"{len(records) - len(ok)} of {len(records)} frames not ok"
    reading = [r for r in ok if _reads_price(r)]
    seen = sorted({t for r in ok for t in _texts(r)})
    assert len(reading) >= 0.9 * len(ok), (
        f"{PRICE_TEXT!r} read in {len(reading)} of {len(ok)} ok frames; texts read: {seen}"
    )
    # an OCR result is {"text", "score", "box"} on the text box it was read from
    (box,) = (b for b in reading[-1]["detections"] if PRICE_TEXT in _texts({"detections": [b]}))
    assert box["label"] == "text" and len(box["quad"]) == 4, box
    (result,) = box["stages"]["text-recognition"]
    assert {"text", "score", "box"} <= set(result) and 0 < result["score"] <= 1, result
    assert box["stages"]["text-angle"][0]["label"] in ("0", "180"), box["stages"]["text-angle"]

    # the barcode stage runs on the whole frame: its results under the frame record's `stages`
    barcodes = [b for r in ok for b in r.get("stages", {}).get("barcode", [])]
    wrong = [b for b in barcodes if (b.get("text"), b.get("format")) != (RETAIL_EAN13, "EAN-13")]
    assert not wrong, f"barcode results other than EAN-13 {RETAIL_EAN13}: {wrong[:3]}"
    decoded = [r for r in ok if r.get("stages", {}).get("barcode")]
    assert len(decoded) >= 0.9 * len(ok), f"the barcode decoded in {len(decoded)} of {len(ok)} ok frames"
    assert len(barcodes[-1]["box"]) == 4, barcodes[-1]


def _grown(box: list[float], by_x: float, by_y: float) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box
    return x0 - by_x, y0 - by_y, x1 + by_x, y1 + by_y


def _inside(point: list[float], box: tuple[float, float, float, float]) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def _eye_regions() -> dict[str, tuple[int, ...]]:
    """The iris stage's regions in the shipped profile -> the contour landmarks of that eye."""
    data = yaml.safe_load((PROJECT_ROOT / "profiles" / "face-mesh" / "profile.yaml").read_text())
    (stage,) = (s for s in data["stages"] if s["name"] == "iris-landmarks")
    return {region: EYE_CONTOURS[frozenset(corners)] for region, corners in stage["crops"]["points"].items()}


def test_face_mesh_puts_landmarks_on_the_face_and_an_iris_in_each_eye(deployed: Site):
    regions = _eye_regions()
    records = _later(deployed.wait_records(MESH, SKIP_FIRST + MIN_FRAMES, "in all"))
    ok = [r for r in records if r["status"] == "ok"]
    assert len(ok) >= 0.9 * len(records), f"{len(records) - len(ok)} of {len(records)} frames not ok"
    for record in ok:
        where = f"frame {record['frame']}"
        assert record["detections"], f"{where}: no face found"
        for face in record["detections"]:
            x0, y0, x1, y1 = face["box"]
            allowed = _grown(face["box"], FACE_GROWTH * (x1 - x0), FACE_GROWTH * (y1 - y0))
            (mesh,) = face["stages"]["face-landmarks"]
            assert mesh.get("status") != "failed", f"{where}: {mesh}"
            points = mesh["landmarks"]
            assert len(points) == FACE_POINTS, f"{where}: {len(points)} landmarks"
            outside = [p for p in points if not _inside(p, allowed)]
            assert not outside, f"{where}: {len(outside)} landmarks outside {allowed}, e.g. {outside[:3]}"

            irises = mesh["stages"]["iris-landmarks"]
            assert sorted(i.get("region") for i in irises) == sorted(regions), f"{where}: {irises}"
            for iris in irises:
                assert iris.get("status") != "failed", f"{where}: {iris}"
                contour = [points[i] for i in regions[iris["region"]]]
                xs, ys = [p[0] for p in contour], [p[1] for p in contour]
                margin = EYE_GROWTH * (max(xs) - min(xs))
                eye = _grown([min(xs), min(ys), max(xs), max(ys)], margin, margin)
                assert _inside(iris["iris"], eye), (
                    f"{where}: the iris centre {iris['iris']} of {iris['region']} is outside that eye's "
                    f"region {eye}"
                )
                assert len(iris["landmarks"]) == 71 and len(iris["keypoints"]) == 5, where


STAGES = {
    PRICE: {
        "text-detection": "text-detection",
        "text-angle": "text-angle",
        "text-recognition": "text-recognition",
        "barcode": None,
    },
    MESH: {
        "face-detection": "face-detection",
        "face-landmarks": "face-landmarks",
        "iris-landmarks": "iris-landmarks",
    },
}


def test_status_shows_requests_failures_and_latency_by_stage(deployed: Site):
    run = deployed.run("status", "--json")
    assert run.returncode == 0, run.describe()
    host = run.host("localhost")
    clients = {c["name"]: c for c in host["clients"]}
    for name, stages in STAGES.items():
        client = clients[name]
        # the summary's JSON has sorted keys; the table below keeps the profile's order
        assert sorted(client["stages"]) == sorted(stages), client["stages"]
        assert client["models"] == [m for m in stages.values() if m], client["models"]
        for stage, model in stages.items():
            entry = client["stages"][stage]
            assert entry["model"] == model, (name, stage, entry)
            assert entry["requests"] > 0 and entry["failures"] == 0, (name, stage, entry)
            assert entry["latency_p50_ms"] is not None and entry["latency_p95_ms"] is not None, entry
    served = host["metrics"]
    for model in (m for stages in STAGES.values() for m in stages.values() if m):
        assert served[model]["requests"] > 0 and served[model]["failures"] == 0, (model, served[model])

    text = deployed.launcher.run(["status", *deployed.inventory])
    assert text.returncode == 0, text.stdout[-3000:] + text.stderr[-3000:]
    assert "client stages" in text.stdout, text.stdout[-3000:]
    for name, stages in STAGES.items():
        places = []
        for stage, model in stages.items():
            row = re.compile(
                rf"│ localhost\s+│ {re.escape(name)}\s+│ {re.escape(stage)}\s+│ "
                rf"{re.escape(model or '(in client)')}\s+│\s+(\d+) │\s+(\d+) │\s+[\d.]+ │\s+[\d.]+ │"
            )
            found = row.search(text.stdout)
            assert found, f"no stage row for {name} {stage} in:\n{text.stdout[-4000:]}"
            assert int(found.group(1)) > 0 and int(found.group(2)) == 0, found.group(0)
            places.append(found.start())
        assert places == sorted(places), f"{name}'s stages are not in the profile's order"


def _write_config(path: Path, text: str) -> None:
    """Replace the server's config.json whole (a new file renamed over it), as an editor does; the
    server reads it within its poll interval (ovms_server_file_system_poll_wait_seconds, 1 s)."""
    staging = path.with_name(f".{path.name}.test")
    staging.write_text(text)
    staging.chmod(0o644)
    staging.replace(path)


def _recognition(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        item
        for box in record.get("detections", [])
        for item in box.get("stages", {}).get("text-recognition", [])
    ]


def _recognition_failed(record: dict[str, Any]) -> bool:
    items = _recognition(record)
    return record.get("status") == "ok" and bool(items) and all(i.get("status") == "failed" for i in items)


def test_a_stage_the_server_stops_serving_fails_its_crops_and_keeps_stage_one(deployed: Site):
    original = deployed.config.read_text()
    config = json.loads(original)
    kept = [m for m in config["model_config_list"] if m["config"]["name"] != "text-recognition"]
    assert len(kept) == len(config["model_config_list"]) - 1, config
    server = json.loads(docker("inspect", deployed.server).stdout)[0]
    before = deployed.lines(PRICE, "stats.jsonl")[-1]
    start = len(deployed.records(PRICE))
    mesh_start = len(deployed.records(MESH))
    _write_config(deployed.config, json.dumps({**config, "model_config_list": kept}, indent=2))
    try:
        records = deployed.wait_records(
            PRICE, MIN_FRAMES // 2, "with every text recognition failed", _recognition_failed, after=start
        )
        failed = [r for r in records if _recognition_failed(r)]
        for record in failed:
            boxes = record["detections"]
            # stage 1 and the other stages on its results stay; only the recognitions failed
            assert len(boxes) >= 2 and all(b["label"] == "text" for b in boxes), record
            for box in boxes:
                assert _results(box["stages"]["text-angle"]), box
                for item in box["stages"]["text-recognition"]:
                    assert set(item) == {"status", "error"} and "NOT_FOUND" in item["error"], item
            assert record["stages"]["barcode"][0]["text"] == RETAIL_EAN13, record
        line = deployed.wait_stats(
            PRICE,
            lambda s: (
                s["stages"]["text-recognition"]["failures"] > before["stages"]["text-recognition"]["failures"]
            ),
            "text-recognition failures",
        )
        for stage in ("text-detection", "text-angle", "barcode"):
            assert line["stages"][stage]["failures"] == before["stages"][stage]["failures"], line["stages"]
        # a refused crop is no outage and no frame error
        assert line["server"] == "up" and line["outages"] == before["outages"], line
        assert line["errors"] == before["errors"], line
        # the server kept serving the other models: the other client goes on
        mesh = deployed.wait_records(
            MESH, MIN_FRAMES // 2, "ok", lambda r: r["status"] == "ok", after=mesh_start
        )
        assert all(r["status"] == "ok" for r in mesh), [r for r in mesh if r["status"] != "ok"][:2]
    finally:
        _write_config(deployed.config, original)
    after = json.loads(docker("inspect", deployed.server).stdout)[0]
    assert after["State"]["Running"] and after["Id"] == server["Id"], after["State"]
    assert after["RestartCount"] == server["RestartCount"], after["RestartCount"]
    # the model back in config.json: the recognitions come back
    restored = len(deployed.records(PRICE))
    deployed.wait_records(PRICE, 3, f"reading {PRICE_TEXT!r} again", _reads_price, after=restored)
