"""config.example.yaml: it loads, documents every key, and its commented lines are true.

The coverage test walks every pydantic model reachable from :class:`AgentConfig`
(union members of sources, sinks, rules and the serial framing/parse variants
included), so a key added to a model without a line in the example fails here,
naming the model and the key. The commented examples must be YAML keys, and a
commented value must be the code's default (or a valid example of a key without
one), so a default changed in the code without the example fails too.
"""

from __future__ import annotations

import re
import textwrap
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import pytest
import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from edge_agent.config import AgentConfig, load_config
from edge_agent.detect.detector import Detector
from edge_agent.registry import build_source

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.yaml"
TEXT = EXAMPLE.read_text(encoding="utf-8")
SECTIONS = list(AgentConfig.model_fields)
TOP_KEY = re.compile(r"^(?:#[ \t]*)?([a-z_]+):")
"""A top-level key, commented or not (a section starts there)."""


def test_example_loads_and_its_model_and_signals_fit() -> None:
    config = load_config(EXAMPLE)
    assert [c.type for c in config.sources] == ["modbus", "modbus", "opcua", "serial"]
    assert sorted(c.type for c in config.sinks) == ["http", "jsonl", "mqtt"]
    detector = Detector.load(config.detect, config.config_path)
    provided = {info.signal for c in config.sources for info in build_source(c).signals()}
    provided |= {f"link.{c.name}" for c in config.sources}  # each source's link signal
    assert detector.signals() <= provided, "detect uses signals no source provides"


def test_every_key_is_documented() -> None:
    missing = [
        f"{model.__name__}.{key} (section {section}:)"
        for section in SECTIONS
        for model in _models(AgentConfig.model_fields[section].annotation)
        for key in _keys(model)
        if not _has_key(_section_text(section), key)
    ]
    missing += [f"AgentConfig.{s}" for s in SECTIONS if not _has_key(TEXT, s, top=True)]
    assert not missing, "keys not documented in config.example.yaml: " + ", ".join(missing)


def test_every_union_member_is_shown() -> None:
    """Each ``type:`` value (modbus, http, flatline, fixed, kv ...) has an example."""
    missing = []
    for section in SECTIONS:
        for model in _models(AgentConfig.model_fields[section].annotation):
            for key, value in _tags(model):
                pattern = rf"(?m)^[ \t]*(?:#+[ \t]*)?(?:-[ \t]+)?{key}:[ \t]+{re.escape(value)}\b"
                if not re.search(pattern, _section_text(section)):
                    missing.append(f"{model.__name__} ({key}: {value})")
    assert not missing, "no example in config.example.yaml for: " + ", ".join(missing)


def _commented_blocks() -> Iterator[tuple[int, str]]:
    """Runs of ``#`` lines (not ``##``), uncommented and dedented, with their first line."""
    block: list[str] = []
    start = 0
    for number, line in enumerate([*TEXT.splitlines(), ""], 1):
        match = re.match(r"^([ \t]*)#(?!#) ?(.*)$", line)
        if match:
            start = start or number
            block.append(match.group(1) + match.group(2))
            continue
        if block:
            yield start, textwrap.dedent("\n".join(block))
        block, start = [], 0


BLOCKS = list(_commented_blocks())


@pytest.mark.parametrize(("line", "block"), BLOCKS, ids=[f"line{n}" for n, _ in BLOCKS])
def test_commented_examples_are_yaml(line: int, block: str) -> None:
    """Uncommenting an example gives YAML keys (a mapping, or a list of mappings)."""
    data = yaml.safe_load(block)
    items = data if isinstance(data, list) else [data]
    assert all(isinstance(item, dict) for item in items), f"line {line}: not keys: {block!r}"


def test_a_key_missing_from_the_example_is_reported() -> None:
    """The coverage check itself: a made-up key is not found, a real one is."""
    assert _has_key(_section_text("twin"), "flush_interval")
    assert _has_key(_section_text("detect"), "for")
    assert not _has_key(_section_text("twin"), "no_such_key")
    assert not _has_key(_section_text("twin"), "max_rows")  # an outbox key, other section


def _models(annotation: object) -> list[type[BaseModel]]:
    """Every model reachable from ``annotation`` (through lists, unions, Annotated)."""
    found: list[type[BaseModel]] = []
    pending = [annotation]
    while pending:
        current = pending.pop()
        if isinstance(current, type) and issubclass(current, BaseModel):
            if current not in found:
                found.append(current)
                pending += [f.annotation for f in current.model_fields.values()]
            continue
        origin = typing.get_origin(current)
        if origin is typing.Annotated:
            pending.append(typing.get_args(current)[0])
        elif origin is not None or isinstance(current, types.UnionType):
            pending += list(typing.get_args(current))
    return found


def _keys(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _tags(model: type[BaseModel]) -> list[tuple[str, str]]:
    """The ``type`` literal of a union member, e.g. ``("type", "modbus")``."""
    tags = []
    for key in ("type",):
        field = model.model_fields.get(key)
        values = typing.get_args(field.annotation) if field else ()
        if field and typing.get_origin(field.annotation) is typing.Literal and len(values) == 1:
            tags.append((key, str(values[0])))
    return tags


def _section_text(section: str) -> str:
    """The lines of one top-level section, up to the next top-level key."""
    inside, out = False, []
    for line in TEXT.splitlines():
        match = TOP_KEY.match(line)
        if match:
            inside = match.group(1) == section
        elif inside:
            out.append(line)
    return "\n".join(out)


def _has_key(text: str, key: str, top: bool = False) -> bool:
    key = re.escape(key)
    if top:
        return bool(re.search(rf"(?m)^(?:#[ \t]*)?{key}:", text))
    at_line_start = rf"(?m)^[ \t]*(?:#+[ \t]*)*(?:-[ \t]+)?{key}:(?:[ \t]|$)"
    in_flow_mapping = rf"[{{,][ \t]*{key}:[ \t]"
    return bool(re.search(at_line_start, text) or re.search(in_flow_mapping, text))


def test_commented_values_are_the_code_defaults() -> None:
    """A ``# key: value`` line shows the code's default, or an example of a key without one.

    Each commented key is matched with the same-named fields of its section's models. The
    value must be valid for one of them and equal that field's default, unless the field has
    no default to show (required, None or empty), where any valid example will do.
    """
    wrong = []
    for line, block in BLOCKS:
        data = yaml.safe_load(block)
        if not isinstance(data, dict):
            continue
        fields = _fields(_section_of(line))
        for key, value in data.items():
            if not any(_shows_default(field, value) for field in fields.get(key, [])):
                wrong.append(f"line {line}: {key}: {value!r}")
    assert not wrong, "neither the default nor a valid example: " + "; ".join(wrong)


def _fields(section: str) -> dict[str, list[FieldInfo]]:
    """Fields of the models under ``section``, by key (alias or name)."""
    out: dict[str, list[FieldInfo]] = {}
    for model in _models(AgentConfig.model_fields[section].annotation):
        for name, field in model.model_fields.items():
            out.setdefault(field.alias or name, []).append(field)
    return out


def _shows_default(field: FieldInfo, value: object) -> bool:
    annotated = Annotated[field.annotation, field]  # type: ignore[name-defined]
    adapter: TypeAdapter[object] = TypeAdapter(annotated)
    try:
        parsed = adapter.validate_python(value)
    except ValidationError:
        return False
    default = field.get_default(call_default_factory=True)
    return field.is_required() or default in (None, "", {}, []) or parsed == default


def _section_of(line: int) -> str:
    """The top-level section that ``line`` (1-based) of the example is in."""
    current = ""
    for text in TEXT.splitlines()[:line]:
        match = TOP_KEY.match(text)
        current = match.group(1) if match else current
    return current
