"""Which deployment stage a runner event belongs to (the rows of the live progress)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# A role of the project's playbooks is shown under the stage of its name without `ovms_` (ovms_server:
# server, prechecks: prechecks) when there is one; these under another stage.
ROLE_STAGES: dict[str, str] = {"ovms_tls_proxy": "server"}

# Plays without a role are named after their stage ("Verify the deployment" -> verify).
PLAY_STAGES: tuple[str, ...] = (
    "prechecks",
    "models",
    "server",
    "camera",
    "client",
    "monitoring",
    "verify",
    "summary",
    "destroy",
    "status",
)

OTHER = "other"

# Display order of the stages.
STAGE_ORDER: tuple[str, ...] = (*PLAY_STAGES, OTHER)


def _role_name(role: str) -> str:
    """`ns.collection.ovms_server` or `roles/ovms_server` -> `ovms_server`."""
    return role.replace("/", ".").rsplit(".", 1)[-1]


# Plays whose name wins over the role of their tasks: "Verify" runs the client role's verify tasks,
# the prechecks and destroy plays run each role's precheck.yml / absent.yml.
PLAY_FIRST: frozenset[str] = frozenset({"prechecks", "verify", "destroy"})


def _play_stage(event_data: Mapping[str, Any]) -> str | None:
    play = event_data.get("play")
    if isinstance(play, str) and play.strip():
        first = play.split()[0].strip(":,.-").lower()
        if first in PLAY_STAGES:
            return first
    return None


def stage_of(event_data: Mapping[str, Any]) -> str:
    """The stage of one event: its role's stage, else the first word of its play's name.

    A "Verify ..." play is the verify stage even when its tasks come from a role.
    """
    by_play = _play_stage(event_data)
    if by_play in PLAY_FIRST:
        return by_play
    role = event_data.get("role")
    if isinstance(role, str) and role:
        name = _role_name(role)
        stage = ROLE_STAGES.get(name, name.removeprefix("ovms_"))
        if stage in PLAY_STAGES:
            return stage
    return by_play or OTHER


def stage_rank(stage: str) -> int:
    try:
        return STAGE_ORDER.index(stage)
    except ValueError:
        return len(STAGE_ORDER)
