"""REST API of the real server (status, health, config, reload, metrics) on stdlib's ThreadingHTTPServer."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from ovmsclient.tfs_compat.protos.tensorflow_serving.apis import get_model_metadata_pb2

from .grpc_frontend import kserve_metadata, model_status, tfs_metadata
from .manager import ModelManager
from .metrics import Metrics
from .status import Code, ServingError

log = logging.getLogger("serving")

_MODEL_STATUS = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?/?$")
_MODEL_METADATA = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?/metadata$")
_KFS_READY = re.compile(r"^/v2/models/([^/]+)(?:/versions/([0-9]+))?/ready$")
_KFS_METADATA = re.compile(r"^/v2/models/([^/]+)(?:/versions/([0-9]+))?/?$")


def _to_json(message: object) -> dict:
    """Proto JSON with the protos' json_name, as the real server's MessageToJsonString prints it."""
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def _metadata_json(response: get_model_metadata_pb2.GetModelMetadataResponse) -> dict:
    packed = response.metadata["signature_def"]
    signature_map = get_model_metadata_pb2.SignatureDefMap.FromString(packed.value)
    return {
        "modelSpec": _to_json(response.model_spec),
        "metadata": {"signature_def": {"@type": packed.type_url, **_to_json(signature_map)}},
    }


class RestApi:
    """Routes and answers; kept apart from the HTTP plumbing so it reads like the real handler."""

    def __init__(
        self, manager: ModelManager, metrics: Metrics, is_ready: Callable[[], bool], metrics_on: bool
    ) -> None:
        self.manager = manager
        self.metrics = metrics
        self.is_ready = is_ready
        self.metrics_on = metrics_on

    def all_statuses(self) -> dict:
        return {m.name: _to_json(model_status(self.manager, m.name, 0)) for m in self.manager.all_models()}

    def get(self, path: str) -> tuple[int, str, str]:
        path = path.split("?", 1)[0]
        if path == "/v2/health/live":
            return 200, "", "application/json"
        if path == "/v2/health/ready":
            if self.is_ready():
                return 200, "", "application/json"
            raise ServingError(Code.MODEL_NOT_LOADED)
        if path == "/v1/config":
            return 200, json.dumps(self.all_statuses(), indent=1), "application/json"
        if path == "/metrics":
            if not self.metrics_on:
                raise ServingError(Code.REST_NOT_FOUND)
            return 200, self.metrics.render(), "text/plain; version=0.0.4"
        if m := _MODEL_METADATA.match(path):
            return (
                200,
                json.dumps(
                    _metadata_json(tfs_metadata(self.manager, m.group(1), int(m.group(2) or 0))), indent=1
                ),
                "application/json",
            )
        if m := _MODEL_STATUS.match(path):
            body = _to_json(model_status(self.manager, m.group(1), int(m.group(2) or 0)))
            return 200, json.dumps(body, indent=1), "application/json"
        if m := _KFS_READY.match(path):
            instance = self.manager.get_version(m.group(1), int(m.group(2) or 0))
            if instance.state.name == "AVAILABLE":
                return 200, "", "application/json"
            raise ServingError(Code.MODEL_VERSION_NOT_LOADED_YET)
        if m := _KFS_METADATA.match(path):
            meta = kserve_metadata(self.manager, m.group(1), int(m.group(2) or 0))
            body = json_format.MessageToDict(meta)
            for tensor in (*body.get("inputs", []), *body.get("outputs", [])):
                tensor["shape"] = [int(d) for d in tensor.get("shape", [])]  # int64 as JSON numbers
            return 200, json.dumps(body), "application/json"
        raise ServingError(Code.REST_NOT_FOUND)

    def post(self, path: str) -> tuple[int, str, str]:
        if path.split("?", 1)[0] != "/v1/config/reload":
            raise ServingError(Code.REST_NOT_FOUND)
        status, reloaded = self.manager.reload_request()
        if status == Code.CONFIG_FILE_INVALID:
            return 500, json.dumps({"error": "Config file not found or cannot open."}), "application/json"
        if status != Code.OK:
            return (
                status.http_status,
                json.dumps({"error": "Reloading config file failed. Check server logs for more info."}),
                "application/json",
            )
        code = Code.OK_RELOADED if reloaded else Code.OK_NOT_RELOADED
        return code.http_status, json.dumps(self.all_statuses(), indent=1), "application/json"


def make_handler(api: RestApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "ovms-test-double"

        def _answer(self, fn: Callable[[str], tuple[int, str, str]]) -> None:
            try:
                code, body, ctype = fn(self.path)
            except ServingError as exc:
                code, body, ctype = (
                    int(exc.code.http_status),
                    json.dumps({"error": exc.text}),
                    "application/json",
                )
            except Exception as exc:
                log.exception("REST handler failed")
                code, body, ctype = 500, json.dumps({"error": str(exc)}), "application/json"
            data = body.encode()
            self.send_response(int(code))
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer(api.get)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self._answer(api.post)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("REST %s", format % args)

    return Handler


class RestServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def start_rest(api: RestApi, address: str, port: int) -> RestServer:
    return RestServer((address, port), make_handler(api))


__all__ = ["HTTPStatus", "RestApi", "RestServer", "start_rest"]
