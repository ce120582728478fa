"""Cutting a serial byte stream into frames: by delimiter, by fixed length, by idle gap.

Pure code, no I/O and no pyserial: the serial source feeds the bytes it reads and
gets whole frames back. A framer never raises on what a device sends; a frame that
could not be cut cleanly (too long, cut by an idle gap at the size limit) comes
back with ``complete=False`` so the source can count it and mark its signals BAD.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

from pydantic import Discriminator, Field, Tag, field_validator

from edge_agent.schema import Duration, StrictModel


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame cut from the stream, delimiter removed.

    Attributes:
        data: the frame's bytes (at most the framer's max length).
        complete: False when the frame was cut at the size limit, not at a boundary.
    """

    data: bytes
    complete: bool = True


class Framer(Protocol):
    """Turns chunks of bytes into frames; keeps the unfinished tail."""

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes read from the port; return the frames they complete."""
        ...

    def flush(self) -> Frame | None:
        """End the current frame now (idle gap seen); None if nothing is pending."""
        ...

    def reset(self) -> None:
        """Forget the unfinished tail (port reopened)."""
        ...


class DelimiterFramer:
    """Frames end with a delimiter, such as ``b"\\n"`` or ``b"\\r\\n"``.

    A run of more than ``max_length`` bytes without a delimiter is returned once,
    truncated and marked incomplete; the rest up to the next delimiter is dropped,
    so a stream of noise costs bounded memory.
    """

    def __init__(self, delimiter: bytes, max_length: int) -> None:
        self.delimiter = delimiter
        self.max_length = max_length
        self._buf = bytearray()
        self._skipping = False

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes; return the frames ended by a delimiter in them."""
        self._buf += data
        frames: list[Frame] = []
        while True:
            end = self._buf.find(self.delimiter)
            if end < 0:
                break
            body = bytes(self._buf[:end])
            del self._buf[: end + len(self.delimiter)]
            if self._skipping:
                self._skipping = False  # the tail of an overlong frame, already reported
            else:
                frames.append(Frame(body[: self.max_length], len(body) <= self.max_length))
        if len(self._buf) > self.max_length:
            frames.extend(self._overflow())
        return frames

    def _overflow(self) -> list[Frame]:
        # Keep the last delimiter-length-1 bytes: they may start a delimiter.
        keep = len(self.delimiter) - 1
        head = bytes(self._buf[: self.max_length])
        del self._buf[: len(self._buf) - keep]
        was_skipping, self._skipping = self._skipping, True
        return [] if was_skipping else [Frame(head, complete=False)]

    def flush(self) -> Frame | None:
        """Delimiter framing ignores idle gaps."""
        return None

    def reset(self) -> None:
        """Forget the unfinished tail."""
        self._buf.clear()
        self._skipping = False


class FixedFramer:
    """Frames of exactly ``length`` bytes, optionally each starting with a ``start`` marker.

    Without a marker the stream is cut every ``length`` bytes. With one, bytes before
    the marker are skipped (and counted in :attr:`skipped`), which resynchronises
    after a lost or extra byte.
    """

    def __init__(self, length: int, start: bytes = b"") -> None:
        self.length = length
        self.start = start
        self.skipped = 0
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes; return every whole frame now buffered."""
        self._buf += data
        frames: list[Frame] = []
        while True:
            self._sync()
            if len(self._buf) < self.length:
                return frames
            frames.append(Frame(bytes(self._buf[: self.length])))
            del self._buf[: self.length]

    def _sync(self) -> None:
        if not self.start or self._buf.startswith(self.start):
            return
        at = self._buf.find(self.start)
        # Not found: keep a possible beginning of the marker at the end.
        drop = at if at >= 0 else max(0, len(self._buf) - len(self.start) + 1)
        self.skipped += drop
        del self._buf[:drop]

    def flush(self) -> Frame | None:
        """Fixed framing ignores idle gaps."""
        return None

    def reset(self) -> None:
        """Forget the unfinished tail."""
        self._buf.clear()


class IdleFramer:
    """A frame ends when the line stays quiet for the configured gap.

    The source calls :meth:`flush` when the gap has passed since the last byte.
    A frame growing past ``max_length`` is cut there and marked incomplete.
    """

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length
        self._buf = bytearray()
        self._overlong = False

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes; frames end only at :meth:`flush` or at the size limit."""
        self._buf += data
        frames: list[Frame] = []
        while len(self._buf) > self.max_length:
            frames.append(Frame(bytes(self._buf[: self.max_length]), complete=False))
            del self._buf[: self.max_length]
            self._overlong = True
        return frames

    def flush(self) -> Frame | None:
        """End the frame: the line went quiet."""
        if not self._buf:
            self._overlong = False
            return None
        frame = Frame(bytes(self._buf), complete=not self._overlong)
        self.reset()
        return frame

    def reset(self) -> None:
        """Forget the unfinished tail."""
        self._buf.clear()
        self._overlong = False


def _to_bytes(text: str) -> bytes:
    return text.encode("latin-1")


class DelimiterFraming(StrictModel):
    """Frames end with ``delimiter`` (YAML escapes: ``"\\r\\n"``)."""

    type: Literal["delimiter"] = "delimiter"
    delimiter: str = Field(default="\n", min_length=1)
    max_length: int = Field(default=1024, ge=1)

    @field_validator("delimiter")
    @classmethod
    def _latin1(cls, value: str) -> str:
        _to_bytes(value)  # raises UnicodeEncodeError (a ValueError) for non-byte characters
        return value

    def build(self) -> Framer:
        """A fresh framer for these settings."""
        return DelimiterFramer(_to_bytes(self.delimiter), self.max_length)


class FixedFraming(StrictModel):
    """Frames of ``length`` bytes, each starting with ``start`` if given."""

    type: Literal["fixed"]
    length: int = Field(ge=1)
    start: str = ""

    def build(self) -> Framer:
        """A fresh framer for these settings."""
        return FixedFramer(self.length, _to_bytes(self.start))


class IdleFraming(StrictModel):
    """A frame ends after ``gap`` of silence on the line."""

    type: Literal["idle"]
    gap: Duration = 0.05
    max_length: int = Field(default=1024, ge=1)

    def build(self) -> Framer:
        """A fresh framer for these settings."""
        return IdleFramer(self.max_length)


def _type(value: Any) -> str:
    # ``type`` may be left out of a delimiter framing, the common case. An old
    # ``kind`` still picks the member, so the only error is its rename.
    if isinstance(value, dict):
        return str(value.get("type", value.get("kind", "delimiter")))
    return str(getattr(value, "type", "delimiter"))


FramingConfig = Annotated[
    Annotated[DelimiterFraming, Tag("delimiter")]
    | Annotated[FixedFraming, Tag("fixed")]
    | Annotated[IdleFraming, Tag("idle")],
    Discriminator(_type),
]
"""How the byte stream is cut into frames, chosen by ``type`` (default delimiter)."""
