"""Reading values out of a serial frame: NMEA checksum, regex, CSV and key=value parsers.

Pure code, no I/O and no pyserial. A parser turns a frame's text into raw fields
keyed by a selector (regex group name, CSV position as a string, or key); it raises
:class:`FrameError` when the frame as a whole is unreadable. Turning a raw field into
a number (scale, offset) is :mod:`edge_agent.sources.serial.decode`'s job.
"""

from __future__ import annotations

import re
from functools import reduce
from typing import Annotated, Any, Literal, Protocol

from pydantic import Discriminator, Field, Tag, field_validator

from edge_agent.schema import StrictModel

_HEX = frozenset(b"0123456789abcdefABCDEF")


class FrameError(Exception):
    """A frame that cannot be read as a whole; ``reason`` names the counter."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def nmea_checksum(payload: bytes) -> int:
    """XOR of the payload's bytes: the NMEA 0183 checksum.

    Args:
        payload: the bytes between the leading ``$``/``!`` and the ``*``.
    """
    return reduce(lambda acc, byte: acc ^ byte, payload, 0)


def with_nmea_checksum(body: bytes) -> bytes:
    """Append ``*hh`` to ``body`` (which may start with ``$`` or ``!``); for devices and tests."""
    payload = body[1:] if body[:1] in (b"$", b"!") else body
    return body + b"*%02X" % nmea_checksum(payload)


def strip_nmea_checksum(frame: bytes) -> bytes:
    """Check and remove a trailing NMEA ``*hh`` checksum.

    The checksum covers the bytes after a leading ``$`` or ``!`` (if any) up to the
    last ``*``. Trailing whitespace after the two hex digits is tolerated.

    Returns:
        The frame without ``*hh`` (a leading ``$`` is kept for the parser).

    Raises:
        FrameError: ``checksum`` when it is missing, malformed or wrong.
    """
    star = frame.rfind(b"*")
    digits = frame[star + 1 :].rstrip() if star >= 0 else b""
    if star < 0 or len(digits) != 2 or not _HEX.issuperset(digits):
        raise FrameError("checksum", f"no *hh checksum in {frame[:40]!r}")
    body = frame[:star]
    payload = body[1:] if body[:1] in (b"$", b"!") else body
    expected = nmea_checksum(payload)
    if int(digits, 16) != expected:
        raise FrameError("checksum", f"*{digits.decode()} but computed {expected:02X}")
    return body


class Parser(Protocol):
    """Splits a frame's text into raw fields keyed by selector."""

    def fields(self, text: str) -> dict[str, str]:
        """Raw fields of one frame.

        Raises:
            FrameError: the frame as a whole does not have the expected shape.
        """
        ...


class RegexParser:
    """Named groups of a regular expression (``re.search``); each group is a field."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern

    def fields(self, text: str) -> dict[str, str]:
        """Groups that took part in the match; an optional group left out is absent."""
        match = self.pattern.search(text)
        if match is None:
            raise FrameError("no_match", f"{text[:40]!r} does not match the pattern")
        return {key: value for key, value in match.groupdict().items() if value is not None}


class CsvParser:
    """Fields by position (0-based) after splitting on ``separator``; no quoting."""

    def __init__(self, separator: str, needed: int) -> None:
        self.separator = separator
        self.needed = needed

    def fields(self, text: str) -> dict[str, str]:
        """Every field, keyed by its position as a string."""
        parts = text.split(self.separator)
        if len(parts) < self.needed:
            raise FrameError("short", f"{len(parts)} fields, need {self.needed}: {text[:40]!r}")
        return {str(index): part.strip() for index, part in enumerate(parts)}


class KeyValueParser:
    """``key=value`` pairs split on ``pair_separator``; tokens without ``=`` are tags, ignored.

    A frame that has none of the wanted keys is garbage, and one with a key twice
    is two lines run together (the first cut short); one that lacks some of the
    keys simply does not report those signals.
    """

    def __init__(self, pair_separator: str, separator: str, wanted: frozenset[str]) -> None:
        self.pair_separator = pair_separator
        self.separator = separator
        self.wanted = wanted

    def fields(self, text: str) -> dict[str, str]:
        """The wanted keys found in the frame."""
        found: dict[str, str] = {}
        for token in text.split(self.pair_separator):
            key, sep, value = token.partition(self.separator)
            key = key.strip()
            if sep and key in self.wanted:
                if key in found:  # a line cut short ran into the next one
                    raise FrameError("merged", f"{key!r} twice in {text[:40]!r}")
                found[key] = value.strip()
        if not found:
            raise FrameError("no_match", f"none of the keys in {text[:40]!r}")
        return found


class RegexParse(StrictModel):
    """Parse by a regular expression; each named group ``(?P<name>...)`` is a field."""

    type: Literal["regex"] = "regex"
    pattern: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        if not compiled.groupindex:
            raise ValueError("the pattern needs at least one named group (?P<name>...)")
        return value

    def selectors(self) -> set[str]:
        """The named groups of the pattern."""
        return set(re.compile(self.pattern).groupindex)

    def build(self, wanted: set[str]) -> Parser:
        """A parser for these settings; ``wanted`` are the selectors the signals use."""
        return RegexParser(re.compile(self.pattern))


class CsvParse(StrictModel):
    """Parse by field position (0-based) after splitting on ``separator``."""

    type: Literal["csv"]
    separator: str = Field(default=",", min_length=1)

    def build(self, wanted: set[str]) -> Parser:
        """A parser that requires every position the signals use."""
        return CsvParser(self.separator, max(int(key) for key in wanted) + 1)


class KeyValueParse(StrictModel):
    """Parse ``key=value`` pairs such as ``VIB,rms=0.31,peak=1.20``."""

    type: Literal["kv"]
    pair_separator: str = Field(default=",", min_length=1)
    separator: str = Field(default="=", min_length=1)

    def build(self, wanted: set[str]) -> Parser:
        """A parser looking for the keys the signals use."""
        return KeyValueParser(self.pair_separator, self.separator, frozenset(wanted))


def _type(value: Any) -> str:
    # ``type`` may be left out of a regex parser, the common case. An old
    # ``kind`` still picks the member, so the only error is its rename.
    if isinstance(value, dict):
        return str(value.get("type", value.get("kind", "regex")))
    return str(getattr(value, "type", "regex"))


ParseConfig = Annotated[
    Annotated[RegexParse, Tag("regex")]
    | Annotated[CsvParse, Tag("csv")]
    | Annotated[KeyValueParse, Tag("kv")],
    Discriminator(_type),
]
"""How values are found in a frame, chosen by ``type`` (default regex)."""
