"""The package's boundaries, checked: the runtime side (memopt/lite) never imports TensorFlow, and no
two modules import each other, directly or round a circle (function-level imports included)."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "memopt"
TF = ("tensorflow", "tf_keras", "tensorflow_model_optimization", "keras")
# What the runtime side may import from the rest of memopt: the shared base, frames, and the
# TensorFlow-free descriptions of a network's tensors and global values.
RUNTIME_MAY_IMPORT = ("memopt.lite", "memopt.frames", "memopt.errors", "memopt.fsutil", "memopt.console",
                      "memopt.config", "memopt.network.layout", "memopt.network.values")
# The one way across: load_runner hands a Keras file or a builder (never a .tflite) to the loader
# that needs TensorFlow, inside the function that got one.
RUNTIME_CROSSINGS = {("memopt.lite.runner", "memopt.network.source")}


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PACKAGE.rglob("*.py")):
        parts = p.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _imports(name: str, path: Path, modules) -> set[str]:
    """Every module ``name`` imports, at any depth of its code (absolute names)."""
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            for a in node.names:  # `from memopt.lite import embed` imports the module memopt.lite.embed
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base)
    return found


def _graph():
    modules = _modules()
    return modules, {m: {i for i in _imports(m, p, modules) if i in modules and i != m} for m, p in modules.items()}


def _cycle(graph) -> list[str] | None:
    """One import circle, or None (depth-first search with colours)."""
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (c := visit(d)):
                return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (c := visit(m)):
            return c
    return None


def test_no_import_circles():
    _, graph = _graph()
    c = _cycle(graph)
    assert c is None, "import circle: " + " -> ".join(c)


def test_cycle_finder_finds_one():  # the check above can fail
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_runtime_side_imports_no_tensorflow_anywhere_in_its_code():
    modules, graph = _graph()
    bad = []
    for m, p in modules.items():
        if not m.startswith("memopt.lite"):
            continue
        for i in _imports(m, p, modules):
            if i.split(".")[0] in TF or i == "memopt.tfenv":
                bad.append(f"{m} imports {i}")
            elif (i.startswith("memopt.") and not i.startswith(RUNTIME_MAY_IMPORT)
                  and (m, i) not in RUNTIME_CROSSINGS):
                bad.append(f"{m} imports {i} (TensorFlow side)")
    assert not bad, "; ".join(bad)


@pytest.mark.parametrize("module", sorted(m for m in _modules() if m.startswith("memopt.lite")))
def test_runtime_module_imports_without_tensorflow(module):
    """Each runtime module imported in a fresh interpreter leaves TensorFlow unloaded."""
    code = (f"import sys, {module}; "
            f"print(','.join(m for m in {TF!r} if m in sys.modules))")
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert got.returncode == 0, got.stderr[-2000:]
    assert got.stdout.strip() == "", f"importing {module} loaded {got.stdout.strip()}"
