"""Serial line sensors: frames from a port or a device server, values from frames.

A local port is opened non-blocking and watched with ``loop.add_reader`` on its
file descriptor; a ``tcp://host:port`` endpoint is an asyncio connection
(:mod:`link`). Either way reading never blocks the event loop and needs no
thread, and the bytes take the same path: through a framer (:mod:`framing`) and
a decoder (:mod:`decode`); the samples wait in a bounded buffer until
:meth:`SerialSource.read` takes them.

``read()`` returns every sample parsed since the last call, each stamped with the
time its frame arrived (``keep: all``): sensors often push faster than the poll
interval and the detector's windows want the whole waveform, not one value per
tick. ``keep: latest`` returns only the newest sample per signal, for chatty
devices whose every line the twin need not store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Self

from edge_agent.errors import SourceError
from edge_agent.logs import RateLimitedLog
from edge_agent.sources.serial.config import SerialSourceConfig
from edge_agent.sources.serial.decode import FrameDecoder, build_decoder
from edge_agent.sources.serial.framing import (
    Frame,
    Framer,
    IdleFraming,
)
from edge_agent.sources.serial.link import Link, describe, open_link
from edge_agent.types import Sample, SignalInfo

log = logging.getLogger(__name__)


class SerialSource:
    """Reads frames from a serial port and turns them into samples.

    Link failures (port missing, unplugged, server gone, not answering) raise
    :class:`SourceError`; the agent's poll loop leaves the context and re-enters,
    which reopens the port when it is back. Unreadable data never raises: it
    gives BAD samples and counts in :attr:`counters`.
    """

    def __init__(self, config: SerialSourceConfig) -> None:
        self.config = config
        self._link: Link | None = None
        self._decoder: FrameDecoder | None = None
        self._framer: Framer | None = None
        self._pending: deque[Sample] = deque()
        self._lost: str | None = None
        self._frame_seen = asyncio.Event()
        self._idle_timer: asyncio.TimerHandle | None = None
        self._last_rx = 0.0
        self._last_bytes = 0.0
        self._dropped = 0
        self._dropped_seen = 0
        self._dropping = False
        self._drop_log = RateLimitedLog(log, config.name)
        self._opened_before = False
        self.tap: Callable[[float, Frame], None] | None = None
        """Called with every frame as it is cut (``serial-monitor`` prints them)."""

    @property
    def counters(self) -> Counter[str]:
        """Frames seen, good, and failures by reason (plus ``dropped`` samples)."""
        counts = Counter(self._decoder.counters if self._decoder else {})
        counts["dropped"] = self._dropped
        return counts

    def signals(self) -> list[SignalInfo]:
        """The catalogue, from config."""
        cfg = self.config
        return [
            SignalInfo(
                signal=f"{cfg.name}.{sig.name}".lower(),
                source=cfg.name,
                interval=cfg.interval,
                asset=sig.asset or cfg.asset,
                unit=sig.unit,
                description=sig.description,
            )
            for sig in cfg.signal_configs()
        ]

    async def __aenter__(self) -> Self:
        """Open the port (or connect to the device server) and start watching it.

        Raises:
            SourceError: the port does not exist, is busy or refuses the settings;
                the server refuses, does not answer or cannot be resolved.
        """
        cfg = self.config
        if self._decoder is None:
            self._decoder = build_decoder(cfg)
        self._framer = cfg.framing.build()
        self._lost = None  # before the open: a server may close as soon as it accepts
        self._last_bytes = asyncio.get_running_loop().time()
        if not cfg.request:
            self._decoder.expect_partial()  # we may join a streaming device mid-frame
        self._link = await open_link(cfg, self._on_data, self._lose)
        # Said once at INFO: a reopen is the poll loop's "reconnected" line, and a device
        # server that accepts and closes at once would repeat this at every retry.
        log.log(logging.DEBUG if self._opened_before else logging.INFO,
                "%s: opened %s", cfg.name, describe(cfg))  # fmt: skip
        self._opened_before = True
        try:
            self._write(cfg.on_open_bytes())
        except SourceError:
            await self.__aexit__(None, None, None)  # not entered: nobody else will close it
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop watching and close the port or connection."""
        self._stop_watching()
        if self._link is not None:
            link, self._link = self._link, None
            link.close()

    async def read(self) -> list[Sample]:
        """Samples parsed since the last call; with a request, ask first and await the answer.

        Raises:
            SourceError: the port went away, the device did not answer the request,
                or sent nothing for ``lost_after``.
        """
        self._check_link()
        if self.config.request:
            await self._ask()
        self._check_silence()
        samples = list(self._pending)
        self._pending.clear()
        self._note_drops()
        if self.config.keep == "latest":
            samples = list({sample.signal: sample for sample in samples}.values())
        return samples

    def _note_drops(self) -> None:
        dropping = self._dropped > self._dropped_seen
        if dropping:
            self._drop_log.count("samples dropped", self._dropped - self._dropped_seen)
        if dropping and not self._dropping:
            self._drop_log.log(
                logging.WARNING,
                "%s: samples arrive faster than read; dropping the oldest", self.config.name,
            )  # fmt: skip
        elif self._dropping and not dropping:
            self._drop_log.log(
                logging.INFO,
                "%s: reads keep up again, %d samples dropped", self.config.name, self._dropped,
            )  # fmt: skip
        self._dropping = dropping
        self._dropped_seen = self._dropped

    async def _ask(self) -> None:
        self._frame_seen.clear()
        self._write(self.config.request_bytes())
        try:
            async with asyncio.timeout(self.config.response_timeout):
                await self._frame_seen.wait()
        except TimeoutError:
            raise SourceError(
                f"{self.config.name}: no answer on {self.config.port} "
                f"within {self.config.response_timeout:g} s"
            ) from None
        self._check_link()

    def _write(self, data: bytes) -> None:
        assert self._link is not None
        if data:
            self._link.write(data)  # a failed write reports the loss through _lose too

    def _check_link(self) -> None:
        if self._lost is not None:
            raise SourceError(f"{self.config.name}: lost {self.config.port}: {self._lost}")

    def _check_silence(self) -> None:
        # A streaming sensor that stops talking while its port stays (RS-485 cable
        # cut, sensor unpowered) looks like a lost link: reopening is the cure.
        limit = self.config.lost_after
        quiet = asyncio.get_running_loop().time() - self._last_bytes
        if limit is not None and quiet > limit:
            raise SourceError(
                f"{self.config.name}: nothing received on {self.config.port} for {quiet:.1f} s"
            )

    def _on_data(self, data: bytes) -> None:
        assert self._framer is not None
        self._last_rx = time.time()
        self._last_bytes = asyncio.get_running_loop().time()
        for frame in self._framer.feed(data):
            self._take(frame, self._last_rx)
        if isinstance(self.config.framing, IdleFraming):
            if self._idle_timer is not None:
                self._idle_timer.cancel()
            loop = asyncio.get_running_loop()
            self._idle_timer = loop.call_later(self.config.framing.gap, self._on_idle)

    def _on_idle(self) -> None:
        self._idle_timer = None
        frame = self._framer.flush() if self._framer is not None else None
        if frame is not None:
            self._take(frame, self._last_rx)

    def _take(self, frame: Frame, ts: float) -> None:
        assert self._decoder is not None
        if self.tap is not None:
            self.tap(ts, frame)
        self._pending.extend(self._decoder.decode(frame, ts))
        excess = len(self._pending) - self.config.max_pending
        for _ in range(excess):
            self._pending.popleft()  # the oldest go first: the newest matter most
        self._dropped += max(0, excess)
        self._frame_seen.set()

    def _lose(self, reason: str) -> None:
        self._lost = reason
        self._stop_watching()
        self._frame_seen.set()  # wake a waiting request so it reports the loss

    def _stop_watching(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._link is not None:
            self._link.stop()
