"""Load the config in a short-lived child process, so the daemon keeps no parse debris.

Parsing YAML builds a node, a plain value and a line entry for every key; pydantic
then builds the models. The nodes and values are freed, but they were allocated
between objects that live on (models, strings, the line map), so the freed
memory stays scattered over partly used arenas and is never given back: 3.2 KB
of RSS per configured tag, of which 1.5 KB is the config itself (10,000 tags:
+31 MB). Parsed in a forked child and handed back pickled, the same config costs
the daemon 1.75 KB per tag (+17 MB), for about 12 ms per 1,000 tags of extra
start time (BENCHMARKS.md, "Where the memory goes").

A child that fails for any reason (a config error, a pickling problem) sends
nothing: the parent then loads the config itself, so errors are reported
exactly as by :func:`edge_agent.config.load_config`.
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

from edge_agent.config import AgentConfig, load_config


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
            data = pipe.read()
        _, status = os.waitpid(self._pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            return load_config(self.path)
        config = pickle.loads(data)
        if not isinstance(config, AgentConfig):
            return load_config(self.path)
        return config


def _child(path: str | Path, write_end: int) -> None:
    code = 1
    try:
        data = pickle.dumps(load_config(path), protocol=pickle.HIGHEST_PROTOCOL)
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(data)
        code = 0
    except BaseException:  # the parent reports it by loading the config itself
        code = 1
    finally:
        os._exit(code)
