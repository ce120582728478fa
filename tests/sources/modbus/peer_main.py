"""A pymodbus TCP server in its own process (for tests that run the whole agent).

    python -m tests.sources.modbus.peer_main PORT [--silent UNIT ...]

Unit 1 answers; each ``--silent`` unit never does (a dead unit on the line).
"""

from __future__ import annotations

import argparse
import asyncio

from tests.sources.modbus.server import Silence, device, start_tcp


async def _serve(port: int, silent: list[int]) -> None:
    silence = Silence()
    units = [device(1)] + [device(unit, silence=silence) for unit in silent]
    await start_tcp(units, port, silence=silence)
    print("ready", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--silent", type=int, action="append", default=[])
    args = parser.parse_args()
    asyncio.run(_serve(args.port, args.silent))


if __name__ == "__main__":
    main()
