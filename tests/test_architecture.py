"""The package's architecture as a property: imports run one way, and there is no cycle.

Layers, lowest first (``docs/architecture.md``): leaf helpers (``_checks``, ``_io``, ``precision``)
→ ``optim`` and ``regimes`` → ``training`` → the families ``tensors``, ``networks``, ``regression``
(siblings that never import each other) → ``moments`` → the public API (``overtensor/__init__``) →
``experiments`` → ``cli``. A module may import its own package and any lower layer, never a higher
one, at module level or inside a function. Imports under ``if TYPE_CHECKING:`` count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "overtensor"

#: Top-level unit -> layer. Units of the same layer may not import each other (``optim`` and
#: ``regimes`` are the exception: a regime may use an optimizer's Riemannian step, not the reverse).
LAYERS = {
    "_checks": 0, "_io": 0, "precision": 0,
    "optim": 1, "regimes": 1.5,
    "training": 2,
    "tensors": 3, "networks": 3, "regression": 3,
    "moments": 4,
    "overtensor": 5,  # the package root: the public API
    "experiments": 6,
    "cli": 7, "__main__": 8,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every ``overtensor`` module ``path`` imports, anywhere in the file."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "overtensor")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "overtensor":
                continue
            found.add(module)
            for alias in node.names:  # ``from overtensor.x import y`` where y is a module
                candidate = PACKAGE.parent / (module + "." + alias.name).replace(".", "/")
                if candidate.with_suffix(".py").exists():
                    found.add(module + "." + alias.name)
    found.discard(name)
    return found


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "overtensor"


def test_every_top_level_unit_has_a_layer():
    units = {_unit(m) for m in _graph()}
    assert units <= set(LAYERS), sorted(units - set(LAYERS))
    top_level_modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert top_level_modules == {"_checks", "_io", "precision"}, top_level_modules


def test_imports_run_one_way():
    wrong = []
    for module, imported in _graph().items():
        for other in imported:
            a, b = _unit(module), _unit(other)
            if a == b or (b == "overtensor" and other != "overtensor"):
                continue  # own package; ``overtensor.x`` is judged by its unit
            if LAYERS[b] >= LAYERS[a]:
                wrong.append(f"{module} imports {other}")
    assert not wrong, "\n".join(sorted(wrong))


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    # Importing ``overtensor.a.b`` runs ``overtensor.a`` (the package __init__) first.
    for module in list(graph):
        graph[module] = {m for m in graph[module] if m in graph}
    colour: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        colour[node] = 1
        for nxt in sorted(graph[node]):
            if colour.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt] if nxt in stack else [node, nxt])
            elif nxt not in colour:
                visit(nxt, [*stack, nxt])
        colour[node] = 2

    for start in sorted(graph):
        if start not in colour:
            visit(start, [start])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_no_module_shares_its_name_with_a_public_function():
    import overtensor as ot

    modules = {p.stem for p in PACKAGE.rglob("*.py")} | {p.name for p in PACKAGE.iterdir() if p.is_dir()}
    assert not modules & set(ot.__all__), sorted(modules & set(ot.__all__))


def test_fit_and_the_batched_engine_share_the_gradient_defaults():
    import inspect

    from overtensor.tensors.batched import OPTIONS
    from overtensor.tensors.config import Extraction, GradientSchedule, as_dict
    from overtensor.tensors.fitting import fit
    from overtensor.tensors.methods import GRADIENT_DEFAULTS

    # The batched engine's flat options are the fields of fit's groups and fit's tol, with
    # the same defaults (the groups' own), so the two doors cannot drift apart.
    assert GRADIENT_DEFAULTS == {**as_dict(GradientSchedule()), **as_dict(Extraction()),
                                 "tol": inspect.signature(fit).parameters["tol"].default}
    assert set(OPTIONS) == set(GRADIENT_DEFAULTS)


def test_fit_takes_at_most_14_parameters_and_groups_the_rest():
    import dataclasses
    import inspect

    import overtensor as ot

    params = inspect.signature(ot.fit).parameters
    assert len(params) <= 14, list(params)
    # Each group is a frozen dataclass whose fields are not also keywords of fit (one place each).
    for group in (ot.GradientSchedule, ot.Extraction, ot.Runtime, ot.PowerOptions,
                  ot.OrthogonalOptions):
        assert dataclasses.is_dataclass(group) and group.__dataclass_params__.frozen
        assert not {f.name for f in dataclasses.fields(group)} & set(params), group


#: Every place that imports a module chosen at run time, and the fixed table that gates it: no name
#: read from a user's file (a spec, a CSV header, a CLI argument) can reach an import elsewhere.
DYNAMIC_IMPORTS = {
    "overtensor/__init__.py": "_SUBMODULES and _EXPORTS",
    "overtensor/moments/corpus.py": "SCIPY_MODULES",
    "overtensor/regimes/layer.py": "PLUGIN_MODULES",
    "overtensor/experiments/catalog.py": "installed entry points, selected by equality of names",
}


def test_modules_are_imported_by_name_only_from_fixed_tables():
    calls = ("import_module(", "__import__(", "find_spec(", ".load()", "exec(", "eval(")
    found = {str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*.py")
             if any(c in line for line in p.read_text(encoding="utf-8").splitlines()
                    if not line.lstrip().startswith("#") for c in calls)}
    assert found == set(DYNAMIC_IMPORTS), sorted(found ^ set(DYNAMIC_IMPORTS))


def test_names_from_outside_never_reach_an_import():
    import subprocess
    import sys

    code = (
        "import sys, overtensor as ot\n"
        "from overtensor.regimes.layer import get_regime\n"
        "from overtensor.moments.corpus import scipy_docstrings\n"
        "for name in ('os', 'subprocess', 'overtensor.cli.main', 'json'):\n"
        "    try:\n        getattr(ot, name)\n    except AttributeError:\n        pass\n"
        "    else:\n        raise SystemExit(f'ot.{name} resolved')\n"
        "for bad in (lambda: get_regime('subprocess'), lambda: scipy_docstrings(('os',))):\n"
        "    try:\n        bad()\n    except ValueError:\n        pass\n"
        "    else:\n        raise SystemExit('accepted')\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
