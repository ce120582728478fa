"""Composed YAML nodes -> plain values, with a line per YAML path and every fault gathered.

The second half of :mod:`edge_agent.config_yaml`'s full reader (the one that writes the
errors): keys are their text, a key given twice or a list/mapping as a key is refused,
merge keys are resolved (written keys win, then merged ones in order), only the core
scalar tags are read, and integers must fit in 64 bits.
"""

from __future__ import annotations

from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from edge_agent.config_errors import YamlPath, format_path
from edge_agent.config_events import CONSTRUCTOR, CORE, INT64, MERGE, SCALARS

_CORE, _MERGE, _SCALARS, _CONSTRUCTOR, _INT64 = CORE, MERGE, SCALARS, CONSTRUCTOR, INT64
_MAP, _SEQ = _CORE + "map", _CORE + "seq"


def line_of(node: Node) -> int:
    """The 1-based line a node starts on."""
    return int(node.start_mark.line) + 1


class Builder:
    """Nodes -> plain values; faults are gathered so that one run names them all."""

    def __init__(self) -> None:
        self.lines: dict[YamlPath, int] = {}
        self.problems: dict[tuple[int, str], None] = {}  # ordered, without repeats

    def problem(self, node: Node, at: YamlPath, message: str) -> None:
        """Record a fault at ``node``'s line."""
        text = f"{format_path(at)}: {message}" if at else message
        self.problems[(line_of(node), text)] = None

    def value(self, node: Node, at: YamlPath) -> Any:
        """The plain value of ``node``, found at YAML path ``at``."""
        self.lines[at] = line_of(node)
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
                    f"{line_of(key_node)}: remove one (YAML would silently keep the second)",
                )
                continue
            own[key] = (line_of(key_node), value_node)
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
