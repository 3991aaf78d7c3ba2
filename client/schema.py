"""Building blocks shared by the profile schema and the post-processing specs: strict frozen models,
lists of accepted tensor names."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    """Unknown keys are errors; validated values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# Output tensor names a role accepts (a server reports one of a tensor's names)
Names = Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]


def as_list(value: object) -> object:
    """A single name given as text is a list of one name."""
    return [value] if isinstance(value, str) else value
