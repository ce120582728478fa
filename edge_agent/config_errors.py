"""Pydantic validation errors -> ``file:line: yaml.path: message`` lines for people.

Pydantic's error locations carry union tags (``sources.0.modbus.x``,
``framing.fixed.length``) and field aliases; YAML paths carry neither. The
location is walked alongside the models, so the tags are dropped, the line is
the key's own, and an unknown key gets the nearest known one as a suggestion,
or, when it is a key that was renamed (:data:`RENAMED`), its new name.
"""

from __future__ import annotations

import re
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, Tag, ValidationError

YamlPath = tuple[str | int, ...]

RENAMED: dict[str, str] = {
    "sources[*].serial.baudrate": "baud",
    "sources[*].serial.bytesize": "data_bits",
    "sources[*].serial.stopbits": "stop_bits",
    "sources[*].unit_id": "device_id",
    "sources[*].registers[*].unit_id": "device_id",
    "sources[*].stale_after": "lost_after",
    "sources[*].framing.kind": "type",
    "sources[*].parse.kind": "type",
    "sources[*].security.certificate": "cert_file",
    "sources[*].security.private_key": "key_file",
    "sources[*].security.private_key_password": "key_password",
    "sources[*].security.trusted_certs": "trust_dir",
    "sources[*].auth.certificate": "cert_file",
    "sources[*].auth.private_key": "key_file",
    "sources[*].auth.private_key_password": "key_password",
    "sinks[*].retry_initial": "backoff",
    "sinks[*].retry_max": "backoff_max",
    "twin.synchronous": "sync",
    "twin.stale_after": "stale_factor",
    "outbox.max_bytes": "max_size",
}
"""Old key (YAML path, ``[*]`` for any list index) -> its new name, listed in CHANGELOG.md.

An old key is an error that names the new one; it is only matched where the new
key exists (``stale_after`` on a Modbus source is just unknown).
"""

_MISSING = "required key is missing"
_BOOL_HINT = " (YAML reads a bare on/off/yes/no as true/false: quote the word)"


def format_path(at: YamlPath) -> str:
    """``('sources', 0, 'registers', 3, 'data_typ')`` -> ``sources[0].registers[3].data_typ``."""
    out = ""
    for part in at:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(top)"


def describe(
    exc: ValidationError,
    root: type[BaseModel],
    data: Any,
    lines: dict[YamlPath, int],
    path: Path,
    substituted: dict[YamlPath, tuple[str, str]] | None = None,
) -> str:
    """One ``file:line: path: message`` line per error in ``exc``.

    A value that came from ``${VAR}`` (``substituted``: path -> value, as written) is
    shown as written, never as its value: the variable may hold a secret.
    """
    found = []
    for error in exc.errors():
        at, parent = _walk(error["loc"], root, data)
        message = _message(error, at, parent)
        for value, written in _substitutions_at(at, substituted or {}):
            # as is, and as repr() escapes it inside a quoted input
            message = message.replace(value, written).replace(repr(value)[1:-1], written)
        found.append((at, message))
    # An old key's error names the new key: that key's "missing" would say it twice.
    renamed = {(*at[:-1], m.split()[2]) for at, m in found if m.startswith("renamed to ")}
    return "\n".join(
        f"{path}:{nearest_line(at, lines)}: {format_path(at)}: {message}"
        for at, message in found
        if not (message == _MISSING and at in renamed)
    )


def _substitutions_at(
    at: YamlPath, substituted: dict[YamlPath, tuple[str, str]]
) -> list[tuple[str, str]]:
    """The substituted strings at or under ``at`` (an error on a section may echo them)."""
    return [
        pair
        for where, pair in substituted.items()
        if where[: len(at)] == at and pair[0] and pair[0] != pair[1]
    ]


def nearest_line(at: YamlPath, lines: dict[YamlPath, int]) -> int:
    """The line of ``at``, or of its nearest ancestor that has one (a missing key)."""
    for end in range(len(at), -1, -1):
        if at[:end] in lines:
            return lines[at[:end]]
    return 1


def _walk(loc: tuple[Any, ...], root: type[BaseModel], data: Any) -> tuple[YamlPath, Any]:
    """The YAML path of ``loc`` and the model of the mapping holding its last key."""
    at: list[str | int] = []
    annotation: Any = root
    parent: Any = None
    node = data
    for part in loc:
        annotation = _strip(annotation)
        members = _union_members(annotation)
        if members and not (isinstance(node, dict) and part in node):
            annotation = members.get(part, annotation)  # a union tag: not in the YAML
            continue
        if isinstance(part, str) and part.startswith("function-"):
            continue
        parent = annotation
        at.append(part)
        annotation = _child_annotation(annotation, part)
        node = node.get(part) if isinstance(node, dict) else _item(node, part)
    return tuple(at), parent


def _strip(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _union_members(annotation: Any) -> dict[Any, Any]:
    """Tag -> member model for a union of models (``type`` literals or ``Tag``)."""
    if get_origin(annotation) not in (Union, types.UnionType):
        return {}
    members: dict[Any, Any] = {}
    for arg in get_args(annotation):
        model = _strip(arg)
        for meta in getattr(arg, "__metadata__", ()):
            if isinstance(meta, Tag):
                members[meta.tag] = model
        if isinstance(model, type) and issubclass(model, BaseModel):
            field = model.model_fields.get("type")
            for tag in get_args(field.annotation) if field else ():
                members[tag] = model
        else:
            members[getattr(model, "__name__", str(model)).lower()] = model
    return members


def _child_annotation(annotation: Any, part: str | int) -> Any:
    if isinstance(part, int):
        args = get_args(annotation)
        return args[0] if get_origin(annotation) in (list, Sequence) and args else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, field in annotation.model_fields.items():
            if part in (name, field.alias):
                return field.annotation
        return None
    if get_origin(annotation) is dict:
        return get_args(annotation)[1]
    return None


def _item(node: Any, part: Any) -> Any:
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _message(error: Any, at: YamlPath, parent: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return _unknown_key(at, parent)
    if kind == "missing":
        return _MISSING
    if kind == "union_tag_invalid":
        return f"unknown type {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        return f"the key {ctx.get('discriminator', 'type')} is missing: it says what this entry is"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "literal_error" and isinstance(error.get("input"), bool):
        message += _BOOL_HINT
    return message


def _unknown_key(at: YamlPath, model: Any) -> str:
    key = str(at[-1]) if at else ""
    known: list[str] = []
    if isinstance(model, type) and issubclass(model, BaseModel):
        known = [field.alias or name for name, field in model.model_fields.items()]
    new = RENAMED.get(re.sub(r"\[\d+\]", "[*]", format_path(at)))
    if new in known:
        return f"renamed to {new} (see CHANGELOG.md)"
    import difflib  # an error's hint: not imported by the agent's process

    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return "unknown key" + (f" (did you mean {close[0]}?)" if close else "")
