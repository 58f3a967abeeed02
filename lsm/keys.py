"""Internal keys and their ordering. Pure: no files, no sockets.

An internal key is ``user_key || fixed64(sequence << 8 | kind)``. Internal order:
user key ascending (bytewise), then the 64-bit tag descending, so the newest
version of a key sorts first. ``sort_key`` turns an internal key into a tuple
whose natural Python order is that internal order, so C code (sorted, bisect,
heapq.merge) does the comparing.
"""
import struct

from .errors import DecodeError

# On-disk constants (frozen).
TYPE_DELETION = 0
TYPE_VALUE = 1
TYPE_FOR_SEEK = TYPE_VALUE  # the highest type: a lookup key sorts before every entry at its sequence
MAX_SEQUENCE = (1 << 56) - 1
TRAILER_SIZE = 8
COMPARATOR_NAME = b"leveldb.BytewiseComparator"

_TAG = struct.Struct("<Q")
_pack_tag = _TAG.pack
_unpack_tag_from = _TAG.unpack_from


def make_internal_key(user_key: bytes, sequence: int, kind: int) -> bytes:
    return user_key + _pack_tag((sequence << 8) | kind)


def parse_internal_key(ikey: bytes):
    """Return (user_key, sequence, kind); DecodeError for a malformed key."""
    if len(ikey) < TRAILER_SIZE:
        raise DecodeError(f"internal key too short ({len(ikey)} bytes)")
    tag = _unpack_tag_from(ikey, len(ikey) - TRAILER_SIZE)[0]
    kind = tag & 0xFF
    if kind > TYPE_VALUE:
        raise DecodeError(f"internal key has unknown type {kind}")
    return ikey[:-TRAILER_SIZE], tag >> 8, kind


def sort_key(ikey: bytes):
    """Tuple ordered like LevelDB's InternalKeyComparator."""
    return (ikey[:-TRAILER_SIZE], -_unpack_tag_from(ikey, len(ikey) - TRAILER_SIZE)[0])


def seek_key(user_key: bytes, sequence: int = MAX_SEQUENCE) -> bytes:
    """The smallest internal key for user_key visible at `sequence`."""
    return user_key + _pack_tag((sequence << 8) | TYPE_FOR_SEEK)

# The low byte of a lookup tag: TYPE_FOR_SEEK, so (key, seq) sorts before every
# entry of key at seq or below.
TAG_FOR_SEEK_MASK = TYPE_FOR_SEEK
