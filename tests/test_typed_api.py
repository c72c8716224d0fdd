"""Every public function and method in lrid/ annotates its parameters and return type."""

from __future__ import annotations

import ast
from pathlib import Path

LRID = Path(__file__).resolve().parent.parent / "lrid"


def _is_public(name: str) -> bool:
    """Public unless it has one leading underscore; dunders count as public."""
    return not name.startswith("_") or (name.startswith("__") and name.endswith("__"))


def _missing(func: ast.FunctionDef | ast.AsyncFunctionDef, is_method: bool) -> bool:
    """True when a parameter (not self/cls, not *args/**kwargs) or the return lacks an annotation."""
    args = func.args
    positional = args.posonlyargs + args.args
    if is_method and positional and positional[0].arg in ("self", "cls"):
        positional = positional[1:]
    params = positional + args.kwonlyargs
    return func.returns is None or any(arg.annotation is None for arg in params)


def _untyped(path: Path) -> list[tuple[int, str]]:
    """The (line, name) of each public function or method of ``path`` missing an annotation."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    for node in tree.body:
        if isinstance(node, functions) and _is_public(node.name) and _missing(node, False):
            found.append((node.lineno, node.name))
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, functions) and _is_public(item.name) and _missing(item, True):
                    found.append((item.lineno, f"{node.name}.{item.name}"))
    return found


def test_public_api_is_typed() -> None:
    """No public function or method of lrid/ lacks a parameter or return annotation."""
    untyped = []
    for path in sorted(LRID.rglob("*.py")):
        rel = path.relative_to(LRID.parent).as_posix()
        untyped += [f"{rel}:{line} {name}" for line, name in _untyped(path)]
    assert not untyped, "untyped public functions:\n" + "\n".join(untyped)


def test_every_module_postpones_annotations() -> None:
    """Every module of lrid/ has ``from __future__ import annotations``, so annotations cost nothing at import."""
    missing = []
    for path in sorted(LRID.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        future = [node for node in tree.body if isinstance(node, ast.ImportFrom) and node.module == "__future__"]
        if not any(alias.name == "annotations" for node in future for alias in node.names):
            missing.append(path.relative_to(LRID.parent).as_posix())
    assert not missing, "modules without `from __future__ import annotations`:\n" + "\n".join(missing)


def test_checker_flags_untyped_code(tmp_path: Path) -> None:
    """The checker finds a missing annotation and accepts a fully typed definition."""
    source = tmp_path / "m.py"
    source.write_text(
        "def f(x) -> int: ...\n"
        "def g(x: int): ...\n"
        "def h(x: int, *a, **k) -> int: ...\n"
        "def _private(x): ...\n"
        "class C:\n"
        "    def m(self, y) -> None: ...\n"
        "    def __init__(self, z: int): ...\n"
        "    def ok(self, y: int) -> None: ...\n"
        "class _Hidden:\n"
        "    def m(self, y): ...\n"
    )
    assert [name for _, name in _untyped(source)] == ["f", "g", "C.m", "C.__init__"]
