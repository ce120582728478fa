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

from edge_agent.config_errors import YamlPath, format_path
from edge_agent.config_events import CONSTRUCTOR, CORE, INT64, MERGE, SCALARS, read_events
from edge_agent.errors import ConfigError

MAX_BYTES = 2 * 1024 * 1024
"""Largest config file read: a 2,000-tag plant needs about 250 KB."""

MAX_DEPTH = 48
"""Deepest nesting, aliases expanded (the schema's deepest key is at about 8)."""

MAX_VALUES = 200_000
"""Most values (keys' values, list items, scalars) the file may expand to."""

_CORE, _MERGE, _SCALARS, _CONSTRUCTOR, _INT64 = CORE, MERGE, SCALARS, CONSTRUCTOR, INT64
_MAP, _SEQ = _CORE + "map", _CORE + "seq"
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
    builder = _Builder()
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


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


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
            raise _Problem(_line(node), "an alias refers to the mapping or list that holds it")
        if depth > MAX_DEPTH or (known and depth + known[1] > MAX_DEPTH + 1):
            raise _Problem(_line(node), f"nested deeper than {MAX_DEPTH} levels (aliases expanded)")
        if known:
            return known
        self._memo[id(node)] = None
        size, height = 1, 1
        for child in _children(node):
            child_size, child_height = self.size(child, depth + 1)
            size, height = size + child_size, max(height, child_height + 1)
            if size > MAX_VALUES:
                raise _Problem(
                    _line(node),
                    f"this expands to more than {MAX_VALUES:,} values (each alias is a copy)",
                )
        self._memo[id(node)] = (size, height)
        return size, height


class _Builder:
    """Nodes -> plain values; faults are gathered so that one run names them all."""

    def __init__(self) -> None:
        self.lines: dict[YamlPath, int] = {}
        self.problems: dict[tuple[int, str], None] = {}  # ordered, without repeats

    def problem(self, node: Node, at: YamlPath, message: str) -> None:
        """Record a fault at ``node``'s line."""
        text = f"{format_path(at)}: {message}" if at else message
        self.problems[(_line(node), text)] = None

    def value(self, node: Node, at: YamlPath) -> Any:
        """The plain value of ``node``, found at YAML path ``at``."""
        self.lines[at] = _line(node)
        if isinstance(node, MappingNode):
            self._collection_tag(node, _MAP, at)
            pairs = self._pairs(node, at)
            return {key: self.value(child, (*at, key)) for key, child in pairs.items()}
        if isinstance(node, SequenceNode):
            self._collection_tag(node, _SEQ, at)
            return [self.value(item, (*at, i)) for i, item in enumerate(node.value)]
        return self._scalar(node, at)

    def _collection_tag(self, node: Node, expected: str, at: YamlPath) -> None:
        if node.tag != expected:
            self.problem(node, at, _tag_refused(node.tag))

    def _pairs(self, node: MappingNode, at: YamlPath) -> dict[str, Node]:
        """Key -> value node: written keys first, then merged ones (``<<``) not written."""
        own: dict[str, tuple[int, Node]] = {}
        merged: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                for name, child in self._merged(value_node, at).items():
                    merged.setdefault(name, child)
                continue
            key = self._key(key_node, at)
            if key is None:
                continue
            if key in own:
                self.problem(
                    key_node,
                    (*at, key),
                    f"the key {key!r} is given twice, at lines {own[key][0]} and "
                    f"{_line(key_node)}: remove one (YAML would silently keep the second)",
                )
                continue
            own[key] = (_line(key_node), value_node)
        written = {key: child for key, (_, child) in own.items()}
        return written | {key: child for key, child in merged.items() if key not in own}

    def _merged(self, node: Node, at: YamlPath) -> dict[str, Node]:
        sources = node.value if isinstance(node, SequenceNode) else [node]
        result: dict[str, Node] = {}
        for source in sources:
            if not isinstance(source, MappingNode):
                self.problem(source, at, "'<<' merges a mapping (*alias) or a list of them")
                continue
            for key, child in self._pairs(source, at).items():
                result.setdefault(key, child)
        return result

    def _key(self, node: Node, at: YamlPath) -> str | None:
        if not isinstance(node, ScalarNode):
            self.problem(node, at, "a key must be a name, not a list or a mapping")
            return None
        if node.tag not in _SCALARS:
            self.problem(node, at, _tag_refused(node.tag))
            return None
        if _has_surrogate(node.value) or "\0" in node.value:
            self.problem(node, at, "a key holds an escaped NUL or surrogate (\\0, \\uD800)")
            return None
        return str(node.value)

    def _scalar(self, node: Node, at: YamlPath) -> Any:
        if node.tag == _MERGE:  # '<<' written as a value is text
            return node.value
        if node.tag not in _SCALARS:
            self.problem(node, at, _tag_refused(node.tag))
            return None
        try:
            value = _CONSTRUCTOR.yaml_constructors[node.tag](_CONSTRUCTOR, node)
        except (ValueError, KeyError):
            self.problem(node, at, f"{_short(node.value)} is not a valid {_tag_name(node.tag)}")
            return None
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _INT64:
            self.problem(node, at, f"{_short(node.value)} is out of range (64-bit integers)")
            return None
        if isinstance(value, str) and (_has_surrogate(value) or "\0" in value):
            # No value needs them, and a NUL in a path raises ValueError in every os call.
            self.problem(node, at, "the text holds an escaped NUL or surrogate (\\0, \\uD800)")
            return None
        return value


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _tag_name(tag: str) -> str:
    return "!!" + tag.removeprefix(_CORE) if tag.startswith(_CORE) else tag


def _tag_refused(tag: str) -> str:
    return (
        f"the tag {_tag_name(tag)} is not supported: write the value without a tag "
        "(only !!str, !!int, !!float, !!bool and !!null are read)"
    )


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")
