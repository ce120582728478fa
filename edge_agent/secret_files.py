"""Secret files (private keys, password files) must not be readable by other users.

Decision: a secret file that grants *any* permission to others (``o+r``, ``o+w``,
``o+x``) is refused at start and by ``check-config`` (exit 78), as ssh refuses a
key anyone can read. Group access is allowed, because the documented layout is a
file owned by root with group ``edge-agent`` and mode 0640: the service reads it
through its group and cannot change it. A group that can *write* a key is refused
too (it could swap the key for its own).

Which fields hold secret files: :data:`SECRET_FILE_FIELDS`, found anywhere in the
config (sources, sinks, their nested sections).
"""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel

from edge_agent.errors import ConfigError

SECRET_FILE_FIELDS = frozenset({"password_file", "key_file"})


def secret_files(model: BaseModel, where: str = "") -> Iterator[tuple[str, Path]]:
    """Every (YAML path, file) of a secret file named in ``model``, nested models included."""
    for name in _secret_bearing(type(model)):
        value = getattr(model, name)
        path = f"{where}.{name}" if where else name
        if name in SECRET_FILE_FIELDS and value:
            yield path, Path(str(value))
        else:
            yield from _nested(value, path)


@functools.cache
def _secret_bearing(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields of ``model`` that are, or may hold a model with, a secret file field.

    Only those are walked: the others (a Modbus register...) cannot hold one, and
    walking 2,000 registers took 15-25 ms of the agent's start.
    """
    return tuple(
        name
        for name, field in model.model_fields.items()
        if name in SECRET_FILE_FIELDS or any(_secret_bearing(m) for m in _models(field.annotation))
    )


def _models(annotation: Any) -> Iterator[type[BaseModel]]:
    """The model classes named anywhere in a field's annotation (lists, unions...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for argument in get_args(annotation):
        yield from _models(argument)


def _nested(value: Any, where: str) -> Iterator[tuple[str, Path]]:
    if isinstance(value, BaseModel):
        yield from secret_files(value, where)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _nested(item, f"{where}[{index}]")


def problem(path: Path) -> str | None:
    """Why ``path`` is too open for a secret, or None (a missing file is another check's job)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if mode & stat.S_IRWXO:
        return f"{path} is open to every user (mode {stat.S_IMODE(mode):04o}): chmod o-rwx {path}"
    if mode & stat.S_IWGRP:
        mode_text = f"{stat.S_IMODE(mode):04o}"
        return f"{path} can be changed by its group (mode {mode_text}): chmod g-w {path}"
    return None


def check_secret_files(config: BaseModel, source: Path) -> None:
    """Refuse a config whose secret files others can read or change.

    Raises:
        ConfigError: one line per file: ``<config>: <YAML path>: <sentence>``.
    """
    lines = [
        f"{source}: {where}: {why}"
        for where, path in secret_files(config)
        if (why := problem(path)) is not None
    ]
    if lines:
        raise ConfigError("\n".join(lines))
