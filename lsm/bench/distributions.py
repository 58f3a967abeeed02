"""Random draws the benchmark's data and request streams are made of: YCSB's
hash, its zipfian and scrambled-zipfian generators, and clipped lognormal
sizes, all vectorised with numpy.

Pure: numpy only; no engines, no files.
"""
import numpy as np

FNV_OFFSET_BASIS_64 = 0xCBF29CE484222325
FNV_PRIME_64 = 1099511628211

# YCSB's ScrambledZipfianGenerator draws ranks from a fixed space of ten
# billion items, whose zeta constant for theta 0.99 it hard-codes, and hashes
# each rank onto the records that exist: popular keys are spread over the
# key space, and the record count may grow without recomputing zeta.
ZIPFIAN_CONSTANT = 0.99
SCRAMBLED_ITEM_COUNT = 10_000_000_000
SCRAMBLED_ZETAN = 26.46902820178302


def fnv_hash64(values):
    """YCSB's ``Utils.fnvhash64`` of each int: FNV-1a over the value's 8
    little-endian bytes, made non-negative as Java's ``Math.abs`` of a long."""
    values = np.asarray(values, dtype=np.uint64)
    hashed = np.full(values.shape, FNV_OFFSET_BASIS_64, dtype=np.uint64)
    prime = np.uint64(FNV_PRIME_64)
    with np.errstate(over="ignore"):
        for shift in range(0, 64, 8):
            hashed ^= (values >> np.uint64(shift)) & np.uint64(0xFF)
            hashed *= prime
    signed = hashed.view(np.int64)
    # abs(Long.MIN_VALUE) stays negative in Java; here it wraps to the same bits.
    return np.abs(signed).view(np.uint64)


def zeta(count, theta):
    """sum(1 / i**theta for i in 1..count)."""
    if count <= 0:
        return 0.0
    return float(np.sum(np.arange(1, count + 1, dtype=np.float64) ** -theta))


def zipfian_ranks(rng, size, item_count, theta=ZIPFIAN_CONSTANT, zetan=None):
    """``size`` ranks in [0, item_count), rank 0 the most popular, by Gray et
    al.'s method as YCSB's ZipfianGenerator implements it."""
    if item_count < 1:
        raise ValueError(f"zipfian over {item_count} items: need at least one")
    if zetan is None:
        zetan = zeta(item_count, theta)
    zeta2 = 1.0 + 0.5 ** theta
    alpha = 1.0 / (1.0 - theta)
    eta = (1.0 - (2.0 / item_count) ** (1.0 - theta)) / (1.0 - zeta2 / zetan)
    u = rng.random(size)
    uz = u * zetan
    ranks = np.floor(item_count * (eta * u - eta + 1.0) ** alpha)
    ranks = np.minimum(ranks, item_count - 1).astype(np.int64)
    ranks[uz < zeta2] = 1
    ranks[uz < 1.0] = 0
    return ranks


def scrambled_zipfian(rng, size, record_count, theta=ZIPFIAN_CONSTANT):
    """``size`` record numbers in [0, record_count), zipfian in popularity
    but with the popular ones scattered (YCSB's ScrambledZipfianGenerator).
    ``record_count`` may be an array: the count at each draw."""
    counts = np.asarray(record_count, dtype=np.int64)
    if counts.size and counts.min() < 1:
        raise ValueError(f"zipfian over {counts.min()} records: need at least one")
    zetan = SCRAMBLED_ZETAN if theta == ZIPFIAN_CONSTANT else None
    ranks = zipfian_ranks(rng, size, SCRAMBLED_ITEM_COUNT, theta, zetan)
    return (fnv_hash64(ranks) % counts.astype(np.uint64)).astype(np.int64)


def skewed_latest(rng, size, newest, theta=ZIPFIAN_CONSTANT):
    """Record numbers near ``newest`` (an array, the newest record at each
    draw): newest - a zipfian rank, as YCSB's SkewedLatestGenerator. The
    zipfian spans the record count at the start of the stream, which grows
    by a few percent in a run at most."""
    newest = np.asarray(newest, dtype=np.int64)
    if newest.size == 0:
        return newest
    count = int(newest.min()) + 1
    ranks = zipfian_ranks(rng, size, count, theta)
    return np.maximum(newest - ranks, 0)


def lognormal_sizes(rng, size, median, sigma, low, high):
    """``size`` lengths, lognormal around ``median`` with shape ``sigma``
    (the standard deviation of the log), rounded and clipped to [low, high]."""
    draws = np.exp(rng.normal(np.log(median), sigma, size))
    return np.clip(np.rint(draws), low, high).astype(np.int64)
