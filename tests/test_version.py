"""Version.files_for_get: which table of each level a point lookup reads."""
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
    assert version.files_for_get(b"k", 20) == [first]
    assert version.files_for_get(b"k", 9) == [first]
    assert version.files_for_get(b"k", 6) == [second]
    assert version.files_for_get(b"j", 1) == [first]
    assert version.files_for_get(b"m", 1) == [second]
    assert version.files_for_get(b"zz", 1000) == []


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
            assert version.files_for_get(key, sequence) == want, (key, sequence)
