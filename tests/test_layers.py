"""Code layer (no Redis): the folders are the layers: every import of the app code runs down the
table below.

Read with ``ast``, not by importing, so an import inside a function counts as much as one at
the top. A failure names the file, the line and the import, and the layers it broke.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP_CODE = ("app.py", "gateway", "flows")

# Each layer, and the other layers its modules may import.
ALLOWED: dict[str, set[str]] = {
    "wiring": {"cli", "web", "outbox", "flows", "services", "store", "providers", "leaf"},
    "cli": {"web", "outbox", "flows", "services", "store", "providers", "leaf"},
    # /healthz reads the outbox workers' health; delivery reports keep the outbox's retention.
    "web": {"flows", "outbox", "services", "store", "providers", "leaf"},
    "flows": {"store", "leaf"},
    "outbox": {"store", "providers", "leaf"},
    # The objects an app shares: views and commands reach the store through it.
    "services": {"store", "leaf"},
    # The console provider keeps what it "sent" in Redis, for the simulator to show.
    "providers": {"store", "leaf"},
    # The appointment lifecycle is handed in (``Store(client, settings, lifecycle)``): the
    # store applies the rules of flows/ without importing a flow.
    "store": {"leaf"},
    "leaf": set(),
}

# Modules a layer may not import although their layer is allowed: flows know no Redis key,
# run no script and open no connection; they go through the Store's methods.
NEVER: dict[str, set[str]] = {
    "flows": {"gateway.store.keys", "gateway.store.scripts", "gateway.store.redisconn"}
}

# Which layer a module is in: the longest matching name wins.
LAYER_OF: dict[str, str] = {
    "app": "wiring",
    "gateway.firstrun": "wiring",
    "gateway.cli": "cli",
    "gateway.web": "web",
    "flows": "flows",
    "gateway.outbox": "outbox",
    "gateway.services": "services",
    "gateway.providers": "providers",
    "gateway.store": "store",
    # Leaves: small modules every layer may use, which use no layer above them.
    "gateway": "leaf",
    "gateway.codes": "leaf",
    "gateway.config": "leaf",
    "gateway.embedded": "leaf",
    "gateway.errors": "leaf",
    "gateway.inbound": "leaf",
    "gateway.logs": "leaf",
    "gateway.phones": "leaf",
    "gateway.sample": "leaf",
    # The message catalogue and its SMS renderer: the flows reply with it and the outbox
    # renders queued SMS with it at send time (codes are never stored), so it is a leaf both
    # import, inside flows/ where the texts live.
    "flows.messages": "leaf",
}


@dataclass(frozen=True)
class Edge:
    """One import: who imports what, and where it is written."""

    source: str
    target: str
    file: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: `{self.text}`"


def module_name(path: Path) -> str:
    """``gateway/store/__init__.py`` → ``gateway.store``."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def app_files() -> list[Path]:
    """Every Python file of the app code."""
    files = []
    for top in APP_CODE:
        path = ROOT / top
        files.extend([path] if path.is_file() else sorted(path.rglob("*.py")))
    return files


def is_app_module(name: str) -> bool:
    return name.split(".")[0] in {"app", "gateway", "flows"}


def targets(node: ast.Import | ast.ImportFrom, package: str, modules: set[str]) -> list[str]:
    """The app modules an import statement names (a name imported from a package counts as
    the submodule when there is one)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join(anchor + ([base] if base else []))
    names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
    return list(dict.fromkeys(names))


def edges_of(source: str, code: str, file: str, package: str, modules: set[str]) -> list[Edge]:
    """The imports of app modules that one module's code makes."""
    found = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            text = ast.get_source_segment(code, node) or ""
            for target in targets(node, package, modules):
                if is_app_module(target) and target != source:
                    found.append(Edge(source, target, file, node.lineno, " ".join(text.split())))
    return found


def all_edges() -> list[Edge]:
    """Every import between app modules."""
    files = {module_name(path): path for path in app_files()}
    found = []
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found += edges_of(
            name, path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)), package, set(files)
        )
    return found


def layer_of(module: str) -> str | None:
    """The layer of a module, from the longest name in LAYER_OF it falls under."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in LAYER_OF:
            return LAYER_OF[".".join(parts[:end])]
    return None


def wrong_way(edges: list[Edge]) -> list[str]:
    """One line per import that runs against the table."""
    lines = []
    for edge in edges:
        here, there = layer_of(edge.source), layer_of(edge.target)
        if here != there and there not in ALLOWED[here]:
            lines.append(
                f"{edge}: {here} may not import {there} "
                f"(allowed: {', '.join(sorted(ALLOWED[here])) or 'nothing'})"
            )
        elif edge.target in NEVER.get(here, ()):
            lines.append(f"{edge}: {here} may not import {edge.target}")
    return lines


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every group of nodes that import one another, round or through others (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def module_graph(edges: list[Edge]) -> dict[str, set[str]]:
    """Who imports whom; a package's own modules importing it while it loads are left out."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        if not edge.source.startswith(edge.target + "."):
            graph.setdefault(edge.source, set()).add(edge.target)
    return graph


def describe_cycle(group: list[str], edges: list[Edge]) -> str:
    """A cycle, with the imports that close it."""
    inside = [
        str(e)
        for e in edges
        if e.source in group and e.target in group and not e.source.startswith(e.target + ".")
    ]
    return " ↔ ".join(group) + "\n    " + "\n    ".join(inside)


# -- the app code -----------------------------------------------------------------------------


def test_every_module_has_a_layer():
    unplaced = sorted({name for name in map(module_name, app_files()) if layer_of(name) is None})
    assert not unplaced, f"put these modules in LAYER_OF: {unplaced}"


def test_every_import_runs_down_the_layers():
    wrong = wrong_way(all_edges())
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_no_modules_import_each_other():
    edges = all_edges()
    found = cycles(module_graph(edges))
    assert not found, "import cycles:\n" + "\n".join(describe_cycle(g, edges) for g in found)


def test_the_layer_table_has_no_cycle():
    assert cycles({layer: set(allowed) for layer, allowed in ALLOWED.items()}) == []
    assert set(LAYER_OF.values()) <= set(ALLOWED)


# -- the check itself --------------------------------------------------------------------------


def test_a_reverse_import_is_named_with_its_file_and_line():
    code = "import json\n\nfrom gateway import keys\nfrom flows import lifecycle\n"
    modules = {"gateway.store.keys", "flows.lifecycle", "gateway.store"}
    edges = edges_of("gateway.store", code, "gateway/store/__init__.py", "gateway.store", modules)
    assert wrong_way(edges) == [
        "gateway/store/__init__.py:4: `from flows import lifecycle`: store may not import "
        "flows (allowed: leaf)"
    ]


def test_a_flow_reaching_for_a_key_is_named():
    code = "from gateway.store import Store, keys\n"
    edges = edges_of(
        "flows.router", code, "flows/router.py", "flows", {"gateway.store", "gateway.store.keys"}
    )
    assert wrong_way(edges) == [
        "flows/router.py:1: `from gateway.store import Store, keys`: flows may not import "
        "gateway.store.keys"
    ]


def test_an_import_inside_a_function_counts():
    code = "def later():\n    from gateway.web import webhooks\n"
    edges = edges_of(
        "gateway.outbox",
        code,
        "gateway/outbox/__init__.py",
        "gateway.outbox",
        {"gateway.web.webhooks"},
    )
    assert [str(e) for e in edges] == [
        "gateway/outbox/__init__.py:2: `from gateway.web import webhooks`"
    ]
    assert "outbox may not import web" in wrong_way(edges)[0]


def test_a_cycle_through_a_third_module_is_found():
    graph = {
        "flows.a": {"flows.b"},
        "flows.b": {"gateway.store"},
        "gateway.store": {"flows.a"},
        "gateway.codes": set(),
    }
    assert cycles(graph) == [["flows.a", "flows.b", "gateway.store"]]
