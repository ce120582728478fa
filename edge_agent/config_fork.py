"""Load the config in another process, so the agent's process keeps only the result.

Parsing YAML builds a node, a plain value and a line entry for every key; pydantic
then builds its validators (the config models defer that: see ``StrictModel``) and
the models. The nodes and values are freed, but they were allocated between
objects that live on (models, strings, the line map), so the freed memory stays
scattered over partly used arenas and is never given back. Parsed in a child and
handed back pickled, the agent's process gets the config alone, trimmed for running
(:func:`for_running`), and never builds a validator (BENCHMARKS.md, "Where the
memory goes").

Two ways: at start, :class:`ForkedConfig` forks (the process has no thread yet, and
the child starts at once with the config models imported; only the child imports
the YAML reader); a reload (SIGHUP) runs
``python -m edge_agent.config_fork PATH`` instead (:func:`load_config_apart`),
because the running agent has threads, and a fork could inherit a lock that one
of them held.

The forked child sends two pickles: first the runtime modules the config names
(:func:`runtime_modules`), which the agent imports while the child trims and
pickles the config, then the config.

A child that fails for any other reason than a config error (a pickling problem,
an import failure) sends nothing: the parent then loads the config itself, so
errors are reported exactly as by :func:`edge_agent.config.load_config`.
"""

from __future__ import annotations

import gc
import importlib
import os
import pickle
import subprocess
import sys
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel

from edge_agent.config import AgentConfig, load_config
from edge_agent.errors import ConfigError
from edge_agent.registry import SINKS, SOURCES
from edge_agent.sources.modbus.config import ModbusSourceConfig
from edge_agent.sources.opcua.config import OpcuaSourceConfig

APART_TIMEOUT_S = 120.0
"""A reload's child that takes longer is stopped and the config is loaded in-process."""


def load_config_forked(path: str | Path) -> AgentConfig:
    """:func:`~edge_agent.config.load_config`, parsed in a forked child (Linux; single thread).

    Raises:
        ConfigError: as ``load_config`` does (reproduced in this process).
    """
    return ForkedConfig.start(path).result()


class ForkedConfig:
    """A config being parsed in a forked child: start it, do other work, then wait.

    ``run`` imports the agent's modules while the child parses (two cores: about
    0.1 s less to READY at 2,000 tags).
    """

    def __init__(self, path: str | Path, pid: int, read_end: int) -> None:
        self.path = path
        self._pid = pid
        self._read_end = read_end

    @classmethod
    def start(cls, path: str | Path) -> ForkedConfig:
        """Fork the child that parses ``path`` (no fork on this OS: parse in :meth:`result`)."""
        if not hasattr(os, "fork"):
            return cls(path, 0, -1)
        sys.stdout.flush()
        sys.stderr.flush()
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(read_end)
            _child(path, write_end)
        os.close(write_end)
        return cls(path, pid, read_end)

    def result(self) -> AgentConfig:
        """The parsed config; a failed child is redone here, raising what load_config raises."""
        if self._pid == 0:
            return load_config(self.path)
        with os.fdopen(self._read_end, "rb") as pipe:
            try:  # read as the child writes: its pickling and this unpickling overlap
                _import_all(pickle.load(pipe))  # while the child trims and pickles
                config = pickle.load(pipe)
            except Exception:  # nothing or a part: the child failed (and exits 1)
                config = None
        _, status = os.waitpid(self._pid, 0)
        if os.waitstatus_to_exitcode(status) != 0 or not isinstance(config, AgentConfig):
            return load_config(self.path)
        return config


def _child(path: str | Path, write_end: int) -> None:
    # The child lives for one parse: its garbage is freed by its exit. The parse and
    # the pickling allocate objects by the hundred thousand, each burst a scan of every
    # live object by the cyclic collector: half the child's time at 10,000 signals.
    gc.disable()
    _no_pydantic_plugins()
    code = 1
    try:
        with os.fdopen(write_end, "wb") as pipe:  # in frames: the parent unpickles meanwhile
            config = load_for_running(path, lambda names: _send(names, pipe))
            pickle.dump(config, pipe, protocol=pickle.HIGHEST_PROTOCOL)
        code = 0
    except BaseException:  # the parent reports it by loading the config itself
        code = 1
    finally:
        os._exit(code)


def _no_pydantic_plugins() -> None:
    """No search for pydantic plugins in a config child (it exits after one parse).

    Building its first validator, pydantic imports ``importlib.metadata`` (with
    ``email``, ``zipfile``, ``csv``...) and reads every installed package's entry
    points for plugins: 25-30 ms of the child's 0.2 s (BENCHMARKS.md). The agent uses
    no pydantic plugin. Pydantic's switch (``PYDANTIC_DISABLE_PLUGINS``) skips the
    search but not the import, so the child puts a loader that finds none in place of
    pydantic's. Should pydantic ask that module for more, the child fails and the
    agent parses the config itself (:meth:`ForkedConfig.result`).
    """
    if _PLUGIN_LOADER not in sys.modules:  # not loaded yet: nothing was built
        loader = types.ModuleType(_PLUGIN_LOADER)
        loader.get_plugins = tuple  # type: ignore[attr-defined]  # () : no plugin
        sys.modules[_PLUGIN_LOADER] = loader


_PLUGIN_LOADER = "pydantic.plugin._loader"


def load_config_apart(path: str | Path) -> AgentConfig:
    """:func:`~edge_agent.config.load_config` run by a new interpreter (a reload's parse).

    Blocks for about half a second (the child's imports): call it off the event loop.

    Raises:
        ConfigError: as ``load_config`` does.
    """
    command = [sys.executable, "-m", "edge_agent.config_fork", str(path)]
    try:
        done = subprocess.run(command, capture_output=True, timeout=APART_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return load_config(path)
    result = pickle.loads(done.stdout) if done.returncode == 0 and done.stdout else None
    if isinstance(result, ConfigError):
        raise result
    if not isinstance(result, AgentConfig):
        return load_config(path)
    return result


def _send(value: Any, pipe: IO[bytes]) -> None:
    pickle.dump(value, pipe, protocol=pickle.HIGHEST_PROTOCOL)
    pipe.flush()


def _import_all(names: Any) -> None:
    """Import the runtime modules the child named (only those a config may need)."""
    for name in names if isinstance(names, list) else ():
        if name in RUNTIME_MODULES:
            importlib.import_module(name)


def load_for_running(
    path: str | Path, modules: Callable[[list[str]], None] | None = None
) -> AgentConfig:
    """:func:`~edge_agent.config.load_config`, then :func:`for_running`.

    Read without the lines that :func:`for_running` drops; a config with a fault
    is read again with every line, so its error is the one ``load_config`` gives.

    Args:
        path: the config file.
        modules: called with :func:`runtime_modules` as soon as the config is valid.

    Raises:
        ConfigError: as ``load_config`` does.
    """
    try:
        config = load_config(path, signal_lines=False)
    except ConfigError:
        config = load_config(path)  # raises the same, naming the item's line
    if modules is not None:
        modules(runtime_modules(config))
    return for_running(config)


def runtime_modules(config: AgentConfig) -> list[str]:
    """The modules the agent imports to build ``config``'s stages: its source and sink
    types' and the numpy engine's (used by an ONNX model with ``engine: auto``).

    The agent imports them while the child trims and pickles the config (Modbus
    11 ms, the numpy engine 12.5 ms: BENCHMARKS.md).
    """
    names = [_module(SOURCES[c.type][1]) for c in config.sources]
    names += [_module(SINKS[c.type][1]) for c in config.sinks]
    assets = config.detect.assets
    if any(a.engine == "auto" and a.model.endswith(".onnx") for a in assets):
        names.append(NUMPY_ENGINE)
    return list(dict.fromkeys(names))


def _module(dotted: str) -> str:
    return dotted.partition(":")[0]


NUMPY_ENGINE = "edge_agent.detect.onnx_small"
RUNTIME_MODULES = frozenset(
    [_module(t[1]) for t in (*SOURCES.values(), *SINKS.values())] + [NUMPY_ENGINE]
)


def for_running(config: AgentConfig) -> AgentConfig:
    """``config`` trimmed for the agent's process: what it keeps per signal, cut.

    The lines of the signals are dropped (:meth:`AgentConfig.forget_signal_lines`),
    a Modbus source's registers become columns (:meth:`ModbusSourceConfig.compact`:
    about 690 bytes per register as models, 70 as a row), so do an OPC UA source's
    nodes (:meth:`OpcuaSourceConfig.compact`: about 480 bytes per node, 130), and models whose set
    fields are the same share one set, which pickles once (216 bytes each otherwise).
    Sharing is safe because every config model is frozen: pydantic changes the set
    only when a field is assigned, and ``model_copy`` copies it first.
    """
    config.forget_signal_lines()
    for source in config.sources:
        if isinstance(source, (ModbusSourceConfig, OpcuaSourceConfig)):
            source.compact()
    _share_fields_sets(config, {})
    return config


def _share_fields_sets(value: Any, shared: dict[frozenset[str], set[str]]) -> None:
    if isinstance(value, BaseModel):
        mine = value.__pydantic_fields_set__
        one = shared.setdefault(frozenset(mine), mine)
        object.__setattr__(value, "__pydantic_fields_set__", one)
        items: Iterable[Any] = value.__dict__.values()  # the fields' values
    elif isinstance(value, dict):
        items = value.values()
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        return
    for item in items:
        if not isinstance(item, _LEAVES):
            _share_fields_sets(item, shared)


_LEAVES = (str, int, float, type(None))


def main(argv: list[str]) -> int:
    """``python -m edge_agent.config_fork PATH``: the pickled config (or ConfigError) on stdout."""
    result: AgentConfig | ConfigError
    gc.disable()  # a one-parse process, as the forked child (see _child)
    _no_pydantic_plugins()
    try:
        result = load_for_running(argv[0])
    except ConfigError as exc:
        result = exc
    sys.stdout.buffer.write(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
