"""The import rules of our packages, read from the source with `ast` (nothing is imported).

- `reconciler/` never imports `handlers`, `scheduler` or `stripe_sandbox`, except its
  composition roots `reconciler.cli` and `reconciler.runtime` (modules or packages);
- `stripe_sandbox/` imports nothing of ours;
- no import cycles between modules of reconciler/, handlers/, scheduler/ and stripe_sandbox/.

Every import statement counts, those inside functions too (a lazy import is still a
dependency, only a later one), except those under `if TYPE_CHECKING:`, which never run: they
cannot close a cycle. They still break the layering rules, which are about what a package may
know of, not about what runs. `importlib.import_module("...")` calls are not seen.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("reconciler", "handlers", "scheduler", "stripe_sandbox")
OURS = frozenset({*CHECKED, "tests", "bench"})
COMPOSITION_ROOTS = ("reconciler.cli", "reconciler.runtime")


@dataclass(frozen=True)
class Import:
    """One module importing another, as written at one line."""

    importer: str
    target: str
    line: int
    statement: str
    type_only: bool = False
    # True for the edge to a package whose `__init__` runs because a submodule was imported.
    implied: bool = False

    def describe(self) -> str:
        how = f" (importing a submodule runs {self.target}/__init__)" if self.implied else ""
        return f"{self.importer}:{self.line} `{self.statement}`{how}"


def find_modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under each package directory."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(
    nodes: Iterable[ast.AST], type_only: bool = False
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement, anywhere (functions, try blocks...), flagged if type-only."""
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, type_only
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _import_nodes(node.body, True)
            yield from _import_nodes(node.orelse, type_only)
        else:
            yield from _import_nodes(ast.iter_child_nodes(node), type_only)


class ImportGraph:
    """The imports of a set of packages under `root`, resolved to module names."""

    def __init__(self, root: Path, packages: Iterable[str]) -> None:
        self.modules = find_modules(root, packages)
        self._packages = {name for name, path in self.modules.items() if path.name == "__init__.py"}
        # A package whose __init__ imports nothing cannot be part of a cycle: no implied edge.
        self._importing_inits = {
            name
            for name in self._packages
            if any(True for _ in _import_nodes([ast.parse(self.modules[name].read_text())]))
        }
        self.imports = [i for name in self.modules for i in self._imports_of(name)]

    def _imports_of(self, name: str) -> Iterator[Import]:
        path = self.modules[name]
        tree = ast.parse(path.read_text(), str(path))
        own_package = name if name in self._packages else name.rpartition(".")[0]
        for node, type_only in _import_nodes([tree]):
            statement = ast.unparse(node)
            for target in self._targets(node, own_package):
                if target == name:
                    continue
                yield Import(name, target, node.lineno, statement, type_only)
                yield from self._implied(name, target, node.lineno, statement, type_only)

    def _targets(self, node: ast.Import | ast.ImportFrom, own_package: str) -> list[str]:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        base = node.module or ""
        if node.level:
            anchor = own_package.split(".")
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, *([base] if base else [])])
        # `from pkg import name` imports the module `pkg.name` if there is one, else `pkg`.
        return [
            f"{base}.{alias.name}" if f"{base}.{alias.name}" in self.modules else base
            for alias in node.names
        ]

    def _implied(
        self, importer: str, target: str, line: int, statement: str, type_only: bool
    ) -> Iterator[Import]:
        """Importing `a.b.c` runs `a/__init__` and `a/b/__init__` first.

        That is an edge from the importer to each such package whose __init__ imports
        something, except the importer's own packages: those are already loaded (or loading)
        when it runs, so a package re-exporting its submodules is no cycle.
        """
        parts = target.split(".")
        for depth in range(1, len(parts)):
            package = ".".join(parts[:depth])
            inside = importer == package or importer.startswith(package + ".")
            if package in self._importing_inits and not inside:
                yield Import(importer, package, line, statement, type_only, implied=True)


def top_level(module: str) -> str:
    return module.split(".")[0]


def forbidden_imports(graph: ImportGraph) -> list[str]:
    """Every import that breaks a layering rule, described."""
    found = []
    for imp in graph.imports:
        if imp.implied:
            continue
        layer, target = top_level(imp.importer), top_level(imp.target)
        root = any(imp.importer == r or imp.importer.startswith(r + ".") for r in COMPOSITION_ROOTS)
        if layer == "reconciler" and target in {"handlers", "scheduler", "stripe_sandbox"}:
            if not root:
                found.append(f"{imp.importer} imports {imp.target}: {imp.describe()}")
        elif layer == "stripe_sandbox" and target in OURS - {"stripe_sandbox"}:
            found.append(f"{imp.importer} imports {imp.target}: {imp.describe()}")
    return found


def find_cycles(graph: ImportGraph) -> list[list[Import]]:
    """For each import that lies on a cycle, the shortest cycle through it (deduplicated).

    Every offending import appears in at least one reported cycle, without listing the
    exponentially many cycles a tangle can hold.
    """
    edges: dict[str, dict[str, Import]] = {}
    for imp in graph.imports:
        if imp.type_only or imp.target not in graph.modules:
            continue
        # One edge per pair: a direct import is the one worth naming over an implied one.
        known = edges.setdefault(imp.importer, {}).get(imp.target)
        if known is None or (known.implied and not imp.implied):
            edges[imp.importer][imp.target] = imp
    cycles: dict[tuple[str, ...], list[Import]] = {}
    for source, targets in edges.items():
        for target, first in targets.items():
            rest = _shortest_path(edges, target, source)
            if rest is None:
                continue
            cycle = [first, *rest]
            names = [imp.importer for imp in cycle]
            start = names.index(min(names))  # one spelling per cycle, whatever its first edge
            key = tuple(names[start:] + names[:start])
            cycles.setdefault(key, cycle[start:] + cycle[:start])
    return [cycles[key] for key in sorted(cycles)]


def _shortest_path(
    edges: dict[str, dict[str, Import]], start: str, goal: str
) -> list[Import] | None:
    came: dict[str, Import | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            path = []
            while (step := came[node]) is not None:
                path.append(step)
                node = step.importer
            return path[::-1]
        for target, imp in edges.get(node, {}).items():
            if target not in came:
                came[target] = imp
                queue.append(target)
    return None


def format_cycle(cycle: list[Import]) -> str:
    names = " -> ".join([imp.importer for imp in cycle] + [cycle[0].importer])
    return "\n".join([names, *(f"    {imp.describe()}" for imp in cycle)])


# The rules on our tree.


def test_layering_rules_hold() -> None:
    found = forbidden_imports(ImportGraph(ROOT, CHECKED))
    assert not found, "forbidden imports:\n" + "\n".join(found)


def test_no_import_cycles() -> None:
    cycles = find_cycles(ImportGraph(ROOT, CHECKED))
    assert not cycles, "import cycles:\n" + "\n".join(format_cycle(c) for c in cycles)


def test_the_graph_sees_our_packages() -> None:
    graph = ImportGraph(ROOT, CHECKED)
    assert {"reconciler.cli", "handlers.app", "stripe_sandbox.api"} <= graph.modules.keys()
    assert any(
        (imp.importer, imp.target) == ("stripe_sandbox.app", "stripe_sandbox.api")
        for imp in graph.imports
    )


# The checker itself, on a tree made for it.


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_checker_reports_cycles_through_lazy_imports_and_ignores_type_checking(
    tmp_path: Path,
) -> None:
    _write(
        tmp_path,
        {
            "reconciler/__init__.py": "",
            "reconciler/apply/__init__.py": (
                "from .events import handle\nfrom .payments import apply_payment\n"
            ),
            "reconciler/apply/payments.py": (
                "def apply_payment():\n    from .refunds import apply_refund\n"
                "    return apply_refund\n"
            ),
            "reconciler/apply/refunds.py": "from reconciler.apply import payments\n",
            # Type-only in one direction: no cycle between ledger and money.
            "reconciler/ledger.py": "from reconciler import money\n",
            "reconciler/money.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                "    from reconciler.ledger import Ledger\n"
            ),
            # Outside reconciler.apply, importing a submodule runs apply/__init__.
            "reconciler/worker.py": "import reconciler.apply.refunds\n",
            "reconciler/apply/events.py": "from reconciler import worker\n",
        },
    )
    cycles = find_cycles(ImportGraph(tmp_path, ["reconciler"]))
    assert [format_cycle(c).splitlines()[0] for c in cycles] == [
        "reconciler.apply -> reconciler.apply.events -> reconciler.worker -> reconciler.apply",
        "reconciler.apply.payments -> reconciler.apply.refunds -> reconciler.apply.payments",
    ]
    through_init = format_cycle(cycles[0])
    assert (
        "reconciler.worker:1 `import reconciler.apply.refunds` "
        "(importing a submodule runs reconciler.apply/__init__)"
    ) in through_init
    lazy = format_cycle(cycles[1])
    assert "reconciler.apply.payments:2 `from .refunds import apply_refund`" in lazy
    assert "reconciler.apply.refunds:1 `from reconciler.apply import payments`" in lazy


def test_checker_reports_forbidden_imports_but_not_composition_roots(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "reconciler/__init__.py": "",
            "reconciler/gateway.py": "def fake():\n    import stripe_sandbox.app\n",
            "reconciler/types.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                "    from handlers.app import App\n"
            ),
            "reconciler/cli/__init__.py": "from handlers import app\n",
            "reconciler/cli/serve.py": "import scheduler\n",
            "reconciler/runtime.py": "from stripe_sandbox import server\n",
            "handlers/__init__.py": "",
            "handlers/app.py": "import reconciler.gateway\n",
            "scheduler/__init__.py": "",
            "stripe_sandbox/__init__.py": "",
            "stripe_sandbox/app.py": "from . import server\nfrom tests.factories import pay\n",
            "stripe_sandbox/server.py": "import httpx\n",
        },
    )
    graph = ImportGraph(tmp_path, ["reconciler", "handlers", "scheduler", "stripe_sandbox"])
    assert forbidden_imports(graph) == [
        "reconciler.gateway imports stripe_sandbox.app: "
        "reconciler.gateway:2 `import stripe_sandbox.app`",
        "reconciler.types imports handlers.app: reconciler.types:3 `from handlers.app import App`",
        "stripe_sandbox.app imports tests.factories: "
        "stripe_sandbox.app:2 `from tests.factories import pay`",
    ]
    assert find_cycles(graph) == []
