"""Who may import whom around jobs: the transport (lsm.ipc) knows neither
the compactor nor the writer, the compactor knows neither the writer nor the
transport, and the job contract (lsm.jobs) knows none of them. Every import
statement counts, those inside functions too, relative ones resolved."""
import ast
import pathlib

import pytest

import lsm

PACKAGE = pathlib.Path(lsm.__file__).parent


def imported_modules(source, package):
    """Absolute names of every module `source` (a module of `package`, as a
    list of names) imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
    return found


def imports_of(path):
    package = list(path.relative_to(PACKAGE.parent).parts[:-1])
    return imported_modules(path.read_text(), package)


def files_of(name):
    target = PACKAGE.joinpath(*name.split(".")[1:])
    return sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]


@pytest.mark.parametrize("layer,forbidden", [
    ("lsm.ipc", ("lsm.compactor", "lsm.writer", "lsm.db")),
    ("lsm.compactor", ("lsm.writer", "lsm.ipc", "lsm.db")),
    ("lsm.jobs", ("lsm.writer", "lsm.ipc", "lsm.compactor", "lsm.db")),
])
def test_layer_does_not_import_what_it_must_not_know(layer, forbidden):
    offences = [(path.relative_to(PACKAGE.parent).as_posix(), module)
                for path in files_of(layer) for module in sorted(imports_of(path))
                if any(module == f or module.startswith(f + ".") for f in forbidden)]
    assert offences == []


def test_the_import_walk_sees_relative_and_function_level_imports():
    """The check above would pass vacuously if it missed imports."""
    source = (
        "import zmq\n"
        "from ..jobs import JobResult\n"
        "from . import codec\n"
        "def start():\n"
        "    from ..compactor.runner import run_job\n"
        "    import lsm.writer.engine\n"
    )
    found = imported_modules(source, ["lsm", "ipc"])
    assert {"zmq", "lsm.jobs.JobResult", "lsm.ipc.codec", "lsm.compactor.runner",
            "lsm.writer.engine"} <= found
