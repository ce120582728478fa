"""The config of an OPC UA source: endpoint, security, authentication, nodes and groups."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from edge_agent.schema import ConfigPath, Duration, Secret, StrictModel
from edge_agent.sources.opcua.node_list import NodeRow, OpcuaNodeConfig
from edge_agent.sources.opcua.nodes import OpcuaGroupConfig
from edge_agent.sources.opcua.values import TimestampChoice

Policy = Literal["None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"]
Mode = Literal["None", "Sign", "SignAndEncrypt"]


class OpcuaSecurityConfig(StrictModel):
    """Secure channel settings.

    Attributes:
        policy: security policy of the channel.
        mode: ``Sign`` or ``SignAndEncrypt`` (``None`` with policy ``None``).
        cert_file: our application certificate (DER or PEM), see ``opcua gen-cert``.
        key_file: its private key (PEM or DER).
        key_password: if the key is encrypted; write ``${ENV_VAR}``.
        trust_dir: directory of trusted server certificates (or their CAs).
        trust: ``list``: only certificates in ``trust_dir``; ``first_use``: an
            empty directory takes the first server certificate seen, then acts as a list.
        crl: a certificate revocation list (DER or PEM), or a directory of them; a
            server certificate a trusted CA's CRL names is refused. Read at every connect.
    """

    policy: Policy = "None"
    mode: Mode = "None"
    cert_file: ConfigPath = ""
    key_file: ConfigPath = ""
    key_password: Secret | None = None
    trust_dir: ConfigPath = ""
    trust: Literal["list", "first_use"] = "list"
    crl: ConfigPath = ""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.policy == "None") != (self.mode == "None"):
            raise ValueError(
                "policy None goes with mode None; other policies need Sign or SignAndEncrypt"
            )
        if self.policy != "None":
            missing = [k for k in ("cert_file", "key_file", "trust_dir") if not getattr(self, k)]
            if missing:
                raise ValueError(f"policy {self.policy} needs {', '.join(missing)}")
        return self


class OpcuaAuthConfig(StrictModel):
    """User identity presented when the session is activated.

    Attributes:
        type: ``anonymous``, ``username`` or ``certificate`` (X.509 user token).
        username: for ``username``.
        password: for ``username``; write ``${ENV_VAR}``.
        password_file: for ``username``, instead of ``password``: a file holding the
            password (one trailing newline ignored), read at every connect.
        cert_file: for ``certificate``: the user's certificate (DER or PEM).
        key_file: for ``certificate``: its private key (PEM or DER).
        key_password: for ``certificate``: if the key is encrypted; write ``${ENV_VAR}``.
    """

    type: Literal["anonymous", "username", "certificate"] = "anonymous"
    username: str = ""
    password: Secret | None = None
    password_file: ConfigPath = ""
    cert_file: ConfigPath = ""
    key_file: ConfigPath = ""
    key_password: Secret | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.type == "username" and not self.username:
            raise ValueError("type username needs username (and usually password)")
        if self.password is not None and self.password_file:
            raise ValueError("give password or password_file, not both")
        if self.password_file and self.type != "username":
            raise ValueError("password_file is only for type username")
        if self.type == "certificate" and not (self.cert_file and self.key_file):
            raise ValueError("type certificate needs cert_file and key_file")
        return self


class OpcuaSourceConfig(StrictModel):
    """Config of an OPC UA source.

    Attributes:
        type: ``opcua``.
        name: source name, prefix of its signals.
        interval: tick of the poll loop: polled groups that are due are read,
            buffered notifications returned, and the session checked, every tick.
        asset: default asset of its signals.
        url: ``opc.tcp://host:port[/path]``.
        application_uri: our ApplicationUri; must match our certificate's
            (default ``urn:<hostname>:edge-agent``, as ``opcua gen-cert`` writes).
        timeout: per request.
        session_timeout: how long the server keeps our session without traffic.
        timestamps: which time becomes ``Sample.ts``: ``source`` (device),
            ``server`` or ``gateway`` (this clock at receipt).
        keepalive_count: subscribe: publishing intervals without data after which the
            server sends a keep-alive.
        silence_timeout: subscribe: no publish response (data or keep-alive) for this
            long means the subscription is dead; it is rebuilt (default: 3 keep-alive periods).
        backoff: first wait before reconnecting after a lost session; it doubles per
            failed try up to ``backoff_max`` (with jitter). While waiting, the server's
            port is probed every ``backoff``: when it accepts connections again after
            refusing them (a restarted server), the wait ends at once.
        backoff_max: the longest wait between two reconnect tries.
        security: secure channel policy, mode, certificates and trust list.
        auth: user identity.
        groups: nodes, each group polled or subscribed.
    """

    type: Literal["opcua"]
    name: str
    interval: Duration = 1.0
    asset: str = ""
    url: str = Field(pattern=r"^opc\.tcp://.+")
    application_uri: str = ""
    timeout: Duration = 5.0
    session_timeout: Duration = 60.0
    timestamps: TimestampChoice = "source"
    keepalive_count: int = Field(default=10, ge=1, le=1000)
    silence_timeout: Duration | None = None
    backoff: Annotated[Duration, Field(gt=0)] = 1.0
    backoff_max: Duration = 60.0
    security: OpcuaSecurityConfig = Field(default_factory=OpcuaSecurityConfig)
    auth: OpcuaAuthConfig = Field(default_factory=OpcuaAuthConfig)
    groups: list[OpcuaGroupConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        if self.backoff_max < self.backoff:
            raise ValueError("backoff_max must be at least backoff")
        names = Counter(node.name.lower() for group in self.groups for node in group.nodes)
        repeated = sorted(n for n, times in names.items() if times > 1)  # linear: 10,000 nodes
        if repeated:
            raise ValueError(f"node names repeat: {', '.join(repeated)}")
        for i, group in enumerate(self.groups):
            ticks = (group.interval or self.interval) / self.interval
            if ticks < 1 or abs(ticks - round(ticks)) > 1e-6:
                raise ValueError(
                    f"groups[{i}].interval ({group.interval} s) must be a multiple of the "
                    f"source's interval ({self.interval} s), which is how often it polls"
                )
        return self

    def warnings(self) -> list[str]:
        """What ``check-config`` should say although the config loads: certificates, CRLs."""
        from edge_agent.sources.opcua.certs import date_problem

        said = []
        for key, path in (
            (
                "security.cert_file",
                self.security.cert_file if self.security.policy != "None" else "",
            ),
            ("auth.cert_file", self.auth.cert_file if self.auth.type == "certificate" else ""),
        ):
            problem = date_problem(path) if path else ""
            if problem:
                said.append(
                    f"{self.name}: {key} {path} {problem}; make a new one "
                    "(`edge-agent opcua gen-cert`) and have the server trust it"
                )
        if self.security.crl and not Path(self.security.crl).exists():
            said.append(f"{self.name}: security.crl {self.security.crl} not found: connects fail")
        return said

    def signal_names(self) -> list[str]:
        """Every signal of the source, without building it (the config's own checks)."""
        return [signal_name(self.name, node) for group in self.groups for node in group.rows()]

    def compact(self) -> None:
        """Keep every group's nodes as a table (the agent's process: ``config_fork``)."""
        for group in self.groups:
            group.compact()


def signal_name(source: str, node: OpcuaNodeConfig | NodeRow) -> str:
    """The signal a node feeds: ``<source>.<name>``, lowercase.

    Interned: the catalogue, the resolved nodes, the problems' labels and the last
    timestamps each ask for it, and one string serves them all (about 120 bytes per
    node less at 10,000 nodes than a copy each).
    """
    return sys.intern(f"{source}.{node.name}".lower())
