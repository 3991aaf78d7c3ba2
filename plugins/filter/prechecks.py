"""Filters of the prechecks role."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def prechecks_pull_failures(
    results: Sequence[Mapping[str, Any]], images: Sequence[Mapping[str, Any]], host: str
) -> list[str]:
    """One message per image a looped docker_image_pull (loop_var prechecks_image, failed_when false)
    could not pull: the image, the engine's reason and the hint its role gave ({image, hint})."""
    hints = {str(i.get("image")): str(i.get("hint") or "") for i in images}
    failures = []
    for result in results:
        if result.get("image"):
            continue
        image = str(result.get("prechecks_image", "?"))
        reason = " ".join(str(result.get("msg") or "no registry answered").split())
        reason = reason if len(reason) <= 200 else reason[:197] + "..."
        failures.append(
            f"image {image} is not on {host} and cannot be pulled ({reason}). {hints.get(image, '')}".strip()
        )
    return failures


class FilterModule:
    def filters(self) -> dict:
        return {"prechecks_pull_failures": prechecks_pull_failures}
