"""JSON schema of config.json mirroring the real server's (v2025.0): additionalProperties false everywhere."""

from __future__ import annotations

_STRING = {"type": "string"}
_LAYOUT_SHAPE = {"oneOf": [{"type": "object", "additionalProperties": _STRING}, _STRING]}

_MODEL_VERSION_POLICY = {
    "oneOf": [
        {
            "maxProperties": 1,
            "required": ["all"],
            "additionalProperties": False,
            "properties": {
                "all": {"type": "object", "additionalProperties": False, "properties": {}, "maxProperties": 0}
            },
        },
        {
            "maxProperties": 1,
            "required": ["specific"],
            "additionalProperties": False,
            "properties": {
                "specific": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["versions"],
                    "properties": {"versions": {"type": "array", "items": {"type": "integer", "minimum": 1}}},
                }
            },
        },
        {
            "maxProperties": 1,
            "required": ["latest"],
            "additionalProperties": False,
            "properties": {
                "latest": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["num_versions"],
                    "properties": {"num_versions": {"type": "integer", "minimum": 1}},
                }
            },
        },
    ]
}

_MODEL_CONFIG = {
    "type": "object",
    "required": ["config"],
    "maxProperties": 1,
    "additionalProperties": False,
    "properties": {
        "config": {
            "type": "object",
            "required": ["name", "base_path"],
            "additionalProperties": False,
            "properties": {
                "name": _STRING,
                "base_path": _STRING,
                "batch_size": {"type": ["integer", "string"], "minimum": 0},
                "model_version_policy": _MODEL_VERSION_POLICY,
                "shape": _LAYOUT_SHAPE,
                "layout": _LAYOUT_SHAPE,
                "nireq": {"type": "integer", "minimum": 0},
                "target_device": _STRING,
                "allow_cache": {"type": "boolean"},
                "plugin_config": {
                    "type": "object",
                    "additionalProperties": {"anyOf": [_STRING, {"type": "boolean"}, {"type": "number"}]},
                },
                "stateful": {"type": "boolean"},
                "low_latency_transformation": {"type": "boolean"},
                "idle_sequence_cleanup": {"type": "boolean"},
                "max_sequence_number": {"type": "integer", "minimum": 0},
                "custom_loader_options": {
                    "type": "object",
                    "required": ["loader_name"],
                    "properties": {"loader_name": _STRING},
                    "minProperties": 1,
                },
            },
        }
    },
}

_SOURCE_NODE = {
    "type": "object",
    "minProperties": 1,
    "maxProperties": 1,
    "additionalProperties": {
        "type": "object",
        "required": ["node_name", "data_item"],
        "additionalProperties": False,
        "properties": {"node_name": _STRING, "data_item": _STRING},
    },
}

_NODE_CONFIG = {
    "type": "object",
    "required": ["name", "type", "inputs", "outputs"],
    "additionalProperties": False,
    "properties": {
        "name": _STRING,
        "model_name": _STRING,
        "library_name": _STRING,
        "type": {"type": "string", "enum": ["DL model", "custom"]},
        "version": {"type": "integer", "minimum": 1},
        "inputs": {"type": "array", "items": _SOURCE_NODE},
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["data_item", "alias"],
                "additionalProperties": False,
                "properties": {"data_item": _STRING, "alias": _STRING},
            },
        },
        "params": {"type": "object", "additionalProperties": _STRING},
        "demultiply_count": {"type": "integer", "minimum": -1, "maximum": 10000},
        "gather_from_node": _STRING,
    },
}

_PIPELINE_CONFIG = {
    "type": "object",
    "required": ["name", "nodes", "inputs", "outputs"],
    "additionalProperties": False,
    "properties": {
        "name": _STRING,
        "nodes": {"type": "array", "items": _NODE_CONFIG},
        "inputs": {"type": "array", "items": _STRING},
        "outputs": {"type": "array", "items": _SOURCE_NODE},
        "demultiply_count": {"type": "integer", "minimum": -1, "maximum": 10000},
    },
}

_MEDIAPIPE_CONFIG = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {"name": _STRING, "base_path": _STRING, "graph_path": _STRING, "subconfig": _STRING},
}

_CUSTOM_NODE_LIBRARY = {
    "type": "object",
    "required": ["name", "base_path"],
    "additionalProperties": False,
    "properties": {"name": _STRING, "base_path": _STRING},
}

_CUSTOM_LOADER = {
    "type": "object",
    "required": ["config"],
    "maxProperties": 1,
    "properties": {
        "config": {
            "type": "object",
            "required": ["loader_name", "library_path"],
            "additionalProperties": False,
            "properties": {"loader_name": _STRING, "library_path": _STRING, "loader_config_file": _STRING},
        }
    },
}

_MONITORING = {
    "type": "object",
    "maxProperties": 1,
    "required": ["metrics"],
    "additionalProperties": False,
    "properties": {
        "metrics": {
            "type": "object",
            "required": ["enable"],
            "additionalProperties": False,
            "properties": {
                "enable": {"type": "boolean"},
                "metrics_list": {"type": "array", "items": _STRING},
            },
        }
    },
}

CONFIG_SCHEMA: dict = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["model_config_list"],
    "additionalProperties": False,
    "properties": {
        "model_config_list": {"type": "array", "items": _MODEL_CONFIG},
        "pipeline_config_list": {"type": "array", "items": _PIPELINE_CONFIG},
        "mediapipe_config_list": {"type": "array", "items": _MEDIAPIPE_CONFIG},
        "custom_node_library_config_list": {"type": "array", "items": _CUSTOM_NODE_LIBRARY},
        "custom_loader_config_list": {"type": "array", "items": _CUSTOM_LOADER},
        "monitoring": _MONITORING,
    },
}

# Top-level sections the double validates but does not serve.
IGNORED_SECTIONS = (
    "pipeline_config_list",
    "mediapipe_config_list",
    "custom_node_library_config_list",
    "custom_loader_config_list",
    "monitoring",
)
