"""The info LOG tells what the engine did, and stats() tells the truth about
the files on disk."""
import os
import re
import time

import pytest

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


# ------------------------------------------------- history parsed from the LOG
from lsm.history import COMPACTION, FLUSH, MOVE, parse_history, summarize  # noqa: E402

OLD_LOG = """\
2026/11/21-08:00:00.000001 140 Opening /db (compactors=0, write_buffer_size=65536, paranoid_checks=False)
2026/11/21-08:00:00.000100 140 Recovering log #3: max sequence 0, 0 bytes of tables
2026/11/21-08:00:01.250000 140 Flushed table #5: 65432 bytes, to level 0, 0.012s (WAL #4)
2026/11/21-08:00:02.500000 141 Compacted 4@0 + 2@1 files => 300000 bytes in 3 files, 327000 bytes read, 0.103s
2026/11/21-08:00:02.6 141 Flushed table #9: torn
2026/11/21-08:00:03.000000 140 Closed
"""
NEW_LOG = """\
2026/11/21-09:00:00.000000 150 Opening /db (compactors=2, write_buffer_size=65536, paranoid_checks=False)
2026/11/21-09:00:00.100000 150 Recovering log #11: max sequence 900, 7193 bytes of tables
this line is not a LOG line at all
2026/11/21-09:00:01.000000 150 Flushed table #-: 0 bytes, to level 0, 0.001s (WAL #12)
2026/11/21-09:00:02.000000 150 Moved #14 to level-2 65432 bytes
2026/11/21-09:00:03.000000 151 Compacted 1@1 + 3@2 files => 900 bytes in 2 files, 1000 bytes read, 1.5s, 2 subcompactions
2026/11/21-09:00:04.000000 150 Compacted garbage
2026/11/21-09:00:05.000000 150 Stalling writes: 2 frozen memtables, 8 level-0 files

"""


def test_history_parser_on_fixed_lines_skips_malformed_ones():
    history = parse_history([OLD_LOG, NEW_LOG.splitlines(keepends=True)])  # a str or lines
    assert history.sessions == 2
    assert history.skipped == 3  # the torn flush, the non-LOG line, "Compacted garbage"
    assert history.lines == 14
    assert history.first_time == "2026/11/21-08:00:00.000001"
    assert history.last_time == "2026/11/21-09:00:05.000000"
    kinds = [(e.kind, e.session, e.from_level, e.to_level) for e in history.events]
    assert kinds == [(FLUSH, 0, None, 0), (COMPACTION, 0, 0, 1), (FLUSH, 1, None, 0), (FLUSH, 1, None, 0),
                     (MOVE, 1, 1, 2), (COMPACTION, 1, 1, 2)]
    flush, compaction, recovery, empty, move, sub = history.events
    assert flush.time == "2026/11/21-08:00:01.250000"
    assert flush.timestamp == time.mktime((2026, 11, 21, 8, 0, 1, 0, 0, -1)) + 0.25
    assert (flush.input_files, flush.input_bytes, flush.output_files, flush.output_bytes, flush.seconds) == \
        (None, None, 1, 65432, 0.012)
    assert "WAL #4" in flush.detail
    assert (compaction.input_files, compaction.input_bytes, compaction.output_files, compaction.output_bytes,
            compaction.seconds) == (6, 327000, 3, 300000, 0.103)
    assert (recovery.output_bytes, recovery.seconds) == (7193, None)  # the empty WAL #3 is no flush
    assert (empty.output_files, empty.output_bytes) == (0, 0)
    assert (move.input_bytes, move.output_bytes, move.moved_bytes, move.seconds) == (0, 0, 65432, None)
    assert (sub.input_files, sub.seconds, sub.detail) == (4, 1.5, "1@1 + 3@2 files, 2 subcompactions")
    assert sub.as_dict()["kind"] == "compaction"

    summary = summarize(history)
    assert summary["event_count"] == 6 and summary["skipped_lines"] == 3 and summary["sessions"] == 2
    assert summary["kinds"][FLUSH] == {"count": 3, "input_files": None, "input_bytes": None, "output_files": 2,
                                       "output_bytes": 65432 + 7193, "seconds": pytest.approx(0.013),
                                       "moved_bytes": 0}
    assert summary["kinds"][COMPACTION]["input_bytes"] == 328000
    assert summary["kinds"][COMPACTION]["output_bytes"] == 300900
    assert summary["kinds"][COMPACTION]["seconds"] == pytest.approx(1.603)
    assert summary["kinds"][MOVE]["count"] == 1 and summary["kinds"][MOVE]["moved_bytes"] == 65432
    by_level = {row["level"]: row for row in summary["levels"]}
    assert sorted(by_level) == [0, 1, 2]
    assert (by_level[0]["flushes"], by_level[0]["compactions"]) == (3, 0)
    assert (by_level[1]["compactions"], by_level[1]["input_bytes"]) == (1, 327000)
    assert (by_level[2]["compactions"], by_level[2]["moves"], by_level[2]["output_bytes"]) == (1, 1, 900)


def test_history_parser_on_nothing():
    history = parse_history([])
    assert (history.events, history.sessions, history.skipped, history.first_time) == ([], 0, 0, None)
    assert summarize(history)["kinds"][COMPACTION]["input_bytes"] == 0
    history = parse_history(["", "\n\n", "\x00\x01garbage\n"])
    assert (history.events, history.sessions, history.skipped) == ([], 0, 1)


def test_history_from_a_real_log_matches_the_engine_counters(tmp_path):
    from lsm.fileio import DEFAULT_FS
    from lsm.history import read_logs
    path = str(tmp_path / "db")
    assert read_logs(DEFAULT_FS, path) == []
    with lsm.DB(path, create_if_missing=True, compactors=0, write_buffer_size=64 << 10,
                level_size_base=128 << 10) as db:
        for i in range(8000):
            db.put(b"k%06d" % (i * 7 % 5000), b"x" * 100)
        db._engine.wait_for_compactions()
        stats = db.stats()
    logs = read_logs(DEFAULT_FS, path)
    assert [name for name, _ in logs] == ["LOG"]
    summary = summarize(parse_history(text for _, text in logs))
    assert summary["skipped_lines"] == 0 and summary["sessions"] == 1
    assert summary["kinds"][FLUSH]["count"] == stats["flushes"] >= 1
    assert summary["kinds"][COMPACTION]["count"] == stats["compactions"] >= 1
    assert summary["kinds"][COMPACTION]["input_bytes"] == stats["compaction_bytes_read"]
    flushed = summary["kinds"][FLUSH]["output_bytes"]
    assert flushed + summary["kinds"][COMPACTION]["output_bytes"] == stats["compaction_bytes_written"]
