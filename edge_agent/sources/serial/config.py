"""The config of a serial source: port settings, framing, parsing and signals."""

from __future__ import annotations

import codecs
import re
from typing import TYPE_CHECKING, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, field_validator, model_validator

from edge_agent.schema import Duration, StrictModel
from edge_agent.sources.serial.framing import (
    DelimiterFraming,
    FramingConfig,
)
from edge_agent.sources.serial.parse import (
    CsvParse,
    ParseConfig,
    RegexParse,
)

if TYPE_CHECKING:
    pass


class SerialSignalConfig(StrictModel):
    """One value read from each frame."""

    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    field: str | int | None = None
    """Regex group, key, or CSV position (0-based); default: the signal's name."""
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    asset: str = ""
    description: str = ""

    def selector(self) -> str:
        """The field this signal is read from, as the parser keys it."""
        return self.name if self.field is None else str(self.field)


class SerialSourceConfig(StrictModel):
    """Config of a serial source: port settings, framing, parsing and signals."""

    type: Literal["serial"]
    name: str
    interval: Duration = 1.0
    """How often the agent takes what arrived (and sends ``request``, if any)."""
    asset: str = ""
    port: str = Field(min_length=1)
    """Device path (prefer a stable ``/dev/serial/by-id/...`` link), or ``tcp://host:port``
    of a serial device server in raw TCP mode (``socket://`` too, pyserial's spelling)."""
    baud: int = Field(default=9600, gt=0)
    parity: Literal["none", "even", "odd", "mark", "space"] = "none"
    data_bits: Literal[5, 6, 7, 8] = 8
    stop_bits: float = 1
    """1, 1.5 or 2."""
    flow_control: Literal["none", "rtscts", "xonxoff"] = "none"
    framing: FramingConfig = Field(default_factory=DelimiterFraming)
    """How bytes become frames: by delimiter (default ``\\n``), fixed length or idle gap."""
    parse: ParseConfig
    """How values are found in a frame: regex named groups, CSV positions or key=value."""
    accept: str = ""
    """A regex a frame must contain to be parsed; others are skipped (``ignored``), not BAD."""
    checksum: Literal["none", "nmea"] = "none"
    """``nmea``: each frame ends in ``*hh``, the XOR of the bytes after ``$``/``!``."""
    encoding: str = "ascii"
    signals: list[SerialSignalConfig] = Field(default_factory=list)
    """Required for csv and kv; for a regex, defaults to one signal per named group."""
    on_open: str = ""
    """Sent once each time the port is opened, e.g. a command that starts streaming."""
    request: str = ""
    """Sent at every read for sensors that answer only when asked; empty: the sensor streams."""
    response_timeout: Duration = 1.0
    """How long a read waits for the answer to ``request`` before the link counts as lost."""
    keep: Literal["all", "latest"] = "all"
    """``all`` samples since the last read, or only the ``latest`` per signal."""
    lost_after: Duration | None = None
    """A streaming port silent this long counts as lost (and is reopened); None: never."""
    max_pending: int = Field(default=10_000, ge=1)
    """Samples held between reads; beyond it the oldest are dropped (and counted)."""
    _implied: list[SerialSignalConfig] = PrivateAttr(default_factory=list)

    @field_validator("accept")
    @classmethod
    def _accept_compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @field_validator("port")
    @classmethod
    def _port(cls, value: str) -> str:
        tcp_address(value)
        return value

    @field_validator("stop_bits")
    @classmethod
    def _stop_bits(cls, value: float) -> float:
        if value not in (1, 1.5, 2):
            raise ValueError("stop_bits must be 1, 1.5 or 2")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ValueError(f"encoding {self.encoding!r} is unknown") from None
        self.request_bytes()
        self.on_open_bytes()
        if not self.signals and isinstance(self.parse, RegexParse):
            # Validated here, once: the source asks for them in the agent's process,
            # which builds no validator (see StrictModel).
            groups = sorted(self.parse.selectors())
            self._implied = [SerialSignalConfig(name=group) for group in groups]
        signals = self.signal_configs()
        if not signals:
            raise ValueError(f"parse type {self.parse.type!r} needs a signals list")
        names = [signal.name.lower() for signal in signals]
        if len(set(names)) < len(names):
            raise ValueError("signal names must be unique")
        _check_selectors(self.parse, signals)
        return self

    def warnings(self) -> list[str]:
        """What ``check-config`` should say about this source although it loads."""
        line_keys = ("baud", "parity", "data_bits", "stop_bits", "flow_control")
        given = [key for key in line_keys if key in self.model_fields_set]
        if not given or tcp_address(self.port) is None:
            return []
        return [
            f"{self.name}: {', '.join(given)} ignored for {self.port}: set the line"
            " (baud, parity, ...) in the device server's own port settings"
        ]

    def signal_configs(self) -> list[SerialSignalConfig]:
        """The signals; for a regex without a list, one per named group."""
        return list(self.signals or self._implied)

    def signal_names(self) -> list[str]:
        """Every signal of the source, without building it (the config's own checks)."""
        return [f"{self.name}.{signal.name}".lower() for signal in self.signal_configs()]

    def request_bytes(self) -> bytes:
        """The request as bytes (latin-1, so ``"\\x05"`` is the byte 5)."""
        return _latin1("request", self.request)

    def on_open_bytes(self) -> bytes:
        """The ``on_open`` string as bytes."""
        return _latin1("on_open", self.on_open)


_TCP_SCHEMES = ("tcp", "socket")  # socket://: pyserial's name for the same raw TCP


def tcp_address(port: str) -> tuple[str, int] | None:
    """``(host, port)`` of a ``tcp://host:port`` endpoint; None for a device path.

    Raises:
        ValueError: a URL this source cannot open (another scheme, no host or port).
    """
    if "://" not in port:
        return None
    parts = urlsplit(port)
    scheme = parts.scheme.lower()
    example = "tcp://10.0.0.7:4001"
    if scheme == "rfc2217":
        raise ValueError(
            f"{port!r}: RFC 2217 is not supported; set the device server to raw TCP"
            f" (TCP server) mode and use {example}"
        )
    if scheme not in _TCP_SCHEMES:
        raise ValueError(f"{port!r}: expected a device path such as /dev/ttyUSB0 or {example}")
    try:
        number = parts.port
    except ValueError:
        number = None  # out of range or not a number: said below
    if not parts.hostname or number is None or number == 0:
        raise ValueError(f"{port!r}: expected a host and a port, such as {example}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{port!r}: takes no path or options, only {example}")
    return parts.hostname, number


def _latin1(key: str, text: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"{key} must be bytes: characters up to \\xff") from None


def _check_selectors(parse: ParseConfig, signals: list[SerialSignalConfig]) -> None:
    groups = parse.selectors() if isinstance(parse, RegexParse) else set()  # once, not per signal
    for signal in signals:
        selector = signal.selector()
        if isinstance(parse, RegexParse) and selector not in groups:
            raise ValueError(f"signal {signal.name!r}: the pattern has no group {selector!r}")
        if isinstance(parse, CsvParse) and not selector.isdigit():
            raise ValueError(f"signal {signal.name!r}: csv field must be a position (0, 1, ...)")
