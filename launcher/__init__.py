"""ovms-launcher: deploy OpenVINO Model Server and its clients with Ansible."""

__version__ = "0.1.0"
