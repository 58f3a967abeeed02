"""Version.numbers_for_get: which table of each level a point lookup reads."""
import random

from lsm.filemeta import FileMetaData
from lsm.keys import TYPE_VALUE, make_internal_key, sort_key
from lsm.writer.version import NUM_LEVELS, Version


def meta(number, lo, lo_seq, hi, hi_seq):
    return FileMetaData(number, 1000, make_internal_key(lo, lo_seq, TYPE_VALUE), make_internal_key(hi, hi_seq, TYPE_VALUE))


def version_with_level1(files):
    levels = [[] for _ in range(NUM_LEVELS)]
    levels[1] = files
    return Version(levels)


def test_old_snapshot_reads_the_file_holding_older_versions_of_a_boundary_key():
    # File 1 ends with k@9; file 2 starts with k@5: the versions of k straddle them.
    first, second = meta(1, b"a", 100, b"k", 9), meta(2, b"k", 5, b"z", 4)
    version = version_with_level1([first, second])
    assert version.numbers_for_get(b"k", 20) == [first.number]
    assert version.numbers_for_get(b"k", 9) == [first.number]
    assert version.numbers_for_get(b"k", 6) == [second.number]
    assert version.numbers_for_get(b"j", 1) == [first.number]
    assert version.numbers_for_get(b"m", 1) == [second.number]
    assert version.numbers_for_get(b"zz", 1000) == []


def test_lookups_agree_with_a_plain_internal_key_scan():
    rng = random.Random(7)
    for _ in range(300):
        files, number, seq = [], 1, 1000
        user = sorted(rng.sample(range(100), rng.randint(0, 12)))
        for lo, hi in zip(user[0::2], user[1::2]):
            files.append(meta(number, b"%03d" % lo, seq, b"%03d" % hi, seq - 1))
            number, seq = number + 1, seq - 2
            if rng.random() < 0.3:  # the next file starts with older versions of hi
                files.append(meta(number, b"%03d" % hi, seq, b"%03d~" % hi, seq - 1))
                number, seq = number + 1, seq - 2
        files.sort(key=lambda f: sort_key(f.smallest))
        version = version_with_level1(files)
        for _ in range(20):
            key = b"%03d" % rng.randrange(102)
            sequence = rng.randrange(1100)
            target = sort_key(make_internal_key(key, sequence, TYPE_VALUE))
            want = [f for f in files if sort_key(f.largest) >= target][:1]
            want = [f for f in want if f.smallest[:-8] <= key]
            assert version.numbers_for_get(key, sequence) == [f.number for f in want], (key, sequence)


class _RecordingProbes(dict):
    """The table cache's filter probes, noting each table a get asks about."""

    def __init__(self, probes):
        super().__init__(probes)
        self.asked = []

    def get(self, number, default=None):
        self.asked.append(number)
        return super().get(number, default)


def test_a_get_consults_the_tables_numbers_for_get_names_in_its_order(tmp_path):
    # The engine walks the version inline; were its walk to skip a table or
    # take them out of order, a get would miss a key or return a stale value.
    import lsm

    with lsm.DB(str(tmp_path / "db"), create_if_missing=True, compactors=0) as db:
        engine = db._engine
        for lo, hi in ((0, 200), (200, 400), (100, 300), (50, 250), (150, 350)):
            for i in range(lo, hi, 2):
                db.put(b"k%04d" % i, b"v%d" % lo)
            engine.flush()
        version = engine.versions.current
        assert len(version.levels[0]) >= 2 and any(version.levels[1:]), [len(level) for level in version.levels]
        keys = [b"k%04d" % i for i in range(-5, 410)]
        for key in keys:
            db.get(key)  # every table opened: each has its probe
        memtables = engine.memtables
        recording = memtables._key_filters = _RecordingProbes(memtables._key_filters)
        sequence = engine.versions.last_sequence
        for key in keys:
            recording.asked = []
            found = db.get(key)
            named = version.numbers_for_get(key, sequence)
            if found is None:
                assert recording.asked == named, key
            else:
                assert recording.asked and recording.asked == named[:len(recording.asked)], key


def test_level0_files_are_consulted_newest_first_and_only_where_they_may_hold_the_key():
    # Level 0's files overlap: an older file consulted first would answer
    # with a stale value.
    levels = [[] for _ in range(NUM_LEVELS)]
    older, newer = meta(4, b"a", 10, b"m", 5), meta(7, b"c", 30, b"z", 20)
    levels[0] = [older, newer]
    levels[1] = [meta(2, b"a", 3, b"z", 1)]
    version = Version(levels)
    assert version.numbers_for_get(b"d", 100) == [7, 4, 2]
    assert version.numbers_for_get(b"b", 100) == [4, 2]
    assert version.numbers_for_get(b"n", 100) == [7, 2]
    # Every version of "m" in file 4 is newer than 4: it has nothing to give.
    assert version.numbers_for_get(b"m", 4) == [7, 2]
    assert version.numbers_for_get(b"m", 5) == [7, 4, 2]
