"""Bloom filters and the filter block, bit-identical to LevelDB's
"leveldb.BuiltinBloomFilter2". Pure: no files.

Speed, building: FilterBlockBuilder hands the keys of many data blocks to
create_filters at once, and numpy does every step for all of them: the hash
word by word, word j of every key in one step (over a matrix when the keys
have one length, else over the keys that have a word j), then each of the k
probes as one scatter into a byte-per-bit array that np.packbits packs. Every
flush and compaction builds filters for all its keys, so this is several
times cheaper than the same steps on big integers in pure Python, and the
number of steps is the longest key's words, not all keys' words
(docs/measurements.md).

Speed, reading: tables lsm writes carry a filter of its own as well
(keyfilter), whose hash runs in C, and gets probe that one; this filter
serves plyvel, and lsm's gets in tables LevelDB wrote. A get asks every
table on its way with the same key, so FilterBlockReader keeps the hash of
the last key it was asked about; one probe of one key is a few Python
operations, cheaper than numpy's set-up.

numpy is imported where filters are built, not with this module: a process
that only reads never loads it. Loaded in the bench's process, numpy (and the
OpenBLAS threads it starts) left lsm's full scans there markedly slower
(not with OPENBLAS_NUM_THREADS=1; docs/measurements.md), a cause not pinned
down.
"""
import struct

from ..errors import DecodeError
from .ragged import RaggedKeys

# On-disk constants (frozen).
FILTER_NAME = b"leveldb.BuiltinBloomFilter2"  # the name after LevelDB 1.18's hash fix
FILTER_META_KEY = b"filter." + FILTER_NAME  # metaindex key of the filter block
FILTER_BASE_LG = 11  # one filter per 2 KiB of data-block start offsets
BLOOM_SEED = 0xBC9F1D34
_M = 0xC6A4A793  # multiplier of LevelDB's Murmur-like Hash()
_MASK32 = 0xFFFFFFFF

# FilterBlockBuilder builds the pending filters once they hold this many keys:
# enough for the per-batch cost not to matter, few enough to bound memory.
_BATCH_KEYS = 16384

# _hash_ragged mixes the words of its last FEW_KEYS longest keys in Python,
# _WORDS_PER_CHUNK words unpacked at a time.
FEW_KEYS = 32
_WORDS_PER_CHUNK = 4096

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


def hash_keys(keys, skip: int = 0):
    """bloom_hash(key[:len(key) - skip]) of every key, in order, as a numpy
    uint32 array."""
    import numpy as np
    count = len(keys)  # at least one: create_filters asks only then
    lengths = np.fromiter(map(len, keys), dtype=np.int64, count=count)
    if (lengths == lengths[0]).all():
        width = int(lengths[0])
        return _hash_width(b"".join(keys), count, width, width - skip)
    return _hash_ragged(keys, lengths, skip)


def _hash_ragged(keys, lengths, skip: int):
    """hash_keys of keys of several lengths, any lengths."""
    return hash_ragged(RaggedKeys(keys, skip, lengths))


def hash_ragged(keys):
    """bloom_hash of every key of a RaggedKeys, in key order: word j of
    every key that has one mixed in one numpy step. Once fewer than FEW_KEYS
    keys remain, a numpy step costs more than mixing their words one by one
    in Python, which finishes them."""
    import numpy as np
    h = ((BLOOM_SEED ^ (keys.lengths.astype(np.uint64) * _M)) & _MASK32).astype(np.uint32)
    m, by16 = np.uint32(_M), np.uint32(16)  # numpy scalars: a Python int costs a conversion per step
    for active, column in keys.columns(FEW_KEYS):
        mixed = h[:active]
        mixed += column
        mixed *= m
        mixed ^= mixed >> by16
    rest = keys.rest()
    if rest:
        h[:rest] = [_mix_words(keys.joined, *keys.remaining(i), int(h[i])) for i in range(rest)]
        keys.skip_words(rest)
    which, tail = keys.tails()
    if len(which):
        mixed = h[which]
        mixed += tail
        mixed *= m
        mixed ^= mixed >> np.uint32(24)
        h[which] = mixed
    return keys.in_key_order(h)


def _mix_words(data: bytes, offset: int, count: int, h: int) -> int:
    """bloom_hash's word loop from state h over `count` words at data[offset:]."""
    for chunk in range(offset, offset + 4 * count, 4 * _WORDS_PER_CHUNK):
        for w in struct.unpack_from("<%dI" % min(_WORDS_PER_CHUNK, (offset + 4 * count - chunk) >> 2), data, chunk):
            h = ((h + w) * _M) & _MASK32
            h ^= h >> 16
    return h


def _hash_width(joined: bytes, count: int, width: int, n: int):
    """bloom_hash of the first n bytes of `count` keys of `width` bytes laid
    end to end in `joined`; uint32 arithmetic wraps as LevelDB's does."""
    import numpy as np
    if n < 0:
        raise ValueError(f"keys of {width} bytes are shorter than the {width - n} bytes to skip")
    return hash_rows(np.frombuffer(joined, dtype=np.uint8).reshape(count, width), n)


def hash_rows(rows, n: int):
    """bloom_hash of the first n bytes of every row of `rows`, a 2-D numpy
    uint8 array (a view of a wider array will do), as a uint32 array."""
    import numpy as np
    count = len(rows)
    h = np.full(count, (BLOOM_SEED ^ (n * _M)) & _MASK32, dtype=np.uint32)
    words = n >> 2
    if words:
        column = np.ascontiguousarray(rows[:, : 4 * words]).view("<u4")
        m, by16 = np.uint32(_M), np.uint32(16)  # numpy scalars: a Python int costs a conversion per step
        for j in range(words):
            h += column[:, j]
            h *= m
            h ^= h >> by16
    if n & 3:
        tail = np.zeros(count, dtype=np.uint32)
        for b in range(n & 3):
            tail |= rows[:, 4 * words + b].astype(np.uint32) << (8 * b)
        h += tail
        h *= _M
        h ^= h >> 24
    return h


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

    def filter_sizes(self, counts):
        """filter_size of every count of a numpy int array."""
        import numpy as np
        return ((np.maximum(64, counts * self.bits_per_key) + 7) >> 3) + 1

    def create_filter(self, keys, skip: int = 0) -> bytes:
        """The filter for `keys` (duplicates counted), k byte appended. Only
        key[:len(key) - skip] is hashed: skip=8 takes internal keys as they are."""
        return self.create_filters(keys, (len(keys),), skip)

    def create_filters(self, keys, counts, skip: int = 0) -> bytes:
        """create_filter of the first counts[0] keys, of the next counts[1], ...,
        laid end to end: many filters at the price of one batch."""
        total = sum(counts)
        return self.filters_from_hashes(hash_keys(keys[:total], skip) if total else None, counts)

    def filters_from_hashes(self, hashes, counts) -> bytes:
        """create_filters given the keys' bloom hashes (a numpy uint32 array,
        None when there are no keys) instead of the keys."""
        import numpy as np
        k = self.k
        counts = np.asarray(counts, dtype=np.int64)
        nbytes = self.filter_sizes(counts) - 1  # without the k byte
        k_at = np.cumsum(nbytes + 1) - 1  # where each filter's k byte goes
        flags = np.zeros(8 * (int(k_at[-1]) + 1) if len(counts) else 0, dtype=np.uint8)  # a byte per bit
        if hashes is not None and len(hashes):
            h = hashes[: int(counts.sum())].astype(np.uint64)
            nbits = np.repeat(nbytes << 3, counts).astype(np.uint64)
            base = np.repeat((k_at - nbytes) << 3, counts).astype(np.uint64)  # each key's filter's first bit
            delta = ((h >> 17) | (h << 15)) & _MASK32
            for _ in range(k):
                flags[base + h % nbits] = 1
                h = (h + delta) & _MASK32
        out = np.packbits(flags, bitorder="little")
        out[k_at] = k
        return out.tobytes()

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
        self._hash_parts = []  # or instead, their hashes (add_hashes)
        self._pending = 0  # keys (or hashes) added and not built yet
        self._counts = []  # key count of each closed bucket among them
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
        self._pending += len(keys)

    def add_hashes(self, hashes) -> None:
        """add_keys for keys given by their bloom hashes (hash_rows of their
        user keys, a numpy array)."""
        self._hash_pending_keys()
        self._hash_parts.append(hashes)
        self._pending += len(hashes)

    def _hash_pending_keys(self) -> None:
        """Pending keys join the pending hashes, in order, as their hashes."""
        if self._keys:
            self._hash_parts.append(hash_keys(self._keys, self.skip))
            self._keys = []

    def _generate(self) -> None:
        """Close the open bucket."""
        self._offsets.append(self._size)
        count = self._pending - self._closed
        if count:
            self._counts.append(count)
            self._closed += count
            self._size += self.policy.filter_size(count)
            if self._closed >= _BATCH_KEYS:
                self._build()

    def add_blocks(self, hashes, counts, starts, end: int) -> None:
        """add_hashes of each of a run of data blocks, each followed by
        start_block of the next one's offset, at once: block i, at file
        offset starts[i], has counts[i] of the keys whose hashes are
        `hashes` (in order); the run ends at offset `end`. Block i's keys go
        to bucket starts[i] >> FILTER_BASE_LG, the one open when it starts."""
        import numpy as np

        self._hash_pending_keys()
        self._hash_parts.append(hashes)
        self._pending += len(hashes)
        open_bucket = len(self._offsets)
        buckets = (np.asarray(starts, dtype=np.int64) >> FILTER_BASE_LG) - open_bucket
        closing = (end >> FILTER_BASE_LG) - open_bucket  # buckets closed by the run
        if closing <= 0:
            return
        counts = np.bincount(buckets, weights=counts, minlength=closing + 1)[:closing].astype(np.int64)
        counts[0] += self._pending - len(hashes) - self._closed  # keys already in the open bucket
        sizes = np.where(counts > 0, self.policy.filter_sizes(counts), 0)  # an empty bucket has no filter
        ends = np.cumsum(sizes) + self._size
        self._offsets += (ends - sizes).tolist()
        self._size = int(ends[-1])
        self._counts += counts[counts > 0].tolist()
        self._closed += int(counts.sum())
        if self._closed >= _BATCH_KEYS:
            self._build()

    def _build(self) -> None:
        """Build the filters of the closed buckets; keys of the open bucket
        stay pending."""
        closed = self._closed
        if self._hash_parts:
            import numpy as np
            self._hash_pending_keys()
            hashes = np.concatenate(self._hash_parts)
            built = self.policy.filters_from_hashes(hashes[:closed], self._counts)
            self._hash_parts = [hashes[closed:]] if len(hashes) > closed else []
        else:
            built = self.policy.create_filters(self._keys, self._counts, self.skip)
            self._keys = self._keys[closed:]
        self._result.append(built)
        self._pending -= closed
        self._counts = []
        self._closed = 0

    def finish(self) -> bytes:
        if self._pending > self._closed:
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
