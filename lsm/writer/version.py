"""Versions: immutable sets of table files per level, and the builder that
applies VersionEdits to them. Knows file metadata and key order; no files.

Level 0 is kept in file-number order (newer tables have larger numbers and
must win lookups); levels 1+ are sorted by smallest key and do not overlap.
"""
from bisect import bisect_left

from ..keys import TAG_FOR_SEEK_MASK, sort_key
from ..version_edit import NUM_LEVELS


class Version:
    """One immutable view of the tables. `refs` counts iterators, snapshots'
    iterators and running jobs that still read it; files of a version with
    refs > 0 (or the current one) are never deleted."""

    __slots__ = ("levels", "refs", "_largest_keys", "number", "_searched", "_user_bounds")

    def __init__(self, levels, number=0):
        self.levels = levels
        self.refs = 0
        self.number = number
        # Per level >= 1: sort keys of each file's largest key, for bisect.
        self._largest_keys = [None] + [[sort_key(f.largest) for f in files] for files in levels[1:]]
        self._user_bounds = {}
        # What a get consults, made once: level 0's files newest first, each
        # alone, then the non-empty levels >= 1, as (file numbers, their
        # count, largest sort keys, smallest and largest user keys).
        # numbers_for_get reads them, and Memtables.get reads them the same
        # way, inline.
        self._searched = [([f.number], 1, [sort_key(f.largest)], [f.smallest[:-8]], [f.largest[:-8]])
                          for f in reversed(levels[0])]
        self._searched += [([f.number for f in files], len(files), self._largest_keys[level], *self.user_bounds(level))
                           for level, files in enumerate(levels) if level and files]

    def user_bounds(self, level):
        """(smallest user keys, largest user keys) of a level's files, made
        once per version: every iterator over a level needs them."""
        bounds = self._user_bounds.get(level)
        if bounds is None:
            files = self.levels[level]
            bounds = ([f.smallest[:-8] for f in files], [f.largest[:-8] for f in files])
            self._user_bounds[level] = bounds
        return bounds

    def files(self, level):
        return self.levels[level]

    def live_numbers(self):
        return {f.number for files in self.levels for f in files}

    def numbers_for_get(self, user_key: bytes, sequence: int):
        """Numbers of the tables that may hold user_key at `sequence`, in the
        order a lookup must consult them: level 0 newest first, then one file
        per level."""
        out = []
        for numbers, count, largest_keys, smallest_ukeys, largest_ukeys in self._searched:
            i = bisect_left(largest_ukeys, user_key)
            if i < count and largest_ukeys[i] == user_key:
                # A file may end inside user_key's versions, with only ones
                # too new for `sequence`: internal order decides (a level-0
                # file holding only such versions has nothing to give).
                i = bisect_left(largest_keys, (user_key, -((sequence << 8) | TAG_FOR_SEEK_MASK)))
            if i < count and smallest_ukeys[i] <= user_key:
                out.append(numbers[i])
        return out

    def overlaps(self, level, smallest_ukey, largest_ukey) -> bool:
        for f in self.levels[level]:
            if not (f.largest[:-8] < smallest_ukey or f.smallest[:-8] > largest_ukey):
                return True
        return False


class VersionBuilder:
    """Accumulates edits on top of a base version (LevelDB's VersionSet::Builder)."""

    def __init__(self, base: Version, ordered=None):
        self._base = base
        # A custom comparator's key type (lsm.order): added files' bounds
        # become ordered keys, so every comparison of them follows it.
        self._ordered = ordered
        self._deleted = [set() for _ in range(NUM_LEVELS)]
        self._added = [{} for _ in range(NUM_LEVELS)]

    def apply(self, edit) -> None:
        for level, number in edit.deleted_files:
            self._deleted[level].add(number)
            self._added[level].pop(number, None)
        ordered = self._ordered
        for level, meta in edit.new_files:
            if ordered is not None:
                meta.smallest, meta.largest = ordered(meta.smallest), ordered(meta.largest)
            self._deleted[level].discard(meta.number)
            meta.allowed_seeks = max(100, meta.size // 16384)
            self._added[level][meta.number] = meta

    def build(self, number=0) -> Version:
        levels = []
        for level in range(NUM_LEVELS):
            deleted = self._deleted[level]
            added = self._added[level]
            files = [f for f in self._base.levels[level] if f.number not in deleted and f.number not in added]
            files.extend(added.values())
            if level == 0:
                files.sort(key=lambda f: f.number)
            else:
                files.sort(key=lambda f: (sort_key(f.smallest), f.number))
            levels.append(files)
        return Version(levels, number)


def empty_version() -> Version:
    return Version([[] for _ in range(NUM_LEVELS)])
