"""Flag helpers shared by the commands: durations, and flags that were renamed."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any

from edge_agent.schema import parse_duration

_SECONDS = re.compile(r"\d+(?:\.\d+)?")


def duration(text: str) -> float:
    """An argparse type: ``75s``, ``2m``, ``500ms``; a bare number is seconds."""
    try:
        return parse_duration(f"{text}s" if _SECONDS.fullmatch(text.strip()) else text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _Renamed(argparse.Action):
    """An old flag: exits 2 with one line naming the new flag (not shown in --help)."""

    def __init__(self, option_strings: list[str], dest: str, new: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs="?", help=argparse.SUPPRESS, **kwargs)
        self.new = new

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        parser.exit(2, f"{parser.prog}: {option_string} is now {self.new} (see CHANGELOG.md)\n")


def renamed(parser: argparse.ArgumentParser, old: str, new: str) -> None:
    """Make ``old`` an error on ``parser`` that names ``new``."""
    parser.add_argument(old, action=_Renamed, new=new, dest=f"renamed_{old.lstrip('-')}")
