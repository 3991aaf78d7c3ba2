"""Video-analytics client for OpenVINO Model Server: profiles, pipelined gRPC inference, results."""

__version__ = "0.1.0"
