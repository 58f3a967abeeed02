"""Naming a module-level function across a process boundary, as
"module:qualname": the parent sends the name, the child imports the function.
Stdlib only, so a compactor process that resolves its job runner loads
nothing else on the way."""
import importlib


def split_name(name: str) -> tuple[str, str]:
    """(module, qualname) of "module:qualname", importing nothing; ValueError
    for a name of any other shape (a lambda or a nested function has none)."""
    module, sep, qualname = name.partition(":") if isinstance(name, str) else ("", "", "")
    if not (sep and module and qualname) or "<" in qualname:
        raise ValueError(f"{name!r} does not name a module-level function as 'module:qualname'")
    return module, qualname


def resolve(name: str):
    """The function named "module:qualname", its module imported now."""
    module, qualname = split_name(name)
    found = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    if not callable(found):
        raise TypeError(f"{name!r} names a {type(found).__name__}, not a function")
    return found
