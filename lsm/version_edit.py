"""VersionEdit, the payload of every MANIFEST record. Pure: no files.

An edit is a sequence of ``varint32(tag) || fields``. Encoding follows C++
``VersionEdit::EncodeTo`` byte for byte; decoding accepts tags in any order
and rejects what C++ rejects, with C++'s reason strings.
"""
from dataclasses import dataclass, field

from .coding import decode_length_prefixed, decode_varint32, decode_varint64, encode_varint
from .errors import DecodeError
from .filemeta import FileMetaData

# On-disk tag numbers (frozen; LevelDB db/version_edit.cc).
TAG_COMPARATOR = 1
TAG_LOG_NUMBER = 2
TAG_NEXT_FILE_NUMBER = 3
TAG_LAST_SEQUENCE = 4
TAG_COMPACT_POINTER = 5
TAG_DELETED_FILE = 6
TAG_NEW_FILE = 7
TAG_LARGE_VALUE_REF = 8  # retired ("large value refs"): C++ rejects it as "unknown tag"
TAG_PREV_LOG_NUMBER = 9
RETIRED_TAGS = frozenset({TAG_LARGE_VALUE_REF})

NUM_LEVELS = 7  # on-disk constant: C++ rejects any level >= kNumLevels


@dataclass
class VersionEdit:
    comparator: bytes | None = None
    log_number: int | None = None
    prev_log_number: int | None = None
    next_file_number: int | None = None
    last_sequence: int | None = None
    compact_pointers: list = field(default_factory=list)  # [(level, internal_key)]
    deleted_files: set = field(default_factory=set)  # {(level, number)}
    new_files: list = field(default_factory=list)  # [(level, FileMetaData)]

    def encode(self) -> bytes:
        """C++ order: 1, 2, 9, 3, 4, all 5s, all 6s sorted, all 7s in insertion order."""
        out = []
        put = out.append
        if self.comparator is not None:
            put(_tag(TAG_COMPARATOR))
            put(_slice(self.comparator))
        for tag, value in (
            (TAG_LOG_NUMBER, self.log_number),
            (TAG_PREV_LOG_NUMBER, self.prev_log_number),
            (TAG_NEXT_FILE_NUMBER, self.next_file_number),
            (TAG_LAST_SEQUENCE, self.last_sequence),
        ):
            if value is not None:
                put(_tag(tag))
                put(encode_varint(value))
        for level, key in self.compact_pointers:
            put(_tag(TAG_COMPACT_POINTER))
            put(_level(level))
            put(_slice(key))
        for level, number in sorted(self.deleted_files):
            put(_tag(TAG_DELETED_FILE))
            put(_level(level))
            put(encode_varint(number))
        for level, meta in self.new_files:
            put(_tag(TAG_NEW_FILE))
            put(_level(level))
            put(encode_varint(meta.number))
            put(encode_varint(meta.size))
            put(_slice(meta.smallest))
            put(_slice(meta.largest))
        return b"".join(out)

    @classmethod
    def decode(cls, data) -> "VersionEdit":
        """Parse one MANIFEST record; DecodeError(reason, offset) as C++ would reject it."""
        data = bytes(data)
        edit = cls()
        n = len(data)
        pos = 0
        while pos < n:
            start = pos
            try:
                tag, pos = decode_varint32(data, pos)
            except DecodeError:
                raise DecodeError("VersionEdit: invalid tag", start) from None
            what = _FIELD_NAMES.get(tag)
            if what is None:
                raise DecodeError(f"VersionEdit: unknown tag {tag}", start)
            try:
                pos = _decode_field(edit, tag, data, pos)
            except DecodeError as exc:
                raise DecodeError(f"VersionEdit: {what} ({exc.reason})", start) from None
        return edit


_FIELD_NAMES = {  # C++'s reason strings, naming the field that failed to parse
    TAG_COMPARATOR: "comparator name",
    TAG_LOG_NUMBER: "log number",
    TAG_PREV_LOG_NUMBER: "previous log number",
    TAG_NEXT_FILE_NUMBER: "next file number",
    TAG_LAST_SEQUENCE: "last sequence number",
    TAG_COMPACT_POINTER: "compaction pointer",
    TAG_DELETED_FILE: "deleted file",
    TAG_NEW_FILE: "new-file entry",
}
_SCALARS = {
    TAG_LOG_NUMBER: "log_number",
    TAG_PREV_LOG_NUMBER: "prev_log_number",
    TAG_NEXT_FILE_NUMBER: "next_file_number",
    TAG_LAST_SEQUENCE: "last_sequence",
}


def _decode_field(edit, tag, data, pos):
    if tag == TAG_NEW_FILE:
        level, pos = _get_level(data, pos)
        number, pos = decode_varint64(data, pos)
        size, pos = decode_varint64(data, pos)
        smallest, pos = _get_internal_key(data, pos)
        largest, pos = _get_internal_key(data, pos)
        edit.new_files.append((level, FileMetaData(number, size, smallest, largest)))
    elif tag == TAG_DELETED_FILE:
        level, pos = _get_level(data, pos)
        number, pos = decode_varint64(data, pos)
        edit.deleted_files.add((level, number))
    elif tag == TAG_COMPACT_POINTER:
        level, pos = _get_level(data, pos)
        key, pos = _get_internal_key(data, pos)
        edit.compact_pointers.append((level, key))
    elif tag == TAG_COMPARATOR:
        edit.comparator, pos = decode_length_prefixed(data, pos)
    else:
        value, pos = decode_varint64(data, pos)
        setattr(edit, _SCALARS[tag], value)
    return pos


def _get_level(data, pos):
    level, pos = decode_varint32(data, pos)
    if level >= NUM_LEVELS:
        raise DecodeError(f"level {level} >= {NUM_LEVELS}", pos)
    return level, pos


def _get_internal_key(data, pos):
    key, pos = decode_length_prefixed(data, pos)
    if not key:  # C++ InternalKey::DecodeFrom rejects only the empty key
        raise DecodeError("empty internal key", pos)
    return key, pos


def _tag(tag):
    return encode_varint(tag)


def _level(level):
    if not 0 <= level < NUM_LEVELS:
        raise ValueError(f"level {level} out of range 0..{NUM_LEVELS - 1}")
    return encode_varint(level)


def _slice(data):
    return encode_varint(len(data)) + bytes(data)
