"""The package's shape, read from its source: the data flow of ../shared/DESIGN.md, enforced.

Every module of the package (``kvmviz/*.py``, the stage folders' ``kvmviz/<stage>/*.py``, and
a module split into a folder of files, ``kvmviz/exercises/``: its ``__init__.py`` is
``kvmviz.exercises``) is parsed with :mod:`ast`, nothing is imported. A module is named by its
stem (``kvmviz.plot`` for ``kvmviz/views/plot.py``: stems are unique, and the package answers
to both names). An import anywhere in a module counts: at the top, inside a function (a
*deferred* import, such as ``Run.summary``'s ``from ..stats.metrics import summarize``), under
``if TYPE_CHECKING:``.
``from ..views import x`` is an edge to the submodule ``kvmviz.x`` when there is one, and to
the package (its ``__init__``) for any other name. From those edges:

* the import graph has no cycle, deferred imports included;
* the views (plot, timelines, animate) reach neither the engine nor the experiments, directly
  or through anything they import, and never call ``simulate``;
* only the experiments and the controllers (widgets, cli, gallery) call ``simulate``; the
  exercises (every module of ``kvmviz/exercises/``) may run one simulation per oracle, never one
  per loop turn;
* the model modules import no matplotlib, ipywidgets or seaborn when they are imported (a
  function may import one when it is called).

Each failure names the module and the line. The first tests run the checks on small made-up
sources, to show what each one catches.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "kvmviz"
# The stage folders, in the order the data flows (docs/architecture.md), and the shared helpers.
STAGES = ("inputs", "model", "stats", "views", "_shared")
# Folders whose __init__.py is no module of the flow: the stage folders, the style sheets.
NOT_MODULES = (*STAGES, "styles")


def _module_files() -> dict[str, Path]:
    """Every module's file by stem. A folder that is not a stage folder is one module split
    into files: its ``__init__.py`` is the module named by the folder (``kvmviz/exercises/
    __init__.py`` is ``kvmviz.exercises``), each of its other files a module of its own."""
    files: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        folder = path.parent.relative_to(PACKAGE).as_posix()
        if path.name != "__init__.py":
            stem = path.stem
        elif path.parent == PACKAGE:
            stem = "__init__"
        elif folder not in NOT_MODULES:
            stem = path.parent.name
        else:
            continue
        assert stem not in files, f"two modules named {stem}: {files[stem]} and {path}"
        files[stem] = path
    return files


FILES = _module_files()
SUBMODULES = set(FILES) - {"__init__"}
# The modules of kvmviz.exercises (the package's __init__ and each file of the folder).
EXERCISES = tuple(stem for stem, path in FILES.items() if path.parent == PACKAGE / "exercises")
# Packages whose ``from <package> import x`` names a submodule x (or a name of the __init__).
_PACKAGES = (
    "kvmviz",
    *(f"kvmviz.{s}" for s in STAGES),
    *(
        f"kvmviz.{stem}"
        for stem, path in FILES.items()
        if path.name == "__init__.py" and stem != "__init__"
    ),
)


def _in(*folders: str) -> tuple[str, ...]:
    """The modules whose files lie in these folders of the package, by stem."""
    return tuple(stem for stem, path in FILES.items() if path.parent.name in folders)


# The stages are read off the folders, so a file added to views/ is held to the views' rules.
VIEWS = _in("views")
CONTROLLERS = ("cli", "gallery", *_in("widgets"))
MAY_SIMULATE = ("experiments", *CONTROLLERS)
MODEL = _in("inputs", "model", "stats")  # everything left of the views
GUI_LIBRARIES = ("matplotlib", "ipywidgets", "seaborn")
FORBIDDEN_TO_VIEWS = ("kvmviz.engine", "kvmviz.experiments")


# -- reading imports and calls out of the source ------------------------------------------------
@dataclass(frozen=True)
class Import:
    """One import statement's target, as read from the source."""

    source: str  # the importing module, "kvmviz.run"
    target: str  # "kvmviz.metrics", "kvmviz" (the package) or an outside name, "matplotlib"
    line: int
    deferred: bool  # inside a function or a class body's method
    type_checking: bool  # under ``if TYPE_CHECKING:``

    @property
    def where(self) -> str:
        return f"{_path(_stem(self.source))}:{self.line}"


def _path(stem: str) -> str:
    """Where a module's file is, from the project root: ``kvmviz/views/plot.py``."""
    return FILES[stem].relative_to(ROOT).as_posix() if stem in FILES else f"{_path(stem)}"


def _package(stem: str) -> list[str]:
    """The package a module's file lives in, as parts: ``["kvmviz", "views"]``."""
    if stem not in FILES:
        return ["kvmviz"]
    return list(FILES[stem].parent.relative_to(ROOT).parts)


def _logical(dotted: str) -> str:
    """A real module path as the graph names it: ``kvmviz.views.plot`` -> ``kvmviz.plot``."""
    parts = dotted.split(".")
    if parts[0] == "kvmviz" and len(parts) > 1 and parts[-1] in SUBMODULES:
        return f"kvmviz.{parts[-1]}"
    return dotted


def _module_name(stem: str) -> str:
    return "kvmviz" if stem == "__init__" else f"kvmviz.{stem}"


def _stem(module: str) -> str:
    return "__init__" if module == "kvmviz" else module.removeprefix("kvmviz.")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(source: str, stem: str) -> list[Import]:
    """Every import of a module's source, at any depth, resolved to module names."""
    module = _module_name(stem)
    found: list[Import] = []

    def add(target: str, node: ast.AST, deferred: bool, type_checking: bool) -> None:
        found.append(Import(module, target, node.lineno, deferred, type_checking))

    def resolve_from(node: ast.ImportFrom) -> list[str]:
        if node.level:  # relative to the module's own package
            package = _package(stem)
            package = package[: max(1, len(package) - (node.level - 1))]
            base = ".".join(package + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        if base not in _PACKAGES:
            return [_logical(base)]
        # ``from ..views import x``: the submodule x, or a name of the package's __init__.
        return [f"kvmviz.{a.name}" if a.name in SUBMODULES else base for a in node.names]

    def visit(node: ast.AST, deferred: bool, type_checking: bool) -> None:
        for child in ast.iter_child_nodes(node):
            child_deferred = deferred or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            )
            child_tc = type_checking
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    visit_stmt(stmt, child_deferred, True)
                for stmt in child.orelse:
                    visit_stmt(stmt, child_deferred, type_checking)
                continue
            visit_stmt(child, child_deferred, child_tc)

    def visit_stmt(node: ast.AST, deferred: bool, type_checking: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(_logical(alias.name), node, deferred, type_checking)
        elif isinstance(node, ast.ImportFrom):
            for target in dict.fromkeys(resolve_from(node)):
                add(target, node, deferred, type_checking)
        visit(node, deferred, type_checking)

    visit(ast.parse(source), False, False)
    return found


def _is_simulate(node: ast.AST) -> bool:
    """A reference to ``simulate``: the name, or an attribute such as ``kv.simulate``."""
    return (isinstance(node, ast.Name) and node.id == "simulate") or (
        isinstance(node, ast.Attribute) and node.attr == "simulate"
    )


def simulate_calls(source: str) -> list[int]:
    """The lines that call ``simulate(...)`` (by name or as an attribute)."""
    return sorted(
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and _is_simulate(node.func)
    )


def simulate_references(source: str) -> list[int]:
    """The lines that name ``simulate`` at all: a call, an import, or passing it along."""
    lines = [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if _is_simulate(node) and isinstance(getattr(node, "ctx", ast.Load()), ast.Load)
    ]
    lines += [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and any(a.name == "simulate" for a in node.names)
    ]
    return sorted(set(lines))


def _repeated_parts(node: ast.AST) -> list[ast.AST]:
    """The parts of a loop that run once per turn (a ``for``'s iterable runs once)."""
    if isinstance(node, (ast.For, ast.AsyncFor)):
        return list(node.body)
    if isinstance(node, ast.While):
        return [node.test, *node.body]
    if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp)):
        parts = [node.elt]
    elif isinstance(node, ast.DictComp):
        parts = [node.key, node.value]
    else:
        return []
    for i, gen in enumerate(node.generators):
        parts += list(gen.ifs) + ([gen.iter] if i else [])
    return parts


def looped_simulations(source: str) -> list[tuple[int, str]]:
    """``(line, what)`` for each ``simulate`` run once per turn of a loop or comprehension.

    ``what`` is ``"simulate"`` or the module's own function that (itself or through another of
    the module's functions) calls it: a loop over a helper that simulates is a loop over
    ``simulate``. ``map(simulate, ...)`` counts as a loop too.
    """
    tree = ast.parse(source)
    functions = {
        node.name: node
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }

    def called_names(node: ast.AST) -> set[str]:
        return {
            n.func.id
            for n in ast.walk(node)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
        }

    simulating = {name for name, fn in functions.items() if any(map(_is_simulate, ast.walk(fn)))}
    grew = True
    while grew:  # functions that call a simulating function simulate too
        more = {n for n, fn in functions.items() if called_names(fn) & simulating} - simulating
        simulating |= more
        grew = bool(more)

    def runs_simulate(n: ast.AST) -> str | None:
        if isinstance(n, ast.Call):
            if _is_simulate(n.func):
                return "simulate"
            if isinstance(n.func, ast.Name) and n.func.id in simulating:
                return n.func.id
            if isinstance(n.func, ast.Name) and n.func.id == "map":
                if any(_is_simulate(a) for a in n.args):
                    return "simulate"
                if any(isinstance(a, ast.Name) and a.id in simulating for a in n.args):
                    return next(a.id for a in n.args if isinstance(a, ast.Name))
        return None

    found = set()
    for node in ast.walk(tree):
        for part in _repeated_parts(node):
            for n in ast.walk(part):
                what = runs_simulate(n)
                if what:
                    found.add((n.lineno, what))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "map" and runs_simulate(node):
                found.add((node.lineno, runs_simulate(node)))
    return sorted(found)


# -- the package, read once -------------------------------------------------------------------
SOURCES = {stem: path.read_text(encoding="utf-8") for stem, path in FILES.items()}
IMPORTS = {stem: imports_of(text, stem) for stem, text in SOURCES.items()}
EDGES = [
    imp
    for imps in IMPORTS.values()
    for imp in imps
    if imp.target == "kvmviz" or imp.target.startswith("kvmviz.")
]


def _graph(edges) -> dict[str, list[Import]]:
    graph: dict[str, list[Import]] = {_module_name(s): [] for s in SOURCES}
    for imp in edges:
        graph.setdefault(imp.source, []).append(imp)
    return graph


GRAPH = _graph(EDGES)


def find_cycle(graph: dict[str, list[Import]]) -> list[Import] | None:
    """One cycle of the graph as its edges, or None (a depth-first search)."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[Import] = []

    def dfs(node: str) -> list[Import] | None:
        state[node] = 1
        for edge in graph.get(node, []):
            if state.get(edge.target) == 1:
                start = next((i for i, e in enumerate(path) if e.source == edge.target), len(path))
                return [*path[start:], edge]
            if edge.target not in state:
                path.append(edge)
                cycle = dfs(edge.target)
                if cycle:
                    return cycle
                path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = dfs(node)
            if cycle:
                return cycle
    return None


def reach(graph: dict[str, list[Import]], start: str) -> dict[str, list[Import]]:
    """Every module ``start`` imports, directly or not, with the chain of imports to it."""
    chains: dict[str, list[Import]] = {}
    frontier = [(start, [])]
    while frontier:
        node, chain = frontier.pop(0)  # breadth first: the shortest chain is kept
        for edge in graph.get(node, []):
            if edge.target not in chains and edge.target != start:
                chains[edge.target] = [*chain, edge]
                frontier.append((edge.target, chains[edge.target]))
    return chains


def _chain(chain: list[Import]) -> str:
    return " -> ".join(f"{e.target} ({e.where})" for e in chain)


# -- the checks on made-up sources ------------------------------------------------------------
def test_a_stage_folders_relative_imports_resolve_to_modules_by_stem():
    """In ``kvmviz/model/run.py``, ``..stats.metrics`` is ``kvmviz.metrics``, ``.engine`` is
    ``kvmviz.engine``, ``from ..views import plot`` the module and ``from .. import x`` the
    package's ``__init__`` for a name that is no module."""
    source = (
        "from ..stats.metrics import summarize\n"
        "from .engine import simulate\n"
        "from ..views import plot\n"
        "from .. import __version__\n"
        "import kvmviz.views.theme\n"
    )
    got = [i.target for i in imports_of(source, "run")]
    assert got == ["kvmviz.metrics", "kvmviz.engine", "kvmviz.plot", "kvmviz", "kvmviz.theme"]


def test_an_import_counts_at_any_depth_deferred_and_type_checking_ones_too():
    """A top-level, a deferred (inside a method) and a TYPE_CHECKING import are all found,
    each with its line and how it was made; ``from . import x`` resolves to the submodule.
    (``a_top`` is a made-up module at the package's top; the stage folders' relative imports
    are resolved in the next test.)"""
    source = (
        "from typing import TYPE_CHECKING\n"  # 1
        "from .kernels import rule\n"  # 2
        "if TYPE_CHECKING:\n"  # 3
        "    from .scenario import Scenario\n"  # 4
        "class Run:\n"  # 5
        "    def summary(self):\n"  # 6
        "        from .metrics import summarize\n"  # 7
        "        from . import theme, __version__\n"  # 8
        "        import matplotlib.pyplot as plt\n"  # 9
    )
    got = [(i.target, i.line, i.deferred, i.type_checking) for i in imports_of(source, "a_top")]
    assert got == [
        ("typing", 1, False, False),
        ("kvmviz.kernels", 2, False, False),
        ("kvmviz.scenario", 4, False, True),
        ("kvmviz.metrics", 7, True, False),
        ("kvmviz.theme", 8, True, False),
        ("kvmviz", 8, True, False),
        ("matplotlib.pyplot", 9, True, False),
    ]


def test_a_cycle_through_a_deferred_import_is_found_and_named_by_line():
    """engine imports metrics at the top, metrics imports engine inside a function: a cycle,
    reported as its two edges with their lines."""
    edges = imports_of("from .metrics import summarize\n", "engine") + imports_of(
        "def f():\n    from .engine import simulate\n", "metrics"
    )
    cycle = find_cycle(_graph(edges))
    assert [(e.source, e.target, e.line) for e in cycle] == [
        ("kvmviz.engine", "kvmviz.metrics", 1),
        ("kvmviz.metrics", "kvmviz.engine", 2),
    ]
    assert find_cycle(_graph(edges[:1])) is None


def test_simulate_calls_and_loops_over_it_are_told_apart():
    """One call of simulate is a call; inside a for, a while, a comprehension, a map, or
    through a helper called in a loop, it runs once per turn. A for's iterable runs once."""
    source = (
        "def once(s):\n"  # 1
        "    return simulate(s)\n"  # 2
        "def many(ss):\n"  # 3
        "    for s in ss:\n"  # 4
        "        once(s)\n"  # 5
        "    runs = [kv.simulate(s) for s in ss]\n"  # 6
        "    while ss:\n"  # 7
        "        simulate(ss.pop())\n"  # 8
        "    list(map(simulate, ss))\n"  # 9
        "    for run in [simulate(ss[0])]:\n"  # 10
        "        pass\n"  # 11
    )
    assert simulate_calls(source) == [2, 6, 8, 10]
    assert looped_simulations(source) == [
        (5, "once"),
        (6, "simulate"),
        (8, "simulate"),
        (9, "simulate"),
    ]
    assert looped_simulations("def f(s):\n    return simulate(s)\n") == []


# -- the package ------------------------------------------------------------------------------
def test_every_module_is_read_and_the_known_edges_are_seen():
    """All of kvmviz/*.py parse; the graph holds engine -> run at the top and Run.summary's
    deferred run -> metrics, so the checks below look at the real edges."""
    assert {"engine", "run", "metrics", "experiments", "plot", "__init__"} <= set(SOURCES)
    engine_run = [e for e in GRAPH["kvmviz.engine"] if e.target == "kvmviz.run"]
    assert engine_run and not engine_run[0].deferred
    run_metrics = [e for e in GRAPH["kvmviz.run"] if e.target == "kvmviz.metrics"]
    assert [(e.deferred, e.type_checking) for e in run_metrics] == [(True, False)]


def test_the_import_graph_has_no_cycle_deferred_imports_included():
    """No chain of imports, top-level, deferred or TYPE_CHECKING, leads a module back to
    itself."""
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(
        [cycle[0].source] + [f"{e.target} ({e.where})" for e in cycle]
    )


def test_run_summary_imports_metrics_and_metrics_never_reaches_run():
    """Run.summary's deferred ``from .metrics import summarize`` is kept as an edge: it is no
    cycle, because nothing metrics imports, at any depth, imports run."""
    chains = reach(GRAPH, "kvmviz.metrics")
    assert "kvmviz.run" not in chains, "metrics reaches run: " + _chain(chains["kvmviz.run"])
    assert "kvmviz.metrics" in reach(GRAPH, "kvmviz.run")


@pytest.mark.parametrize("view", VIEWS)
def test_a_view_reaches_neither_the_engine_nor_the_experiments(view):
    """A view draws what it is given: nothing it imports, directly or through other modules
    (the package's __init__ included), is kvmviz.engine or kvmviz.experiments."""
    chains = reach(GRAPH, f"kvmviz.{view}")
    bad = {m: chains[m] for m in (*FORBIDDEN_TO_VIEWS, "kvmviz") if m in chains}
    assert not bad, "\n".join(f"{_path(view)} reaches {m}: {_chain(c)}" for m, c in bad.items())


@pytest.mark.parametrize("view", VIEWS)
def test_a_view_never_calls_simulate(view):
    """No view calls, imports or passes along ``simulate``."""
    lines = simulate_references(SOURCES[view])
    assert lines == [], f"{_path(view)} names simulate on lines {lines}"


@pytest.mark.parametrize("stem", sorted(set(SOURCES) - {*MAY_SIMULATE, *EXERCISES, "engine"}))
def test_only_the_experiments_and_the_controllers_call_simulate(stem):
    """Outside experiments, widgets, cli and gallery (and the exercises, below), no module
    calls ``simulate``; the engine defines it and does not call itself."""
    lines = simulate_calls(SOURCES[stem])
    assert lines == [], f"{_path(stem)} calls simulate on lines {lines}"


def test_the_engine_does_not_call_simulate_itself():
    """engine.py defines simulate and calls it nowhere."""
    lines = simulate_calls(SOURCES["engine"])
    assert lines == [], f"kvmviz/model/engine.py calls simulate on lines {lines}"


@pytest.mark.parametrize("stem", EXERCISES)
def test_the_exercises_run_one_simulation_per_oracle_never_a_loop_of_them(stem):
    """kvmviz/exercises/ may call simulate (or the experiments) once per oracle; no call of
    simulate, or of one of its own functions that simulates, sits in a loop or comprehension."""
    looped = looped_simulations(SOURCES[stem])
    assert looped == [], f"{_path(stem)} loops over simulate: " + ", ".join(
        f"line {line} ({what})" for line, what in looped
    )


def test_the_exercises_are_a_folder_of_modules():
    """kvmviz.exercises is its folder's __init__ and the folder's files, each read above."""
    assert "exercises" in EXERCISES and len(EXERCISES) > 1
    assert _path("exercises") == "kvmviz/exercises/__init__.py"


@pytest.mark.parametrize("stem", MODEL)
def test_a_model_module_imports_no_gui_library_when_imported(stem):
    """Importing a model module loads no matplotlib, ipywidgets or seaborn: not at its top
    level, nor at the top level of anything it imports at its top level (a function may import
    one when called)."""
    assert stem in SOURCES, f"{_path(stem)} is gone: update MODEL"
    top = _graph(e for e in EDGES if not e.deferred and not e.type_checking)
    offenders = []
    for module in [f"kvmviz.{stem}", *sorted(reach(top, f"kvmviz.{stem}"))]:
        for imp in IMPORTS.get(_stem(module), []):
            if imp.deferred or imp.type_checking:
                continue
            if imp.target.split(".")[0] in GUI_LIBRARIES:
                via = (
                    ""
                    if module == f"kvmviz.{stem}"
                    else f" (via {_chain(reach(top, f'kvmviz.{stem}')[module])})"
                )
                offenders.append(f"{imp.where} imports {imp.target} at module level{via}")
    assert offenders == [], f"{_path(stem)}: " + "; ".join(offenders)


# -- the architecture page matches the tree ---------------------------------------------------
def _page_modules() -> list[str]:
    """The modules named in the first column of docs/architecture.md's module table."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = text.split("## The modules, in the order of the flow", 1)[1].split("\n## ", 1)[0]
    names = []
    for row in table.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[1].startswith("`"):
            names += re.findall(r"`([\w./]+\.py)`", cells[1])
    return names


def test_the_architecture_page_names_every_module_once():
    """docs/architecture.md's table lists every module of the package exactly once, by its path
    inside ``kvmviz/`` (``views/plot.py``), and nothing else."""
    names = _page_modules()
    on_disk = sorted(p.relative_to(PACKAGE).as_posix() for p in FILES.values())
    assert sorted(names) == on_disk
    assert len(names) == len(set(names))


# -- the lazy package -------------------------------------------------------------------------
def test_the_lazy_namespace_says_what_its_type_checking_block_says():
    """kvmviz/__init__.py imports nothing at run time (the CLI's signal handlers come first);
    its ``if TYPE_CHECKING:`` block is what readers and type checkers see, and ``_MODULES`` /
    ``_NAMES`` are what ``__getattr__`` loads. The two say the same, every name of
    ``__all__`` resolves to the object of the module named, and nothing else is imported."""
    import kvmviz

    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    modules, names, where = set(), {}, {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for imp in node.body:
                if imp.module is None or imp.module in STAGES:  # from .views import plot
                    modules |= {a.name: imp.module or "" for a in imp.names}.keys()
                    where |= {a.name: imp.module for a in imp.names if imp.module}
                else:  # from .views.plot import save: the module is "plot"
                    names |= {a.name: imp.module.split(".")[-1] for a in imp.names}
    top_level = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    assert [ast.unparse(n) for n in top_level] == [
        "from __future__ import annotations",
        "from typing import TYPE_CHECKING",
    ] or [ast.unparse(n) for n in top_level] == ["from typing import TYPE_CHECKING"]
    assert modules == set(kvmviz._MODULES)
    assert names == kvmviz._NAMES
    # _MODULES says which stage folder each public module lives in, as the files do
    assert {m: kvmviz._MODULES[m] for m in where} == {m: f"{s}.{m}" for m, s in where.items()}
    for module, dotted in kvmviz._MODULES.items():  # a file, or a folder's __init__
        where = f"kvmviz/{dotted.replace('.', '/')}"
        assert _path(module) in (f"{where}.py", f"{where}/__init__.py")
    assert set(kvmviz.__all__) == modules | set(names)
    for name in kvmviz.__all__:
        module = __import__(f"kvmviz.{kvmviz._NAMES.get(name, name)}", fromlist=["_"])
        expected = module if name in modules else getattr(module, name)
        assert getattr(kvmviz, name) is expected, name


def test_the_stage_folders_list_in_the_order_the_data_flows():
    """``ls kvmviz`` shows the stages in the order of docs/architecture.md's flow (inputs,
    model, stats, views), each folder's ``__init__.py`` says in its docstring what the stage
    takes and gives, and imports nothing (the package stays lazy)."""
    flow = [s for s in STAGES if not s.startswith("_")]
    assert flow == ["inputs", "model", "stats", "views"]
    assert sorted(flow) == flow
    listed = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name in STAGES)
    assert [n for n in listed if not n.startswith("_")] == flow
    for stage in STAGES:
        tree = ast.parse((PACKAGE / stage / "__init__.py").read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), stage
        assert not [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)], stage


def test_every_public_module_answers_to_its_flat_name():
    """``kv.plot``, ``import kvmviz.plot`` and ``from kvmviz.plot import save`` reach the very
    module of ``kvmviz/views/plot.py`` (one object under two names: a monkeypatch, a private
    name in a test, ``__name__`` and ``__spec__`` are the module's own), in a fresh process."""
    import subprocess
    import sys

    code = (
        "import importlib, sys, kvmviz\n"
        "for name, dotted in kvmviz._MODULES.items():\n"
        "    flat = importlib.import_module(f'kvmviz.{name}')\n"
        "    real = sys.modules[f'kvmviz.{dotted}']\n"
        "    assert flat is real is getattr(kvmviz, name), name\n"
        "    assert real.__name__ == real.__spec__.name == f'kvmviz.{dotted}', name\n"
        "from kvmviz.plot import save\n"
        "assert save is sys.modules['kvmviz.views.plot'].save\n"
        "print(len(kvmviz._MODULES))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(__import__("kvmviz")._MODULES) > 0


def test_importing_the_package_loads_nothing_slow():
    """`import kvmviz` (and `kvmviz.cli`, the command's entry point) loads no numpy, numba,
    pandas or matplotlib: a Ctrl-C or `kill` during those imports reaches the CLI's handlers."""
    import subprocess
    import sys

    code = (
        "import sys, kvmviz, kvmviz.cli; "
        "print(sorted(m for m in ('numpy', 'numba', 'pandas', 'matplotlib') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# -- every file is written through _files ----------------------------------------------------
_WRITERS = {"write_text", "write_bytes"}  # pathlib's, whatever the owner
_OWNED_WRITERS = {  # module -> its calls that write or move files
    "os": {"replace", "rename", "renames", "link"},
    "shutil": {"move", "copy", "copyfile", "copy2", "copytree"},
    "tempfile": {"mkstemp", "mkdtemp", "NamedTemporaryFile"},
}
# Where a module writes a file itself, and why that is still _files' writing or no output.
_ALLOWED = {
    ("cli", "open for writing"): "streams each trace into a temporary of _files.staged_files",
    ("_jit", "mkdtemp"): "numba's temporary cache folder, removed at exit: no output",
}


def _writes(source: str) -> list[tuple[int, str]]:
    """(line, what) of each call that creates, writes or moves a file in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "attr", getattr(node.func, "id", ""))
        owner = getattr(getattr(node.func, "value", None), "id", None)
        if name in _WRITERS or name in _OWNED_WRITERS.get(owner, ()):
            found.append((node.lineno, name))
        if name == "open" and isinstance(node.func, ast.Name):
            modes = list(node.args[1:2]) + [k.value for k in node.keywords if k.arg == "mode"]
            if any(isinstance(m, ast.Constant) and set(str(m.value)) & set("wax+") for m in modes):
                found.append((node.lineno, "open for writing"))
    return found


def test_writes_find_what_they_should():
    source = (
        "import os\n"
        "p.write_text('x')\n"  # 2
        "os.replace(a, b)\n"  # 3
        "s.replace('a', 'b')\n"
        "open(p, 'wb')\n"  # 5
        "open(p)\n"
        "tempfile.mkdtemp()\n"  # 7
    )
    assert _writes(source) == [
        (2, "write_text"),
        (3, "replace"),
        (5, "open for writing"),
        (7, "mkdtemp"),
    ]


@pytest.mark.parametrize("stem", sorted(set(SOURCES) - {"_files"}))
def test_every_file_is_written_through_files(stem):
    """Only kvmviz/_shared/_files.py creates, writes or moves files (atomic, never over an existing
    file unasked, cleaned up on Ctrl-C and kill): a module that writes one itself fails here
    by line."""
    found = [(line, what) for line, what in _writes(SOURCES[stem]) if (stem, what) not in _ALLOWED]
    assert found == [], f"{_path(stem)} writes files itself: {found}"


# -- no private name across modules ------------------------------------------------------------
def private_uses(source: str, stem: str) -> list[tuple[int, str]]:
    """``(line, "module._name")`` for each private name of another kvmviz module this source
    imports (``from .plot import _segments``) or reaches by attribute (``plot._size``). The
    shared modules (``_checks``, ``_files``, ...) are private as modules, public inside: their
    public names may be imported; their private ones may not."""
    found = []
    tree = ast.parse(source)
    imported = {}  # a local name -> the kvmviz module it is
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            module = (node.module or "").split(".")[-1]  # "..views.plot" -> "plot"
            if module in ("", *STAGES):  # ``from ..views import plot``: modules by name
                imported |= {(a.asname or a.name): a.name for a in node.names}
            elif module != stem:
                found += [
                    (node.lineno, f"{module}.{a.name}")
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in imported
            and imported[node.value.id] != stem
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append((node.lineno, f"{imported[node.value.id]}.{node.attr}"))
    return sorted(found)


def test_private_uses_find_what_they_should():
    source = (
        "from . import plot, theme\n"
        "from .memslots import _as_u64, Memslot\n"  # 2
        "from ._checks import check_bool\n"
        "x = plot._segments(1)\n"  # 4
        "y = plot.memslot_map(1)\n"
        "z = theme.__name__\n"
        "def f():\n"
        "    from .traces import _describe_bytes as d\n"  # 8
        "    return d\n"
    )
    assert private_uses(source, "widgets") == [
        (2, "memslots._as_u64"),
        (4, "plot._segments"),
        (8, "traces._describe_bytes"),
    ]
    assert private_uses("from .plot import _size\n", "plot") == []  # its own
    staged = "from ..views import plot\nfrom ..inputs.memslots import _as_u64\nplot._size(1)\n"
    assert private_uses(staged, "widgets") == [(2, "memslots._as_u64"), (3, "plot._size")]


@pytest.mark.parametrize("stem", sorted(SOURCES))
def test_no_module_uses_another_modules_private_names(stem):
    """A private name is its module's business: a module that needs another's helper asks
    for it by a public name (``plot.map_parts``, ``AddressAxis``), or the helper moves to a
    shared module (``_prose.size_bytes``, ``_checks.check_u64``). Tests may use them."""
    assert private_uses(SOURCES[stem], stem) == [], _path(stem)
