"""The ``tfspike`` package has no import cycles, counting module-level and function-level imports.

A function-local import does not remove a cycle, it only delays it; the project's rule is that a
function-local import may only delay loading TensorFlow. So every ``import``/``from ... import``
anywhere in a module's source is an edge of the graph, and so is a name that a package's lazy
``__getattr__`` table (a dict literal of ``"name": "tfspike.x.y"`` strings) resolves to a module.

Run it alone for the list of cycles: ``python tests/test_import_graph.py``.
"""

import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "tfspike"


def package_modules(root=ROOT, package=PACKAGE):
    """Dotted module name → source path of every ``.py`` file of the package."""
    modules = {}
    for dirpath, _, files in os.walk(os.path.join(root, package)):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                name = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
                modules[name[: -len(".__init__")] if name.endswith(".__init__") else name] = path
    return modules


def _is_package(name, modules):
    return modules.get(name, "").endswith("__init__.py")


def _lazy_table(tree):
    """``{"name": "tfspike.x.y"}`` dict literals at module level (PEP 562 lazy export tables)."""
    table = {}
    for node in tree.body:
        value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
        if isinstance(value, ast.Dict):
            for k, v in zip(value.keys, value.values):
                if (isinstance(k, ast.Constant) and isinstance(k.value, str) and isinstance(v, ast.Constant)
                        and isinstance(v.value, str) and v.value.startswith(PACKAGE + ".")):
                    table[k.value] = v.value
    return table


def _owner(dotted, modules):
    """The longest prefix of ``dotted`` that is a module of the package (None outside it)."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        cand = ".".join(parts[:n])
        if cand in modules:
            return cand
    return None


def import_graph(root=ROOT, package=PACKAGE):
    """module → set of package modules it imports (anywhere in its source), plus lazy-table targets."""
    modules = package_modules(root, package)
    trees = {m: ast.parse(open(p, encoding="utf-8").read(), p) for m, p in modules.items()}
    lazy = {m: _lazy_table(t) for m, t in trees.items() if _is_package(m, modules)}
    graph = {}
    for mod, tree in trees.items():
        edges = set()
        here = mod if _is_package(mod, modules) else mod.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                targets = []
                for a in node.names:
                    sub = f"{source}.{a.name}"
                    if sub in modules:
                        targets.append(sub)  # a submodule
                    elif source in lazy and a.name in lazy[source]:
                        targets.append(lazy[source][a.name])  # resolved by the package's __getattr__
                    else:
                        targets.append(source)
            else:
                continue
            for t in targets:
                owner = _owner(t, modules)
                if owner is not None and owner != mod:
                    edges.add(owner)
        graph[mod] = edges
    return graph


def find_cycles(graph):
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, on_stack, stack, sccs = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(sccs)


def describe(cycle, graph):
    """One readable line per cycle: its modules and the edges inside it."""
    inside = set(cycle)
    edges = [f"{a} -> {b}" for a in cycle for b in sorted(graph[a]) if b in inside]
    return f"{', '.join(cycle)}: " + "; ".join(edges)


# ----------------------------------------------------------------------------- the checker itself

def test_checker_finds_function_level_and_lazy_cycles(tmp_path):
    """The checker sees a cycle made by a function-local import and one hidden by a lazy table."""
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("import tfspike.b\n")
    (pkg / "b.py").write_text("def f():\n    from tfspike import a\n    return a\n")
    (pkg / "sub" / "__init__.py").write_text('_EXPORTS = {"thing": "tfspike.sub.impl"}\n')
    (pkg / "sub" / "impl.py").write_text("from . import helper\nthing = 1\n")
    (pkg / "sub" / "helper.py").write_text("def g():\n    from tfspike.sub import thing\n    return thing\n")
    (pkg / "leaf.py").write_text("import numpy\nfrom tfspike.sub import helper\n")
    graph = import_graph(str(tmp_path))
    assert graph["tfspike.b"] == {"tfspike.a"}
    assert graph["tfspike.sub.helper"] == {"tfspike.sub.impl"}
    assert graph["tfspike.leaf"] == {"tfspike.sub.helper"}
    assert find_cycles(graph) == [["tfspike.a", "tfspike.b"], ["tfspike.sub.helper", "tfspike.sub.impl"]]


def test_fs_subpackage_has_no_import_cycle():
    graph = import_graph()
    fs = {m: {t for t in e if t.startswith("tfspike.fs")} for m, e in graph.items() if m.startswith("tfspike.fs")}
    cycles = find_cycles(fs)
    assert not cycles, "\n".join(describe(c, fs) for c in cycles)


def test_package_has_no_import_cycle():
    graph = import_graph()
    cycles = find_cycles(graph)
    assert not cycles, "import cycles in tfspike:\n" + "\n".join(describe(c, graph) for c in cycles)


# Modules the CLI reads at flag-parsing time: they must not load TensorFlow or Keras.
# The modules the command line reads before it dispatches: they must stay free of TensorFlow, Keras and
# matplotlib so that --help and flag errors are instant.
LIGHT_MODULES = ("tfspike.fs.targets", "tfspike.fs.trends", "tfspike.fs.params", "tfspike.fs.pipeline",
                 "tfspike.rsnn.neurons", "tfspike.rsnn.tasks", "tfspike.rsnn.presets", "tfspike.ddim.choices",
                 "tfspike.ttfs.windows", "tfspike.io", "tfspike.cli", "tfspike.cli.ttfs", "tfspike.cli.fs",
                 "tfspike.cli.rsnn", "tfspike.cli.ddim", "tfspike")


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_light_modules_do_not_load_tensorflow(module):
    code = (f"import sys, {module}\n"
            "heavy = [m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


if __name__ == "__main__":
    g = import_graph()
    found = find_cycles(g)
    print("\n".join(describe(c, g) for c in found) or "no import cycles")
