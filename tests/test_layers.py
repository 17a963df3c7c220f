"""The package's import layers, as a contract that can fail (docs/architecture.md draws it).

Every module of ``src/audfer`` is read with ``ast``; every ``import`` of an audfer module, at module level or inside a
function, must point to a lower layer (siblings in one layer are independent); the import graph has no cycle; an
import inside a function is there only to keep a light module light (its target brings a heavy dependency such as
torch that the importing module does not already load), never to dodge a cycle; and the CLI's module-level imports
reach neither torch nor Lightning, so ``audfer --help`` cannot load them by structure.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: Top to bottom; a module may import from any layer below its own, never from its own layer's other members or above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("audfer.__main__",),
    ("audfer.cli",),
    ("audfer.tasks",),
    ("audfer.engine", "audfer.predict"),
    ("audfer.evaluation", "audfer.weights"),
    ("audfer.config",),
    ("audfer.synth",),
    ("audfer.method",),
    ("audfer.data",),
    ("audfer.models",),
    ("audfer.au",),
    ("audfer.provenance",),
    ("audfer.io",),
    ("audfer.files", "audfer.vocab", "audfer.trust", "audfer.run_layout", "audfer.plugins"),
    ("audfer.errors", "audfer.hints", "audfer.resources", "audfer.progress"),
)
#: Third-party packages whose import costs enough that a light module may defer them to a function.
HEAVY = {  # noqa: RUF012
    "torch",
    "lightning",
    "torchmetrics",
    "matplotlib",
    "sklearn",
    "scipy",
    "cv2",
    "onnx",
    "onnxruntime",
    "polars",
    "pyarrow",
    "pandas",
    "safetensors",
    "huggingface_hub",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in (SRC / "audfer").rglob("*.py")}


def _resolve(name: str) -> str:
    """An imported dotted name -> the audfer module it loads (``audfer.x.func`` -> ``audfer.x``)."""
    mods = _modules()
    while name not in mods:
        name = name.rpartition(".")[0]
    return name


def _in_type_checking(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def _local(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return True
    return False


@cache
def _imports(module: str) -> tuple[tuple[str, bool, int], ...]:
    """``(imported name, inside a function, line)`` of every executed import of ``module``."""
    tree = ast.parse(_modules()[module].read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if _in_type_checking(node, parents):
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = (
                [f"{node.module}.{a.name}" for a in node.names] if node.module.startswith("audfer") else [node.module]
            )
        else:
            continue
        found += [(n, _local(node, parents), node.lineno) for n in names]
    return tuple(found)


def _audfer_edges(module: str, *, local: bool | None = None) -> list[tuple[str, int]]:
    return [
        (_resolve(n), line)
        for n, is_local, line in _imports(module)
        if n.split(".")[0] == "audfer" and (local is None or is_local == local) and _resolve(n) != "audfer"
    ]


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@cache
def _closure(module: str) -> frozenset[str]:
    """Third-party top-level packages loaded by importing ``module`` (its module-level imports, transitively, with
    the ``__init__`` of every package on the way)."""
    seen: set[str] = set()
    third: set[str] = set()
    todo = [module, *_parents(module)]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        for n, is_local, _ in _imports(m):
            if is_local:
                continue
            if n.split(".")[0] == "audfer":
                target = _resolve(n)
                todo += [target, *_parents(target)]
            else:
                third.add(n.split(".")[0])
    return frozenset(third)


def _layer(module: str) -> tuple[int, str]:
    for i, layer in enumerate(LAYERS):
        for member in layer:
            if module == member or module.startswith(member + "."):
                return i, member
    raise AssertionError(f"{module} is in no layer: add it to LAYERS (and to docs/architecture.md)")


def test_every_module_has_a_layer():
    for module in _modules():
        if module != "audfer":
            _layer(module)


@pytest.mark.slow
def test_imports_only_go_down_the_layers():
    bad = []
    for module in _modules():
        if module == "audfer":  # the public API facade re-exports lazily from every layer
            continue
        here, member = _layer(module)
        for target, line in _audfer_edges(module):
            there, other = _layer(target)
            if there < here or (there == here and other != member):
                bad.append(f"{_modules()[module].relative_to(SRC)}:{line} {module} -> {target}")
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_has_no_cycle_even_through_function_imports():
    graph = {m: {t for t, _ in _audfer_edges(m)} - {m} for m in _modules() if m != "audfer"}
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph) or [])}"


def test_the_cycle_check_finds_a_planted_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_an_import_inside_a_function_only_defers_a_heavy_dependency():
    bad = []
    for module in _modules():
        if module == "audfer":
            continue
        own = _closure(module)
        for target, line in _audfer_edges(module, local=True):
            if target == module:
                continue
            if not (_closure(target) - own) & HEAVY:
                bad.append(
                    f"{_modules()[module].relative_to(SRC)}:{line} imports {target} inside a function, but it brings "
                    f"no heavy dependency {module} lacks: import it at the top"
                )
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module", ["audfer", "audfer.cli", "audfer.config"])
def test_light_entry_points_reach_no_torch_by_structure(module):
    """``import audfer``, the CLI's parser and the config layer load neither torch nor Lightning at module level."""
    names = [module]
    if module == "audfer.cli":
        names += [m for m in _modules() if m.startswith("audfer.cli.")]
    heavy = set().union(*(_closure(m) for m in names)) & {"torch", "lightning", "torchmetrics"}
    assert not heavy, f"{module} loads {sorted(heavy)} at import time"


def test_help_and_version_do_not_import_torch_when_run():
    code = (
        "import sys\nfrom audfer.cli import main\n"
        "for argv in (['--help'], ['--version'], ['train', '--help'], ['predict', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
