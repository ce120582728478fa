"""Config YAML -> plain data with a line per YAML path; every fault is a ``file:line:`` sentence.

PyYAML's own loaders do not suit a file that people edit by hand on an unattended gateway:
they accept duplicate keys (the last wins), expand aliases without bound (a 1 KB
"billion laughs" file runs for minutes), recurse once per nesting level, and raise
``ValueError``/``TypeError``/``RecursionError`` for bad dates, tags and complex keys
while building objects. This reader keeps PyYAML's scanner and parser (libyaml's when
present: ten times faster) and does the rest itself, within bounds:

- at most :data:`MAX_BYTES` are read; the text must be UTF-8 without control characters;
- nodes are composed with the nesting bounded by :data:`MAX_DEPTH`;
- the tree that aliases expand to is measured on the node graph, without expanding
  it: a cycle, a depth beyond :data:`MAX_DEPTH` or more than :data:`MAX_VALUES`
  values is refused before any copy is made;
- keys are their text (a key is a name: ``on:`` stays ``"on"``); a list or mapping as a
  key, and a key given twice (both lines named), are refused;
- merge keys (``<<: *base`` or ``<<: [*a, *b]``) are supported: keys written in the
  mapping win, then the merged mappings in order;
- only the core scalar tags are read (``!!str !!int !!float !!bool !!null``); any other
  tag (``!!python/...``, ``!!binary``, ``!!set``, ``!local``) is refused;
- dates and timestamps stay strings (the config has no date type, so ``2024-02-30`` is
  text, not a crash); integers must fit in 64 bits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer, ComposerError
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from edge_agent.config_errors import YamlPath
from edge_agent.config_events import CORE, read_events
from edge_agent.config_nodes import Builder, line_of
from edge_agent.errors import ConfigError

MAX_BYTES = 2 * 1024 * 1024
"""Largest config file read: a 2,000-tag plant needs about 250 KB."""

MAX_DEPTH = 48
"""Deepest nesting, aliases expanded (the schema's deepest key is at about 8)."""

MAX_VALUES = 200_000
"""Most values (keys' values, list items, scalars) the file may expand to."""

_CORE = CORE
_AS_TEXT = (_CORE + "timestamp", _CORE + "value")
# Same set as PyYAML's and libyaml's readers, checked here so the line can be named.
_NOT_PRINTABLE = yaml.reader.Reader.NON_PRINTABLE


class _Problem(Exception):
    """One fault at one line; raised inside the reader, reported as a ConfigError."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _Resolver(Resolver):
    """YAML 1.1 implicit types minus timestamps and ``=``: those stay plain strings."""

    yaml_implicit_resolvers = {  # noqa: RUF012 - PyYAML reads it as a class attribute
        first: [(tag, rx) for tag, rx in items if tag not in _AS_TEXT]
        for first, items in Resolver.yaml_implicit_resolvers.items()
    }


class _BoundedComposer(Composer):
    """Parser events to PyYAML's nodes (anchors, aliases and their errors too), bounded.

    One frame per node where PyYAML's composer takes three: 20-30 % less time, and
    composing is most of a 2,000-tag parse. Without an anchor no alias can copy
    anything: the tree is the nodes counted, already bounded in depth, so
    :class:`_Measure` walks it only when there are anchors or too many nodes.
    """

    _depth = 0
    nodes = 0
    anchored = False

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self._depth > MAX_DEPTH:
            line = self.peek_event().start_mark.line + 1  # type: ignore[attr-defined]
            raise _Problem(line, f"nested deeper than {MAX_DEPTH} levels")
        event: Any = self.get_event()  # type: ignore[attr-defined]
        anchor, kind = event.anchor, type(event)
        if kind is AliasEvent:
            if anchor not in self.anchors:
                raise ComposerError(
                    None, None, f"found undefined alias {anchor!r}", event.start_mark
                )
            return self.anchors[anchor]
        if anchor is not None and anchor in self.anchors:
            first = self.anchors[anchor].start_mark
            message = f"found duplicate anchor {anchor!r}; first occurrence"
            raise ComposerError(message, first, "second occurrence", event.start_mark)
        self.nodes += 1
        node = self._node(event)
        if anchor is not None:
            self.anchors[anchor] = node
            self.anchored = True
        if not isinstance(node, ScalarNode):
            self._depth += 1
            self._fill(node)
            self._depth -= 1
            node.end_mark = self.get_event().end_mark  # type: ignore[attr-defined]
        return node

    def _node(self, event: Any) -> Node:
        """The node an event starts (a collection still empty), its tag resolved."""
        tag, kind = event.tag, type(event)
        resolve = self.resolve  # type: ignore[attr-defined]
        if kind is ScalarEvent:
            if tag is None or tag == "!":
                tag = resolve(ScalarNode, event.value, event.implicit)
            return ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        node = SequenceNode if kind is SequenceStartEvent else MappingNode
        if tag is None or tag == "!":
            tag = resolve(node, None, event.implicit)
        return node(tag, [], event.start_mark, None, flow_style=event.flow_style)

    def _fill(self, node: Node) -> None:
        """A collection's items (sequence) or key-value pairs (mapping), up to its end."""
        items = node.value
        if isinstance(node, SequenceNode):
            while not self.check_event(SequenceEndEvent):  # type: ignore[attr-defined]
                items.append(self.compose_node(node, None))
            return
        while not self.check_event(MappingEndEvent):  # type: ignore[attr-defined]
            key = self.compose_node(node, None)
            items.append((key, self.compose_node(node, key)))


if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _Loader(_BoundedComposer, CParser, _Resolver):
        """libyaml's events, composed in Python."""

        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            _BoundedComposer.__init__(self)
            _Resolver.__init__(self)

else:  # pragma: no cover - PyYAML built without libyaml

    class _Loader(  # type: ignore[no-redef]
        yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, _BoundedComposer, _Resolver
    ):
        """PyYAML's pure-Python reader, scanner and parser."""

        def __init__(self, text: str) -> None:
            yaml.reader.Reader.__init__(self, text)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            _BoundedComposer.__init__(self)
            _Resolver.__init__(self)


def read_config_bytes(path: Path) -> bytes:
    """The file's bytes, at most :data:`MAX_BYTES`.

    Raises:
        ConfigError: unreadable, or larger than the bound.
    """
    try:
        with path.open("rb") as file:
            data = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(
            f"{path}:1: the file is larger than {MAX_BYTES // 1024 // 1024} MiB; "
            "no config is that big: is it the right file?"
        )
    return data


def load_yaml(
    data: bytes | str, path: Path, *, signal_lines: bool = True
) -> tuple[Any, dict[YamlPath, int]]:
    """Plain data (dict, list, str, int, float, bool, None) and the line of each YAML path.

    Most files are read straight from the parser's events (:mod:`edge_agent.config_events`);
    one with anchors, aliases, tags, merge keys or any fault is read by :func:`read_nodes`.
    Without ``signal_lines``, the lines of the items of the sources' lists may be
    missing (see :func:`~edge_agent.config_events.read_events`).

    Raises:
        ConfigError: every fault found, one ``file:line: sentence`` each.
    """
    text = _decode(data, path) if isinstance(data, bytes) else data
    try:
        _check_printable(text)
    except _Problem as problem:
        raise ConfigError(f"{path}:{problem.line}: {problem.message}") from None
    loader = _Loader(text)
    escapes = "\\" in text
    direct = read_events(
        loader,
        max_depth=MAX_DEPTH,
        max_values=MAX_VALUES,
        escapes=escapes,
        signal_lines=signal_lines,
    )
    return direct if direct is not None else read_nodes(text, path)


def read_nodes(text: str, path: Path) -> tuple[Any, dict[YamlPath, int]]:
    """:func:`load_yaml` the full way: nodes composed, measured, then walked.

    ``text`` must have passed the check for control characters.

    Raises:
        ConfigError: every fault found, one ``file:line: sentence`` each.
    """
    try:
        node, loader = _compose(text)
        if node is None:
            return {}, {}
        if loader.anchored or loader.nodes > MAX_VALUES:
            _Measure().size(node, 0)
    except _Problem as problem:
        raise ConfigError(f"{path}:{problem.line}: {problem.message}") from None
    builder = Builder()
    result = builder.value(node, ())
    if builder.problems:
        raise ConfigError("\n".join(f"{path}:{line}: {text}" for line, text in builder.problems))
    return result, builder.lines


def _decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}: the file is not UTF-8 text (byte 0x{data[exc.start]:02x}): "
            "save it as UTF-8"
        ) from None


def _check_printable(text: str) -> None:
    bad = _NOT_PRINTABLE.search(text)
    if bad:
        line = text[: bad.start()].count("\n") + 1
        code = f"U+{ord(bad.group()):04X}"
        raise _Problem(line, f"the control character {code} is not allowed in YAML: remove it")


def _compose(text: str) -> tuple[Node | None, _Loader]:
    loader = _Loader(text)
    try:
        return loader.get_single_node(), loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "unreadable"
        raise _Problem(mark.line + 1 if mark else 1, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:  # a reader error: no mark, the check above should catch it
        raise _Problem(1, f"invalid YAML: {exc}") from None


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [child for pair in node.value for child in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


class _Measure:
    """Size and height of the tree the node graph expands to, each node visited once."""

    def __init__(self) -> None:
        self._memo: dict[int, tuple[int, int] | None] = {}

    def size(self, node: Node, depth: int) -> tuple[int, int]:
        """``(values, height)`` below ``node`` reached at ``depth``; a _Problem past a bound."""
        known = self._memo.get(id(node), ())
        if known is None:
            raise _Problem(line_of(node), "an alias refers to the mapping or list that holds it")
        if depth > MAX_DEPTH or (known and depth + known[1] > MAX_DEPTH + 1):
            raise _Problem(
                line_of(node), f"nested deeper than {MAX_DEPTH} levels (aliases expanded)"
            )
        if known:
            return known
        self._memo[id(node)] = None
        size, height = 1, 1
        for child in _children(node):
            child_size, child_height = self.size(child, depth + 1)
            size, height = size + child_size, max(height, child_height + 1)
            if size > MAX_VALUES:
                raise _Problem(
                    line_of(node),
                    f"this expands to more than {MAX_VALUES:,} values (each alias is a copy)",
                )
        self._memo[id(node)] = (size, height)
        return size, height
