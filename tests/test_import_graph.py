"""Who may import whom inside lsm: no import cycles at all, the compactor
never imports the writer, and the transport (lsm.ipc) imports neither the
compactor nor the writer. Imports are read from the source with ast, inside
functions too, relative ones resolved."""
import ast
import pathlib

import lsm

ROOT = pathlib.Path(lsm.__file__).parent


def _module_name(path):
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules():
    return {_module_name(p): p for p in ROOT.rglob("*.py")}


def _imports(name, path, modules):
    """The lsm modules that the module `name` (at `path`) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()

    def add(target):
        if target in modules:
            found.add(target)

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                if node.module:
                    base.append(node.module)
                base = ".".join(base)
            else:
                base = node.module
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                add(submodule if submodule in modules else base)
    found.discard(name)
    return found


def import_graph():
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []

    def visit(v):
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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _edges_into(graph, source_package, target_packages):
    return sorted(f"{a} -> {b}" for a, targets in graph.items() if _inside(a, source_package)
                  for b in targets if any(_inside(b, t) for t in target_packages))


def _reaches(graph, source_package, target_packages):
    """Paths from a module of source_package to one of target_packages,
    through any modules between: an import through a third module counts."""
    found = []
    for start in sorted(m for m in graph if _inside(m, source_package)):
        seen = {start: None}
        todo = [start]
        while todo:
            module = todo.pop()
            for target in graph.get(module, ()):
                if target in seen:
                    continue
                seen[target] = module
                if any(_inside(target, t) for t in target_packages):
                    path = [target]
                    while path[-1] != start:
                        path.append(seen[path[-1]])
                    found.append(" -> ".join(reversed(path)))
                else:
                    todo.append(target)
    return found


def _inside(module, package):
    return module == package or module.startswith(package + ".")


def test_the_graph_reader_sees_relative_and_function_level_imports():
    graph = import_graph()
    assert "lsm.errors" in graph["lsm.cursor"]  # from .errors import ...
    assert "lsm.writer.picker" in graph["lsm.writer.scheduler"]  # from . import picker
    assert "lsm.repair" in graph["lsm.admin"]  # imported inside repair_db()


def test_no_module_of_lsm_imports_one_that_imports_it_back():
    cycles = _cycles(import_graph())
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_compactor_never_imports_the_writer():
    assert _edges_into(import_graph(), "lsm.compactor", ["lsm.writer"]) == []
    assert _reaches(import_graph(), "lsm.compactor", ["lsm.writer"]) == []


def test_the_transport_imports_neither_the_compactor_nor_the_writer():
    assert _edges_into(import_graph(), "lsm.ipc", ["lsm.compactor", "lsm.writer"]) == []
    assert _reaches(import_graph(), "lsm.ipc", ["lsm.compactor", "lsm.writer"]) == []


def test_the_reach_check_follows_imports_through_other_modules():
    graph = {"lsm.ipc.a": {"lsm.b"}, "lsm.b": {"lsm.writer.c"}, "lsm.writer.c": set()}
    assert _reaches(graph, "lsm.ipc", ["lsm.writer"]) == ["lsm.ipc.a -> lsm.b -> lsm.writer.c"]
