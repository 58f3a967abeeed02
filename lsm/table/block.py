"""Block contents: prefix-compressed entries plus a restart array.
Pure: no files; bytes in, bytes out, DecodeError on damage.

    entry   := varint32 shared | varint32 non_shared | varint32 value_len
               | key[shared:] | value
    trailer := fixed32 restart_offset * num_restarts | fixed32 num_restarts

One decoder serves every block, whoever wrote it: decode_block_split()
turns a data block into (user keys, tags, values), the form the block cache
keeps, which a point lookup bisects (find_in_block) and a scan slices.
decode_block_split_from() decodes from the restart point before a key, for a
seek that will not cache the block; seek_block() answers a point lookup from
a block's raw contents, decoding only the restart interval that holds the
key, for a block read once. split_restart_entries() decodes in bulk a block
whose every entry is a restart point (an index block), or declines it.

Inside the decoder, a block whose entries all share no prefix and have one
header (keys of one length, values of one length) is *uniform*: its entries
lie at a fixed stride and one struct call decodes them, several times faster
than the entry loop (docs/measurements.md). Any other block -- LevelDB's,
prefix-compressed, or lsm's of keys and values of many sizes -- takes the
entry loop, whose common headers (lengths below 16 KiB) are read without a
varint call.
"""
import struct
from bisect import bisect_left
from functools import lru_cache

from ..coding import encode_varint, repeats_at_stride, unpack_records
from ..errors import DecodeError

_FIXED32 = struct.Struct("<I")
_TAG = struct.Struct("<Q")
_MAX_TAG = (1 << 64) - 1  # sorts before every other version of its user key
# Type bytes (first trailer byte) other than deletion (0) and value (1) are corrupt.
_VALID_KINDS = b"\x00\x01"


@lru_cache(maxsize=1024)
def _uint32s(count: int):
    return struct.Struct("<%dI" % count)


@lru_cache(maxsize=1024)
def _tags_struct(count: int):
    return struct.Struct("<%dQ" % count)


def trailer_tags(trailers: bytes, count: int):
    """Tags of `count` joined 8-byte trailers; DecodeError for an unknown type.
    Joined, the type check is one C call."""
    if trailers[0::8].translate(None, _VALID_KINDS):
        raise DecodeError("internal key with an unknown value type")
    return list(_tags_struct(count).unpack(trailers))


def entry_header(shared: int, non_shared: int, value_len: int) -> bytes:
    return encode_varint(shared) + encode_varint(non_shared) + encode_varint(value_len)


def shared_prefix_length(a: bytes, b: bytes) -> int:
    """Length of the common prefix of a and b, computed in C: the highest
    differing bit of the big-endian XOR tells where the keys part."""
    n = min(len(a), len(b))
    x = int.from_bytes(a[:n], "big") ^ int.from_bytes(b[:n], "big")
    return n - ((x.bit_length() + 7) >> 3)


def restart_trailer(restarts) -> bytes:
    return _uint32s(len(restarts) + 1).pack(*restarts, len(restarts))


class BlockBuilder:
    """Builds one block. Keys must be added in the block's sort order."""

    def __init__(self, restart_interval: int = 16):
        if restart_interval < 1:
            raise ValueError("restart_interval must be at least 1")
        self.restart_interval = restart_interval
        self.reset()

    def reset(self) -> None:
        self._parts = []
        self._size = 0
        self._restarts = [0]
        self._counter = 0
        self.last_key = b""
        self.num_entries = 0

    def add(self, key: bytes, value: bytes) -> None:
        if self._counter < self.restart_interval:
            shared = shared_prefix_length(self.last_key, key)
        else:
            self._restarts.append(self._size)
            self._counter = 0
            shared = 0
        header = entry_header(shared, len(key) - shared, len(value))
        self._parts += (header, key[shared:], value)
        self._size += len(header) + len(key) - shared + len(value)
        self._counter += 1
        self.last_key = key
        self.num_entries += 1

    def size_estimate(self) -> int:
        """Size of the finished block: entries + restart array + its count."""
        return self._size + 4 * len(self._restarts) + 4

    def empty(self) -> bool:
        return self.num_entries == 0

    def finish(self) -> bytes:
        self._parts.append(restart_trailer(self._restarts))
        return b"".join(self._parts)


def _read_varint32(data, pos: int):
    result = shift = 0
    start = pos
    while True:
        byte = data[pos]  # IndexError past the end: caught by decode_block
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 28:
            raise DecodeError("varint32 longer than 5 bytes", start)


def _restart_count(data):
    """(entries_limit, number of restarts) with the count checked."""
    size = len(data)
    if size < 4:
        raise DecodeError(f"block too short ({size} bytes)")
    num_restarts = _FIXED32.unpack_from(data, size - 4)[0]
    if num_restarts == 0 or num_restarts > (size - 4) // 4:
        raise DecodeError(f"bad restart count {num_restarts}", size - 4)
    return size - 4 - 4 * num_restarts, num_restarts


def _restart_array(data):
    """(entries_limit, restart offsets) with the count checked, the offsets not."""
    limit, num_restarts = _restart_count(data)
    return limit, _uint32s(num_restarts).unpack_from(data, limit)


def restart_points(data):
    """Check the restart array; return (entries_limit, restart offsets)."""
    limit, restarts = _restart_array(data)
    if limit == 0:
        if any(restarts):
            raise DecodeError("restart point in an empty block", limit)
    elif (
        restarts[0] != 0
        or restarts[-1] >= limit
        or list(restarts) != sorted(set(restarts))
        or any(map(data.__getitem__, restarts))  # a restart entry shares no prefix
    ):
        raise DecodeError("bad restart array", limit)
    return limit, restarts


def entries_limit(data) -> int:
    """Check the restart array; return where the entries end (= its offset)."""
    return restart_points(data)[0]


def _uniform_layout(data, limit):
    """(header length, key length, value length, entry count) if the entries
    in data[:limit] are uniform, else None. Each header byte is compared at
    every stride in C; once all match, an entry-by-entry parse would find
    exactly these entries, so nothing is taken on trust."""
    if limit < 3 or data[0]:
        return None
    key_len = data[1]
    value_len = data[2]
    if key_len | value_len < 128:
        # repeats_at_stride's check written out for one-byte lengths: every
        # point lookup passes here, and a call with its loop is a measurable
        # share of a lookup.
        stride = 3 + key_len + value_len
        count, rest = divmod(limit, stride)
        if (
            rest
            or data[0:limit:stride].count(0) != count
            or data[1:limit:stride].count(key_len) != count
            or data[2:limit:stride].count(value_len) != count
        ):
            return None
        return 3, key_len, value_len, count
    if key_len < 128 and limit > 3 and data[3] < 128:
        # A value of 128 bytes to 16 KiB, read inline: most blocks of real
        # data come here, to be told in a few steps that they are not uniform.
        value_len = (value_len & 0x7F) | data[3] << 7
        pos = 4
    else:
        try:
            key_len, pos = _read_varint32(data, 1)
            value_len, pos = _read_varint32(data, pos)
        except (IndexError, DecodeError):
            return None  # the entry-by-entry loop reports it
    stride = pos + key_len + value_len
    count, rest = divmod(limit, stride)
    if rest or not repeats_at_stride(data, 0, pos, stride, count):
        return None
    return pos, key_len, value_len, count


def uniform_layout(data):
    """(entries limit, header length, key length, value length, entry count)
    of a uniform block, restart count checked; None for any other block."""
    limit, _num_restarts = _restart_count(data)
    layout = _uniform_layout(data, limit)
    return None if layout is None else (limit, *layout)


# Entries a cached _split_records struct covers at most (a struct's size
# grows with its record count; 4 KiB blocks hold ~30 entries of 100 bytes).
_SPLIT_STRUCT_RECORDS = 512


@lru_cache(maxsize=256)
def _split_records(header_len: int, key_len: int, value_len: int, count: int):
    """The struct that unpacks a uniform block's `count` entries by
    _split_format. Blocks of one table nearly all share a layout: one cached
    struct per layout saves a scan ~4% of its decoding."""
    return struct.Struct("<" + _split_format(header_len, key_len, value_len) * count)


def _split_format(header_len: int, key_len: int, value_len: int) -> str:
    """One uniform entry as (user key, tag, value): the tag an integer ("Q"),
    so no trailer bytes are made."""
    return "%dx%dsQ%ds" % (header_len, key_len - 8, value_len)


def _decode_uniform(data, limit, split):
    """_decode_entries' result for a uniform block, with tags instead of
    trailers when split; None if the block is not uniform."""
    layout = _uniform_layout(data, limit)
    if layout is None:
        return None
    header_len, key_len, value_len, count = layout
    stride = header_len + key_len + value_len
    if split:
        if key_len < 8:
            return None  # the entry-by-entry loop reports it
        if data[header_len + key_len - 8 : limit : stride].translate(None, _VALID_KINDS):
            raise DecodeError("internal key with an unknown value type")
        if count <= _SPLIT_STRUCT_RECORDS:
            fields = _split_records(header_len, key_len, value_len, count).unpack_from(data)
        else:  # a block of thousands of tiny entries: structs of bounded size
            fields = unpack_records(data, 0, stride, count, _split_format(header_len, key_len, value_len))
        return list(fields[0::3]), list(fields[1::3]), list(fields[2::3])
    fields = unpack_records(data, 0, stride, count, "%dx%ds%ds" % (header_len, key_len, value_len))
    return list(fields[0::2]), [], list(fields[1::2])


def decode_block(data: bytes):
    """Decode every entry: return (keys, values), two lists of bytes."""
    limit = entries_limit(data)
    decoded = _decode_uniform(data, limit, split=False)
    if decoded is None:
        decoded = _decode_entries(data, limit, split=False)
    keys, _trailers, values = decoded
    return keys, values


def decode_block_split(data: bytes):
    """Decode every entry of a data block: (user keys, tags, values), the
    tags' value types checked.

    Only the restart count is checked, not the offsets: a whole decode never
    uses them, the block's checksum vouches for its bytes, and seeks check
    the restart points they visit. That is 5% of a scan's decoding; a
    table's check (decode_block) still checks every offset."""
    limit, _num_restarts = _restart_count(data)
    decoded = _decode_uniform(data, limit, split=True)
    if decoded is not None:
        return decoded
    ukeys, trailers, values = _decode_entries(data, limit, split=True)
    return ukeys, trailer_tags(b"".join(trailers), len(ukeys)), values


def split_restart_entries(data):
    """decode_block_split's (user keys, tags) of a block whose every entry
    is a restart point sharing nothing, its three lengths one byte each
    (internal keys and values under 128 bytes: the index blocks lsm and
    LevelDB write), with where each value starts and ends (numpy int64
    arrays) instead of the values; None for any other block, which
    decode_block_split decodes or reports (DecodeError for a bad restart
    count, as it raises)."""
    columns = _restart_entry_columns(data)
    if columns is None:
        return None
    limit, _starts, key_start, tag_start, value_start, value_end = columns
    import numpy as np

    # A little-endian word at every byte offset of the entries: a tag is the one at its trailer.
    words = np.ndarray((limit - 7,), dtype="<u8", buffer=data, strides=(1,))
    tags = words[tag_start].tolist()
    ukeys = [data[start:end] for start, end in zip(key_start.tolist(), tag_start.tolist())]
    return ukeys, tags, value_start, value_end


def restart_every_entry(data):
    """(entries limit, restart offsets as a list) of a block like those
    split_restart_entries takes, its entries' headers checked; None for any
    other block (DecodeError for a bad restart count). Entry i of such a
    block is restart point i: seek_restart_entry finds it."""
    columns = _restart_entry_columns(data)
    return None if columns is None else (columns[0], columns[1].tolist())


def _restart_entry_columns(data):
    """(limit, starts, key_start, tag_start, value_start, value_end), numpy
    int64 columns but limit, of a block split_restart_entries takes, else
    None. Read in bulk from the restart array, which then gives every
    entry's offset: each entry must end where the next restart begins, so
    exactly the entries of a sequential decode are found."""
    import numpy as np

    limit, count = _restart_count(data)
    if not limit:
        return None
    entries = np.frombuffer(data, dtype=np.uint8, count=limit)
    starts = np.frombuffer(data, dtype="<u4", count=count, offset=limit).astype(np.int64)
    if starts[0] or int(starts.max()) + 3 > limit:
        return None
    shared = entries[starts]
    key_len = entries[starts + 1].astype(np.int64)
    value_len = entries[starts + 2].astype(np.int64)
    if shared.any() or ((key_len | value_len) >= 0x80).any() or (key_len < 8).any():
        return None
    key_start = starts + 3
    value_start = key_start + key_len
    value_end = value_start + value_len
    if value_end[-1] != limit or (value_end[:-1] != starts[1:]).any():
        return None
    tag_start = value_start - 8
    if (entries[tag_start] > 1).any():
        return None  # an unknown value type: the sequential decode reports it
    return limit, starts, key_start, tag_start, value_start, value_end


def seek_restart_entry(data, limit: int, restarts, user_key: bytes, seek_tag: int):
    """(i, value) of the first entry at or after (user_key, seek_tag) in
    internal order, in a block whose entry i is restart point i
    (restart_every_entry's limit and restarts): for an index block, i is
    the data block that may hold the key and value its handle. (len
    (restarts), None) when no entry is. The entries visited are checked
    (DecodeError)."""
    i = _first_restart_at_or_after(data, limit, restarts, user_key, seek_tag)
    if i == len(restarts):
        return i, None
    _key_start, key_end, value_len = _restart_entry(data, restarts[i], limit)
    return i, data[key_end:key_end + value_len]


# find_in_block() result: every entry of the block sorts before the target, so
# the answer, if any, is in the next block.
PAST_END = "past end"


def find_in_block(decoded, user_key: bytes, seek_tag: int):
    """Point lookup in a decoded data block (decode_block_split's result):
    (kind, value) of the first entry at or after (user_key, seek_tag) in
    internal order if it has user_key; None if that entry has a larger user
    key; PAST_END if no entry is at or after it. Tag types were checked by
    the decode."""
    ukeys, tags, values = decoded
    j = bisect_left(ukeys, user_key)
    count = len(ukeys)
    while j < count and ukeys[j] == user_key:
        tag = tags[j]
        if tag <= seek_tag:
            return tag & 0xFF, values[j]
        j += 1  # a version too new for the reader
    return None if j < count else PAST_END


def decode_block_split_from(data: bytes, user_key: bytes):
    """decode_block_split from the last restart point whose user key sorts
    before user_key (from the first entry when none does): every entry with
    a user key >= user_key, after at most one restart interval of smaller
    ones -- what a seek needs, for about half the decoding. Returns
    (user keys, tags, values, whole) with whole true when the decode
    began at the block's first entry. A uniform block is decoded whole:
    that costs less than half of the loop's decode."""
    limit, num_restarts = _restart_count(data)
    decoded = _decode_uniform(data, limit, split=True)
    if decoded is not None:
        return (*decoded, True)
    restarts = _uint32s(num_restarts).unpack_from(data, limit)
    lo = _last_restart_before(data, limit, restarts, user_key, _MAX_TAG)
    ukeys, trailers, values = _decode_entries(data, limit, True, restarts[lo])
    return ukeys, trailer_tags(b"".join(trailers), len(ukeys)), values, lo == 0


def seek_layout(data):
    """What seek_block may know of a block beforehand: for a uniform block
    whose keys are whole internal keys, of at most _SEEK_SLICES_RECORDS
    entries, (header length, key length, value length, entry count, the
    slices of its user keys); else False. The check reads every entry's
    header, a fifth of a seek: a block cached for lookups keeps its
    answer."""
    limit, _num_restarts = _restart_count(data)
    layout = _uniform_layout(data, limit)
    if layout is None or layout[1] < 8 or layout[3] > _SEEK_SLICES_RECORDS:
        return False
    return _seek_uniform_layout(*layout)


# Entries of the largest uniform block whose user keys seek_block bisects:
# their slices are kept per layout, so their number is bounded (a block of
# thousands of tiny entries takes the binary search over its restart points
# instead).
_SEEK_SLICES_RECORDS = 1024


@lru_cache(maxsize=256)
def _seek_uniform_layout(header_len: int, key_len: int, value_len: int, count: int):
    """One tuple per layout, shared by all the blocks that remember it (a
    cache of thousands of blocks would otherwise hold as many copies), with
    the slices of the user keys in order: bisect takes the block's
    __getitem__ as its key and searches in C."""
    stride = header_len + key_len + value_len
    user_keys = [slice(at, at + key_len - 8) for at in range(header_len, count * stride, stride)]
    return header_len, key_len, value_len, count, user_keys


def seek_block(data: bytes, user_key: bytes, seek_tag: int, layout=None):
    """find_in_block's answer from a block's raw contents, decoding only
    what holds it (LevelDB's Block::Iter::Seek): for a block that a point
    lookup reads once, a decode of every entry would cost more than the
    lookup. A binary search over the restart points (each checked as
    visited) finds the first one at or after the target; when the entry
    before it fills its restart interval alone -- always, in a block of
    lsm's, every entry a restart point -- the answer is that restart's entry,
    read directly. Otherwise the interval before it is decoded. In a
    uniform block the user keys are bisected in C instead. layout:
    seek_layout(data) if the caller kept it, None to work it out."""
    if layout is None:
        layout = seek_layout(data)
    if layout:
        # A uniform block: the user keys at a fixed stride are bisected in
        # C, and only the answer is read. Written out here, not called: every
        # point lookup of a cached block passes here.
        header_len, key_len, value_len, count, user_keys = layout
        j = bisect_left(user_keys, user_key, key=data.__getitem__)
        stride = header_len + key_len + value_len
        at = j * stride + header_len + key_len - 8  # the trailer of entry j
        while j < count:
            if data[at - key_len + 8:at] != user_key:
                return None
            tag = _TAG.unpack_from(data, at)[0]
            if tag & 0xFF > 1:
                raise DecodeError("internal key with an unknown value type", at)
            if tag <= seek_tag:
                return tag & 0xFF, data[at + 8:at + 8 + value_len]
            j += 1  # a version too new for the reader
            at += stride
        return PAST_END
    limit, num_restarts = _restart_count(data)
    if not limit:
        return PAST_END
    restarts = _uint32s(num_restarts).unpack_from(data, limit)
    r = _first_restart_at_or_after(data, limit, restarts, user_key, seek_tag)
    if r:
        _key_start, key_end, value_len = _restart_entry(data, restarts[r - 1], limit)
        pos = key_end + value_len
        if pos != (restarts[r] if r < num_restarts else limit):
            return _seek_interval(data, limit, restarts, r - 1, user_key, seek_tag)
        if pos == limit:
            return PAST_END
    else:
        pos = 0
    key_start, key_end, value_len = _restart_entry(data, pos, limit)
    if data[key_start:key_end - 8] != user_key:
        return None
    # The entry sorts at or after (user_key, seek_tag): a version old enough.
    tag = _TAG.unpack_from(data, key_end - 8)[0]
    if tag & 0xFF > 1:
        raise DecodeError("internal key with an unknown value type", key_end - 8)
    return tag & 0xFF, data[key_end:key_end + value_len]


def _seek_interval(data, limit, restarts, lo, user_key, seek_tag):
    """seek_block's answer decoding the entries from restart lo on, an
    interval at a time: restart lo's entry sorts before the target, so the
    answer is later in its interval or opens a later one."""
    num_restarts = len(restarts)
    start = restarts[lo]
    end = lo + 2
    while True:
        stop = restarts[end] if end < num_restarts else limit
        if stop > limit or stop <= start:
            raise DecodeError("bad restart array", limit)
        ukeys, trailers, values = _decode_entries(data, stop, True, start)
        found = find_in_block((ukeys, trailer_tags(b"".join(trailers), len(ukeys)), values), user_key, seek_tag)
        if found is not PAST_END or stop == limit:
            return found
        # Every entry decoded sorted before the target (versions too new for
        # the reader): the answer opens a later interval.
        start = stop
        end += 1


def _restart_entry(data, pos, limit):
    """(key start, key end, value length) of the entry at restart point
    `pos`, checked: within the entries, sharing no prefix, a whole internal
    key, its value within the entries."""
    try:
        if pos >= limit or data[pos]:
            raise DecodeError("bad restart array", limit)
        non_shared = data[pos + 1]
        value_len = data[pos + 2]
        if non_shared | value_len < 128:
            key_start = pos + 3
        elif non_shared < 128 and data[pos + 3] < 128:  # a two-byte value length
            value_len = (value_len & 0x7F) | data[pos + 3] << 7
            key_start = pos + 4
        else:
            non_shared, key_start = _read_varint32(data, pos + 1)
            value_len, key_start = _read_varint32(data, key_start)
    except IndexError:
        raise DecodeError("entry header runs past the block", pos) from None
    key_end = key_start + non_shared
    if non_shared < 8 or key_end + value_len > limit:
        raise DecodeError("bad entry at a restart point", pos)
    return key_start, key_end, value_len


def _last_restart_before(data, limit, restarts, user_key: bytes, seek_tag: int) -> int:
    """Index of the last restart point whose entry sorts before (user_key,
    seek_tag) in internal order; 0 if none does. seek_tag _MAX_TAG: before
    user_key itself. Restart 0 is not read: the answer is 0 either way."""
    return _first_restart_at_or_after(data, limit, restarts, user_key, seek_tag, 1) - 1


def _first_restart_at_or_after(data, limit, restarts, user_key: bytes, seek_tag: int, lo: int = 0) -> int:
    """Index of the first restart point from `lo` on whose entry sorts at or
    after (user_key, seek_tag) in internal order; len(restarts) if none does. The
    restart points visited are checked (in the block, sharing no prefix, a
    whole internal key): the block's checksum vouches for the rest, as in
    LevelDB."""
    if restarts[0]:
        raise DecodeError("bad restart array", limit)
    hi = len(restarts)
    try:
        while lo < hi:
            mid = (lo + hi) >> 1
            pos = restarts[mid]
            # The entry's header, read inline: this loop is most of a lookup.
            if pos >= limit or data[pos]:
                raise DecodeError("bad restart array", limit)
            non_shared = data[pos + 1]
            if non_shared | data[pos + 2] < 128:
                pos += 3
            elif non_shared < 128 and data[pos + 3] < 128:  # a two-byte value length
                pos += 4
            else:
                non_shared, pos = _read_varint32(data, pos + 1)
                _value_len, pos = _read_varint32(data, pos)
            key_end = pos + non_shared
            if non_shared < 8 or key_end > limit:
                raise DecodeError("bad entry at a restart point", pos)
            ukey = data[pos:key_end - 8]
            if ukey < user_key or (ukey == user_key and _TAG.unpack_from(data, key_end - 8)[0] > seek_tag):
                lo = mid + 1
            else:
                hi = mid
    except IndexError:
        raise DecodeError("entry header runs past the block", limit) from None
    return lo


def _decode_entries(data, limit, split, start=0):
    """The decoder: one tight loop; entries whose three lengths are each < 128
    (one varint byte) take the fast path. Overruns are found once, after the
    loop: an entry that runs past the entries area (or the restart interval
    decoded, ending at `limit`) leaves `pos` beyond `limit`. Returns
    (keys, [], values), or with split (user keys, trailers,
    values): slicing each internal key in the loop costs less than a pass
    over the keys afterwards."""
    prev_start = prev_end = start  # where the previous key lies when prev is None
    keys = []
    trailers = []
    values = []
    add_key = keys.append
    add_trailer = trailers.append
    add_value = values.append
    prev = b""
    pos = start
    try:
        while pos < limit:
            shared = data[pos]
            non_shared = data[pos + 1]
            value_len = data[pos + 2]
            if shared | non_shared | value_len < 128:
                pos += 3
            elif shared | non_shared < 128 and data[pos + 3] < 128:
                # A value of 128 bytes to 16 KiB: most values of real data.
                value_len = (value_len & 0x7F) | data[pos + 3] << 7
                pos += 4
            else:
                shared, pos = _read_varint32(data, pos)
                non_shared, pos = _read_varint32(data, pos)
                value_len, pos = _read_varint32(data, pos)
            key_end = pos + non_shared
            if shared:
                if prev is None:
                    prev = data[prev_start:prev_end]
                if shared > len(prev):
                    raise DecodeError("entry shares more bytes than the previous key has", pos)
                prev = prev[:shared] + data[pos:key_end]
                if not split:
                    add_key(prev)
                elif len(prev) < 8:
                    raise DecodeError("internal key shorter than 8 bytes", key_end - len(prev))
                else:
                    add_key(prev[:-8])
                    add_trailer(prev[-8:])
            elif split:
                # A key sharing nothing (every key in lsm's layout) is split
                # straight from the block; it is made whole only if the next
                # key shares a prefix with it.
                if non_shared < 8:
                    raise DecodeError("internal key shorter than 8 bytes", pos)
                prev = None
                prev_start = pos
                prev_end = key_end
                add_key(data[pos:key_end - 8])
                add_trailer(data[key_end - 8:key_end])
            else:
                prev = data[pos:key_end]
                add_key(prev)
            pos = key_end + value_len
            add_value(data[key_end:pos])
    except IndexError:
        raise DecodeError("entry header runs past the block", pos) from None
    if pos != limit:
        raise DecodeError("entry runs past the end of the block", limit)
    return keys, trailers, values
