"""How the tools name keys and damaged records in one line of text. Pure."""
from ..errors import DecodeError
from ..keys import TYPE_VALUE, parse_internal_key


def internal_key_text(ikey: bytes) -> str:
    """``b'user key'@sequence:put|del``; hex when it is no internal key."""
    try:
        ukey, seq, kind = parse_internal_key(ikey)
    except DecodeError:
        return ikey.hex()
    return f"{ukey!r}@{seq}:{'put' if kind == TYPE_VALUE else 'del'}"


def wal_batch_damage(exc: DecodeError) -> str:
    """The reason for a WAL record whose payload is no WriteBatch."""
    return f"bad WriteBatch in the record there: {exc.reason} (byte {exc.offset} of the batch)"
