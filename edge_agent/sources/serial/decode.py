"""From a frame to samples: checksum, text, parser, scale; counting and logging what fails.

Pure code, no I/O. :class:`FrameDecoder` never raises on what a device sends: an
unreadable frame (cut, wrong checksum, not text, wrong shape) makes every signal of
the source BAD at that time; an unreadable value makes its own signal BAD. Each
failure is counted by reason and the line's health is logged on transitions only,
at most a few lines a minute: a line that flaps between good and bad frames is summed
up once a minute instead (:class:`~edge_agent.logs.RateLimitedLog`).
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from typing import TYPE_CHECKING

from edge_agent.logs import RateLimitedLog
from edge_agent.sources.serial.framing import Frame
from edge_agent.sources.serial.parse import FrameError, Parser, strip_nmea_checksum
from edge_agent.types import Quality, Sample

if TYPE_CHECKING:
    from edge_agent.sources.serial.config import SerialSourceConfig
from edge_agent.sources.serial.config import SerialSignalConfig

log = logging.getLogger(__name__)
_GOOD = Quality.GOOD  # looked up once: enum attribute access is slow on 3.11


class FrameDecoder:
    """Decodes frames of one source into samples and keeps the line's counters.

    Attributes:
        counters: ``frames`` seen, ``good`` ones, ``ignored`` (not matching ``accept``),
            and one counter per failure reason (``overflow``, ``checksum``,
            ``undecodable``, ``no_match``, ``short``, ``merged``, ``bad_value``,
            ``partial``).
    """

    def __init__(
        self,
        source: str,
        parser: Parser,
        signals: list[SerialSignalConfig],
        checksum: bool,
        encoding: str,
        accept: re.Pattern[str] | None = None,
    ) -> None:
        self.source = source
        self.parser = parser
        self.signals = signals
        self.checksum = checksum
        self.encoding = encoding
        self.accept = accept
        self.counters: Counter[str] = Counter()
        self._names = [f"{source}.{signal.name}".lower() for signal in signals]
        # (sample name, selector, scale, offset): read once per frame per signal.
        self._plan = [
            (name, signal.selector(), signal.scale, signal.offset)
            for name, signal in zip(self._names, signals, strict=True)
        ]
        self._failing: str | None = None
        self._bad_run = 0
        self._forgive = False
        self._lines = RateLimitedLog(log, source)

    def expect_partial(self) -> None:
        """The next frame may be the tail of one sent before the port was opened.

        If it is unreadable it is counted as ``partial`` and dropped without BAD samples.
        """
        self._forgive = True

    def decode(self, frame: Frame, ts: float) -> list[Sample]:
        """Samples of one frame received at ``ts``; a blank or unaccepted frame gives none."""
        forgive, self._forgive = self._forgive, False
        self.counters["frames"] += 1
        try:
            text = self._text(frame)
            if text is None:
                self.counters["ignored"] += 1
                return []
            if not text:
                return []
            fields = self.parser.fields(text)
        except FrameError as exc:
            if forgive:
                self.counters["partial"] += 1
                return []
            self._failed(exc.reason, exc.detail)
            return [Sample.bad(name, ts) for name in self._names]
        return self._values(fields, ts)

    def _text(self, frame: Frame) -> str | None:
        """The frame's text, checked and stripped; None if ``accept`` rejects it."""
        if not frame.complete:
            raise FrameError("overflow", f"no frame end after {len(frame.data)} bytes")
        text = self._decode(frame.data)
        # Filter before the checksum: a corrupted frame of a kind we ignore must not
        # make our signals BAD.
        if self.accept is not None and not self.accept.search(text):
            return None
        if self.checksum:
            text = self._decode(strip_nmea_checksum(frame.data))
        return text.strip()

    def _decode(self, data: bytes) -> str:
        try:
            return data.decode(self.encoding)
        except UnicodeDecodeError:
            raise FrameError("undecodable", f"not {self.encoding}: {data[:40]!r}") from None

    def _values(self, fields: dict[str, str], ts: float) -> list[Sample]:
        samples: list[Sample] = []
        bad: list[str] = []
        for name, selector, scale, offset in self._plan:
            raw = fields.get(selector)
            if raw is None:
                continue
            value = _number(raw)
            if value is None:
                bad.append(f"{selector}={raw[:20]!r}")
                samples.append(Sample.bad(name, ts))
            else:
                samples.append(Sample(name, ts, value * scale + offset, _GOOD))
        if bad:
            self._failed("bad_value", ", ".join(bad))
        else:
            self._succeeded()
        return samples

    def _failed(self, reason: str, detail: str) -> None:
        self.counters[reason] += 1
        self._bad_run += 1
        self._lines.count("bad frames")
        if self._failing is None:
            self._lines.log(
                logging.WARNING,
                "%s: unreadable data on the line (%s: %s)", self.source, reason, detail,
            )  # fmt: skip
        self._failing = reason

    def _succeeded(self) -> None:
        self.counters["good"] += 1
        if self._failing is not None:
            self._lines.log(
                logging.INFO, "%s: data readable again after %d bad frames", self.source,
                self._bad_run,
            )  # fmt: skip
        self._failing = None
        self._bad_run = 0


def decode_bytes(
    cfg: SerialSourceConfig, data: bytes, ts: float = 0.0
) -> tuple[list[Sample], Counter[str]]:
    """Decode a captured byte stream offline, exactly as the source would live.

    Every frame gets the time ``ts``; an idle-gap framing ends its last frame at
    the end of ``data``. For golden tests and for checking a capture against a config.

    Returns:
        The samples and the line's counters.
    """
    decoder = build_decoder(cfg)
    framer = cfg.framing.build()
    frames = framer.feed(data)
    last = framer.flush()
    samples = [
        s for frame in [*frames, *([last] if last else [])] for s in decoder.decode(frame, ts)
    ]
    return samples, decoder.counters


def build_decoder(cfg: SerialSourceConfig) -> FrameDecoder:
    """The decoder a source with this config uses."""
    signals = cfg.signal_configs()
    parser = cfg.parse.build({signal.selector() for signal in signals})
    accept = re.compile(cfg.accept) if cfg.accept else None
    return FrameDecoder(cfg.name, parser, signals, cfg.checksum == "nmea", cfg.encoding, accept)


def _number(raw: str) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
