"""Opening a database for a tool: a path that holds no database is an Error
saying so, rather than a new empty database or an engine error about a file.
Knows lsm.DB and the directory it opens; prints nothing."""
import os

from ..db import DB
from ..errors import Error


def open_database(path, *, create=False, compactors=0) -> DB:
    """lsm.DB(path); `compactors` None takes lsm's default. Unless `create`,
    the directory and its CURRENT must exist."""
    path = os.fspath(path)
    if not create and not os.path.isdir(path):
        raise Error(f"{path}: no such database directory")
    if not create and not os.path.exists(os.path.join(path, "CURRENT")):
        raise Error(f"{path}: not a database (no CURRENT file); `repair` rebuilds one from its tables")
    kwargs = {} if compactors is None else {"compactors": compactors}
    return DB(path, create_if_missing=create, **kwargs)
