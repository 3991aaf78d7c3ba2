"""Building blocks shared by the profile schema and the post-processing specs: strict frozen models,
lists of accepted tensor names."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


class Strict(BaseModel):
    """Unknown keys are errors; validated values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def as_list(value: object) -> object:
    """A single name given as text is a list of one name."""
    return [value] if isinstance(value, str) else value


# Output tensor names a role accepts (a server reports one of a tensor's names); one name may be
# given as text
Names = Annotated[list[Annotated[str, Field(min_length=1)]], BeforeValidator(as_list), Field(min_length=1)]


# A file written beside a model for its clients (the models manifest's `client_files`, a profile's
# `{model_file: NAME}`): a plain name that starts with a letter or digit (never an option, a hidden
# file or a path).
MODEL_FILE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
