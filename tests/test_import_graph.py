"""The packages import one way (issue 21.7): no circle of imports among the modules of
``blurgen`` and ``trainer``, deferred imports inside functions included (they were what held
the old circles together), and no arrow back from ``blurgen`` to ``trainer``.

The graph is read from the source with ``ast``, not from a running interpreter, so that an
import behind a condition or inside a function counts as well.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("blurgen", "trainer")


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the two packages."""
    out = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the modules of the two packages it imports anywhere in its source
    (``from blurgen import shards`` is an edge to ``blurgen.shards``)."""
    modules = module_files(root)

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [known(alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [known(f"{node.module}.{alias.name}") for alias in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_itself_round_a_circle():
    assert cycles(import_graph()) == []


def test_blurgen_never_imports_trainer():
    graph = import_graph()
    back = sorted((m, t) for m, targets in graph.items() if m.startswith("blurgen") for t in targets
                  if t.startswith("trainer"))
    assert back == []


def test_the_check_finds_a_circle_through_a_deferred_import(tmp_path):
    """The check itself: a circle like the old synthesize -> modes -> synthesize, held by an
    import inside a function, is found."""
    package = tmp_path / "blurgen"
    package.mkdir()
    (tmp_path / "trainer").mkdir()
    (package / "__init__.py").write_text("")
    (package / "making.py").write_text("from blurgen import sampling\n")
    (package / "sampling.py").write_text("def shake_pair():\n    from blurgen.making import draw\n")
    (package / "blur.py").write_text("import numpy\n")
    assert cycles(import_graph(tmp_path)) == [["blurgen.making", "blurgen.sampling"]]
