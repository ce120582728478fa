"""The asyncua session of an OPC UA source: open, close, batched reads, error translation.

Imported only from inside OpcuaSource's methods, so asyncua loads when a config
uses OPC UA and not before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from asyncua import ua as _ua
from asyncua.client.client import Client
from asyncua.client.ua_client import UaClientState
from asyncua.observer import Observer

from edge_agent.errors import SourceError
from edge_agent.sources.opcua.certs import default_application_uri
from edge_agent.sources.opcua.counters import OpcuaCounts
from edge_agent.sources.opcua.node_list import PATH_ELEMENT_RE, NodeRow
from edge_agent.sources.opcua.nodes import Resolved
from edge_agent.sources.opcua.security import apply_auth, apply_security
from edge_agent.sources.poll import Schedule

if TYPE_CHECKING:
    from edge_agent.sources.opcua.config import OpcuaSourceConfig

log = logging.getLogger(__name__)
# asyncua's generated ua types (Int32/Boolean classes, implicit re-exports) do not
# type-check under mypy --strict; the namespace is used as dynamic on purpose.
ua: Any = _ua

_REFUSED_USER = {
    "BadUserAccessDenied",
    "BadIdentityTokenRejected",
    "BadIdentityTokenInvalid",
    "BadUserSignatureInvalid",
}
_REFUSED_CERT = {
    "BadCertificateUntrusted",
    "BadCertificateInvalid",
    "BadCertificateUriInvalid",
    "BadCertificateTimeInvalid",
    "BadCertificateUseNotAllowed",
    "BadSecurityChecksFailed",
    "BadSecurityPolicyRejected",
}
# A Read refused for its size: halving the request cures these.
_TOO_BIG = {ua.StatusCodes.BadTooManyOperations, ua.StatusCodes.BadResponseTooLarge}
_LOST = {"BadSessionIdInvalid", "BadSessionClosed", "BadSecureChannelClosed", "BadConnectionClosed"}


class _ClosedConnectionNoise(logging.Filter):
    """Turns asyncua's traceback for a publish on a closed connection into a DEBUG line.

    When the server or the network drops the connection, asyncua's publish loop
    logs the failed Publish with ``logger.exception`` before anyone can react. It
    is an expected fault, and the poll loop says what happened in one line.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ConnectionError | OSError) and record.levelno >= logging.ERROR:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            record.msg = f"{record.msg} ({exc!r})"
            record.exc_info = None
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


logging.getLogger("asyncua.client.ua_session.UaSession").addFilter(_ClosedConnectionNoise())


class Loss:
    """Why asyncua's connection supervisor gave the session up, in words (empty: it did not)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.reason = ""

    async def seen(self, exc: Exception) -> None:
        """asyncua's ``connection_lost_callback``: remember what happened."""
        self.reason = self.reason or self.describe(exc)

    def describe(self, exc: Exception) -> str:
        """What ``exc`` from the supervisor's probe means for people."""
        if isinstance(exc, ua.UaStatusCodeError):
            name = ua.StatusCode(exc.code).name
            return f"server no longer knows our session ({name}: timed out or server restarted)"
        if isinstance(exc, TimeoutError):
            return f"no answer from the server for {self.timeout:g} s (network down or server hung)"
        return "connection closed (server stopped, or the network reset it)"


class Arrivals(Observer):
    """Counts the notifications asyncua received for our subscriptions (its observer hook).

    The other end of the books: every one of them must reach the source's inbox.
    """

    def __init__(self) -> None:
        self.count = 0

    def observe_request(self, request: Any) -> contextlib.AbstractContextManager[None]:
        """No timing of requests: only notifications are counted."""
        return contextlib.nullcontext()

    def on_notification(self, subscription_id: int | None, event_count: int) -> None:
        """One publish response with ``event_count`` notifications arrived."""
        self.count += event_count


async def open_client(
    config: OpcuaSourceConfig, loss: Loss | None = None, arrivals: Arrivals | None = None
) -> Client:
    """A connected, activated asyncua Client for ``config``.

    Args:
        config: the source.
        loss: told by asyncua's supervisor why it gave the session up.
        arrivals: counts the notifications asyncua receives.

    Raises:
        SourceError: unreachable, refused security or identity, with the reason in words.
    """
    # asyncua probes the server every watchdog interval and gives the probe that long
    # (capped by it) to answer; shorter than a request timeout, a busy server (a
    # 1,000-node read in flight) fails the probe and a healthy session is dropped.
    client = Client(config.url, timeout=config.timeout, watchdog_intervall=config.timeout)
    client.application_uri = config.application_uri or default_application_uri()
    client.name = client.description = f"edge-agent {config.name}"
    client.session_timeout = int(config.session_timeout * 1000)
    if loss is not None:
        client.connection_lost_callback = loss.seen
    if arrivals is not None:
        client.uaclient.observer = arrivals
    try:
        with translate_errors(config.name, config):
            await apply_security(client, config.security, config.name)
            await apply_auth(client, config.auth, config.name)
            await client.connect(auto_reconnect=False)
    except asyncio.CancelledError:
        client.disconnect_socket()  # asyncua cleans up after errors, not after cancellation
        raise
    # Silence is detected and repaired by Subscriptions.watch, which also covers a
    # subscription that never delivered anything; two repairers would race.
    task = client._stale_watchdog_task
    if task is not None:
        task.cancel()
    return client


async def close_client(client: Client, lost: bool = False) -> None:
    """Close the session and socket; a peer already gone is not an error here.

    Not ``Client.disconnect()``: on a dead connection it logs the failed
    CloseSession with a traceback, an expected fault. Closing the session (which
    also stops asyncua's publish loop and supervisor) and then the socket says
    nothing; after a loss the secure channel is not closed politely (nobody answers).
    The socket is closed even when a stop cancels the polite part.
    """
    try:
        # Not wait_for: on 3.11 it can eat a stop that comes with the server's answer.
        async with asyncio.timeout(1.0 if lost else 2.0):
            await client.close_session()
        if not lost:
            async with asyncio.timeout(2.0):
                await client.close_secure_channel()
    except (OSError, TimeoutError, ua.UaError, ConnectionError):
        log.debug("closing a session after loss: nothing to close", exc_info=True)
    finally:
        client.disconnect_socket()


def check_alive(client: Client, name: str, loss: Loss) -> None:
    """Raise SourceError when asyncua's supervisor found the session dead, saying why."""
    state = client.uaclient.state
    if loss.reason or state is not UaClientState.CONNECTED:
        raise SourceError(f"{name}: session lost: {loss.reason or 'connection closed'}")


async def max_nodes_per_read(client: Client) -> int:
    """The server's MaxNodesPerRead (0: no limit)."""
    node = client.get_node(ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead)
    try:
        return int(await node.read_value() or 0)
    except ua.UaStatusCodeError:
        return 0  # optional node: a server without it states no limit


class Batch:
    """Read requests for one set of nodes, at most ``size`` nodes each."""

    def __init__(self, nodes: list[Resolved], size: int) -> None:
        self.found = found = [r for r in nodes if r.node is not None]
        self.missing = [r for r in nodes if r.node is None]
        self.requests = [self._request(found[i : i + size]) for i in range(0, len(found), size)]

    @staticmethod
    def _request(chunk: list[Resolved]) -> ua.ReadParameters:
        params = ua.ReadParameters()
        params.MaxAge = 0  # the device's value now, not a server cache
        params.TimestampsToReturn = ua.TimestampsToReturn.Both
        params.NodesToRead = [
            ua.ReadValueId(NodeId=r.node, AttributeId=ua.AttributeIds.Value) for r in chunk
        ]
        return params


class Poller:
    """Batched Read requests for the polled groups that are due, prepared once per session.

    Each group has an interval (a multiple of the tick); a tick reads the nodes
    of the due groups together, in requests of at most ``size`` nodes: the
    server's MaxNodesPerRead, or what was learned. A server that refuses a
    request as too big (BadTooManyOperations, also from servers whose real limit
    is below the advertised one) gets it again in halves; the size that worked
    is kept in ``learned`` for the next session.
    """

    def __init__(
        self,
        groups: list[tuple[float, list[Resolved]]],
        tick: float,
        max_per_read: int,
        name: str = "",
        counts: OpcuaCounts | None = None,
    ) -> None:
        self.groups = groups
        self.name = name
        self.counts = counts if counts is not None else OpcuaCounts()
        self.nodes = [r for _, nodes in groups for r in nodes]
        self.schedule = Schedule((interval for interval, _ in groups), tick)
        self.size = max_per_read or len(self.nodes) or 1
        self.learned = 0  # the size after a refusal; 0 while none
        self._batches: dict[tuple[float, ...], Batch] = {}

    def due(self, now: float) -> tuple[float, ...]:
        """The group intervals due at ``now`` (loop time); advances the schedule."""
        return self.schedule.due(now)

    def batch(self, due: tuple[float, ...]) -> Batch:
        """The requests for the groups at the intervals ``due`` (built once, then reused)."""
        batch = self._batches.get(due)
        if batch is None:
            nodes = [r for interval, group in self.groups if interval in due for r in group]
            batch = self._batches[due] = Batch(nodes, self.size)
        return batch

    async def read(self, client: Client, due: tuple[float, ...]) -> list[tuple[str, Any]]:
        """``(signal, DataValue)`` for every node due; unresolved ones read BAD.

        Raises:
            ua.UaStatusCodeError: a refusal that smaller requests cannot cure.
        """
        batch = self.batch(due)
        values: list[Any] = []
        for params in batch.requests:
            try:
                values.extend(await client.uaclient.read(params))
            except ua.UaStatusCodeError as exc:
                if exc.code not in _TOO_BIG or len(params.NodesToRead) == 1:
                    raise
                self._shrink(len(params.NodesToRead), exc)
                return await self.read(client, due)  # at most log2(nodes) times
        pairs = [(r.signal, v) for r, v in zip(batch.found, values, strict=True)]
        pairs.extend((r.signal, _status_only(r.status)) for r in batch.missing)
        return pairs

    def _shrink(self, refused: int, exc: ua.UaStatusCodeError) -> None:
        self.size = self.learned = max(1, refused // 2)
        self.counts.read_splits += 1
        self._batches.clear()
        log.warning(
            "%s: server refused a Read of %d nodes (%s); reading at most %d per request",
            self.name,
            refused,
            ua.StatusCode(exc.code).name,
            self.size,
        )


def _status_only(status: int) -> Any:
    return ua.DataValue(StatusCode=ua.StatusCode(status or ua.StatusCodes.BadNodeIdUnknown))


async def resolve(client: Client, signals: list[str], nodes: list[NodeRow]) -> list[Resolved]:
    """NodeIds for ``nodes``; browse paths translated in one request.

    A path the server cannot translate resolves to None with the server's status
    (its signal reads BAD, and NodeProblems logs it); the other nodes still work.
    """
    paths = [(i, node.path) for i, node in enumerate(nodes) if node.path]
    found: dict[int, tuple[Any, int]] = {}
    if paths:
        results = await client.uaclient.translate_browsepaths_to_nodeids(
            [_browse_path(path) for _, path in paths]
        )
        for (i, _path), result in zip(paths, results, strict=True):
            found[i] = _target(result)
    resolved = []
    for i, (signal, node) in enumerate(zip(signals, nodes, strict=True)):
        target, status = found[i] if node.path else (ua.NodeId.from_string(node.node), 0)
        resolved.append(Resolved(signal, target, node.path or node.node, status))
    return resolved


def _browse_path(path: str) -> Any:
    elements = []
    for element in path.strip("/").split("/"):
        match = PATH_ELEMENT_RE.match(element)
        assert match is not None  # checked by OpcuaNodeConfig
        elements.append(
            ua.RelativePathElement(
                ReferenceTypeId=ua.NodeId(ua.ObjectIds.HierarchicalReferences),
                IsInverse=False,
                IncludeSubtypes=True,
                TargetName=ua.QualifiedName(match.group(2), int(match.group(1))),
            )
        )
    return ua.BrowsePath(
        StartingNode=ua.NodeId(ua.ObjectIds.RootFolder), RelativePath=ua.RelativePath(elements)
    )


def _target(result: Any) -> tuple[Any, int]:
    if result.StatusCode.is_good() and result.Targets:
        return result.Targets[0].TargetId, 0
    status = result.StatusCode.value
    return None, status if status and not result.StatusCode.is_good() else ua.StatusCodes.BadNoMatch


@contextlib.contextmanager
def translate_errors(name: str, config: OpcuaSourceConfig) -> Iterator[None]:
    """Turn asyncua and socket exceptions into SourceError with a reason people can act on."""
    try:
        yield
    except SourceError:
        raise
    except AssertionError as exc:
        # asyncua's only sign that the server dropped the channel after our Hello /
        # OpenSecureChannel: in practice, the server refused our certificate.
        raise SourceError(_refused_certificate(name, config)) from exc
    except ua.UaStatusCodeError as exc:
        raise SourceError(_status_message(name, config, exc)) from exc
    except (OSError, TimeoutError, ConnectionError) as exc:
        raise SourceError(
            f"{name}: cannot talk to {config.url}: {str(exc) or type(exc).__name__}"
        ) from exc
    except ua.UaError as exc:
        raise SourceError(f"{name}: OPC UA error: {exc}") from exc


def _status_message(name: str, config: OpcuaSourceConfig, exc: ua.UaStatusCodeError) -> str:
    status = ua.StatusCode(exc.code)
    if status.name in _REFUSED_USER:
        who = config.auth.username or config.auth.cert_file or "anonymous"
        return (
            f"{name}: server refused user {who!r} ({status.name}): "
            "check the username and password (or user certificate) and the user's rights"
        )
    if status.name in _REFUSED_CERT:
        return _refused_certificate(name, config) + f" ({status.name})"
    if status.name in _LOST:
        return f"{name}: session lost ({status.name})"
    return f"{name}: server answered {status.name}: {status.doc}"


def _refused_certificate(name: str, config: OpcuaSourceConfig) -> str:
    if config.security.policy == "None" and config.auth.type == "certificate":
        # Without a secure channel asyncua sends the user certificate in CreateSession.
        return (
            f"{name}: server {config.url} refused user certificate {config.auth.cert_file}: "
            "have its administrator trust it and grant it a user's rights"
        )
    cert = config.security.cert_file
    if not cert:
        return f"{name}: server {config.url} closed the connection during the handshake"
    return (
        f"{name}: server {config.url} refused our certificate {cert}: have its administrator "
        "put it in the server's trusted list (and check application_uri matches the certificate)"
    )
