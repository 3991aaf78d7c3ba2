"""Server status codes with the messages, gRPC codes and HTTP codes the real server uses."""

from __future__ import annotations

import enum
from http import HTTPStatus

import grpc


class Code(enum.Enum):
    """(message, gRPC status, HTTP status) as in OVMS's status tables (src/status.cpp, grpc_utils.cpp,
    http_server.cpp). A gRPC status of None: the code is missing from the real server's gRPC table,
    which then answers UNKNOWN "Unknown error"."""

    OK = ("", grpc.StatusCode.OK, HTTPStatus.OK)
    OK_RELOADED = ("Config reload successful", grpc.StatusCode.OK, HTTPStatus.CREATED)
    OK_NOT_RELOADED = ("Config reload was not needed", grpc.StatusCode.OK, HTTPStatus.OK)
    PATH_INVALID = (
        "The provided base path is invalid or doesn't exists",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    CONFIG_FILE_INVALID = (
        "Configuration file not found or cannot open",
        grpc.StatusCode.UNKNOWN,
        HTTPStatus.INTERNAL_SERVER_ERROR,
    )
    JSON_INVALID = (
        "The file is not valid json",
        grpc.StatusCode.FAILED_PRECONDITION,
        HTTPStatus.PRECONDITION_FAILED,
    )
    MODEL_CONFIG_INVALID = (
        "Model config is invalid",
        grpc.StatusCode.UNKNOWN,
        HTTPStatus.INTERNAL_SERVER_ERROR,
    )
    MODEL_NOT_LOADED = (
        "Error while loading a model",
        grpc.StatusCode.INTERNAL,
        HTTPStatus.INTERNAL_SERVER_ERROR,
    )
    MODEL_NAME_MISSING = (
        "Model with requested name is not found",
        grpc.StatusCode.NOT_FOUND,
        HTTPStatus.NOT_FOUND,
    )
    MODEL_VERSION_MISSING = (
        "Model with requested version is not found",
        grpc.StatusCode.NOT_FOUND,
        HTTPStatus.NOT_FOUND,
    )
    MODEL_VERSION_NOT_LOADED_ANYMORE = (
        "Model with requested version is retired",
        grpc.StatusCode.NOT_FOUND,
        HTTPStatus.NOT_FOUND,
    )
    MODEL_VERSION_NOT_LOADED_YET = (
        "Model with requested version is not loaded yet",
        grpc.StatusCode.UNAVAILABLE,
        HTTPStatus.NOT_FOUND,
    )
    MODEL_SPEC_MISSING = (
        "model_spec missing in request",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    MODEL_VERSION_INVALID_FORMAT = (
        "invalid model version format in request",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    INVALID_SIGNATURE_DEF = (
        "Invalid signature name",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    INVALID_NO_OF_INPUTS = (
        "Invalid number of inputs",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    INVALID_MISSING_INPUT = (
        "Missing input with specific name",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    INVALID_NO_OF_SHAPE_DIMENSIONS = (
        "Invalid number of shape dimensions",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    INVALID_BATCH_SIZE = (
        "Invalid input batch size",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    INVALID_SHAPE = ("Invalid input shape", grpc.StatusCode.INVALID_ARGUMENT, HTTPStatus.BAD_REQUEST)
    INVALID_PRECISION = ("Invalid input precision", grpc.StatusCode.INVALID_ARGUMENT, HTTPStatus.BAD_REQUEST)
    INVALID_VALUE_COUNT = (
        "Invalid number of values in tensor proto container",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    INVALID_CONTENT_SIZE = (
        "Invalid content size of tensor proto",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    INVALID_INPUT_FORMAT = (
        "Inputs inside buffer does not match expected format.",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    UNSUPPORTED_LAYOUT = (
        "Received binary image input but resource not configured to accept NHWC layout",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    INVALID_NO_OF_CHANNELS = (
        "Invalid number of channels in binary input",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    BINARY_IMAGES_RESOLUTION_MISMATCH = (
        "Binary input images for this endpoint are required to have the same resolution",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    BYTES_CONTENTS_EMPTY = (
        "Bytes contents is empty",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.INTERNAL_SERVER_ERROR,
    )
    IMAGE_PARSING_FAILED = ("Image parsing failed", None, HTTPStatus.INTERNAL_SERVER_ERROR)
    MEDIAPIPE_DEFINITION_NAME_MISSING = (
        "Mediapipe graph definition with requested name is not found",
        grpc.StatusCode.NOT_FOUND,
        HTTPStatus.NOT_FOUND,
    )
    INVALID_MESSAGE_STRUCTURE = (
        "Passing buffers both in ModelInferRequest::InferInputTensor::contents and in "
        "ModelInferRequest::raw_input_contents is not allowed",
        grpc.StatusCode.INVALID_ARGUMENT,
        HTTPStatus.BAD_REQUEST,
    )
    OV_INTERNAL_INFERENCE_ERROR = (
        "Internal inference error",
        grpc.StatusCode.INTERNAL,
        HTTPStatus.INTERNAL_SERVER_ERROR,
    )
    NOT_IMPLEMENTED = ("Functionality not implemented", None, HTTPStatus.INTERNAL_SERVER_ERROR)
    INTERNAL_ERROR = ("Internal server error", grpc.StatusCode.INTERNAL, HTTPStatus.INTERNAL_SERVER_ERROR)
    REST_NOT_FOUND = ("Requested REST resource not found", grpc.StatusCode.NOT_FOUND, HTTPStatus.NOT_FOUND)
    # REST only: None as gRPC status; HTTP 500 where the real server's HTTP table lacks the code
    REST_UNSUPPORTED_METHOD = ("Unsupported method", None, HTTPStatus.NOT_ACCEPTABLE)
    REST_BODY_IS_NOT_AN_OBJECT = ("Request body should be JSON object", None, HTTPStatus.BAD_REQUEST)
    REST_NO_INPUTS_FOUND = ("Invalid JSON structure, missing inputs", None, HTTPStatus.BAD_REQUEST)
    REST_COULD_NOT_PARSE_INPUT = (
        "Could not parse input content. Not valid ndarray detected",
        None,
        HTTPStatus.BAD_REQUEST,
    )
    REST_INFERENCE_HEADER_CONTENT_LENGTH_EXCEEDED = (
        "Inference-Header-Content-Length header exceeds actual payload length",
        None,
        HTTPStatus.INTERNAL_SERVER_ERROR,
    )
    REST_INFERENCE_HEADER_CONTENT_LENGTH_INVALID = (
        "Inference-Header-Content-Length header is invalid and couldn't be parsed",
        None,
        HTTPStatus.INTERNAL_SERVER_ERROR,
    )
    REST_CONTENTS_FIELD_NOT_EMPTY = (
        "Request contains values both in binary data and in content value",
        None,
        HTTPStatus.INTERNAL_SERVER_ERROR,
    )

    @property
    def message(self) -> str:
        return self.value[0]

    @property
    def grpc_code(self) -> grpc.StatusCode:
        return self.value[1] or grpc.StatusCode.UNKNOWN

    @property
    def http_status(self) -> HTTPStatus:
        return self.value[2]


class ServingError(Exception):
    """A request or load failure carrying the real server's status code and message."""

    def __init__(self, code: Code, details: str = "") -> None:
        self.code = code
        self.details = details
        super().__init__(self.text)

    @property
    def text(self) -> str:
        return f"{self.code.message} - {self.details}" if self.details else self.code.message

    @property
    def grpc_text(self) -> str:
        """What a gRPC client reads: the message, or "Unknown error" for codes the real server's gRPC
        table lacks (grpc_utils.cpp)."""
        return self.text if self.code.value[1] is not None else "Unknown error"
