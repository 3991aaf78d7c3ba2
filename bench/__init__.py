"""Benchmarks of ovms-launcher: the inference path, stream density and deployment (see docs/benchmarks.md)."""
