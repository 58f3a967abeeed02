"""lsm.tools and lsm.manifest called in-process, on real databases made with lsm.DB:
the data the command line prints (findings, records, dicts), and the one MANIFEST
replay that recovery and check share."""
import io
import os

import pytest

import lsm
from lsm.filemeta import FileMetaData
from lsm.manifest import ManifestRecords, replay_manifest
from lsm.record import LogReader, LogWriter
from lsm.tools.check import Finding, check_database
from lsm.tools.dump import UnknownFileKind, dump_file
from lsm.tools.load import BadInputLine, LoadTotals, format_of, load_entries, parse_lines
from lsm.tools.repair_report import repair_database, report_lines
from lsm.tools.stats import database_stats, stats_text
from lsm.version_edit import VersionEdit

from file_helpers import flip_byte

N = 2000


@pytest.fixture
def db_path(tmp_path):
    """A closed database with tables in more than one level and a live WAL."""
    path = str(tmp_path / "db")
    with lsm.DB(path, create_if_missing=True, compactors=0, write_buffer_size=32 << 10) as db:
        for i in range(N):
            db.put(b"key%05d" % i, b"v%05d" % i * 10)
        db.delete(b"key00007")
    return path


def names(path, test):
    return sorted(os.path.join(path, n) for n in os.listdir(path) if test(n))


def manifest_of(path):
    return os.path.join(path, open(os.path.join(path, "CURRENT")).read().strip())


def ikey(user_key, seq=1):
    return user_key + ((seq << 8) | 1).to_bytes(8, "little")


# ----------------------------------------------------------------- check
def test_check_of_a_clean_database_finds_nothing_and_counts_what_it_read(db_path):
    report = check_database(db_path)
    assert report.ok and report.findings == []
    c = report.counts
    assert c.tables == len(names(db_path, lambda n: n.endswith(".ldb"))) > 1
    assert c.entries + c.wal_records >= N - 1  # every put is in a table or the WAL (a delete may drop two)
    assert c.blocks >= c.tables and c.manifest_records >= 2
    assert c.wals >= 1 and c.wal_records >= 1


def test_check_finding_names_the_damaged_block(db_path):
    table = max(names(db_path, lambda n: n.endswith(".ldb")), key=os.path.getsize)
    flip_byte(table, 5000, 0x20)
    report = check_database(db_path)
    assert not report.ok
    assert {f.path for f in report.findings} == {table}
    first = report.findings[0]
    assert 0 < first.offset <= 5000 and "checksum" in first.reason
    assert str(first) == f"{table}: offset {first.offset}: {first.reason}"


def test_check_of_an_absent_directory_raises(tmp_path):
    with pytest.raises(lsm.Error, match="no such database directory"):
        check_database(str(tmp_path / "nope"))


def test_check_of_a_locked_database_raises_lock_error(db_path):
    with lsm.DB(db_path, compactors=0):
        with pytest.raises(lsm.LockError):
            check_database(db_path)


def test_manifest_missing_a_required_entry_is_found_by_check_as_recovery_refuses_it(db_path):
    """Recovery and check replay the MANIFEST through one function: a MANIFEST
    that lost its counters is refused at open, and check reports the same
    place and reason."""
    manifest = manifest_of(db_path)
    state = replay_manifest(open(manifest, "rb").read(), manifest)
    snapshot = VersionEdit(comparator=b"leveldb.BytewiseComparator",
                           new_files=list(state.live_files()))  # files, but no log/next/sequence
    with open(manifest, "wb") as f:
        f.write(LogWriter().encode(snapshot.encode()))
    with pytest.raises(lsm.CorruptionError) as refused:
        lsm.DB(db_path, compactors=0)
    report = check_database(db_path)
    assert [(f.path, f.offset, f.reason) for f in report.findings] == [
        (refused.value.path, refused.value.offset, refused.value.reason)]
    assert "meta-nextfile" in refused.value.reason


def test_damaged_manifest_record_is_one_finding_at_the_offset_recovery_names(db_path):
    manifest = manifest_of(db_path)
    offsets = [offset for offset, _ in LogReader(open(manifest, "rb").read(), strict=True)]
    flip_byte(manifest, offsets[1] + 10, 0x01)
    with pytest.raises(lsm.CorruptionError) as refused:
        lsm.DB(db_path, compactors=0)
    report = check_database(db_path)
    assert report.findings == [Finding(manifest, offsets[1], refused.value.reason)]


# -------------------------------------------------------------- manifest
def test_replay_applies_deletions_before_additions_and_keeps_the_last_counters():
    def meta(number):
        return FileMetaData(number, 100, ikey(b"a"), ikey(b"z"))

    writer = LogWriter()
    edits = [VersionEdit(comparator=b"leveldb.BytewiseComparator", log_number=3, next_file_number=4,
                         last_sequence=9, new_files=[(0, meta(5)), (0, meta(6))]),
             # 5 moves to level 1 in one edit; 6 is deleted; counters advance
             VersionEdit(log_number=7, next_file_number=8, last_sequence=20, deleted_files={(0, 5), (0, 6)},
                         new_files=[(1, meta(5))], compact_pointers=[(1, ikey(b"m"))])]
    data = b"".join(writer.encode(e.encode()) for e in edits)
    state = replay_manifest(data, "MANIFEST-000002")
    assert [(level, m.number) for level, m in state.live_files()] == [(1, 5)]
    assert (state.log_number, state.next_file_number, state.last_sequence) == (7, 8, 20)
    assert state.prev_log_number is None and state.records == 2
    assert state.compact_pointers[1] == ikey(b"m") and state.missing_entry() is None
    assert state.end_offset == len(data)


def test_replay_of_a_torn_tail_stops_there_and_says_where_entries_would_be():
    writer = LogWriter()
    first = writer.encode(VersionEdit(comparator=b"leveldb.BytewiseComparator").encode())
    second = writer.encode(VersionEdit(log_number=1, next_file_number=2, last_sequence=0).encode())
    state = replay_manifest(first + second[:-3], "M")
    assert state.records == 1 and state.end_offset == len(first)
    assert state.missing_entry() == (len(first), "no meta-nextfile entry in descriptor")


def test_undecodable_edit_names_the_record_and_the_byte():
    writer = LogWriter()
    first = writer.encode(VersionEdit(comparator=b"leveldb.BytewiseComparator").encode())
    records = ManifestRecords(first + writer.encode(b"\x02\x03\x08\x00"), "MANIFEST-000001")
    seen = []
    with pytest.raises(lsm.CorruptionError) as info:
        for offset, edit in records:
            seen.append(offset)
    assert seen == [0]
    assert (info.value.path, info.value.offset) == ("MANIFEST-000001", len(first))
    assert "bad VersionEdit" in info.value.reason and "unknown tag 8" in info.value.reason


# ------------------------------------------------------------------ dump
def test_dump_wal_yields_each_batch_with_its_sequence(tmp_path):
    path = str(tmp_path / "db")
    with lsm.DB(path, create_if_missing=True, compactors=0) as db:
        db.put(b"a", b"1")
        with db.write_batch() as wb:
            wb.put(b"b", b"2")
            wb.delete(b"a")
        (wal,) = names(path, lambda n: n.endswith(".log"))
        records = list(dump_file(wal))
    assert records == [
        {"seq": 1, "ops": [{"kind": "put", "key": b"a".hex(), "value": b"1".hex()}]},
        {"seq": 2, "ops": [{"kind": "put", "key": b"b".hex(), "value": b"2".hex()},
                           {"kind": "del", "key": b"a".hex()}]}]


def test_dump_table_and_manifest_agree_with_the_database(db_path):
    tables = names(db_path, lambda n: n.endswith(".ldb"))
    entries = [record for table in tables for record in dump_file(table)]
    keys = {bytes.fromhex(r["key"]) for r in entries}
    assert b"key00000" in keys and all(r["kind"] in ("put", "del") for r in entries)
    edits = list(dump_file(manifest_of(db_path)))
    assert edits[0]["comparator"] == "leveldb.BytewiseComparator"
    live = {f["number"] for e in edits for f in e.get("new_files", [])} - {
        f["number"] for e in edits for f in e.get("deleted_files", [])}
    assert {int(os.path.basename(t)[:-4]) for t in tables} == live


def test_dump_refuses_before_reading_a_name_of_no_kind_or_a_missing_file(tmp_path):
    with pytest.raises(UnknownFileKind):
        dump_file(str(tmp_path / "notes.txt"))
    with pytest.raises(FileNotFoundError):
        dump_file(str(tmp_path / "000009.log"))


def test_dump_yields_the_batches_before_damage_then_raises_with_the_offset(tmp_path):
    path = str(tmp_path / "db")
    with lsm.DB(path, create_if_missing=True, compactors=0) as db:
        for i in range(50):
            db.put(b"k%03d" % i, b"x" * 2000)  # ~100 KB: several 32 KiB log blocks
        (wal,) = names(path, lambda n: n.endswith(".log"))
        flip_byte(wal, 40000, 0x01)
        records = dump_file(wal)
        seen = []
        with pytest.raises(lsm.CorruptionError) as info:
            for record in records:
                seen.append(record["seq"])
    assert info.value.path == wal and 32768 <= info.value.offset <= 40000
    assert seen == list(range(1, len(seen) + 1)) and 10 < len(seen) < 50


# ----------------------------------------------------------------- stats
def test_stats_report_holds_levels_history_and_leveldb_stats(db_path):
    report = database_stats(db_path, last_events=3)
    assert report["path"] == db_path
    assert sum(level["files"] for level in report["levels"]) > 1
    history = report["history"]
    assert history["event_count"] >= 2 and len(history["last"]) == 3
    assert {"kind", "to_level", "output_bytes"} <= set(history["last"][0])
    assert "Compactions" in report["leveldb.stats"]
    text = stats_text(report)
    assert text.startswith(f"database: {db_path}") and "last 3 of" in text


def test_stats_of_a_directory_without_current_raises_and_creates_nothing(tmp_path):
    with pytest.raises(lsm.Error, match="no CURRENT"):
        database_stats(str(tmp_path))
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ load
def test_load_parses_jsonl_and_tsv_and_names_the_first_bad_line():
    assert format_of("x.NDJSON") == "jsonl" and format_of("x.tab") == "tsv" and format_of("x.csv") is None
    jsonl = io.BytesIO(b'{"key": "a", "value": "1"}\n\n{"key": "b", "value": 2}\n')
    entries = parse_lines(jsonl, "jsonl", name="in.jsonl")
    assert next(entries) == (b"a", b"1", 27)
    with pytest.raises(BadInputLine, match="^in.jsonl:3: key and value must be JSON strings"):
        next(entries)
    tsv = io.BytesIO(b"00ff\tc0ffee\r\n")
    assert list(parse_lines(tsv, "tsv", hex=True)) == [(b"\x00\xff", b"\xc0\xff\xee", 13)]


def test_load_writes_batches_and_keeps_what_came_before_a_bad_line(tmp_path):
    lines = io.BytesIO(b"".join(b"k%04d\tv\n" % i for i in range(25)) + b"no tab here\n")
    totals = LoadTotals()
    batches = []
    path = str(tmp_path / "db")
    with lsm.DB(path, create_if_missing=True, compactors=0) as db:
        with pytest.raises(BadInputLine, match="stdin:26: expected KEY<TAB>VALUE"):
            load_entries(db, parse_lines(lines, "tsv"), totals, batch_size=10, on_batch=batches.append)
        assert (totals.entries, totals.bytes) == (25, 25 * 6)
        assert batches == [80, 80, 40]
        assert db.get(b"k0024") == b"v"


# ---------------------------------------------------------------- repair
def test_repair_report_lines_name_what_was_set_aside(db_path):
    table = max(names(db_path, lambda n: n.endswith(".ldb")), key=os.path.getsize)
    flip_byte(table, os.path.getsize(table) - 1, 0xFF)  # footer: unusable, moved into lost/
    report = repair_database(db_path)
    lines = report_lines(db_path, report)
    lost = os.path.join(db_path, "lost", os.path.basename(table))
    assert f"kept in lost/: {lost}" in lines
    assert any(line.startswith(f"dropped table {table}: ") for line in lines)
    assert check_database(db_path).ok
