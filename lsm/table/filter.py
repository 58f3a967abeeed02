"""Bloom filters and the filter block, bit-identical to LevelDB's
"leveldb.BuiltinBloomFilter2" (spec §7.6, §8). Pure: no files.

Speed: a filter is built for a whole batch of keys at once. Keys of equal
length are hashed together, each in a lane of one big integer, so every step of
the hash is a handful of big-int operations done in C for all keys at the same
time (_hash_lanes); only setting the probed bits runs once per probe in Python.
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
# Keys are hashed in lanes as wide as the key itself up to this width; beyond
# it the big ints grow long enough for the per-word work to dominate.
_MAX_LANE = 72
# Lanes must hold a 32x32-bit product: keys narrower than this are copied into
# lanes of this width byte by byte (_spread).
_MIN_LANE = 8


@lru_cache(maxsize=None)
def _words(n: int):
    return struct.Struct("<%dI" % n).unpack_from


def bloom_hash(data: bytes, seed: int = BLOOM_SEED) -> int:
    """LevelDB's Hash(data, n, seed) (util/hash.cc), tail bytes unsigned."""
    n = len(data)
    h = (seed ^ (n * _M)) & _MASK32
    nw = n >> 2
    if nw:
        for w in _words(nw)(data):
            h = ((h + w) * _M) & _MASK32
            h ^= h >> 16
    if n & 3:
        h = ((h + int.from_bytes(data[nw << 2 :], "little")) * _M) & _MASK32
        h ^= h >> 24
    return h


# Lane arithmetic: `count` lanes of `width` bytes packed in one int, lane j at
# bytes [width*j, width*(j+1)). A lane holds a value < 2^32 between steps, so a
# 32x32-bit product fits a lane of 8 bytes or more and never carries into the
# neighbour; every right shift is followed by a mask that drops the bits it
# brought down from the lane above.


@lru_cache(maxsize=1024)
def _lane_masks(width: int, count: int):
    """(1 in every lane, the low 32 bits of every lane)."""
    ones = int.from_bytes((b"\x01" + bytes(width - 1)) * count, "little")
    return ones, ones * _MASK32


@lru_cache(maxsize=1024)
def _lane_unpacker(width: int, count: int):
    """Function: bytes of `count` lanes -> the low 32 bits of every lane."""
    if width % 4 == 0 and sys.byteorder == "little":
        step = width // 4  # a strided uint32 view picks each lane's first word
        return lambda data: memoryview(data).cast("I")[::step].tolist()
    return struct.Struct("<" + ("I%dx" % (width - 4)) * count).unpack


def _hash_lanes(joined: bytes, count: int, n: int, width: int):
    """Hashes of the first n bytes of `count` keys laid end to end in `joined`,
    each `width` bytes long, as an int with one lane per key. The lanes are the
    keys themselves: word w of every key is one shift and mask away."""
    ones, low32 = _lane_masks(width, count)
    rest = int.from_bytes(joined, "little")
    h = ((BLOOM_SEED ^ (n * _M)) & _MASK32) * ones
    for _ in range(n >> 2):
        h = ((h + (rest & low32)) & low32) * _M & low32
        h ^= (h >> 16) & low32
        rest >>= 32
    if n & 3:
        tail = rest & (ones * ((1 << (8 * (n & 3))) - 1))
        h = ((h + tail) & low32) * _M & low32
        h ^= (h >> 24) & low32
    return h


def _spread(joined: bytes, count: int, n: int, stride: int) -> bytes:
    """The first n bytes (n < 8) of each key laid out `stride` apart, copied into
    lanes of _MIN_LANE bytes by strided slice assignment."""
    lanes = bytearray(_MIN_LANE * count)
    for b in range(n):
        lanes[b::_MIN_LANE] = joined[b::stride]
    return bytes(lanes)


class BloomFilterPolicy:
    """LevelDB's built-in bloom filter with `bits_per_key` bits per key."""

    name = FILTER_NAME

    def __init__(self, bits_per_key: int):
        if bits_per_key <= 0:
            raise ValueError("bits_per_key must be positive")
        self.bits_per_key = bits_per_key
        # floor(bits_per_key * ln 2), clamped like LevelDB (0.69 in its source).
        self.k = min(30, max(1, int(bits_per_key * 0.69)))

    def create_filter(self, keys, skip: int = 0) -> bytes:
        """The filter for `keys` (duplicates counted), k byte appended. Only
        key[:len(key) - skip] is hashed: skip=8 takes internal keys as they are."""
        k = self.k
        nbits = max(64, len(keys) * self.bits_per_key)
        nbytes = (nbits + 7) >> 3
        nbits = nbytes << 3
        probes = []  # every probe value of every key, before "mod nbits"
        for width, group in _by_length(keys):
            n = width - skip
            if len(group) < _MIN_BATCH or width > _MAX_LANE:
                for key in group:
                    h = bloom_hash(key[:n] if skip else key)
                    delta = ((h >> 17) | (h << 15)) & _MASK32
                    for _ in range(k):
                        probes.append(h)
                        h = (h + delta) & _MASK32
                continue
            joined = b"".join(group)
            if width < _MIN_LANE:
                joined, width = _spread(joined, len(group), n, width), _MIN_LANE
            h = _hash_lanes(joined, len(group), n, width)
            low32 = _lane_masks(width, len(group))[1]
            delta = ((h >> 17) | (h << 15)) & low32
            size = width * len(group)
            rounds = []
            for _ in range(k):
                rounds.append(h.to_bytes(size, "little"))
                h = (h + delta) & low32
            probes += _lane_unpacker(width, k * len(group))(b"".join(rounds))
        # The one loop that runs per probe; everything above runs per key or per batch.
        flags = bytearray(nbits)  # one byte per bit, packed 8:1 below
        for h in probes:
            flags[h % nbits] = 1
        # byte j of the slice flags[b::8] is bit b of output byte j (LSB first).
        packed = 0
        for b in range(8):
            packed |= int.from_bytes(flags[b::8], "little") << b
        return packed.to_bytes(nbytes, "little") + bytes((k,))

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


def _by_length(keys):
    """[(length, keys of that length)]; the keys themselves when all are as long."""
    lengths = set(map(len, keys))
    if len(lengths) <= 1:
        return [(lengths.pop(), keys)] if keys else []
    groups = {}
    for key in keys:
        groups.setdefault(len(key), []).append(key)
    return list(groups.items())


class FilterBlockBuilder:
    """Collects the keys of each data block and emits the filter block.

    Filter i covers every data block whose start offset lies in
    [i * 2^11, (i + 1) * 2^11); buckets without blocks repeat the previous offset.
    With skip=8 the keys added are internal keys and only their user keys are
    hashed, as LevelDB does."""

    def __init__(self, policy: BloomFilterPolicy, skip: int = 0):
        self.policy = policy
        self.skip = skip
        self._keys = []
        self._result = []
        self._size = 0
        self._offsets = []

    def start_block(self, block_offset: int) -> None:
        index = block_offset >> FILTER_BASE_LG
        while len(self._offsets) < index:
            self._generate()

    def add_keys(self, keys) -> None:
        """Keys of a data block, added before start_block(offset just past it)."""
        self._keys.extend(keys)

    def _generate(self) -> None:
        self._offsets.append(self._size)
        if self._keys:
            bloom = self.policy.create_filter(self._keys, self.skip)
            self._result.append(bloom)
            self._size += len(bloom)
            self._keys = []

    def finish(self) -> bytes:
        if self._keys:
            self._generate()
        offsets = self._offsets
        tail = struct.pack("<%dIIB" % len(offsets), *offsets, self._size, FILTER_BASE_LG)
        return b"".join(self._result) + tail


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
        h = bloom_hash(user_key)
        delta = ((h >> 17) | (h << 15)) & _MASK32
        for _ in range(k):
            pos = h % nbits
            if not data[start + (pos >> 3)] & (1 << (pos & 7)):
                return False
            h = (h + delta) & _MASK32
        return True
