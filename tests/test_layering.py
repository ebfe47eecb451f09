"""The package's layering, read from its source: no import cycle, no PyTorch on `import
nmcompile`, and `backends` reached only through the registry (issue 13, point 2).

Imports are collected from the syntax tree, module-level and inside functions alike, because
a cycle of function-level imports works at run time and still hides the layering.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str) -> set[str]:
    """Every absolute module name `path` imports (from-imports name their module and each
    imported name, which may itself be a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found |= {module} | {f"{module}.{alias.name}" for alias in node.names}
    return found


def import_graph(package: str = "nmcompile") -> tuple[nx.DiGraph, dict[str, set[str]]]:
    """Edges between the package's modules (an import of a module's own parent package does
    not count), and each module's imports from outside the package."""
    modules = {_module(p): p for p in (ROOT / package).rglob("*.py")}
    graph, outside = nx.DiGraph(), {}
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        for target in _imports(path, name):
            inner = target
            while inner and inner not in modules:
                inner = inner.rpartition(".")[0]
            if not inner:
                outside.setdefault(name, set()).add(target)
            elif inner != name and not name.startswith(inner + "."):
                graph.add_edge(name, inner)
    return graph, outside


def test_the_package_has_no_import_cycle() -> None:
    graph, _ = import_graph()
    assert len(graph) > 50  # the walk found the package
    assert list(nx.simple_cycles(graph)) == []


def test_the_cycle_finder_finds_a_function_level_cycle(tmp_path, monkeypatch) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .b import g\n")
    (pkg / "b.py").write_text("from . import a\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    graph, _ = import_graph("pkg")
    assert list(nx.simple_cycles(graph)) in (
        [["pkg.a", "pkg.b"]], [["pkg.b", "pkg.a"]])


def test_only_the_registry_imports_backends() -> None:
    """No import statement of nmcompile names `backends`; the registry alone imports modules
    by name (its `BUILTIN` table), so it is the one door to the targets."""
    _, outside = import_graph()
    users = sorted(m for m, targets in outside.items()
                   if any(t == "backends" or t.startswith("backends.") for t in targets))
    assert users == []
    dynamic = sorted(_module(p) for p in (ROOT / "nmcompile").rglob("*.py")
                     if "import_module(" in p.read_text())
    assert dynamic == ["nmcompile.registry"]


def test_importing_nmcompile_and_its_ir_loads_no_torch() -> None:
    for module in ("nmcompile", "nmcompile.ir"):
        code = f"import sys, {module}; print('torch' in sys.modules)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=120, cwd=ROOT)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "False", module
    _, outside = import_graph()
    torch_users = sorted(m for m, targets in outside.items()
                         if m.startswith("nmcompile.ir") and any(
                             t == "torch" or t.startswith("torch.") for t in targets))
    assert set(torch_users) <= {"nmcompile.ir.interpret", "nmcompile.ir.dynamics"}


def test_every_dotted_path_names_one_thing() -> None:
    """No package attribute shadows its submodule of the same name (issue 13, point 4: the
    functions `nmcompile.quantize` and `nmcompile.verify` once hid the modules of their
    name, so `import nmcompile.quantize as q` gave the function; and a module hid a function:
    `backends.lava.build` became a module once its `build.py` was imported). Run in a fresh
    interpreter that imports every module."""
    modules = sorted(_module(p) for package in ("nmcompile", "backends")
                     for p in (ROOT / package).rglob("*.py"))
    code = ("import importlib, sys\n"
            f"names = {modules!r}\n"
            "promised = {}  # what a package's __all__ or lazy _API names, when first imported\n"
            "for n in names:\n"
            "    m = importlib.import_module(n)\n"
            "    for a in set(getattr(m, '__all__', ())) | set(getattr(m, '_API', ())):\n"
            "        promised.setdefault(f'{n}.{a}', getattr(m, a))\n"
            "bad = [n for n in names if '.' in n and getattr(sys.modules[n.rpartition('.')[0]],"
            " n.rpartition('.')[2]) is not sys.modules[n]]\n"
            "bad += [k for k, v in promised.items() if getattr(sys.modules[k.rpartition('.')[0]],"
            " k.rpartition('.')[2]) is not v]\n"
            "print(sorted(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
