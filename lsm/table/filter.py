"""Bloom filters and the filter block, bit-identical to LevelDB's
"leveldb.BuiltinBloomFilter2" (spec §7.6, §8). Pure: no files.

Speed, building: FilterBlockBuilder hands the keys of many data blocks to
create_filters at once, so the set-up cost is paid per batch, not per block.
Keys of equal length are hashed together, one key per 8-byte lane of a big
integer, so every step of the hash is a handful of big-int operations done in C
for all keys at the same time (_hash_run). The probe positions are computed the
same way, "mod nbits" included, for all filters of one size at once
(_set_probes); only setting the probed bits runs once per probe in Python.

Speed, reading: a get asks every table on its way with the same key, so
FilterBlockReader keeps the hash of the last key it was asked about.
"""
import struct
import sys
from functools import lru_cache

from ..errors import DecodeError

# On-disk constants (frozen).
FILTER_NAME = b"leveldb.BuiltinBloomFilter2"  # the name after LevelDB 1.18's hash fix
FILTER_META_KEY = b"filter." + FILTER_NAME  # metaindex key of the filter block
FILTER_BASE_LG = 11  # one filter per 2 KiB of data-block start offsets
BLOOM_SEED = 0xBC9F1D34
_M = 0xC6A4A793  # multiplier of LevelDB's Murmur-like Hash()
_MASK32 = 0xFFFFFFFF

# Below this many keys of one length the scalar hash is cheaper than lane set-up.
_MIN_BATCH = 6
# FilterBlockBuilder builds the pending filters once they hold this many keys:
# enough for the per-batch cost not to matter, few enough to bound memory.
_BATCH_KEYS = 16384

# Unpackers of n little-endian uint32 for n < 65: keys of up to 259 bytes.
_WORDS = tuple(struct.Struct("<%dI" % n).unpack_from for n in range(65))


def bloom_hash(data: bytes, seed: int = BLOOM_SEED) -> int:
    """LevelDB's Hash(data, n, seed) (util/hash.cc), tail bytes unsigned."""
    n = len(data)
    h = (seed ^ (n * _M)) & _MASK32
    nw = n >> 2
    words = _WORDS[nw](data) if nw < len(_WORDS) else struct.unpack_from("<%dI" % nw, data)
    for w in words:
        h = ((h + w) * _M) & _MASK32
        h ^= h >> 16
    if n & 3:
        h = ((h + int.from_bytes(data[nw << 2 :], "little")) * _M) & _MASK32
        h ^= h >> 24
    return h


# Lane arithmetic: `count` lanes of 8 bytes packed in one int, lane j at bytes
# [8j, 8j + 8). A lane holds a value < 2^32 between steps, so a 32x32-bit
# product fits it and never carries into the neighbour; every right shift is
# followed by a mask that drops the bits it brought down from the lane above.


@lru_cache(maxsize=8)  # a batch's few counts; the masks are as big as its ints
def _lanes(count: int):
    """(1 in every lane, the low 32 bits of every lane)."""
    ones = int.from_bytes(b"\x01\x00\x00\x00\x00\x00\x00\x00" * count, "little")
    return ones, ones * _MASK32


def _widen(x: int, count: int) -> int:
    """`count` values of 4 bytes each, packed -> one per 8-byte lane: first the
    even-numbered values, then the odd-numbered ones, as a mask and a shift
    take them (lanes need no order; _narrow restores it)."""
    half = (count + 1) >> 1
    low32 = _lanes(half)[1]
    return x & low32 | (x >> 32 & low32) << (64 * half)


def _narrow(x: int, count: int) -> int:
    """The inverse of _widen."""
    half = (count + 1) >> 1
    return x & ((1 << (64 * half)) - 1) | (x >> (64 * half)) << 32


def _gather(joined: bytes, width: int, start: int, size: int, count: int):
    """Bytes [start, start + size) of each of `count` keys of `width` bytes laid
    end to end in `joined`, packed 4 bytes per key (zero-padded)."""
    if size == 4 and width % 4 == 0:
        # Whole aligned words: a strided view of 4-byte items copies them in C.
        return memoryview(joined).cast("I")[start >> 2 :: width >> 2].tobytes()
    out = bytearray(4 * count)
    for b in range(size):
        out[b::4] = joined[start + b :: width]
    return out


def _hash_run(joined: bytes, count: int, width: int, n: int) -> bytes:
    """bloom_hash of the first n bytes of `count` keys of `width` bytes laid end
    to end in `joined`: 4 bytes per key, little-endian, in order. One lane per
    key; each step of the hash is done for all lanes at once."""
    ones, low32 = _lanes(count)
    h = ((BLOOM_SEED ^ (n * _M)) & _MASK32) * ones
    for start in range(0, n & ~3, 4):
        w = _widen(int.from_bytes(_gather(joined, width, start, 4, count), "little"), count)
        h = ((h + w) & low32) * _M & low32
        h ^= (h >> 16) & low32
    if n & 3:
        tail = _widen(int.from_bytes(_gather(joined, width, n & ~3, n & 3, count), "little"), count)
        h = ((h + tail) & low32) * _M & low32
        h ^= (h >> 24) & low32
    return _narrow(h, count).to_bytes(4 * count, "little")


def _hash_same(keys, width: int, skip: int) -> bytes:
    """The hashes (as _hash_run gives them) of keys all `width` bytes long."""
    n = width - skip
    if len(keys) < _MIN_BATCH:
        return struct.pack("<%dI" % len(keys), *[bloom_hash(key[:n]) for key in keys])
    return _hash_run(b"".join(keys), len(keys), width, n)


def _hashes(keys, skip: int) -> bytes:
    """bloom_hash of key[:len(key) - skip] for each key: 4 bytes each,
    little-endian, in order."""
    lengths = set(map(len, keys))
    if len(lengths) <= 1:
        return _hash_same(keys, lengths.pop() if keys else 0, skip)
    # Lanes need keys of one length: hash each length apart, then restore the order.
    groups = {}
    for i, key in enumerate(keys):
        groups.setdefault(len(key), []).append(i)
    hashes = [0] * len(keys)
    for width, where in groups.items():
        run = _hash_same(list(map(keys.__getitem__, where)), width, skip)
        for i, h in zip(where, struct.unpack("<%dI" % len(where), run)):
            hashes[i] = h
    return struct.pack("<%dI" % len(keys), *hashes)


@lru_cache(maxsize=1024)
def _divider(n: int):
    """(inc, mul, shift) with (h + inc) * mul >> shift == h // n and
    (h + inc) * mul < 2^64 for every h < 2^32, for 0 < n < 2^32: division as a
    multiplication that fits a lane (Robison, "N-bit unsigned division via
    N-bit multiply-add", 2005)."""
    lg = n.bit_length() - 1
    if n == 1 << lg:
        return 0, 1, lg
    shift = 32 + lg
    mul, rem = divmod(1 << shift, n)
    if n - rem <= 1 << lg:
        return 0, mul + 1, shift  # the multiplier rounded up is exact
    return 1, mul, shift  # else rounded down, with h + 1 for h


def _set_probes(flags: bytearray, hashes: bytes, bases: bytes, nbits: int, k: int) -> None:
    """flags[base + probe % nbits] = 1 for each of the k probes of each hash;
    `hashes` and their `bases` packed 4 bytes each, little-endian."""
    count = len(hashes) >> 2
    ones, low32 = _lanes(count)
    h = _widen(int.from_bytes(hashes, "little"), count)
    base = _widen(int.from_bytes(bases, "little"), count)
    delta = ((h >> 17) | (h << 15)) & low32
    inc, mul, shift = _divider(nbits)
    inc *= ones
    quotient_mask = ones * ((1 << (64 - shift)) - 1)
    size = 8 * count
    for _ in range(k):
        # base + h % nbits, with h // nbits by _divider's multiplication.
        pos = h + base - (((h + inc) * mul >> shift) & quotient_mask) * nbits
        # Native byte order, so that the 8-byte view reads each lane's value
        # (on a big-endian machine the lanes come out reversed: order is moot).
        for p in memoryview(pos.to_bytes(size, sys.byteorder)).cast("Q"):
            flags[p] = 1
        h = (h + delta) & low32


class BloomFilterPolicy:
    """LevelDB's built-in bloom filter with `bits_per_key` bits per key."""

    name = FILTER_NAME

    def __init__(self, bits_per_key: int):
        if bits_per_key <= 0:
            raise ValueError("bits_per_key must be positive")
        self.bits_per_key = bits_per_key
        # floor(bits_per_key * ln 2), clamped like LevelDB (0.69 in its source).
        self.k = min(30, max(1, int(bits_per_key * 0.69)))

    def filter_size(self, count: int) -> int:
        """Bytes of the filter of `count` keys, k byte included."""
        return ((max(64, count * self.bits_per_key) + 7) >> 3) + 1

    def create_filter(self, keys, skip: int = 0) -> bytes:
        """The filter for `keys` (duplicates counted), k byte appended. Only
        key[:len(key) - skip] is hashed: skip=8 takes internal keys as they are."""
        return self.create_filters(keys, (len(keys),), skip)

    def create_filters(self, keys, counts, skip: int = 0) -> bytes:
        """create_filter of the first counts[0] keys, of the next counts[1], ...,
        laid end to end: many filters at the price of one batch. Together they
        must stay under 2^32 bits (512 MiB): the lanes hold 32-bit bit offsets."""
        k = self.k
        hashes = _hashes(keys, skip)
        by_size = {}  # filter bits -> [(first key, key count, bit offset of the filter)]
        ends = []  # offset of each filter's k byte
        first = end = 0
        for count in counts:
            nbits = (self.filter_size(count) - 1) << 3
            if count:
                by_size.setdefault(nbits, []).append((first, count, end << 3))
            first += count
            end += nbits >> 3
            ends.append(end)
            end += 1
        flags = bytearray(end << 3)  # one byte per bit, packed 8:1 below
        for nbits, runs in by_size.items():
            run_hashes = b"".join(hashes[4 * at : 4 * (at + n)] for at, n, _ in runs)
            bases = b"".join(base.to_bytes(4, "little") * n for _, n, base in runs)
            _set_probes(flags, run_hashes, bases, nbits, k)
        # byte j of the slice flags[b::8] is bit b of output byte j (LSB first).
        packed = 0
        for b in range(8):
            packed |= int.from_bytes(flags[b::8], "little") << b
        out = bytearray(packed.to_bytes(end, "little"))
        for at in ends:
            out[at] = k
        return bytes(out)

    @staticmethod
    def key_may_match(key: bytes, bloom) -> bool:
        """False only if `key` was certainly not among the filter's keys."""
        if len(bloom) < 2:
            return False
        k = bloom[-1]
        if k > 30:
            return True  # reserved for new encodings: LevelDB treats it as a match
        nbits = (len(bloom) - 1) << 3
        h = bloom_hash(key)
        delta = ((h >> 17) | (h << 15)) & _MASK32
        for _ in range(k):
            pos = h % nbits
            if not bloom[pos >> 3] & (1 << (pos & 7)):
                return False
            h = (h + delta) & _MASK32
        return True


class FilterBlockBuilder:
    """Collects the keys of each data block and emits the filter block.

    Filter i covers every data block whose start offset lies in
    [i * 2^11, (i + 1) * 2^11); buckets without blocks repeat the previous offset.
    With skip=8 the keys added are internal keys and only their user keys are
    hashed, as LevelDB does. Filters are built in batches of _BATCH_KEYS keys:
    their offsets depend only on their key counts."""

    def __init__(self, policy: BloomFilterPolicy, skip: int = 0):
        self.policy = policy
        self.skip = skip
        self._keys = []  # keys whose filters are not built yet; the open bucket's last
        self._counts = []  # key count of each closed bucket in _keys
        self._closed = 0  # keys of the closed buckets: sum(_counts)
        self._result = []  # built filters
        self._size = 0  # bytes of the filters of all closed buckets, built or not
        self._offsets = []

    def start_block(self, block_offset: int) -> None:
        index = block_offset >> FILTER_BASE_LG
        while len(self._offsets) < index:
            self._generate()

    def add_keys(self, keys) -> None:
        """Keys of a data block, added before start_block(offset just past it)."""
        self._keys.extend(keys)

    def _generate(self) -> None:
        """Close the open bucket."""
        self._offsets.append(self._size)
        count = len(self._keys) - self._closed
        if count:
            self._counts.append(count)
            self._closed += count
            self._size += self.policy.filter_size(count)
            if self._closed >= _BATCH_KEYS:
                self._build()

    def _build(self) -> None:
        """Build the filters of the closed buckets."""
        self._result.append(self.policy.create_filters(self._keys, self._counts, self.skip))
        self._keys = []
        self._counts = []
        self._closed = 0

    def finish(self) -> bytes:
        if len(self._keys) > self._closed:
            self._generate()
        if self._counts:
            self._build()
        offsets = self._offsets
        tail = struct.pack("<%dIIB" % len(offsets), *offsets, self._size, FILTER_BASE_LG)
        return b"".join(self._result) + tail


# (user key, first probe, step between probes) of the last FilterBlockReader lookup.
_last_probes = (None, 0, 0)


class FilterBlockReader:
    """Answers "may block at offset X hold this user key?" from a filter block."""

    __slots__ = ("_data", "_offsets", "_base_lg", "_count")

    def __init__(self, data: bytes):
        # LevelDB silently ignores a malformed filter block; we raise, because
        # a filter we cannot trust must not be consulted and must not hide damage.
        size = len(data)
        if size < 5:
            raise DecodeError(f"filter block too short ({size} bytes)")
        base_lg = data[-1]
        array_offset = struct.unpack_from("<I", data, size - 5)[0]
        if array_offset > size - 5 or (size - 5 - array_offset) % 4:
            raise DecodeError("bad filter offset array", size - 5)
        count = (size - 5 - array_offset) // 4
        offsets = list(struct.unpack_from("<%dI" % count, data, array_offset))
        offsets.append(array_offset)
        if offsets != sorted(offsets):
            raise DecodeError("filter offsets out of order", array_offset)
        if base_lg > 40:
            raise DecodeError(f"bad filter base_lg {base_lg}", size - 1)
        self._data = data
        self._offsets = offsets
        self._base_lg = base_lg
        self._count = count

    def key_may_match(self, block_offset: int, user_key: bytes) -> bool:
        global _last_probes
        index = block_offset >> self._base_lg
        if index >= self._count:
            return True
        start, limit = self._offsets[index], self._offsets[index + 1]
        if limit - start < 2:
            return False  # no keys were added for blocks starting in this bucket
        # BloomFilterPolicy.key_may_match, in place on the block's bytes.
        data = self._data
        k = data[limit - 1]
        if k > 30:
            return True
        nbits = (limit - start - 1) << 3
        # A get asks each table on its way with the same key object. The
        # reference _last_probes holds keeps `is` from matching another key.
        last = _last_probes
        if last[0] is not user_key:
            h = bloom_hash(user_key)
            last = _last_probes = (user_key, h, ((h >> 17) | (h << 15)) & _MASK32)
        _, h, delta = last
        for _ in range(k):
            pos = h % nbits
            if not data[start + (pos >> 3)] & (1 << (pos & 7)):
                return False
            h = (h + delta) & _MASK32
        return True
