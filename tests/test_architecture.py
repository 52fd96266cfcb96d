"""The package's shape: imports run one way, with no cycle, and the README's code runs as written.

Each module of src/cnnative belongs to a layer; a module may import from its own layer and the
ones below it, never above:

    cli, show, bench, the package root
    network, ensemble, optim, models, io, training, distributed, gradcheck, primer
    nn
    the kernel wrappers: signal, conv, pooling, dense, norm
    _threads, _reduce
    _validation, _files, _optional, _native

datasets and testing stand beside the stack: they may use the bottom layer's helpers only, and
nothing below the top layer uses them.
"""
import ast
import pathlib
import re
import subprocess
import sys

import pytest

import cnnative

PACKAGE = pathlib.Path(cnnative.__file__).resolve().parent
README = pathlib.Path(__file__).resolve().parent.parent / "README.md"

LAYERS = [
    {"_validation", "_files", "_optional", "_native"},
    {"_threads", "_reduce"},
    {"signal", "conv", "pooling", "dense", "norm"},
    {"nn"},
    {"network", "ensemble", "optim", "models", "io", "training", "distributed", "_gradcheck",
     "primer"},
    {"cli", "show", "bench", "__main__", ""},
]
STANDALONE = {"datasets", "testing"}


def _modules():
    """Dotted name -> path of every module in the package."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _is_package(name):
    return MODULES.get(name, pathlib.Path()).name == "__init__.py"


def _imports(name):
    """The cnnative modules ``name`` imports anywhere in its code (lazy imports included, those
    only for type checkers not)."""
    tree = ast.parse(MODULES[name].read_text())
    package = name if _is_package(name) else name.rpartition(".")[0]
    # Imports under `if TYPE_CHECKING:` are for annotations only and never run.
    type_only = {id(inner) for node in ast.walk(tree)
                 if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
                 for inner in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from package import module` imports the module; `from module import name`
            # the module itself.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                       for alias in node.names]
        else:
            continue
        found.update(target for target in targets
                     if target == "cnnative" or target.startswith("cnnative."))
    found.discard(name)
    return found


def _unit(name):
    """The part of the package a module belongs to: its first component below cnnative."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def _rank(unit):
    for rank, members in enumerate(LAYERS):
        if unit in members:
            return rank
    return None


def test_every_module_has_a_place():
    units = {_unit(name) for name in MODULES} - STANDALONE
    assert {unit for unit in units if _rank(unit) is None} == set()


def test_imports_have_no_cycle():
    graph = {name: sorted(_imports(name) & MODULES.keys()) for name in MODULES}
    state = {}

    def visit(name, path):
        state[name] = "open"
        for target in graph[name]:
            if state.get(target) == "open":
                cycle = path[path.index(target):] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, path + [target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_run_one_way(name):
    unit = _unit(name)
    wrong = []
    for target in sorted(_imports(name)):
        other = _unit(target)
        if other == unit:
            continue
        if other in STANDALONE:
            allowed = _rank(unit) == len(LAYERS) - 1
        elif unit in STANDALONE:
            allowed = _rank(other) == 0
        else:
            allowed = _rank(other) <= _rank(unit)
        if not allowed:
            wrong.append(target)
    assert wrong == [], f"{name} imports against the layering: {wrong}"


def test_the_layering_check_sees_a_wrong_import():
    # nn (layers) importing io (model files) would run upwards.
    assert _rank(_unit("cnnative.nn.conv")) < _rank(_unit("cnnative.io.model_file"))
    assert "cnnative.nn.base" in _imports("cnnative.nn.conv")
    assert "cnnative.conv" in _imports("cnnative.nn.conv")


def _readme_python_blocks():
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.M | re.S)


def test_readme_python_examples_run_in_order(tmp_path):
    blocks = _readme_python_blocks()
    assert len(blocks) >= 4
    # One interpreter runs them in order, as a reader pasting them would; in a scratch
    # directory, since the examples write files.  Epochs are cut to keep the test short, and
    # the Data section's load_mnist runs where its directory exists.
    script = "\n\n".join(blocks).replace("epochs=15", "epochs=1")
    fashion = re.search(r'load_mnist\("([^"]+)"\)', script).group(1)
    if not pathlib.Path(fashion).is_dir():
        script = re.sub(r"^.*load_mnist\(.*$", "", script, flags=re.M)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-1].startswith("True ")
