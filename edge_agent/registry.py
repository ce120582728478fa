"""Literal tables: config type name -> (config model, implementation path).

No discovery, no entry points (Telegraf's registry). The implementation is named
by a dotted path and imported only when the config uses it, so a config without
OPC UA never imports asyncua.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from edge_agent.forward.config import HttpSinkConfig, JsonlSinkConfig, MqttSinkConfig
from edge_agent.forward.sparkplug_config import SparkplugSinkConfig
from edge_agent.sources.modbus.config import ModbusSourceConfig
from edge_agent.sources.opcua.config import OpcuaSourceConfig
from edge_agent.sources.serial.config import SerialSourceConfig

if TYPE_CHECKING:  # the protocols the classes meet; loading a config imports no runtime
    from edge_agent.forward.delivery import Sink
    from edge_agent.sources.poll import Source

SOURCES: dict[str, tuple[type[Any], str]] = {
    "modbus": (ModbusSourceConfig, "edge_agent.sources.modbus.source:ModbusSource"),
    "opcua": (OpcuaSourceConfig, "edge_agent.sources.opcua.source:OpcuaSource"),
    "serial": (SerialSourceConfig, "edge_agent.sources.serial.source:SerialSource"),
}

SINKS: dict[str, tuple[type[Any], str]] = {
    "mqtt": (MqttSinkConfig, "edge_agent.forward.mqtt:MqttSink"),
    "http": (HttpSinkConfig, "edge_agent.forward.http:HttpSink"),
    "jsonl": (JsonlSinkConfig, "edge_agent.forward.jsonl:JsonlSink"),
    "sparkplug": (SparkplugSinkConfig, "edge_agent.forward.sparkplug:SparkplugSink"),
}

SourceConfig = Annotated[
    ModbusSourceConfig | OpcuaSourceConfig | SerialSourceConfig,
    Field(discriminator="type"),
]
SinkConfig = Annotated[
    MqttSinkConfig | HttpSinkConfig | JsonlSinkConfig | SparkplugSinkConfig,
    Field(discriminator="type"),
]


def _load(dotted: str) -> Any:
    module_name, _, attr = dotted.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def build_source(config: SourceConfig) -> Source:
    """Instantiate the source class for ``config`` (constructors only assign)."""
    source: Source = _load(SOURCES[config.type][1])(config)
    return source


def build_sink(config: SinkConfig, gateway: str) -> Sink:
    """Instantiate the sink for ``config`` on gateway ``gateway`` (constructors only assign)."""
    sink: Sink = _load(SINKS[config.type][1])(config, gateway=gateway)
    return sink
