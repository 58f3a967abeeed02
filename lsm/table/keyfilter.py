"""lsm's own filter block: one blocked bloom filter over a whole table's user
keys, whose hash runs in C. Pure: no files; numpy is imported only to build.

LevelDB's filter needs its Murmur-like hash, computed in Python; this one
hashes with crc32c (in C, an order of magnitude cheaper) and one multiply, and a get hashes its
key once (key_hash) for every table it probes. LevelDB ignores filter blocks
under names it does not know, so a table carries both: plyvel keeps its own.
Building hashes a table's keys in batches: CRC-32C sliced by 4 in numpy, a
word of every key per step, and crc32c's C loop for what is left of long keys.

On-disk layout (frozen), under the metaindex key KEY_FILTER_META_KEY:

    nblocks blocks of 64 bytes | k (1 byte, 1..30)

The filter of `count` keys has nblocks = max(1, ceil(count * bits_per_key
/ 512)) blocks of 512 bits; bit i of a block is bit i % 8 of its byte i // 8.
A key's hash x = key_hash(user_key), a 64-bit integer:

    c = crc32c(user_key)                            (CRC-32C, initial value 0)
    y = c * 0x9E3779B97F4A7C15 mod 2^64
    x = y ^ (y >> 29)

It sets (and a lookup tests) k bits of one block: block ((x >> 32) * nblocks)
>> 32, bits (a + i * d) mod 512 for i in 0..k-1, where a = x mod 512 and
d = ((x >> 9) mod 512) | 1 (odd, so the k bits are distinct). All k bits in
one block make a probe one AND of Python integers, with the block's bits
kept as one integer, several times cheaper than LevelDB's filter probed from
Python (docs/measurements.md). Ten bits a key keep false positives near 1.1%
(LevelDB's: 0.9%), for 1.25 bytes a key on disk; a table takes
EXTRA_BITS_PER_KEY more than its LevelDB filter (14 by default: 0.3%).
"""

from crc32c import crc32c

from ..errors import DecodeError
from .ragged import RaggedKeys

# On-disk constants (frozen).
KEY_FILTER_NAME = b"lsm.Crc32cBlockedBloom"
KEY_FILTER_META_KEY = b"filter." + KEY_FILTER_NAME
BLOCK_BITS = 512
BLOCK_BYTES = BLOCK_BITS // 8
HASH_MULTIPLIER = 0x9E3779B97F4A7C15
HASH_SHIFT = 29
HASH_MASK = (1 << 64) - 1  # the hash is taken mod 2^64
MAX_PROBES = 30

# lsm's filter takes this many bits a key more than LevelDB's beside it. A
# false positive costs a get in Python a block read and search, ~40 us cold
# against ~1.3 us for a probe that says no, and 512-bit blocks give more of
# them than LevelDB's filter: 1.1% at 10 bits a key (LevelDB's 0.9%), 0.3% at
# 14. Half a byte a key more on disk buys absent-key gets about a sixth of
# their time (docs/measurements.md).
EXTRA_BITS_PER_KEY = 4

# Keys are hashed _BATCH_KEYS at a time, their first _VECTOR_WORDS words by
# numpy steps over at least _FEW_KEYS keys, the rest by crc32c itself.
_BATCH_KEYS = 16384
_VECTOR_WORDS = 16
_FEW_KEYS = 64
# crc32c_of_rows takes keys of one length up to this many bytes, a word
# per numpy step; longer keys leave their rest to crc32c (crc32c_of_ragged).
ROW_BYTES = 4 * _VECTOR_WORDS + 3

_FULL_BLOCK = (1 << BLOCK_BITS) - 1


def key_hash(user_key) -> int:
    """The filter's hash of `user_key`: compute it once per get and pass it
    to every table the get probes (Table.get / Table.may_contain)."""
    y = (crc32c(user_key) * HASH_MULTIPLIER) & HASH_MASK
    return y ^ (y >> HASH_SHIFT)


# (user key, key_hash) of the last cached_key_hash call.
_last_hash = (None, 0)


def cached_key_hash(user_key) -> int:
    """key_hash(user_key), remembered for the last key object asked about:
    a get that does not pass its hash asks every table with the same key."""
    global _last_hash
    last = _last_hash
    if last[0] is not user_key:  # the reference held keeps `is` from matching another key
        last = _last_hash = (user_key, key_hash(user_key))
    return last[1]


def bits_per_key_beside(leveldb_bits: int) -> int:
    """The bits a key lsm's filter takes in a table whose LevelDB filter
    takes `leveldb_bits`: EXTRA_BITS_PER_KEY more."""
    return leveldb_bits + EXTRA_BITS_PER_KEY


def probe_count(bits_per_key: int) -> int:
    """k for `bits_per_key`, as LevelDB chooses it: floor(bits * 0.69) in 1..30."""
    return min(MAX_PROBES, max(1, int(bits_per_key * 0.69)))


def block_count(count: int, bits_per_key: int) -> int:
    return max(1, -(-count * bits_per_key // BLOCK_BITS))


_patterns = [None] * (MAX_PROBES + 1)  # [k]: pattern tables, built when first asked for


def _pattern_table(k: int):
    """[d >> 9 bits of a hash]: the bits (i * d) mod 512 for i < k, d made
    odd, twice over (bits 0..511 and 512..1023): a shift of it is a rotation."""
    table = _patterns[k]
    if table is None:
        table = []
        for d in range(BLOCK_BITS):
            bits = 0
            for i in range(k):
                bits |= 1 << ((i * (d | 1)) % BLOCK_BITS)
            table.append(bits | (bits << BLOCK_BITS))
        _patterns[k] = table
    return table


def probe_mask(x: int, k: int) -> int:
    """The k bits key hash x sets in its block, as one 512-bit integer: the
    pattern of step d turned left by a."""
    table = _pattern_table(k)
    return (table[(x >> 9) % BLOCK_BITS] >> (BLOCK_BITS - x % BLOCK_BITS)) & _FULL_BLOCK


def build_key_filter(hashes, bits_per_key: int) -> bytes:
    """The filter block of keys given by their key_hash (a numpy uint64
    array; duplicates count)."""
    import numpy as np
    k = probe_count(bits_per_key)
    nblocks = block_count(len(hashes), bits_per_key)
    flags = np.zeros(nblocks * BLOCK_BITS, dtype=np.uint8)  # a byte per bit
    if len(hashes):
        x = hashes.astype(np.uint64)
        first = ((x >> np.uint64(32)) * np.uint64(nblocks) >> np.uint64(32)) * np.uint64(BLOCK_BITS)
        position = x & np.uint64(BLOCK_BITS - 1)
        step = ((x >> np.uint64(9)) & np.uint64(BLOCK_BITS - 1)) | np.uint64(1)
        for _ in range(k):
            flags[first + position] = 1
            position = (position + step) & np.uint64(BLOCK_BITS - 1)
    return np.packbits(flags, bitorder="little").tobytes() + bytes([k])


def key_hashes(crcs):
    """key_hash of keys given by their crc32c (a numpy uint32 array), as a
    numpy uint64 array."""
    import numpy as np
    y = crcs.astype(np.uint64) * np.uint64(HASH_MULTIPLIER)
    return y ^ (y >> np.uint64(HASH_SHIFT))


_CASTAGNOLI = 0x82F63B78  # CRC-32C's polynomial, bit-reflected
_crc_tables = []  # CRC-32C's tables: by byte, then for a word's low and high halves


def _slicing_tables():
    """(byte table, low-half table, high-half table): a word's step is
    low[x & 0xFFFF] ^ high[x >> 16] for x = crc ^ word, the four tables of
    slicing by 4 merged two by two (256 KiB each)."""
    import numpy as np
    if not _crc_tables:
        first = []
        for byte in range(256):
            crc = byte
            for _ in range(8):
                crc = (crc >> 1) ^ (_CASTAGNOLI if crc & 1 else 0)
            first.append(crc)
        tables = [first]
        for _ in range(3):
            tables.append([(c >> 8) ^ first[c & 0xFF] for c in tables[-1]])
        t0, t1, t2, t3 = (np.array(t, dtype=np.uint32) for t in tables)
        low = (t3[None, :] ^ t2[:, None]).ravel()  # [b1 << 8 | b0]
        high = (t1[None, :] ^ t0[:, None]).ravel()  # [b3 << 8 | b2]
        _crc_tables.extend((t0, low, high))
    return _crc_tables


def crc32c_of_keys(keys, skip: int = 0):
    """crc32c(key[:len(key) - skip]) of every key, in order, as a numpy
    uint32 array. The first _VECTOR_WORDS words of all keys go through
    numpy, a word of every key per step (CRC-32C sliced by 4, two bytes per
table lookup); crc32c itself
    (C) finishes the keys that are longer, or too few for numpy's steps."""
    return crc32c_of_ragged(RaggedKeys(keys, skip))


def crc32c_of_rows(rows):
    """crc32c of every row of a 2-D numpy uint8 array (keys of one length),
    as a uint32 array: a word of every row per step (CRC-32C sliced by 4),
    then the last 1-3 bytes one per step."""
    import numpy as np
    t0, low_half, high_half = _slicing_tables()
    width = rows.shape[1]
    crc = np.full(len(rows), 0xFFFFFFFF, dtype=np.uint32)
    low, half, by8, by16 = np.uint32(0xFF), np.uint32(0xFFFF), np.uint32(8), np.uint32(16)
    words = width >> 2
    if words:
        columns = np.ascontiguousarray(rows[:, :4 * words]).view("<u4")
        for j in range(words):
            x = crc ^ columns[:, j]
            crc = low_half[x & half] ^ high_half[x >> by16]
    for b in range(4 * words, width):
        crc = t0[(crc ^ rows[:, b]) & low] ^ (crc >> by8)
    return crc ^ np.uint32(0xFFFFFFFF)


def crc32c_of_ragged(keys):
    """crc32c_of_keys of the keys of a RaggedKeys."""
    import numpy as np
    t0, low_half, high_half = _slicing_tables()
    crc = np.full(len(keys.order), 0xFFFFFFFF, dtype=np.uint32)
    low, half, by8, by16 = np.uint32(0xFF), np.uint32(0xFFFF), np.uint32(8), np.uint32(16)
    for active, column in keys.columns(_FEW_KEYS, _VECTOR_WORDS):
        x = crc[:active] ^ column
        crc[:active] = low_half[x & half] ^ high_half[x >> by16]
    rest = keys.rest()
    if rest:
        view = memoryview(keys.joined)
        starts = keys.at[:rest].tolist()
        ends = (keys.at[:rest] + keys.lengths[:rest] - 4 * keys.done).tolist()
        crc[:rest] = [
            crc32c(view[start:end], state ^ 0xFFFFFFFF) ^ 0xFFFFFFFF
            for start, end, state in zip(starts, ends, crc[:rest].tolist())
        ]
    which, tail = keys.tails(rest)
    size = keys.lengths[which] & 3
    for _ in range(3):
        some = size > 0
        which, tail, size = which[some], tail[some], size[some] - 1
        c = crc[which]
        crc[which] = t0[(c ^ tail) & low] ^ (c >> by8)
        tail = tail >> by8
    return keys.in_key_order(crc ^ np.uint32(0xFFFFFFFF))


class KeyFilterBuilder:
    """Collects the user keys of a table; finish() builds the filter block.
    Keys are hashed _BATCH_KEYS at a time, then kept as 4 bytes each."""

    __slots__ = ("bits_per_key", "_pending", "_pending_count", "_crcs")

    def __init__(self, bits_per_key: int):
        if bits_per_key <= 0:
            raise ValueError("bits_per_key must be positive")
        self.bits_per_key = bits_per_key
        self._pending = []  # [keys, skip] not hashed yet
        self._pending_count = 0  # keys among them
        self._crcs = []  # numpy uint32 arrays: crc32c of the user keys hashed

    def add_keys(self, internal_keys) -> None:
        """Internal keys: only their user keys (all but 8 bytes) are hashed."""
        self._add(internal_keys, 8)

    def add_user_keys(self, user_keys) -> None:
        self._add(user_keys, 0)

    def add_crcs(self, crcs) -> None:
        """add_user_keys for keys given by their crc32c (a numpy uint32
        array, as bulk.user_key_crcs makes them)."""
        self._hash_pending()
        self._crcs.append(crcs)

    def _add(self, keys, skip: int) -> None:
        if self._pending and self._pending[-1][1] == skip:
            self._pending[-1][0].extend(keys)
        else:
            self._pending.append([list(keys), skip])
        self._pending_count += len(keys)
        if self._pending_count >= _BATCH_KEYS:
            self._hash_pending()

    def _hash_pending(self) -> None:
        self._crcs.extend(crc32c_of_keys(keys, skip) for keys, skip in self._pending if keys)
        self._pending = []
        self._pending_count = 0

    def finish(self) -> bytes:
        import numpy as np
        self._hash_pending()
        crcs = np.concatenate(self._crcs) if self._crcs else np.zeros(0, dtype=np.uint32)
        return build_key_filter(key_hashes(crcs), self.bits_per_key)


class KeyFilterReader:
    """Answers "may this table hold the user key with this key_hash?"."""

    __slots__ = ("_unset", "_count", "_patterns")

    def __init__(self, data: bytes):
        size = len(data)
        if size < BLOCK_BYTES + 1 or (size - 1) % BLOCK_BYTES:
            raise DecodeError(f"key filter of {size} bytes is not whole {BLOCK_BYTES}-byte blocks and a k byte")
        k = data[-1]
        if not 1 <= k <= MAX_PROBES:
            raise DecodeError(f"bad key filter k {k}", size - 1)
        # Each block's bits that are not set, as one integer: a probe then
        # asks whether its mask meets none of them, which needs neither
        # the mask cut to the block nor a comparison.
        unset = bytes(data[:-1]).translate(_INVERTED)
        unpack = int.from_bytes
        self._unset = [unpack(unset[i : i + BLOCK_BYTES], "little") for i in range(0, size - 1, BLOCK_BYTES)]
        self._count = len(self._unset)
        self._patterns = _pattern_table(k)

    def may_match(self, x: int) -> bool:
        """False only if no key with key_hash x was added."""
        # probe_mask written out: one call less is a fifth of a probe, and
        # most gets probe one table (remembering the last mask for the next
        # table cost as much as it saved). The pattern turned left by a
        # keeps bits above the block's 512, which no unset bit meets.
        return not (self._patterns[(x >> 9) % BLOCK_BITS] >> (BLOCK_BITS - x % BLOCK_BITS)) \
            & self._unset[((x >> 32) * self._count) >> 32]


_INVERTED = bytes(255 - b for b in range(256))  # bytes.translate's table: every bit flipped
