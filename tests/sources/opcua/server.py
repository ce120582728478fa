"""Real asyncua servers for the OPC UA tests, each on its own thread and event loop.

A server on its own loop keeps serving whatever loop the test runs in, and
can be stopped and started again under a running client (restart tests).
``Server.init()`` takes about 1.5 s, so one secured server is shared by the
whole session (``shared_server``); certificates are made once per session.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

import pytest
from asyncua import ua as _ua
from asyncua.common.callback import CallbackType, ServerItemCallback
from asyncua.common.utils import ServiceError
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.server import Server
from asyncua.server.user_managers import UserManager
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.conftest import free_port
from tests.sources.opcua.pki import SERVER_URI, Pki

T = TypeVar("T")
ua: Any = _ua  # asyncua's generated types do not type-check under --strict
NS = "urn:edge-agent:test"
USER, PASSWORD = "operator", "s3cret"
T0 = dt.datetime(2026, 11, 22, 12, 0, 0, tzinfo=dt.UTC)
# The pump's variables as the plant starts: name, value, type, status.
PUMP: tuple[tuple[str, Any, Any, int], ...] = (
    ("Temperature", 21.5, ua.VariantType.Double, ua.StatusCodes.Good),
    ("Pressure", 1.25, ua.VariantType.Double, ua.StatusCodes.Good),
    ("Running", True, ua.VariantType.Boolean, ua.StatusCodes.Good),
    ("Count", 7, ua.VariantType.Int32, ua.StatusCodes.Good),
    ("Label", "ok", ua.VariantType.String, ua.StatusCodes.Good),
    ("Broken", 0.0, ua.VariantType.Double, ua.StatusCodes.BadSensorFailure),
    ("Shaky", 3.0, ua.VariantType.Double, ua.StatusCodes.UncertainLastUsableValue),
    ("Level", 50.0, ua.VariantType.Double, ua.StatusCodes.Good),
    ("Serial", 7, ua.VariantType.Int32, ua.StatusCodes.Good),  # constant: no test writes it
)


class _Users(UserManager):
    """Anonymous, one username/password, one X.509 user.

    asyncua passes the secure channel's client certificate for anonymous and
    username tokens, and the user certificate for X.509 tokens.
    """

    def __init__(self, pki: Pki | None) -> None:
        self.user_der = pki.user_cert.read_bytes() if pki else None
        self.app_ders = {b"", pki.client_cert.read_bytes()} if pki else {b""}

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if username is not None:
            return User(role=UserRole.User) if (username, password) == (USER, PASSWORD) else None
        der = (
            certificate.public_bytes(Encoding.DER)
            if isinstance(certificate, x509.Certificate)
            else certificate
        )
        if der is None or der == self.user_der or der in self.app_ders:
            return User(role=UserRole.User)
        return None


class TestServer:
    """An asyncua server with a small plant, running on a thread of its own."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, port: int, pki: Pki | None = None, many: int = 0) -> None:
        self.port = port
        self.pki = pki
        self.many = many
        self.url = f"opc.tcp://127.0.0.1:{port}/test"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: Server | None = None
        self.nodes: dict[str, Any] = {}
        self.generation = 0
        # Nodes a client's Read may name (0: any); more is refused with BadTooManyOperations,
        # whatever MaxNodesPerRead says, as some servers do. Set by tests, on any thread.
        self.read_limit = 0
        self.refused_reads = 0

    def run(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """Run ``fn(*args)`` on the server's loop and wait for it (from sync code)."""
        return asyncio.run_coroutine_threadsafe(fn(*args), self.loop).result(timeout=30)

    async def arun(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """Run ``fn(*args)`` on the server's loop; await it from a test's loop."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(fn(*args), self.loop)
        return await asyncio.wrap_future(future)

    def start(self, generation: int = 0) -> None:
        """Build the address space and listen (blocks about 1.5 s).

        A later ``generation`` gives the variables new NodeIds under the same
        browse paths, as a reconfigured server would.
        """
        self.generation = generation
        self.run(self._start)

    def stop(self) -> None:
        """Stop listening and drop every session (from sync code)."""
        if self.server is not None:
            self.run(self.server.stop)
            self.server = None

    def close(self) -> None:
        """Stop the server and its thread."""
        self.stop()
        self.run(_cancel_leftovers)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)

    async def close_sessions(self) -> None:
        """Close every client session on the server, as a session timeout would."""
        assert self.server is not None
        for session in list(self.server.iserver._external_sessions.values()):
            await session.close_session(True)

    async def _start(self) -> None:
        server = Server(user_manager=_Users(self.pki))
        await server.init()
        server.subscribe_server_callback(CallbackType.PreRead, self._limit_reads)
        server.subscribe_server_callback(CallbackType.ItemSubscriptionCreated, self._no_bool_filter)
        server.set_endpoint(self.url)
        await server.set_application_uri(SERVER_URI)
        if self.pki is not None:
            await self._secure(server, self.pki)
        idx = await server.register_namespace(NS)
        await self._plant(server, idx)
        await server.start()
        self.server = server

    def _limit_reads(self, event: ServerItemCallback, _dispatcher: Any) -> None:
        # Raised inside the Read service: asyncua answers it as a ServiceFault.
        asked = len(event.request_params.NodesToRead)
        if event.is_external and self.read_limit and asked > self.read_limit:
            self.refused_reads += 1
            raise ServiceError(ua.StatusCodes.BadTooManyOperations)

    async def _no_bool_filter(self, event: ServerItemCallback, _dispatcher: Any) -> None:
        # A deadband on a Boolean is BadFilterNotAllowed (Part 4, 7.22.2); asyncua's
        # server accepts it, independent servers do not: refuse it as they do.
        assert self.server is not None
        params = event.request_params
        for item, result in zip(params.ItemsToCreate, event.response_params, strict=True):
            flt = item.RequestedParameters.Filter
            # The decoded filter is the generated class, a base of ua.DataChangeFilter.
            if type(flt).__name__ != "DataChangeFilter" or not result.StatusCode.is_good():
                continue
            node = self.server.get_node(item.ItemToMonitor.NodeId)
            if await node.read_data_type_as_variant_type() != ua.VariantType.Boolean:
                continue
            subs = self.server.iserver.subscription_service.subscriptions
            subs[params.SubscriptionId].monitored_item_srv.delete_monitored_items(
                [result.MonitoredItemId]
            )
            result.StatusCode = ua.StatusCode(ua.StatusCodes.BadFilterNotAllowed)

    async def _secure(self, server: Server, pki: Pki) -> None:
        await server.load_certificate(str(pki.server_cert))
        await server.load_private_key(str(pki.server_key))
        server.set_identity_tokens(
            [ua.AnonymousIdentityToken, ua.UserNameIdentityToken, ua.X509IdentityToken]
        )
        trusted = {pki.client_cert.read_bytes(), pki.user_cert.read_bytes()}

        async def validate(cert: x509.Certificate, _app: Any) -> None:
            if cert.public_bytes(Encoding.DER) not in trusted:
                raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)

        server.set_certificate_validator(validate)

    async def _plant(self, server: Server, idx: int) -> None:
        plant = await server.nodes.objects.add_folder(
            ua.NodeId("Plant", idx), ua.QualifiedName("Plant", idx)
        )
        pump = await plant.add_object(ua.NodeId("Pump1", idx), ua.QualifiedName("Pump1", idx))
        for name, value, vtype, _status in PUMP:
            suffix = f"#{self.generation}" if self.generation else ""
            node_id = ua.NodeId(f"Pump1.{name}{suffix}", idx)
            var = await pump.add_variable(
                node_id, ua.QualifiedName(name, idx), ua.Variant(value, vtype)
            )
            await var.set_writable()
            self.nodes[name] = var
        await self.reset()
        for i in range(self.many):
            var = await plant.add_variable(
                ua.NodeId(f"Tag{i}", idx), ua.QualifiedName(f"Tag{i}", idx), float(i)
            )
            self.nodes[f"Tag{i}"] = var

    async def reset(self) -> None:
        """Write the pump's first values and statuses back, now stamped (server loop)."""
        for name, value, _vtype, status in PUMP:
            await self.write(name, value, status)

    async def write(
        self,
        name: str,
        value: Any,
        status: int = ua.StatusCodes.Good,
        ts: dt.datetime | None = None,
    ) -> None:
        """Write a value with a source timestamp (default: now) and a status (server loop)."""
        var = self.nodes[name]
        vtype = await var.read_data_type_as_variant_type()
        stamp = ts or dt.datetime.now(dt.UTC)
        data = ua.DataValue(
            Value=ua.Variant(value, vtype),
            StatusCode=ua.StatusCode(status),
            SourceTimestamp=stamp,
            ServerTimestamp=stamp,
        )
        await var.write_value(data)


async def _cancel_leftovers() -> None:
    """Cancel the tasks asyncua's server leaves behind (session timeouts) before the loop stops."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# Each test module imports these fixtures, which makes pytest hold one fixture
# definition per module; the caches below keep one PKI and one server per process.
_pki: list[Pki] = []
_shared: list[TestServer] = []
_users = [0]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Certificates for this test session."""
    if not _pki:
        _pki.append(Pki.make(tmp_path_factory.mktemp("pki")))
    return _pki[0]


@pytest.fixture(scope="session")
def shared_server(pki: Pki) -> Iterator[TestServer]:
    """One secured server (all policies, all identities) for the whole session.

    Set up once per test module (see above), which hands each module the pump as it
    starts: a module's tests see the values the plant starts with, whichever module
    wrote what before it (the ~1.5 s ``Server.init()`` is still paid once).
    """
    if not _shared:
        server = TestServer(free_port(), pki)
        server.start()
        _shared.append(server)
    else:
        _shared[0].run(_shared[0].reset)
    _users[0] += 1
    yield _shared[0]
    _users[0] -= 1
    if not _users[0]:
        _shared.pop().close()


class RefusingPeer(asyncio.Protocol):
    """A bare OPC UA TCP peer that acknowledges Hello, then refuses OpenSecureChannel.

    This is what servers that check the client certificate at the channel level
    (rather than at CreateSession, as asyncua's server does) answer.
    """

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        from asyncua.ua.ua_binary import uatcp_to_binary

        if data[:3] == b"HEL":
            ack = ua.Acknowledge(0, 65535, 65535, 0, 0)
            self.transport.write(uatcp_to_binary(ua.MessageType.Acknowledge, ack))
        elif data[:3] == b"OPN":
            err = ua.ErrorMessage(ua.StatusCode(ua.StatusCodes.BadSecurityChecksFailed), "rejected")
            self.transport.write(uatcp_to_binary(ua.MessageType.Error, err))
            self.transport.close()


class Proxy:
    """A TCP relay on loopback whose ``freeze()`` silences the open connections.

    That is a pulled cable as the client sees it: no FIN, no RST, just silence.
    Connections opened after the freeze pass again, as after a repaired link.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.generation = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def freeze(self) -> None:
        self.generation += 1

    async def close(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, up_writer]
        born = self.generation
        await asyncio.gather(
            self._pipe(reader, up_writer, born), self._pipe(up_reader, writer, born)
        )

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, born: int
    ) -> None:
        while data := await reader.read(65536):
            if self.generation == born:
                writer.write(data)  # after a freeze the bytes are swallowed: nobody hears of them
