"""The house's import rules, checked on the code itself (README "Architecture").

Every ``import`` in the package, at module level or inside a function, is an edge.
No cycles anywhere; cli/ sits on top and nothing below imports it; stages never load
config files; detection never imports training; ``edge_agent.config`` stays light.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import edge_agent

PACKAGE = Path(edge_agent.__file__).parent
STAGES = ("sources", "twin", "detect", "forward", "commands", "web", "sim", "train")
HEAVY = ("numpy", "onnxruntime", "pymodbus", "asyncua", "aiomqtt", "httpx")


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _targets(node: ast.AST, here: str, modules: set[str]) -> set[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    else:
        return set()
    return {name for name in names if name in modules and name != here}


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (anywhere in its body).

    Imports under ``if TYPE_CHECKING:`` are left out: they exist for the type checker
    only and tie nothing together when the program runs.
    """
    files = {_module(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text())
        typing_only = {
            id(n)
            for block in ast.walk(tree)
            if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
            for n in ast.walk(block)
        }
        nodes = [n for n in ast.walk(tree) if id(n) not in typing_only]
        graph[name] = set().union(*(_targets(n, name, modules) for n in nodes))
    return graph


def _cycle_from(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in graph[node]:
            if nxt == start:
                return [*path, start]
            if nxt not in seen and not start.startswith(nxt + "."):
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def _in(module: str, area: str) -> bool:
    return module == f"edge_agent.{area}" or module.startswith(f"edge_agent.{area}.")


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    # a package's __init__ is imported by its children implicitly; it must stay empty of imports
    cycles = [c for m in graph if (c := _cycle_from(m, graph))]
    assert cycles == []


def test_nothing_below_the_cli_imports_it() -> None:
    graph = import_graph()
    offenders = {
        (m, t)
        for m, targets in graph.items()
        if not _in(m, "cli") and m != "edge_agent.__main__"
        for t in targets
        if _in(t, "cli")
    }
    assert offenders == set()


def test_stages_never_load_config_files_nor_the_agent() -> None:
    graph = import_graph()
    upward = ("edge_agent.config", "edge_agent.agent", "edge_agent.registry")
    offenders = {
        (m, t)
        for m, targets in graph.items()
        if any(_in(m, s) for s in STAGES)
        for t in targets
        if t in upward
    }
    assert offenders == set()


def test_detection_never_imports_training() -> None:
    graph = import_graph()
    offenders = {
        (m, t) for m, ts in graph.items() if _in(m, "detect") for t in ts if _in(t, "train")
    }
    assert offenders == set()


def test_the_twins_reads_never_import_its_write_path() -> None:
    # twin/store_reads.py is the store's read side (SignalStore inherits it): the write
    # path (store.py, the rollup buffer, the SQL layout) stays out of it.
    graph = import_graph()
    write_path = {"edge_agent.twin.store", "edge_agent.twin.rollup_buffer",
                  "edge_agent.twin.sql_layout"}  # fmt: skip
    assert "edge_agent.twin.store_reads" in graph["edge_agent.twin.store"]
    assert graph["edge_agent.twin.store_reads"] & write_path == set()


def test_a_cycle_is_found_when_there_is_one() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycle_from("a", graph) == ["a", "b", "c", "a"]
    assert _cycle_from("d", graph) is None


def test_loading_the_config_imports_no_runtime_library() -> None:
    code = (
        "import sys, edge_agent.config\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_run_command_imports_none_of_the_areas_tools() -> None:
    # `run` builds only the core commands' parser: the areas' CLI modules (training,
    # the twin's tools...) cost about 0.2 s and 13 MB before READY.
    code = (
        "import sys\n"
        "from edge_agent.cli.main import build_parser, command_of, CORE_COMMANDS\n"
        "argv = ['--log-level', 'info', 'run', '--config', 'x.yaml']\n"
        "build_parser(areas=command_of(argv) not in CORE_COMMANDS).parse_args(argv)\n"
        "print(' '.join(m for m in sys.modules if m.startswith('edge_agent.cli.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # cli.flags: the shared flag types (durations, renamed flags), a few lines of argparse
    assert sorted(out.stdout.split()) == ["edge_agent.cli.flags", "edge_agent.cli.main"]


def test_run_forks_its_config_child_before_asyncio_is_imported() -> None:
    # Everything imported before the fork delays the config child, the critical path
    # to READY at 10,000 signals: the child needs the config models, not asyncio.
    code = (
        "import sys, edge_agent.cli.main, edge_agent.config_fork\n"
        f"print(' '.join(m for m in ('asyncio', *{HEAVY!r}) if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
