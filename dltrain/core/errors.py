"""Errors the CLI maps to exit codes (see cli.py)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a recipe: where it is, and what was expected."""

    path: str  # dotted key path, e.g. "optimizer.lr"; "" for the whole document
    message: str
    where: str | None = None  # "file.yaml:12" or "command line"

    def __str__(self) -> str:
        place = f" ({self.where})" if self.where else ""
        key = self.path or "<recipe>"
        return f"{key}{place}: {self.message}"


class RecipeError(Exception):
    """Every problem found in a recipe, reported at once. Exit code 2."""

    def __init__(self, problems: Iterable[Problem], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        n = len(self.problems)
        head = f"{self.source}: " if self.source else ""
        head += f"{n} problem{'s' if n != 1 else ''} in the recipe"
        return head + "\n" + "\n".join(f"  - {p}" for p in self.problems)


class KeysError(ValueError):
    """A cross-field check's failure, blamed on the keys involved (relative to the checked spec):
    `KeysError(("val_fraction", "test_fraction"), "...")` reads `data.val_fraction, data.test_fraction`."""

    def __init__(self, keys: tuple[str, ...], message: str):
        super().__init__(message)
        self.keys = tuple(keys)


class UsageError(Exception):
    """Bad command-line input that is not a recipe problem (a missing run, a bad flag). Exit code 2."""


class DataError(Exception):
    """A dataset cannot be loaded as asked (missing file, bad column). Exit code 2."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' did you mean `x`?' for a close match, else ''."""
    matches = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"; did you mean `{matches[0]}`?" if matches else ""
