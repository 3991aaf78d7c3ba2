"""The source checkout the tests and benchmarks run from (the launcher itself finds its collection
through launcher/content.py, never as the folder above its package)."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
