"""Exceptions across the client boundary: the Failure a server sends for an
exception, and the exception a client raises for a Failure, of the same
class. Pure: no sockets, no files."""
from ..errors import ClosedError, CorruptionError, Error, IOError, IteratorInvalidError, LockError
from .client_messages import ErrorKind, Failure

# Most specific first: a LockError is an IOError, a ClosedError a RuntimeError.
_KINDS = (
    (LockError, ErrorKind.LOCK),
    (CorruptionError, ErrorKind.CORRUPTION),
    (IOError, ErrorKind.IO_ERROR),
    (IteratorInvalidError, ErrorKind.ITERATOR_INVALID),
    (Error, ErrorKind.ERROR),
    (ClosedError, ErrorKind.CLOSED),
    (TypeError, ErrorKind.TYPE_ERROR),
    (ValueError, ErrorKind.VALUE_ERROR),
    (RuntimeError, ErrorKind.RUNTIME_ERROR),
)
_CLASSES = {kind: cls for cls, kind in _KINDS}


class RefusedError(Error):
    """The server refused a request: another database, an earlier server
    session, or a malformed message."""


_CLASSES[ErrorKind.REFUSED] = RefusedError


def failure_of(exc: BaseException, request_id: int) -> Failure:
    for cls, kind in _KINDS:
        if isinstance(exc, cls):
            break
    else:
        kind = ErrorKind.ERROR
    if isinstance(exc, CorruptionError):
        return Failure(request_id, kind, str(exc.reason), exc.path, exc.offset)
    message = str(exc) if kind is not ErrorKind.ERROR or isinstance(exc, Error) else repr(exc)
    return Failure(request_id, kind, message)


def exception_of(failure: Failure) -> Exception:
    if failure.kind is ErrorKind.CORRUPTION:
        return CorruptionError(failure.path, failure.offset, failure.message)
    return _CLASSES[failure.kind](failure.message)
