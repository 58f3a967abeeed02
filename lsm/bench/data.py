"""The keys and values of a benchmark run: how they are shaped (key and value
distributions, parsed from ``--key-dist`` / ``--value-dist``), and the data
set itself, generated once from a seed and shared by every engine.

Pure: numpy and random only; no engines, no files.
"""
import random
from dataclasses import dataclass

import numpy as np

from .distributions import fnv_hash64, lognormal_sizes

SEED = 301
# Sizes are drawn once into a table indexed by a hash of the record number,
# so a record's key or value length is the same whenever it is asked for.
SIZE_TABLE = 1 << 16
TEXT_POOL_BYTES = 1 << 22
# Word-like text: a vocabulary of letter strings with English letter
# frequencies, words drawn with zipfian popularity. With these settings
# snappy roughly halves a 4 KiB block of it, as it does real text.
TEXT_VOCABULARY = 4000
TEXT_ZIPF_EXPONENT = 1.2
_LETTERS = b"etaoinshrdlcumwfgypbvkjxqz"
_LETTER_PERCENT = (12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.4, 2.2, 2.0, 2.0,
                   1.9, 1.5, 1.0, 0.8, 0.15, 0.15, 0.1, 0.07)
# Record numbers of keys that no workload ever writes: absent keys.
ABSENT_BASE = 1 << 40
YCSB_PREFIX = b"user"
LOGNORMAL_KEY_MIN = 8      # the 8-byte hash that keeps keys distinct
LOGNORMAL_KEY_MAX = 1024
LOGNORMAL_VALUE_MIN = 10
LOGNORMAL_VALUE_MAX = 4096


@dataclass(frozen=True)
class SizeDist:
    """A length distribution: ``fixed`` (every length ``size``) or
    ``lognormal`` (median, sigma, clipped to [low, high]); keys may also be
    ``ycsb``."""
    kind: str
    size: int = 0
    median: float = 0.0
    sigma: float = 0.0
    low: int = 0
    high: int = 0

    def describe(self):
        if self.kind == "fixed":
            return f"{self.size} bytes each"
        if self.kind == "ycsb":
            return "YCSB: 'user' + FNV hash of the record number, 5 to 23 bytes"
        return f"lognormal, median {self.median:g} bytes, sigma {self.sigma:g}, clipped to [{self.low}, {self.high}]"

    def spec(self):
        """The option text that gives this distribution back."""
        if self.kind == "fixed":
            return f"fixed:{self.size}"
        if self.kind == "ycsb":
            return "ycsb"
        return f"lognormal:{self.median:g}:{self.sigma:g}:{self.low}:{self.high}"


def parse_size_dist(text, *, what, fixed_size, allow_ycsb, low, high):
    """``fixed``, ``fixed:N``, ``ycsb`` (keys only) or
    ``lognormal:MEDIAN:SIGMA[:MIN:MAX]`` as a SizeDist; ValueError naming the
    option and what is wrong."""
    parts = [p.strip() for p in text.split(":")]
    kind = parts[0].lower()
    try:
        if kind == "fixed" and len(parts) <= 2:
            size = int(parts[1]) if len(parts) == 2 else fixed_size
            if size < 0:
                raise ValueError("the size must not be negative")
            return SizeDist("fixed", size=size)
        if kind == "ycsb" and allow_ycsb and len(parts) == 1:
            return SizeDist("ycsb")
        if kind == "lognormal" and len(parts) in (3, 5):
            median, sigma = float(parts[1]), float(parts[2])
            if len(parts) == 5:
                low, high = int(parts[3]), int(parts[4])
            if not median > 0 or not sigma >= 0:
                raise ValueError("the median must be above 0 and sigma not negative")
            if not 0 <= low <= high:
                raise ValueError(f"bounds [{low}, {high}]: need 0 <= MIN <= MAX")
            return SizeDist("lognormal", median=median, sigma=sigma, low=low, high=high)
    except ValueError as exc:
        raise ValueError(f"--{what}: bad {text!r}: {exc}") from None
    forms = "fixed, fixed:N, " + ("ycsb, " if allow_ycsb else "") + "lognormal:MEDIAN:SIGMA[:MIN:MAX]"
    raise ValueError(f"--{what}: bad {text!r}: expected one of {forms}")


def word_text(seed, size=TEXT_POOL_BYTES):
    """``size`` bytes of space-separated pseudo-words (see TEXT_VOCABULARY)."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(_LETTERS, dtype=np.uint8)
    weights = np.array(_LETTER_PERCENT) / sum(_LETTER_PERCENT)
    words = [bytes(rng.choice(letters, n, p=weights)) for n in rng.integers(2, 10, TEXT_VOCABULARY)]
    popularity = 1.0 / np.arange(1, TEXT_VOCABULARY + 1) ** TEXT_ZIPF_EXPONENT
    picks = rng.choice(TEXT_VOCABULARY, size // 5 + 1, p=popularity / popularity.sum())
    text = b" ".join(words[i] for i in picks)
    while len(text) < size:
        text += b" " + text
    return text[:size]


class Data:
    """Keys and values of a run, generated once and shared by every engine.

    Record number ``i`` always has the same key (``key_of``); ``keys`` are
    records 0..num-1 in key-name order for fixed keys (db_bench's fillseq)
    and in record order otherwise; ``random_keys`` is one shuffled
    permutation (the order of random fills and of ``load``), ``read_keys``
    another. ``next_id`` is the first record number no workload has written
    yet; workloads that insert take numbers from it (``take_new_ids``)."""

    def __init__(self, num, key_size=16, value_size=100, seed=SEED, reads=None, key_dist=None, value_dist=None):
        self.num = num
        self.reads = num if reads is None else reads
        self.seed = seed
        self.key_dist = key_dist or SizeDist("fixed", size=key_size)
        self.value_dist = value_dist or SizeDist("fixed", size=value_size)
        rng = random.Random(seed)
        self.np_rng = np.random.default_rng(seed)
        self._text = None
        self._key_sizes = None
        if self.key_dist.kind == "lognormal":
            if self.key_dist.low < LOGNORMAL_KEY_MIN:
                raise ValueError(f"{self.key_dist.describe()}: keys need at least {LOGNORMAL_KEY_MIN} bytes")
            self._key_sizes = self._size_table(self.key_dist, 1)
        self.keys = self.key_of(range(num))
        if len(set(self.keys)) != num:
            raise ValueError(f"{self.key_dist.describe()}: keys of {num} records are not distinct")
        order = list(range(num))
        rng.shuffle(order)
        self.random_keys = [self.keys[i] for i in order]
        rng.shuffle(order)
        read_keys = [self.keys[i] for i in order]  # readrandom, seekrandom: another order
        self.read_keys = (read_keys * (self.reads // num + 1))[:self.reads]
        self.value_pool = self._value_pool(rng)
        self.values = self.values_for(np.arange(num))
        self.key_size = _mean_len(self.keys)
        self.value_size = _mean_len(self.values)
        self.entry_bytes = self.key_size + self.value_size
        self.next_id = num

    # ------------------------------------------------------------- keys
    def key_of(self, ids):
        """The keys of record numbers ``ids`` (any iterable of ints)."""
        dist = self.key_dist
        if dist.kind == "fixed":
            fmt = b"%0" + str(dist.size).encode() + b"d"
            return [fmt % i for i in ids]
        ids = np.fromiter(ids, dtype=np.uint64)
        hashes = fnv_hash64(ids)
        if dist.kind == "ycsb":
            return [YCSB_PREFIX + b"%d" % h for h in hashes.tolist()]
        # lognormal: the 8-byte hash (distinct keys), then text to the length.
        text = self.text()
        sizes = self._key_sizes[(hashes >> np.uint64(20)) % np.uint64(SIZE_TABLE)].tolist()
        starts = (hashes % np.uint64(len(text) - dist.high)).tolist()
        heads = hashes.astype(">u8").tobytes()
        return [heads[8 * n:8 * n + 8] + text[s:s + size - 8]
                for n, (s, size) in enumerate(zip(starts, sizes))]

    def take_new_ids(self, count):
        """Record numbers for ``count`` inserts, never used before in this run."""
        first = self.next_id
        self.next_id += count
        return np.arange(first, first + count)

    def reset_ids(self):
        """A fresh fill wrote records 0..num-1 and nothing else."""
        self.next_id = self.num

    def missing_keys(self):
        # As db_bench: an existing key with "." appended is never present.
        return [k + b"." for k in self.read_keys]

    def absent_keys(self, count):
        """``count`` keys shaped as the distribution's but never written:
        records numbered from ABSENT_BASE on (fixed keys: db_bench's
        ``missing_keys``, which need no room in the key width)."""
        if self.key_dist.kind == "fixed":
            return (self.missing_keys() * (count // max(1, len(self.read_keys)) + 1))[:count]
        return self.key_of(range(ABSENT_BASE, ABSENT_BASE + count))

    # ----------------------------------------------------------- values
    def values_for(self, ids):
        """Values for record numbers (or any ints: a write picks a fresh one
        by number); references into a pool of distinct values."""
        pool = self.value_pool
        picks = fnv_hash64(np.asarray(ids, dtype=np.uint64) ^ np.uint64(self.seed)) % np.uint64(len(pool))
        return [pool[i] for i in picks.tolist()]

    def _value_pool(self, rng):
        dist = self.value_dist
        if dist.kind == "fixed":
            return _db_bench_values(rng, dist.size)
        text = self.text()
        count = min(SIZE_TABLE, max(1024, self.num))
        sizes = lognormal_sizes(self.np_rng, count, dist.median, dist.sigma, dist.low, dist.high)
        starts = self.np_rng.integers(0, len(text) - dist.high, count)
        return [text[s:s + n] for s, n in zip(starts.tolist(), sizes.tolist())]

    def _size_table(self, dist, seed_offset):
        rng = np.random.default_rng(self.seed + seed_offset)
        return lognormal_sizes(rng, SIZE_TABLE, dist.median, dist.sigma, dist.low, dist.high)

    def text(self):
        if self._text is None:
            self._text = word_text(self.seed)
        return self._text


def _mean_len(items):
    return round(sum(map(len, items)) / len(items), 1) if items else 0.0


def _db_bench_values(rng, value_size):
    """Distinct values (~1 MiB of them), each half random bytes and half
    repetition, so snappy halves them as in db_bench."""
    if value_size == 0:
        return [b""]
    pool_size = max(1 << 20, 4 * value_size)
    distinct = []
    for _ in range(max(1, pool_size // value_size)):
        raw = rng.randbytes((value_size + 1) // 2)
        distinct.append((raw * 2)[:value_size])
    return distinct
