"""Config YAML built straight from the parser's events: the common case, without nodes.

:mod:`edge_agent.config_yaml` composes PyYAML nodes and then walks them, which an
anchor, an alias or a merge key needs (the node graph is measured before any copy
is made). Most config files have none of those, and at 10,000 signals composing
and walking the nodes was most of the time to READY. :func:`read_events` builds
the plain values and the line of every YAML path in one pass over the events, and
gives up (returns None) at the first thing it does not handle the same way:
an anchor, an alias, a tag, a ``<<`` key, a key that is not text, a key given twice,
a scalar its type refuses, a nesting or a size past the bounds, a parse error.
The caller then reads the file the full way, which reports every fault exactly as
before; what this pass returns is what the full way returns (tests compare them).
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.events import (
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from yaml.nodes import ScalarNode

from edge_agent.config_errors import YamlPath

CORE = "tag:yaml.org,2002:"
STR = CORE + "str"
MERGE = CORE + "merge"
SCALARS = frozenset(CORE + name for name in ("str", "int", "float", "bool", "null"))
CONSTRUCTOR = yaml.constructor.SafeConstructor()
INT64 = 2**63


class GiveUp(Exception):
    """Something the full reader must see (it reports it, or handles it)."""


def read_events(
    loader: Any, *, max_depth: int, max_values: int, escapes: bool, signal_lines: bool = True
) -> tuple[Any, dict[YamlPath, int]] | None:
    """The plain data and lines of a one-document file, or None: read it the full way.

    Args:
        loader: a fresh loader over the text (PyYAML's parser, libyaml's when present).
        max_depth: the deepest nesting allowed.
        max_values: the most values (keys, items, scalars) allowed.
        escapes: the text has a backslash, so a double-quoted scalar may hold an
            escaped NUL or surrogate (the raw text cannot: it was checked).
        signal_lines: False: no line for a path at or under an item of a source's
            list (``sources[i].registers[j]...``), the lines the running agent drops
            (``AgentConfig.forget_signal_lines``); the data is the same.
    """
    reader = _Events(loader, max_depth, max_values, escapes)
    reader.signal_lines = signal_lines
    try:
        return reader.document()
    except (GiveUp, yaml.YAMLError):
        return None


class _Events:
    """One pass over the events; every method raises GiveUp at what it does not handle."""

    def __init__(self, loader: Any, max_depth: int, max_values: int, escapes: bool) -> None:
        self._next = loader.get_event
        self._resolve = loader.resolve
        self._max_depth = max_depth  # a node's depth is its path's length
        self._values_left = max_values
        self._escapes = escapes
        self._plain: dict[str, Any] = {}  # a plain scalar's value depends on its text alone
        self.lines: dict[YamlPath, int] = {}
        self.signal_lines = True

    def document(self) -> tuple[Any, dict[YamlPath, int]]:
        """Stream start, one document, stream end; an empty stream is left to the full way."""
        if type(self._next()) is not StreamStartEvent:
            raise GiveUp
        if type(self._next()) is not DocumentStartEvent:
            raise GiveUp
        value = self._value(self._next(), ())
        self._next()  # the document's end
        if type(self._next()) is not StreamEndEvent or self._values_left < 0:
            raise GiveUp
        return value, self.lines

    def _value(self, event: Any, at: YamlPath) -> Any:
        # An alias has an anchor (the name it refers to), so it stops here too.
        if event.anchor is not None or event.tag is not None or len(at) > self._max_depth:
            raise GiveUp
        self._values_left -= 1
        self.lines[at] = event.start_mark.line + 1
        kind = type(event)
        if kind is ScalarEvent:
            if event.implicit[0] or self._escapes:
                return self._scalar(event)
            return event.value  # quoted or a block scalar: text
        if self._values_left < 0:
            raise GiveUp
        if kind is MappingStartEvent:
            return self._mapping(at)
        if kind is SequenceStartEvent:
            return self._sequence(at)
        raise GiveUp

    def _mapping(self, at: YamlPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        get_event, value = self._next, self._value
        while True:
            event = get_event()
            if type(event) is MappingEndEvent:
                self._values_left -= len(result)  # the keys count as values too
                return result
            key = self._key(event)
            if key in result:
                raise GiveUp
            result[key] = value(get_event(), (*at, key))

    def _sequence(self, at: YamlPath) -> list[Any]:
        if len(at) == 3 and at[0] == "sources" and not self.signal_lines:
            return self._bare_sequence(len(at))
        result: list[Any] = []
        get_event, value = self._next, self._value
        while True:
            event = get_event()
            if type(event) is SequenceEndEvent:
                return result
            result.append(value(event, (*at, len(result))))

    # The _bare_ readers: the same checks and values as above, without paths or lines
    # (a source's list: 10,000 signals are 40,000 paths, then dropped; 25-30 ms).

    def _bare_value(self, event: Any, depth: int) -> Any:
        if event.anchor is not None or event.tag is not None or depth > self._max_depth:
            raise GiveUp
        self._values_left -= 1
        kind = type(event)
        if kind is ScalarEvent:
            if event.implicit[0] or self._escapes:
                return self._scalar(event)
            return event.value
        if self._values_left < 0:
            raise GiveUp
        if kind is MappingStartEvent:
            return self._bare_mapping(depth)
        if kind is SequenceStartEvent:
            return self._bare_sequence(depth)
        raise GiveUp

    def _bare_mapping(self, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        get_event, value, deeper = self._next, self._bare_value, depth + 1
        while True:
            event = get_event()
            if type(event) is MappingEndEvent:
                self._values_left -= len(result)
                return result
            key = self._key(event)
            if key in result:
                raise GiveUp
            result[key] = value(get_event(), deeper)

    def _bare_sequence(self, depth: int) -> list[Any]:
        result: list[Any] = []
        get_event, value, deeper = self._next, self._bare_value, depth + 1
        while True:
            event = get_event()
            if type(event) is SequenceEndEvent:
                return result
            result.append(value(event, deeper))

    def _key(self, event: Any) -> str:
        """A key is its text, whatever type its text would read as (``on:`` is "on")."""
        if type(event) is not ScalarEvent or event.anchor is not None or event.tag is not None:
            raise GiveUp
        text: str = event.value
        if text == "<<" or (self._escapes and _unsafe(text)):
            raise GiveUp
        return text

    def _scalar(self, event: Any) -> Any:
        text: str = event.value
        if not event.implicit[0]:  # quoted or a block scalar: text
            if self._escapes and _unsafe(text):
                raise GiveUp
            return text
        try:
            return self._plain[text]
        except KeyError:
            pass
        if len(text) < 19 and text.isdigit() and text.isascii() and text[0] != "0":
            # a decimal integer within 64 bits, as YAML 1.1 reads it (not 0: octal 0...)
            number = self._plain[text] = int(text)
            return number
        value = self._plain[text] = self._resolved(event)
        return value

    def _resolved(self, event: Any) -> Any:
        """A plain scalar of the type its text reads as, as the full reader builds it."""
        text: str = event.value
        tag = self._resolve(ScalarNode, text, event.implicit)
        if tag not in SCALARS:  # "<<" as a value (the full reader keeps it as text)
            raise GiveUp
        if tag == STR:
            value: Any = text
        else:
            node = ScalarNode(tag, text, event.start_mark, event.end_mark)
            try:
                value = CONSTRUCTOR.yaml_constructors[tag](CONSTRUCTOR, node)
            except (ValueError, KeyError):
                raise GiveUp from None
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= INT64:
            raise GiveUp
        if isinstance(value, str) and self._escapes and _unsafe(value):
            raise GiveUp
        return value


def _unsafe(text: str) -> bool:
    """An escaped NUL or surrogate: the full reader names the line of each."""
    if "\0" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
