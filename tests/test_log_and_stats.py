"""The info LOG tells what the engine did, and stats() tells the truth about
the files on disk."""
import os
import re
import time

import lsm


def _table_sizes(path):
    return {int(n.split(".")[0]): os.path.getsize(os.path.join(path, n))
            for n in os.listdir(path) if re.fullmatch(r"\d+\.ldb", n)}


def test_log_records_open_flush_compaction_and_close(tmp_path):
    path = str(tmp_path / "db")
    with lsm.DB(path, create_if_missing=True, compactors=0, write_buffer_size=64 << 10) as db:
        for i in range(4000):
            db.put(b"k%06d" % (i % 1500), b"v" * 200)
        db.compact_range()
    text = open(os.path.join(path, "LOG")).read()
    assert "Opening" in text
    assert re.search(r"Flushed table #\d+: \d+ bytes", text), text
    assert re.search(r"Compacted \d+@0 \+ \d+@1 files => \d+ bytes", text), text
    assert "Closed" in text
    with lsm.DB(path, compactors=0):
        pass
    assert os.path.exists(os.path.join(path, "LOG.old")), "the previous LOG was not kept as LOG.old"
    assert "Recovering log" in open(os.path.join(path, "LOG")).read()


def test_stats_agree_with_files_on_disk(tmp_path):
    path = str(tmp_path / "db")
    with lsm.DB(path, create_if_missing=True, compactors=0, write_buffer_size=64 << 10,
                level_size_base=128 << 10) as db:
        for i in range(20000):
            db.put(b"k%06d" % (i * 7 % 9000), b"x" * 100)
        db._engine.wait_for_compactions()
        stats = db.stats()
        on_disk = _table_sizes(path)
        levels = stats["levels"]
        assert sum(level["files"] for level in levels) == len(on_disk)
        assert sum(level["bytes"] for level in levels) == sum(on_disk.values())
        for level in levels:
            prop = db.get_property(b"leveldb.num-files-at-level%d" % level["level"])
            assert int(prop) == level["files"]
        assert stats["flushes"] >= 1 and stats["compactions"] >= 1
        assert stats["compaction_bytes_written"] > 0
        assert stats["write_amplification"] >= 1.0
        assert stats["background_error"] is None
        sstables = db.get_property(b"leveldb.sstables").decode()
        assert set(map(int, re.findall(r"^ (\d+):", sstables, re.M))) == set(on_disk)


def test_stats_list_live_compactors(tmp_path):
    with lsm.DB(str(tmp_path / "db"), create_if_missing=True, compactors=2) as db:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            workers = db.stats()["compactors"]
            if all(w["alive"] and w["pid"] for w in workers):
                break
            time.sleep(0.05)
        assert len(workers) == 2
        assert all(w["alive"] and w["pid"] for w in workers), workers
        assert all(w["rss_bytes"] > 0 for w in workers)
        text = db.get_property(b"leveldb.stats").decode()
        for w in workers:
            assert str(w["pid"]) in text
