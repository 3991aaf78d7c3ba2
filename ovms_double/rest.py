"""REST API of the real server on stdlib's ThreadingHTTPServer (http_rest_api_handler.cpp of v2026.3).

Health, KServe v2 (server metadata, model ready and metadata, infer with JSON or the binary data
extension), `/v1/config`, `POST /v1/config/reload`, `/metrics`; before 2026.3 also TFS's
`/v1/models/{name}[/versions/{v}][/metadata]`, after it the OpenAI-style `/v1/models[/{id}]` that took
their place. Errors are `{"error":"..."}` with the real HTTP codes.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
from google.protobuf import json_format
from tritonclient.grpc import service_pb2 as kfs

from .kfs_frontend import SERVER_NAME, counted, infer, metadata_response, parse_version, ready_instance
from .manager import ModelManager
from .metrics import Registry
from .release import Release
from .servable import State
from .status import Code, ServingError
from .tensors import from_kserve

log = logging.getLogger("serving")

JSON = "application/json"
METRICS_TYPE = "text/plain; charset=utf-8"
HEADER_LENGTH = "inference-header-content-length"

_TFS_STATUS = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?/?$")
_TFS_METADATA = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?/metadata$")
_OPENAI_MODEL = re.compile(r"^/v1/models/(.+)$")
_KFS_READY = re.compile(r"^/v2/models/([^/]+)(?:/versions/([0-9]+))?/ready$")
_KFS_METADATA = re.compile(r"^/v2/models/([^/]+)(?:/versions/([0-9]+))?/?$")
_KFS_INFER = re.compile(r"^/v2/models/([^/]+)(?:/versions/([0-9]+))?/infer$")
_METRICS = re.compile(r"^.?/metrics$")


@dataclass
class Answer:
    code: int
    body: bytes = b""
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, code: int, data: object, indent: int | None = None) -> Answer:
        separators = (",", ":") if indent is None else None
        return cls(code, json.dumps(data, indent=indent, separators=separators).encode())

    @classmethod
    def error(cls, code: int, message: str, content_type: str = JSON) -> Answer:
        return cls(code, json.dumps({"error": message}, separators=(",", ":")).encode(), content_type)


def _statuses(manager: ModelManager) -> dict[str, Any]:
    """GET /v1/config: every model's versions with state and status (config_status_utils.cpp)."""
    return {
        model.name: {
            "model_version_status": [
                {
                    "version": str(instance.version),
                    "state": instance.state.name,
                    "status": {
                        "error_code": instance.error_code.name,
                        "error_message": instance.error_code.name,
                    },
                }
                for instance in model.snapshot()
            ]
        }
        for model in manager.all_models()
    }


class RestApi:
    """Routes and answers; kept apart from the HTTP plumbing so it reads like the real handler."""

    def __init__(
        self,
        manager: ModelManager,
        metrics: Registry,
        is_ready: Callable[[], bool],
        metrics_on: bool,
        release: Release,
        count_inputs: bool = True,
    ) -> None:
        self.manager = manager
        self.metrics = metrics
        self.is_ready = is_ready
        self.metrics_on = metrics_on
        self.release = release
        self.count_inputs = count_inputs
        self.started = int(time.time())

    # -- GET -----------------------------------------------------------------------------------
    def get(self, path: str) -> Answer:
        path = path.split("?", 1)[0]
        if path in ("/v2/health/live",):
            return Answer(200)
        if path == "/v2/health/ready":
            if self.is_ready():
                return Answer(200)
            raise ServingError(Code.MODEL_NOT_LOADED)
        if path == "/v2":
            return Answer.json(200, {"name": SERVER_NAME, "version": str(self.release)})
        if path == "/v1/config":
            return Answer(200, json.dumps(_statuses(self.manager), indent=1).encode())
        if _METRICS.match(path):
            if not self.metrics_on:
                return Answer.error(400, "Invalid request URL", METRICS_TYPE)
            return Answer(200, self.metrics.render().encode(), METRICS_TYPE)
        if path.startswith("/v1/models"):
            return self._tfs_get(path) if self.release.serves_tfs else self._openai_get(path)
        if m := _KFS_READY.match(path):
            instance = self.manager.get_version(m.group(1), parse_version(m.group(2) or ""))
            instance.reporter.request("REST", "ModelReady", ok=True)
            if instance.state == State.AVAILABLE:
                return Answer(200)
            raise ServingError(Code.MODEL_VERSION_NOT_LOADED_YET)
        if m := _KFS_METADATA.match(path):
            instance = self.manager.get_version(m.group(1), parse_version(m.group(2) or ""))
            meta = counted(
                instance,
                "REST",
                "ModelMetadata",
                lambda: metadata_response(
                    self.manager, ready_instance(self.manager, m.group(1), instance.version)
                ),
            )
            body = json_format.MessageToDict(meta)  # type: ignore[arg-type]
            for tensor in (*body.get("inputs", []), *body.get("outputs", [])):
                tensor["shape"] = [int(d) for d in tensor.get("shape", [])]  # int64 as JSON numbers
            return Answer.json(200, body)
        raise ServingError(Code.REST_NOT_FOUND)

    def _tfs_get(self, path: str) -> Answer:
        """TFS REST status and metadata (releases before 2026.3)."""
        from .tfs_frontend import metadata_json, model_status_json

        if m := _TFS_METADATA.match(path):
            return Answer(
                200,
                json.dumps(metadata_json(self.manager, m.group(1), int(m.group(2) or 0)), indent=1).encode(),
            )
        if m := _TFS_STATUS.match(path):
            body = model_status_json(self.manager, m.group(1), int(m.group(2) or 0))
            return Answer(200, json.dumps(body, indent=1).encode())
        raise ServingError(Code.REST_NOT_FOUND)

    def _openai_get(self, path: str) -> Answer:
        """2026.3 and later: /v1/models is the OpenAI-style model list; TFS URLs are "Model not found"."""

        def entry(name: str) -> dict[str, Any]:
            return {"id": name, "object": "model", "created": self.started, "owned_by": "OVMS"}

        available = [m.name for m in self.manager.all_models() if m.default_version() is not None]
        if path in ("/v1/models", "/v1/models/"):
            return Answer.json(200, {"data": [entry(n) for n in available], "object": "list"})
        m = _OPENAI_MODEL.match(path)
        if m and m.group(1) in available:
            return Answer.json(200, entry(m.group(1)))
        return Answer.error(500, "Model not found")

    # -- POST ----------------------------------------------------------------------------------
    def post(self, path: str, headers: dict[str, str], body: bytes) -> Answer:
        path = path.split("?", 1)[0]
        if path == "/v1/config/reload":
            return self._reload()
        if m := _KFS_INFER.match(path):
            return self._infer(m.group(1), m.group(2) or "", headers, body)
        if _METRICS.match(path):
            raise ServingError(Code.REST_UNSUPPORTED_METHOD)
        raise ServingError(Code.REST_NOT_FOUND)

    def _reload(self) -> Answer:
        status, reloaded = self.manager.reload_request()
        if status == Code.CONFIG_FILE_INVALID:
            return Answer.error(500, "Config file not found or cannot open.")
        if status != Code.OK:
            return Answer.error(
                int(status.http_status), "Reloading config file failed. Check server logs for more info."
            )
        code = Code.OK_RELOADED if reloaded else Code.OK_NOT_RELOADED
        return Answer(int(code.http_status), json.dumps(_statuses(self.manager), indent=1).encode())

    def _infer(self, name: str, version: str, headers: dict[str, str], body: bytes) -> Answer:
        request, binary_outputs = _infer_request(name, version, headers, body)
        response = infer(self.manager, request, "REST", self.count_inputs)
        return _infer_answer(response, binary_outputs)


def _infer_request(
    name: str, version: str, headers: dict[str, str], body: bytes
) -> tuple[kfs.ModelInferRequest, set[str] | bool]:
    """A KServe REST infer body (JSON, optionally followed by binary data) as a ModelInferRequest."""
    length_text = headers.get(HEADER_LENGTH)
    json_part, binary_part = body, b""
    if length_text is not None:
        try:
            length = int(length_text)
        except ValueError:
            length = -1
        if not 0 <= length < 2**31:
            raise ServingError(Code.REST_INFERENCE_HEADER_CONTENT_LENGTH_INVALID)
        if length > len(body):
            raise ServingError(Code.REST_INFERENCE_HEADER_CONTENT_LENGTH_EXCEEDED)
        json_part, binary_part = body[:length], body[length:]
    try:
        doc = json.loads(json_part or b"null")
    except ValueError:
        raise ServingError(Code.JSON_INVALID) from None
    if not isinstance(doc, dict):
        raise ServingError(Code.REST_BODY_IS_NOT_AN_OBJECT)
    if not isinstance(doc.get("inputs"), list):
        raise ServingError(Code.REST_NO_INPUTS_FOUND)
    request = kfs.ModelInferRequest(model_name=name, model_version=version, id=str(doc.get("id", "")))
    offset = 0
    binary_used = False
    for item in doc["inputs"]:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ServingError(Code.REST_COULD_NOT_PARSE_INPUT)
        shape = item.get("shape", [])
        datatype = str(item.get("datatype", ""))
        tensor = request.inputs.add(name=item["name"], datatype=datatype, shape=[int(d) for d in shape])
        size = (item.get("parameters") or {}).get("binary_data_size")
        if "data" in item:
            if size is not None:
                raise ServingError(Code.REST_CONTENTS_FIELD_NOT_EMPTY)
            _json_contents(tensor, datatype, item["data"])
            continue
        if size is None and datatype == "BYTES" and len(doc["inputs"]) == 1:
            size = len(binary_part) - offset  # the single BYTES input takes the whole remainder
        if size is None:
            precision = from_kserve(datatype)
            size = int(np.prod(shape)) * (precision.numpy.itemsize if precision else 1)
        request.raw_input_contents.append(binary_part[offset : offset + int(size)])
        offset += int(size)
        binary_used = True
    if binary_used and any(t.HasField("contents") for t in request.inputs):
        raise ServingError(Code.REST_CONTENTS_FIELD_NOT_EMPTY)
    wanted: set[str] | bool = bool((doc.get("parameters") or {}).get("binary_data_output"))
    if not wanted:
        wanted = {
            str(o.get("name"))
            for o in doc.get("outputs") or []
            if isinstance(o, dict) and (o.get("parameters") or {}).get("binary_data")
        }
    return request, wanted


_JSON_FIELDS = {
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "BOOL": "bool_contents",
}


def _json_contents(tensor: kfs.ModelInferRequest.InferInputTensor, datatype: str, data: object) -> None:
    values = np.asarray(data, dtype=object).reshape(-1).tolist() if isinstance(data, list) else [data]
    if datatype == "BYTES":
        tensor.contents.bytes_contents.extend(str(v).encode() for v in values)
        return
    field_name = _JSON_FIELDS.get(datatype)
    if field_name is None:
        raise ServingError(Code.REST_COULD_NOT_PARSE_INPUT)
    try:
        getattr(tensor.contents, field_name).extend(values)
    except (TypeError, ValueError):
        raise ServingError(Code.REST_COULD_NOT_PARSE_INPUT) from None


def _infer_answer(response: kfs.ModelInferResponse, binary_outputs: set[str] | bool) -> Answer:
    body: dict[str, Any] = {"model_name": response.model_name}
    if response.id:
        body["id"] = response.id
    body["model_version"] = response.model_version
    outputs = []
    tail = b""
    for tensor, raw in zip(response.outputs, response.raw_output_contents, strict=True):
        entry: dict[str, Any] = {
            "name": tensor.name,
            "shape": list(tensor.shape),
            "datatype": tensor.datatype,
        }
        if binary_outputs is True or (isinstance(binary_outputs, set) and tensor.name in binary_outputs):
            entry["parameters"] = {"binary_data_size": len(raw)}
            tail += raw
        else:
            precision = from_kserve(tensor.datatype)
            dtype = precision.numpy if precision else np.dtype(np.uint8)
            entry["data"] = np.frombuffer(raw, dtype=dtype).tolist()
        outputs.append(entry)
    body["outputs"] = outputs
    text = json.dumps(body, indent=4).encode()
    headers = {HEADER_LENGTH: str(len(text))} if tail else {}
    return Answer(200, text + tail, JSON, headers)


def make_handler(api: RestApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "ovms-test-double"

        def _send(self, answer: Answer) -> None:
            self.send_response(answer.code)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            for key, value in answer.headers.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)

        def _answer(self, fn: Callable[[], Answer]) -> None:
            try:
                answer = fn()
            except ServingError as exc:
                answer = Answer.error(int(exc.code.http_status), exc.text)
            except Exception as exc:
                log.exception("REST handler failed")
                answer = Answer.error(500, str(exc))
            self._send(answer)

        def do_GET(self) -> None:
            self._answer(lambda: api.get(self.path))

        def do_HEAD(self) -> None:
            self._answer(lambda: api.get(self.path))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            self._answer(lambda: api.post(self.path, headers, body))

        def _unsupported(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self._send(Answer.error(406, Code.REST_UNSUPPORTED_METHOD.message))

        do_PUT = do_DELETE = do_PATCH = _unsupported

        def do_OPTIONS(self) -> None:
            self._send(Answer(200))

        def log_message(self, format: str, *args: object) -> None:
            log.debug("REST %s", format % args)

    return Handler


class RestServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def start_rest(api: RestApi, address: str, port: int) -> RestServer:
    return RestServer((address, port), make_handler(api))
