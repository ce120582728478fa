"""Write one benchmark's results into its own section of BENCHMARKS.md.

Each benchmark owns the text between ``<!-- bench:NAME -->`` and
``<!-- /bench:NAME -->``; the section is replaced in place (or appended) with a
header naming the machine and the date, so several benchmarks can share the file.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def machine() -> str:
    """One line describing this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, {cpu}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def write_section(name: str, title: str, body: str, path: Path = BENCHMARKS) -> None:
    """Replace (or append) the section ``name`` of BENCHMARKS.md with ``body``."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"<!-- bench:{name} -->\n## {title}\n\n"
        f"Machine: {machine()}. Run: {stamp}. Command: `python -m bench.{name}`.\n\n"
        f"{body.strip()}\n<!-- /bench:{name} -->\n"
    )
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    pattern = re.compile(
        rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->\n?", re.S
    )
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text + "\n" + section
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
