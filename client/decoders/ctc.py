"""Greedy CTC text recognition (PP-OCR's CTCLabelDecode): the best class per time step, repeats
merged, blanks dropped.

The character list is known only once the server has reported the stage model's version (a file beside
that version of the model) or the profile folder is known, so it is bound after construction:

    decoder = CtcDecoder(spec, key="stages[2].postprocess")
    decoder.bind(profile_dir=..., files_dir=..., model="text-recognition", version=1)   # reads the file
    # or: decoder.bind_characters(read_characters(path), source=str(path))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import ClientError, ModelMismatchError
from ..postprocess import CtcPostprocess
from .base import Detection, Outputs, pick

MAX_CHARACTERS_BYTES = 16 << 20


def read_characters(path: Path, key: str = "postprocess.characters") -> list[str]:
    """A character list file: UTF-8, one character (entry) per line. Lines are split on "\\n" only —
    never on the other line separators str.splitlines() knows, which may be characters of the list; a
    final newline is optional, CRLF line ends are accepted. An empty line is an error."""
    try:
        if path.stat().st_size > MAX_CHARACTERS_BYTES:
            raise ClientError(
                f"the character list is larger than {MAX_CHARACTERS_BYTES >> 20} MiB",
                file=path,
                key=key,
                fix="point the profile at the recogniser's character list (one character per line)",
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise ClientError(
            "the character list file does not exist",
            file=path,
            key=key,
            fix="prepare the model's files (launcher models prepare) or correct the profile's characters key",
        ) from None
    except OSError as exc:
        raise ClientError(
            f"cannot read the character list: {exc.strerror or exc}", file=path, key=key
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ClientError(
            f"the character list is not UTF-8 (byte {exc.start})", file=path, key=key, fix="save it as UTF-8"
        ) from None
    text = text.removeprefix("\ufeff")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    if lines and all(line.endswith("\r") for line in lines):
        lines = [line[:-1] for line in lines]  # CRLF line ends
    if not lines:
        raise ClientError("the character list is empty", file=path, key=key, fix="one character per line")
    for number, line in enumerate(lines, start=1):
        if not line:
            raise ClientError(
                f"line {number} of the character list is empty",
                file=path,
                key=key,
                fix="one character per line, no empty lines",
            )
    return lines


class CtcDecoder:
    """[1,T,C] per-step class probabilities -> one Detection(label, text, score = the mean probability
    of the kept characters, box = the whole image). Class 0 is the blank, 1..n the characters and,
    with `space`, class n+1 a space, so C = n + 2 (n + 1 without `space`).

    Text is stripped of spaces at its ends; an empty text, or a score below `threshold`, gives no
    result (an empty list), so a crop with nothing legible adds nothing."""

    def __init__(
        self,
        spec: CtcPostprocess,
        characters: Sequence[str] | None = None,
        key: str = "postprocess",
    ) -> None:
        self.spec = spec
        self.key = key
        self.roles: Mapping[str, Sequence[str]] = {"probabilities": spec.outputs.probabilities}
        self.source: str | None = None
        self._table: np.ndarray | None = None
        if characters is not None:
            self.bind_characters(characters)

    @property
    def bound(self) -> bool:
        return self._table is not None

    @property
    def classes(self) -> int | None:
        """The class count the model must give (C), once the characters are bound."""
        return None if self._table is None else len(self._table)

    def bind(self, *, profile_dir: Path, files_dir: Path | None, model: str, version: int) -> Path:
        """Read the spec's character list for this served model version and bind it; the file read."""
        key = f"{self.key}.characters"
        path = self.spec.characters.locate(
            profile_dir=profile_dir, files_dir=files_dir, model=model, version=version, key=key
        )
        self.bind_characters(read_characters(path, key=key), source=str(path))
        return path

    def bind_characters(self, characters: Sequence[str], source: str | None = None) -> None:
        """Use this character list (entry i is class i + 1); `source` names it in error messages."""
        entries = list(characters)
        bad = next((i for i, c in enumerate(entries) if not isinstance(c, str) or not c or "\n" in c), None)
        if not entries or bad is not None:
            where = "is empty" if not entries else f"entry {bad} is not one line of text"
            raise ClientError(
                f"the character list {where}",
                file=source,
                key=f"{self.key}.characters",
                fix="one character per line",
            )
        space = [" "] if self.spec.space else []
        self._table = np.array(["", *entries, *space], dtype=object)
        self.source = source

    def check_classes(self, count: int) -> None:
        """The model's class count (the output's last dimension) must fit the character list."""
        if self._table is None:
            raise ClientError(
                "the character list is not bound yet",
                key=f"{self.key}.characters",
                fix="call bind() or bind_characters() before decoding (a client bug)",
            )
        expected = len(self._table)
        if count != expected:
            extra = "blank, characters, space" if self.spec.space else "blank, characters"
            listed = expected - (2 if self.spec.space else 1)
            raise ModelMismatchError(
                f"the model gives {count} classes, but the character list "
                f"{self.source or '(given)'} holds {listed} characters: expected {expected} ({extra})",
                key=f"{self.key}.characters",
                fix="use the character list made for this model (a file beside the model, "
                "characters.model_file), and space: true for PP-OCR recognisers",
            )

    def decode(self, outputs: Outputs, frame_width: int, frame_height: int) -> list[Detection]:
        array = np.asarray(pick(outputs, self.roles["probabilities"], "probabilities"))
        if array.ndim < 2 or int(np.prod(array.shape[:-2], dtype=np.int64)) != 1:
            raise ModelMismatchError(
                f"expected one sequence of class probabilities [1,T,C], got shape {list(array.shape)}",
                key=f"{self.key}.outputs.probabilities",
                fix="point outputs.probabilities at the recogniser's [1,T,C] output",
            )
        steps = array.reshape(array.shape[-2:])
        self.check_classes(steps.shape[1])
        text, score = self.greedy(steps)
        if not text or score < self.spec.threshold:
            return []
        return [
            Detection(
                label=self.spec.label,
                class_id=0,
                score=score,
                box=(0.0, 0.0, float(frame_width), float(frame_height)),
                text=text,
            )
        ]

    def greedy(self, steps: np.ndarray) -> tuple[str, float]:
        """(text stripped of spaces at its ends, mean probability of the kept steps; 0 if none)."""
        assert self._table is not None
        if steps.shape[0] == 0:
            return "", 0.0
        best = steps.argmax(axis=1)
        probability = steps.max(axis=1).astype(np.float64)
        keep = best != 0
        keep[1:] &= best[1:] != best[:-1]
        if not keep.any():
            return "", 0.0
        text = "".join(self._table[best[keep]]).strip(" ")
        return text, float(probability[keep].mean())
