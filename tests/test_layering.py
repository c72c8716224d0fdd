"""Imports between lrid's modules run one way, and no module imports itself round a cycle.

The layers, top to bottom (a module may import its own layer or any layer below it)::

    cli > report > identify > generate > rules | tasks | models > config | sampling
        > observables > store > schema > lrid | errors | lazy_import | registry

``config`` and ``sampling`` (a sweep's spec and its sampled axes) sit below the training side because
``identify`` reads specs too (a degraded view's ``ViewSpec``); the spec validation that looks rules,
models and tasks up is the one accepted exception, listed in :data:`ALLOWED`. ``lrid`` (the package,
for ``__version__``), ``errors`` and ``lazy_import`` import nothing above them and sit at the bottom.

On top of the order: ``identify`` and ``report`` never import the training side (``generate``,
``rules``, ``tasks``, ``models``), so classifying a store never needs TensorFlow's half of lrid; and
``observables`` never imports ``store`` (the store's layout comes from ``schema``).

Every ``import`` counts, at module level and inside functions (a deferred import still couples the two
modules). Only explicit edges count: importing ``lrid.rules.base`` is not read as importing ``lrid.rules``.
"""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

import lrid

PACKAGE_ROOT = Path(lrid.__file__).parent

# Top to bottom; a module belongs to the layer of its longest matching prefix.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("cli", ("lrid.cli",)),
    ("report", ("lrid.report",)),
    ("identify", ("lrid.identify",)),
    ("generate", ("lrid.generate",)),
    ("training", ("lrid.rules", "lrid.tasks", "lrid.models")),
    ("spec", ("lrid.config", "lrid.sampling")),
    ("observables", ("lrid.observables",)),
    ("store", ("lrid.store",)),
    ("schema", ("lrid.schema",)),
    ("base", ("lrid", "lrid.errors", "lrid.lazy_import", "lrid.registry")),
]
RANK = {name: rank for rank, (name, _) in enumerate(LAYERS)}  # 0 is the top

# Imports forbidden even though they run downward (DESIGN.md, "Revisions after the first build").
FORBIDDEN: dict[str, set[str]] = {
    "identify": {"generate", "training"},
    "report": {"generate", "training"},
    "observables": {"store"},  # observables compute rows; where they are written is for generate to say
}

# (importer, imported, reason): edges that break a rule above on purpose. ``importer`` may be a glob.
# Every entry must match an edge that exists, so the list cannot outlive what it excuses.
ALLOWED: list[tuple[str, str, str]] = [
    # (Tasks and classifiers need no such entry: their packages import their modules through lrid.registry.)
    ("lrid.rules.*", "lrid.rules", "registration: the package imports its built-in entries at its end so they "
     "register, and each entry imports the decorator from the package, as a plugin does"),
    *[
        ("lrid.config", imported, "a sweep is validated when loaded (rule and task names, a rule's hparams, the "
         "task's loss and geometry), which needs the registries; accepted until validation moves up to generate")
        for imported in ("lrid.rules", "lrid.models", "lrid.tasks")
    ],
]


def module_name(path: Path) -> str:
    """The dotted name of a module file under lrid/."""
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def lrid_modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    return {module_name(path): path for path in sorted(PACKAGE_ROOT.rglob("*.py"))}


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The lrid modules ``name`` imports anywhere in its file (``from pkg import submodule`` names the submodule)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.add(submodule if submodule in known else source)
    return {module for module in found if module == "lrid" or module.startswith("lrid.")}


def import_graph() -> dict[str, set[str]]:
    """Importer to the set of lrid modules it imports (itself excluded)."""
    modules = lrid_modules()
    known = set(modules)
    return {name: imported_modules(name, path, known) - {name} for name, path in modules.items()}


def layer_of(module: str) -> str:
    """The layer a module belongs to (its longest matching prefix in :data:`LAYERS`)."""
    best = max(
        ((len(prefix), layer) for layer, prefixes in LAYERS for prefix in prefixes
         if module == prefix or module.startswith(prefix + ".") and prefix != "lrid"),
        default=None,
    )
    assert best is not None, f"{module} is in no layer: add it to LAYERS in {__file__}"
    return best[1]


def allowed(importer: str, imported: str) -> bool:
    return any(fnmatch.fnmatchcase(importer, pattern) and imported == target for pattern, target, _ in ALLOWED)


def wrong_way_edges(graph: dict[str, set[str]]) -> list[str]:
    """Edges that import a higher layer, or a layer :data:`FORBIDDEN` to the importer, not in :data:`ALLOWED`."""
    problems = []
    for importer, imports in sorted(graph.items()):
        for imported in sorted(imports):
            if allowed(importer, imported):
                continue
            source, target = layer_of(importer), layer_of(imported)
            if RANK[target] < RANK[source]:
                problems.append(f"{importer} ({source}) imports {imported} ({target}), a higher layer")
            elif target in FORBIDDEN.get(source, ()):
                problems.append(f"{importer} ({source}) imports {imported} ({target}), which {source} must not")
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan).

    An allowed upward edge still counts (a cycle through ``config``'s registry lookups is a cycle); only a
    package's plugin registration (a module importing its own package) is left out.
    """
    edges = {
        m: sorted(i for i in imports if i in graph and not (allowed(m, i) and m.startswith(i + ".")))
        for m, imports in graph.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in edges[module]:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return components


def test_the_graph_is_read_from_the_sources():
    graph = import_graph()
    # Both kinds of import statement, at module level and inside a function, are seen.
    assert "lrid.errors" in graph["lrid.store"]
    assert "lrid.sampling" in graph["lrid.config"]  # from lrid import sampling
    assert "lrid.generate.trainer" in graph["lrid.generate.executors"]  # inside a function
    assert "lrid.rules.backprop" in graph["lrid.rules"]


def test_every_module_has_a_layer():
    for module in import_graph():
        layer_of(module)


def test_no_import_runs_up_the_layers():
    problems = wrong_way_edges(import_graph())
    assert not problems, "imports against the layering:\n" + "\n".join(problems)


def test_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(component) for component in found)


def test_every_allowed_edge_exists():
    graph = import_graph()
    stale = [
        (pattern, target) for pattern, target, _ in ALLOWED
        if not any(fnmatch.fnmatchcase(importer, pattern) and target in imports for importer, imports in graph.items())
    ]
    assert not stale, f"ALLOWED lists edges that no longer exist (remove them): {stale}"


def test_the_checks_catch_an_upward_edge_and_a_cycle():
    graph = {"lrid.store": {"lrid.observables"}, "lrid.observables": {"lrid.store"}, "lrid.identify.x": {"lrid.models"}}
    problems = wrong_way_edges(graph)
    assert any("lrid.store (store) imports lrid.observables" in p for p in problems)
    assert any("lrid.identify.x (identify) imports lrid.models (training), which identify must not" in p for p in problems)
    assert cycles(graph) == [["lrid.observables", "lrid.store"]]
    # An accepted upward edge does not hide the cycle it closes.
    assert cycles({"lrid.config": {"lrid.models"}, "lrid.models": {"lrid.config"}}) == [["lrid.config", "lrid.models"]]
