"""Table entries as arrays, and data blocks assembled from them in bulk. Pure:
numpy, struct and bytes; no files, no sockets.

EntryArrays holds entries as lsm's data blocks store them without prefix
compression -- a header of varints (shared = 0, internal key length, value
length), the internal key, the value -- laid somewhere in one bytes object,
with numpy columns saying where each entry, its key and its end lie and what
its tag is. Every step of a flush or compaction then works on columns, and
an output block is the entries' bytes copied as they are, end to end, with a
restart array that points at every entry (restart interval 1).

Blocks whose every entry is a restart point (lsm's layout) decode in bulk
from their restart arrays; any other block (LevelDB's prefix-compressed
layout) goes through the entry-by-entry decoder into the same form.
"""
import struct
from bisect import bisect_left
from itertools import accumulate

from ..errors import DecodeError
from .block import decode_block_split, restart_trailer
from .filter import FEW_KEYS, hash_keys, hash_rows
from .keyfilter import ROW_BYTES, crc32c_of_ragged, crc32c_of_rows
from .ragged import RaggedKeys

_TAG_SIZE = 8
_pack_count = struct.Struct("<I").pack
# Varints of a 32-bit length take at most this many bytes; of 64 bits, this many.
_MAX_VARINT32 = 5
_MAX_VARINT64 = 10
# gather_entries pads entry heads to the longest key of up to this many bytes.
_MAX_HEAD_KEY = 1024


class EntryArrays:
    """Entries laid in `data` (bytes): entry i is data[start[i]:end[i]], its
    internal key starts at key[i] and holds user_len[i] + 8 bytes, tag[i] is
    the key's last 8 bytes as a number (sequence << 8 | kind). Columns are
    numpy arrays (int64; tag uint64)."""

    __slots__ = ("data", "start", "key", "user_len", "end", "tag")

    def __init__(self, data, start, key, user_len, end, tag):
        self.data = data
        self.start = start
        self.key = key
        self.user_len = user_len
        self.end = end
        self.tag = tag

    def __len__(self):
        return len(self.start)

    def take(self, index):
        """The entries at `index` (a slice, numpy indices or mask), same data."""
        return EntryArrays(self.data, self.start[index], self.key[index], self.user_len[index],
                           self.end[index], self.tag[index])

    def user_key(self, i: int) -> bytes:
        at = int(self.key[i])
        return self.data[at:at + int(self.user_len[i])]

    def internal_key(self, i: int) -> bytes:
        at = int(self.key[i])
        return self.data[at:at + int(self.user_len[i]) + _TAG_SIZE]

    def user_keys(self):
        """The user keys as a sequence (for bisect on entries in key order)."""
        return _UserKeys(self)

    def user_key_list(self) -> list:
        """Every entry's user key as bytes, sliced in C (map over slices)."""
        starts = self.key.tolist()
        ends = (self.key + self.user_len).tolist()
        return list(map(self.data.__getitem__, map(slice, starts, ends)))

    def encoded(self) -> bytes:
        """The entries' bytes end to end, in order: what a block of them holds
        before its restart array. Entries next to each other in data are
        copied as one piece."""
        import numpy as np

        n = len(self)
        if not n:
            return b""
        start, end = self.start, self.end
        size = int(end[0] - start[0])
        if n > 1 and size and (end - start == size).all():
            # Entries of one size (a bulk load's): every entry is a row of a
            # view with a row at each byte, and one take copies them.
            from numpy.lib.stride_tricks import as_strided

            array = np.frombuffer(self.data, dtype=np.uint8)
            rows = as_strided(array, shape=(len(array) - size + 1, size), strides=(1, 1), writeable=False)
            return rows[start].tobytes()
        # A piece starts where an entry does not follow the one before it.
        breaks = np.flatnonzero(start[1:] != end[:-1]) + 1
        firsts = np.concatenate(([0], breaks))
        lasts = np.concatenate((breaks - 1, [n - 1]))
        data = self.data
        if len(firsts) == 1:
            return data[int(start[0]):int(end[-1])]
        return b"".join(map(data.__getitem__, map(slice, start[firsts].tolist(), end[lasts].tolist())))

    def packed(self):
        """These entries with data cut down to their bytes: the span they
        cover when they lie in data in order (a run's entries), else their
        bytes gathered end to end (sorted entries)."""
        if not len(self):
            return self
        start, end = self.start, self.end
        if (start[1:] >= end[:-1]).all():
            lo, hi = int(start[0]), int(end[-1])
            return EntryArrays(self.data[lo:hi], start - lo, self.key - lo, self.user_len, end - lo, self.tag)
        size = end - start
        new_end = size.cumsum()
        new_start = new_end - size
        return EntryArrays(self.encoded(), new_start, self.key - start + new_start, self.user_len, new_end, self.tag)


class _UserKeys:
    __slots__ = ("_entries",)

    def __init__(self, entries):
        self._entries = entries

    def __len__(self):
        return len(self._entries)

    def __getitem__(self, i):
        return self._entries.user_key(i)


def concat_entries(parts):
    """EntryArrays of the entries of every part in turn, in one data: a
    part alone as it is; else, in a new data, the span of bytes each part's
    entries cover, copied whole, unless that is much more than their own
    bytes (a few entries scattered through a large data): then they are
    gathered."""
    import numpy as np

    parts = [p for p in parts if len(p)]
    if not parts:
        return empty_entries()
    if len(parts) == 1:
        return parts[0]
    spans, shifts, at = [], [], 0
    for i, p in enumerate(parts):
        lo, hi = int(p.start.min()), int(p.end.max())
        if hi - lo > 2 * int((p.end - p.start).sum()) + 4096:
            p = parts[i] = p.packed()
            lo, hi = 0, len(p.data)
        spans.append(memoryview(p.data)[lo:hi])
        shifts.append(at - lo)
        at += hi - lo
    shift = np.repeat(np.array(shifts, dtype=np.int64), [len(p) for p in parts])
    return EntryArrays(
        b"".join(spans),
        np.concatenate([p.start for p in parts]) + shift,
        np.concatenate([p.key for p in parts]) + shift,
        np.concatenate([p.user_len for p in parts]),
        np.concatenate([p.end for p in parts]) + shift,
        np.concatenate([p.tag for p in parts]),
    )


def empty_entries():
    import numpy as np

    none = np.zeros(0, dtype=np.int64)
    return EntryArrays(b"", none, none, none, none, np.zeros(0, dtype=np.uint64))


def _varint_columns(values, max_bytes: int = _MAX_VARINT32):
    """(bytes, valid) of the varint encoding of every value of a numpy int
    array (none negative, each fitting max_bytes groups of 7 bits): bytes an
    (n, width) uint8 matrix, width the longest encoding's size, and valid
    says which of them each value takes."""
    import numpy as np

    width = min(max_bytes, max(1, (int(values.max()).bit_length() + 6) // 7)) if len(values) else 1
    shifts = 7 * np.arange(width, dtype=np.int64)
    groups = (values[:, None] >> shifts) & 0x7F
    length = 1 + (values[:, None] >> shifts[1:] > 0).sum(axis=1)
    valid = np.arange(width) < length[:, None]
    more = np.arange(width) < (length - 1)[:, None]
    return (groups | (more << 7)).astype(np.uint8), valid


def entry_headers(key_len, value_len):
    """(headers, sizes) of entries sharing nothing with internal keys of
    key_len bytes and values of value_len (numpy int arrays): every header
    end to end as bytes, and each one's size."""
    matrix, valid = _header_columns(key_len, value_len)
    return matrix[valid].tobytes(), valid.sum(axis=1)


def _header_columns(key_len, value_len):
    """(bytes, valid) of the headers entry_headers encodes: a uint8 matrix
    of a row each, as wide as the longest, and which of its bytes each
    header takes."""
    import numpy as np

    n = len(key_len)
    key_bytes, key_valid = _varint_columns(key_len)
    value_bytes, value_valid = _varint_columns(value_len)
    matrix = np.concatenate((np.zeros((n, 1), dtype=np.uint8), key_bytes, value_bytes), axis=1)
    valid = np.concatenate((np.ones((n, 1), dtype=bool), key_valid, value_valid), axis=1)
    return matrix, valid


def gather_entries(data, key_at, key_len, value_at, value_len, tags):
    """EntryArrays of entries whose user keys and values lie in `data`
    (bytes) at key_at and value_at, key_len and value_len long, with tags
    (numpy columns, in the order the entries are to keep), laid end to end
    in a new data: one copy, in bulk. Each entry's head -- header, user key
    and tag -- is a row of a matrix padded to the longest key; rows too
    wide for one (keys over _MAX_HEAD_KEY bytes) are joined from pieces.
    Values join their heads in a row too when padding to the longest value
    costs little (keys and values of one length, a bulk load's), else as
    pieces."""
    import numpy as np

    n = len(key_at)
    if not n:
        return empty_entries()
    array = np.frombuffer(data, dtype=np.uint8)
    header, header_valid = _header_columns(key_len + _TAG_SIZE, value_len)
    header_len = header_valid.sum(axis=1)
    size = header_len + key_len + _TAG_SIZE + value_len
    end = np.cumsum(size)
    start = end - size
    entries = EntryArrays(None, start, start + header_len, key_len, end, tags)
    key_width, value_width = int(key_len.max()), int(value_len.max())
    tag_bytes = tags.astype("<u8").view(np.uint8).reshape(n, _TAG_SIZE)
    if key_width > _MAX_HEAD_KEY:
        pieces = [b""] * (4 * n)
        header_ends = np.cumsum(header_len).tolist()
        headers = header[header_valid].tobytes()
        tag_bytes = tag_bytes.tobytes()
        view = memoryview(data)
        pieces[0::4] = map(headers.__getitem__, map(slice, [0] + header_ends[:-1], header_ends))
        pieces[1::4] = map(view.__getitem__, map(slice, key_at.tolist(), (key_at + key_len).tolist()))
        pieces[2::4] = map(tag_bytes.__getitem__, map(slice, range(0, 8 * n, 8), range(8, 8 * n + 8, 8)))
        pieces[3::4] = map(view.__getitem__, map(slice, value_at.tolist(), (value_at + value_len).tolist()))
        entries.data = b"".join(pieces)
        return entries
    whole_rows = (header.shape[1] + key_width + _TAG_SIZE + value_width) * n <= 2 * int(end[-1]) + (1 << 16)
    widths = [header.shape[1], key_width, _TAG_SIZE] + ([value_width] if whole_rows else [])
    at = list(accumulate(widths, initial=0))
    rows = np.empty((n, at[-1]), dtype=np.uint8)
    rows[:, :at[1]] = header
    rows[:, at[1]:at[2]] = byte_rows(array, key_at, key_width)
    rows[:, at[2]:at[3]] = tag_bytes
    if whole_rows:
        rows[:, at[3]:] = byte_rows(array, value_at, value_width)
    padded = not (header_valid.all() and (key_len == key_width).all()
                  and (not whole_rows or (value_len == value_width).all()))
    if padded:
        valid = [header_valid, np.arange(key_width) < key_len[:, None], np.ones((n, _TAG_SIZE), dtype=bool)]
        if whole_rows:
            valid.append(np.arange(value_width) < value_len[:, None])
        rows = rows[np.concatenate(valid, axis=1)]
    heads = rows.tobytes()
    if whole_rows:
        entries.data = heads
        return entries
    head_ends = np.cumsum(header_len + key_len + _TAG_SIZE).tolist()
    view = memoryview(data)
    pieces = [b""] * (2 * n)
    pieces[0::2] = map(heads.__getitem__, map(slice, [0] + head_ends[:-1], head_ends))
    pieces[1::2] = map(view.__getitem__, map(slice, value_at.tolist(), (value_at + value_len).tolist()))
    entries.data = b"".join(pieces)
    return entries


def encode_handles(offsets, sizes) -> list:
    """format.encode_handle(offset, size) of every pair (numpy int arrays):
    two varint64s each, encoded together."""
    import numpy as np

    offset_bytes, offset_valid = _varint_columns(offsets, _MAX_VARINT64)
    size_bytes, size_valid = _varint_columns(sizes, _MAX_VARINT64)
    valid = np.concatenate((offset_valid, size_valid), axis=1)
    joined = np.concatenate((offset_bytes, size_bytes), axis=1)[valid].tobytes()
    ends = np.cumsum(valid.sum(axis=1)).tolist()
    return list(map(joined.__getitem__, map(slice, [0] + ends[:-1], ends)))


def restart_every_entry_block(keys, values) -> bytes:
    """A block of keys and values (lists of bytes, in order) with every
    entry a restart point sharing nothing: what block.BlockBuilder(1) makes
    of them (an index block), its headers encoded together."""
    import numpy as np

    n = len(keys)
    if not n:
        return restart_trailer([0])  # BlockBuilder's empty block: one restart, at 0
    key_len = np.fromiter(map(len, keys), dtype=np.int64, count=n)
    value_len = np.fromiter(map(len, values), dtype=np.int64, count=n)
    headers, header_len = entry_headers(key_len, value_len)
    header_ends = np.cumsum(header_len).tolist()
    pieces = [b""] * (3 * n + 1)
    pieces[0:-1:3] = map(headers.__getitem__, map(slice, [0] + header_ends[:-1], header_ends))
    pieces[1:-1:3] = keys
    pieces[2:-1:3] = values
    ends = np.cumsum(header_len + key_len + value_len)
    pieces[-1] = np.concatenate(([0], ends[:-1], [n])).astype("<u4").tobytes()
    return b"".join(pieces)


def encode_entries(user_keys, tags, values):
    """EntryArrays of entries given as lists: user keys, tags (ints) and
    values, in the order they are to keep."""
    import numpy as np

    n = len(user_keys)
    if not n:
        return empty_entries()
    user_len = np.fromiter(map(len, user_keys), dtype=np.int64, count=n)
    value_len = np.fromiter(map(len, values), dtype=np.int64, count=n)
    headers, header_len = entry_headers(user_len + _TAG_SIZE, value_len)
    header_ends = np.cumsum(header_len).tolist()
    packed_tags = struct.pack("<%dQ" % n, *tags)
    pieces = [b""] * (4 * n)
    pieces[0::4] = map(headers.__getitem__, map(slice, [0] + header_ends[:-1], header_ends))
    pieces[1::4] = user_keys
    pieces[2::4] = map(packed_tags.__getitem__, map(slice, range(0, 8 * n, 8), range(8, 8 * n + 8, 8)))
    pieces[3::4] = values
    size = header_len + user_len + _TAG_SIZE + value_len
    end = np.cumsum(size)
    start = end - size
    return EntryArrays(b"".join(pieces), start, start + header_len, user_len, end,
                       np.array(tags, dtype=np.uint64))


# ------------------------------------------------------------------ decoding


def decode_blocks(blocks):
    """EntryArrays of the entries of data blocks (uncompressed contents, in
    order). Blocks of lsm's layout decode together; each other block alone,
    entry by entry. DecodeError for a malformed block, with `block` set to
    its place in `blocks`."""
    blocks = [bytes(b) for b in blocks]
    return decode_joined_blocks(b"".join(blocks), list(map(len, blocks)))


def decode_joined_blocks(data: bytes, lengths):
    """decode_blocks of blocks laid end to end in data, lengths[i] bytes
    each (format.unpack_blocks)."""
    entries = _decode_restart_every_entry(data, lengths)
    if entries is not None:
        return entries
    parts = []
    at = 0
    for i, length in enumerate(lengths):
        contents = data[at:at + length] if len(lengths) > 1 else data
        at += length
        part = _decode_restart_every_entry(contents, [length])
        if part is None:
            try:
                ukeys, tags, values = decode_block_split(contents)
            except DecodeError as exc:
                exc.block = i
                raise
            part = encode_entries(ukeys, tags, values)
        parts.append(part)
    return concat_entries(parts)


def _varints(array, at, limit):
    """(values, byte lengths) of the varint32s starting at positions `at` of
    a uint8 array; None if one runs past `limit` (per position) or past five
    bytes. Varints of one or two bytes (every length under 16 KiB) take a
    few steps over them all; longer ones, a step per byte."""
    import numpy as np

    last = len(array) - 1
    if (at >= limit).any():
        return None
    first = array[np.minimum(at, last)]
    more = first >= 0x80
    if not more.any():
        return first.astype(np.int64), np.ones(len(at), dtype=np.int64)
    second = array[np.minimum(at + 1, last)]
    if not (more & (second >= 0x80)).any():
        if (more & (at + 1 >= limit)).any():
            return None
        values = first.astype(np.int64)
        values[more] = (values[more] & 0x7F) | (second[more].astype(np.int64) << 7)
        return values, more + np.int64(1)
    values = np.zeros(len(at), dtype=np.int64)
    lengths = np.zeros(len(at), dtype=np.int64)
    going = np.ones(len(at), dtype=bool)
    for i in range(_MAX_VARINT32):
        pos = at + i
        byte = array[np.minimum(pos, last)].astype(np.int64)
        if (going & (pos >= limit)).any():
            return None
        values |= np.where(going, (byte & 0x7F) << (7 * i), 0)
        lengths += going
        going &= byte >= 0x80
        if not going.any():
            return values, lengths
    return None


def _numbers_at(array, positions, dtype):
    """The little-endian numbers of a numpy dtype ('<u4', '<u8') at byte
    positions of a uint8 array (each wholly within it): one gather from a
    view with a number at every byte, a third of byte_rows' cost."""
    import numpy as np

    width = np.dtype(dtype).itemsize
    if len(array) < width:
        return np.zeros(len(positions), dtype=dtype)  # positions is empty: none fits
    view = np.ndarray((len(array) - width + 1,), dtype=dtype, buffer=array, strides=(1,))
    return view[positions]


def _uint32_at(array, positions):
    """The little-endian uint32s at byte positions of a uint8 array (each
    wholly within it), as int64."""
    import numpy as np

    return _numbers_at(array, positions, "<u4").astype(np.int64)


def _decode_restart_every_entry(data: bytes, lengths):
    """EntryArrays of blocks laid end to end in data, lengths[i] bytes each,
    whose every entry is a restart point sharing nothing, each entry ending
    where the next restart begins (lsm's layout); None if any block is not
    so (or is malformed: the entry-by-entry decoder then says how)."""
    import numpy as np

    sizes = np.array(lengths, dtype=np.int64)
    if (sizes < 4).any():
        return None
    array = np.frombuffer(data, dtype=np.uint8)
    block_end = np.cumsum(sizes)
    counts = _uint32_at(array, block_end - 4)
    limits = sizes - 4 - 4 * counts
    if (counts == 0).any() or (limits <= 0).any():
        return None
    bases = block_end - sizes
    block_limit = np.repeat(bases + limits, counts)
    block_base = np.repeat(bases, counts)
    # The restart arrays, one after another: entry i's slot is 4 * i bytes
    # past its block's first slot.
    firsts = np.cumsum(counts) - counts
    slot = np.repeat(bases + limits - 4 * firsts, counts) + 4 * np.arange(len(block_base))
    start = _uint32_at(array, slot) + block_base
    # Each entry ends where the next one of its block starts, the last at the limit.
    expected_end = np.empty_like(start)
    expected_end[:-1] = start[1:]
    block_last = np.cumsum(counts) - 1
    expected_end[block_last] = block_limit[block_last]
    if (start >= expected_end).any() or (start[firsts] != bases).any():
        return None
    if array[start].any():
        return None  # a shared prefix: not this layout
    key_lens = _varints(array, start + 1, expected_end)
    if key_lens is None:
        return None
    key_len, key_len_size = key_lens
    value_lens = _varints(array, start + 1 + key_len_size, expected_end)
    if value_lens is None:
        return None
    value_len, value_len_size = value_lens
    key = start + 1 + key_len_size + value_len_size
    end = key + key_len + value_len
    if (end != expected_end).any() or (key_len < _TAG_SIZE).any():
        return None
    tag_at = key + key_len - _TAG_SIZE
    tag = _numbers_at(array, tag_at, "<u8").astype(np.uint64)
    if ((tag & np.uint64(0xFF)) > 1).any():
        return None  # an unknown value type: the entry decoder reports it
    return EntryArrays(data, start, key, key_len - _TAG_SIZE, end, tag)


# ------------------------------------------------------------------ assembly


class BlockCutter:
    """Sorted entries cut into data blocks as TableBuilder.add cuts them:
    after the first entry that takes the entries, their restart array (a
    restart at every entry) and its count to block_size. A block's contents
    are joined from the entries' data as it lies: one piece per run of
    entries that lie end to end there."""

    __slots__ = ("_entries", "_offsets", "_follows", "_ends", "_per_block", "_limit")

    def __init__(self, entries, block_size: int):
        import numpy as np

        size = entries.end - entries.start
        n = len(size)
        uniform = n > 1 and size[0] and (size == size[0]).all()
        follows = entries.start[1:] == entries.end[:-1]  # entry i + 1 lies right after entry i
        if uniform and not follows.all():
            # Entries of one size, scattered (a bulk load's, sorted): one
            # numpy take lays them end to end, cheaper than a piece each.
            entries = entries.packed()
            follows = entries.start[1:] == entries.end[:-1]
        self._entries = entries
        self._follows = follows
        self._offsets = np.concatenate(([0], np.cumsum(size)))  # where each entry starts, all end to end
        self._limit = block_size - 4
        self._ends = self._per_block = None
        if uniform:
            # Entries of one size: every full block holds as many.
            self._per_block = max(1, -(-self._limit // (int(size[0]) + 4)))
        else:
            # Bytes a block takes up to each entry: entries and a restart slot each.
            self._ends = (self._offsets + 4 * np.arange(n + 1)).tolist()

    def cut(self, first: int, stop: int):
        """(ends, full): the blocks from entry `first` on, ending by `stop`,
        as their end positions; full says the last one reached block_size
        (the others all do)."""
        if first >= stop:
            return [], True
        per_block = self._per_block
        if per_block is not None:
            out = list(range(first + per_block, stop + 1, per_block))
            if out and out[-1] == stop:
                return out, True
            out.append(stop)
            return out, False
        ends = self._ends
        limit = self._limit
        out = []
        pos = first
        while pos < stop:
            end = bisect_left(ends, ends[pos] + limit, pos + 1)
            if end > stop:
                out.append(stop)
                return out, False
            out.append(end)
            pos = end
        return out, True

    def blocks(self, first: int, ends):
        """(raw, raw_ends, first internal keys, last internal keys, entry
        counts) of the blocks from `first` to each of ends in turn: raw
        holds their contents end to end, block j ending at raw_ends[j]
        (format.frame_blocks stores them)."""
        import numpy as np

        entries = self._entries
        offsets = self._offsets
        last = ends[-1]
        bounds = np.array([first] + ends, dtype=np.int64)
        counts = np.diff(bounds)
        block_start = np.repeat(offsets[bounds[:-1]], counts)
        restarts = (offsets[first:last] - block_start).astype("<u4").tobytes()
        rel = (4 * (bounds - first)).tolist()
        # A piece starts at each block's first entry and at each entry that
        # does not lie right after the one before it.
        new_piece = np.ones(last - first, dtype=bool)
        new_piece[1:] = ~self._follows[first:last - 1]
        new_piece[bounds[:-1] - first] = True
        piece_first = np.flatnonzero(new_piece) + first
        piece_last = np.append(piece_first[1:], last) - 1
        piece_at = entries.start[piece_first].tolist()
        piece_end = entries.end[piece_last].tolist()
        block_pieces = np.searchsorted(piece_first, bounds).tolist()
        view = memoryview(entries.data)
        pieces = list(map(view.__getitem__, map(slice, piece_at, piece_end)))
        counts = counts.tolist()
        # Each block's pieces, then its restart array and count.
        parts = []
        for j in range(len(ends)):
            parts += pieces[block_pieces[j]:block_pieces[j + 1]]
            parts.append(restarts[rel[j]:rel[j + 1]])
            parts.append(_pack_count(counts[j]))
        raw_ends = (offsets[bounds[1:]] - offsets[first] + 4 * (bounds[1:] - first + np.arange(1, len(ends) + 1)))
        key_at = entries.key
        key_end = key_at + entries.user_len + _TAG_SIZE
        firsts, lasts = bounds[:-1], bounds[1:] - 1
        data = entries.data
        first_keys = list(map(data.__getitem__, map(slice, key_at[firsts].tolist(), key_end[firsts].tolist())))
        last_keys = list(map(data.__getitem__, map(slice, key_at[lasts].tolist(), key_end[lasts].tolist())))
        return b"".join(parts), raw_ends.tolist(), first_keys, last_keys, counts


def user_key_crcs(entries):
    """crc32c of every entry's user key (lsm's filter, keyfilter), a numpy
    uint32 array: keys of one length together as rows
    (keyfilter.crc32c_of_rows), the others where they lie, as ragged keys."""
    return _hash_user_keys(entries, (_CRC32C,))[0]


def user_key_hashes(entries):
    """The filter's hash of every entry's user key, a numpy uint32 array.
    Keys of one length are hashed together as rows (filter.hash_rows); the
    lengths shared by fewer than filter.FEW_KEYS keys, where a numpy step per
    word would cost more than it covers, go to filter.hash_keys with each
    other."""
    return _hash_user_keys(entries, (_BLOOM_HASH,))[0]


def user_key_hashes_and_crcs(entries):
    """(user_key_hashes(entries), user_key_crcs(entries)), over one grouping
    of the keys by length, each group's rows gathered once for both."""
    return tuple(_hash_user_keys(entries, (_BLOOM_HASH, _CRC32C)))


def _bloom_hash_of_rows(rows):
    return hash_rows(rows, rows.shape[1])


def _bloom_hash_of_rest(rest):
    return hash_keys(rest.user_key_list())


def _crc32c_of_rest(rest):
    return crc32c_of_ragged(RaggedKeys.in_buffer(rest.data, rest.key, rest.user_len))


# Hashers of user keys: (of_rows, of_rest, widest rows or None).
_BLOOM_HASH = (_bloom_hash_of_rows, _bloom_hash_of_rest, None)
_CRC32C = (crc32c_of_rows, _crc32c_of_rest, ROW_BYTES)


def _hash_user_keys(entries, hashers) -> list:
    """A hash of every entry's user key (numpy uint32) for each hasher
    (of_rows, of_rest, max_width): of_rows(rows) for each length at least
    filter.FEW_KEYS keys share (and at most max_width), their keys as the
    rows of a uint8 array, gathered once for all hashers; of_rest(entries)
    for the entries of the other lengths, together."""
    import numpy as np

    n = len(entries)
    if not n:
        return [np.zeros(0, dtype=np.uint32) for _ in hashers]
    array = np.frombuffer(entries.data, dtype=np.uint8)
    lengths = entries.user_len
    if (lengths == lengths[0]).all():
        groups = [(int(lengths[0]), slice(None))]
    else:
        by_length = np.argsort(lengths, kind="stable")
        ranked = lengths[by_length]
        bounds = np.flatnonzero(ranked[1:] != ranked[:-1]) + 1
        groups = [(int(ranked[lo]), by_length[lo:hi])
                  for lo, hi in zip([0] + bounds.tolist(), bounds.tolist() + [n])]
    hashes = [np.empty(n, dtype=np.uint32) for _ in hashers]
    scattered = [[] for _ in hashers]
    for width, where in groups:
        whole = isinstance(where, slice)
        rows = None
        for (of_rows, _, max_width), out, rest in zip(hashers, hashes, scattered):
            if (whole or len(where) >= FEW_KEYS) and (max_width is None or width <= max_width):
                if rows is None:
                    rows = byte_rows(array, entries.key[where], width)
                out[where] = of_rows(rows)
            else:
                rest.append(np.arange(n) if whole else where)
    for (_, of_rest, _), out, rest in zip(hashers, hashes, scattered):
        if rest:
            where = np.concatenate(rest)
            out[where] = of_rest(entries.take(where))
    return hashes


def byte_rows(array, at, width: int):
    """The `width` bytes of a uint8 array from each position of `at`, as an
    (n, width) array; bytes past the array's end read as zero. One take
    from a view with a row at every byte copies them."""
    import numpy as np
    from numpy.lib.stride_tricks import as_strided

    if width == 0 or not len(at):
        return np.zeros((len(at), width), dtype=np.uint8)
    if len(array) < width:
        array = np.concatenate((array, np.zeros(width - len(array), dtype=np.uint8)))
    rows = as_strided(array, shape=(len(array) - width + 1, width), strides=(1, 1), writeable=False)
    safe = np.minimum(at, len(array) - width)
    out = rows[safe]
    late = np.flatnonzero(safe != at)  # rows running past the end
    if len(late):
        shift = (at[late] - safe[late])[:, None] + np.arange(width)
        out[late] = np.where(shift < width, np.take_along_axis(out[late], np.minimum(shift, width - 1), 1), 0)
    return out
