"""Building blocks of the config schema: the strict model, durations, sizes, switches, secrets.

Every ``*Config`` model derives from :class:`StrictModel` so an unknown key is an
error. Durations are written ``500ms``, ``5s``, ``1m``, ``2h``, ``7d`` and become
float seconds; sizes are written ``512KB``, ``200MB``, ``1GB`` and become int bytes.
Both are bounded (:data:`MAX_DURATION`, :data:`MAX_SIZE`): a value past them is a typo,
and an enormous one would overflow a timer or an integer later, at run time.
Switches are written ``on``/``off``; YAML reads those bare words as booleans, so a
boolean is taken as the word it was (:data:`OnOff`, :func:`switch`).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    SecretStr,
    ValidationInfo,
)

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}

MAX_DURATION = 3650 * 86400.0
"""Ten years: longer than any retention, timeout or interval a gateway can mean."""

MAX_SIZE = 10**12
"""1 TB: larger than any storage a gateway has."""


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, values are frozen.

    ``defer_build``: pydantic builds a model's validator and serializer on first use,
    not when the class is defined. The agent's process gets its config validated and
    pickled from a child (``config_fork.py``), so it never builds one: that keeps
    pydantic's schema machinery and 4 MB out of the daemon, and an instance default
    must therefore be a ``default_factory`` (an instance built at import would build).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def plain(value: Any) -> Any:
    """``value`` as JSON data, equal to ``model_dump(mode="json", by_alias=True)``.

    Walks the fields itself: ``model_dump`` would build the model's serializer, which
    the agent's process otherwise never needs (see :class:`StrictModel`). Secrets come
    out as ``**********``; infinities and NaN as None, as pydantic writes them.
    """
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        return {field.alias or name: plain(getattr(value, name)) for name, field in fields.items()}
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [plain(item) for item in value]  # lists, tuples, a Modbus RegisterTable
    if isinstance(value, (SecretStr, Path)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def parse_duration(value: object) -> float:
    """Parse ``500ms``/``5s``/``1m``/``2h``/``7d`` into seconds.

    Raises:
        ValueError: for bare numbers (ambiguous units) and unknown forms.
    """
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"expected a duration such as 500ms, 5s, 1m, 7d; got {value!r}")
    match = _DURATION_RE.match(value)
    if not match:
        raise ValueError(f"expected a duration such as 500ms, 5s, 1m, 7d; got {value!r}")
    seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds > MAX_DURATION:
        raise ValueError(
            f"{value.strip()[:24]} is too long; a duration is at most 3650d (ten years)"
        )
    return seconds


def parse_size(value: object) -> int:
    """Parse ``512KB``/``200MB``/``1GiB`` into bytes.

    Raises:
        ValueError: for bare numbers and unknown forms.
    """
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"expected a size such as 512KB, 200MB, 1GB; got {value!r}")
    match = _SIZE_RE.match(value)
    if not match:
        raise ValueError(f"expected a size such as 512KB, 200MB, 1GB; got {value!r}")
    size = float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
    if size > MAX_SIZE:
        raise ValueError(f"{value.strip()[:24]} is too large; a size is at most 1000GB")
    return int(size)


def format_duration(seconds: float) -> str:
    """Inverse of :func:`parse_duration` for display."""
    for unit in ("d", "h", "m", "s"):
        size = _DURATION_UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds, written in YAML as ``500ms``, ``5s``, ``1m``, ``7d``."""

Size = Annotated[int, BeforeValidator(parse_size)]
"""Bytes, written in YAML as ``512KB``, ``200MB``, ``1GiB``."""


def yaml_switch(value: Any) -> Any:
    """``true``/``false`` -> ``"on"``/``"off"``: YAML reads a bare ``on``/``off`` as a bool."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return value


switch = BeforeValidator(yaml_switch)
"""Put in ``Annotated[Literal[...], switch]`` of any setting whose values include on or off."""

OnOff = Annotated[Literal["on", "off"], switch]
"""``on`` or ``off``; unquoted ``on``/``off`` (``true``/``false``, ``yes``/``no``) work too."""


def resolve_path(value: str, info: ValidationInfo) -> str:
    """Make a relative path absolute against the config file's folder (when loading one)."""
    base = (info.context or {}).get("base_dir")
    if value and base is not None and not Path(value).is_absolute():
        return str(Path(base) / value)
    return value


ConfigPath = Annotated[str, AfterValidator(resolve_path)]
"""A file named in the config (a certificate, a key): relative to the config file's folder."""

Secret = SecretStr
"""A secret: usually ``${ENV_VAR}``; shown as ``**********`` in logs and reprs."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``); names are not resolved."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
