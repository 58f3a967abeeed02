"""`python -m lsm dump FILE` run as a subprocess on files LevelDB (plyvel) wrote."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import plyvel
import pytest

from lsm.batch import encode_batch
from lsm.record import BLOCK_SIZE, LogReader, LogWriter
from lsm.version_edit import VersionEdit

ROOT = Path(__file__).resolve().parent.parent
EDIT_FIELDS = {"comparator", "log_number", "prev_log_number", "next_file_number", "last_sequence",
               "compact_pointers", "deleted_files", "new_files"}


def dump(*args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "lsm", "dump", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=60)


def lines(result):
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return [json.loads(line) for line in result.stdout.splitlines()]


def assert_damage_reported(result, path):
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    err = result.stderr.strip()
    assert "\n" not in err, err
    assert str(path) in err and "offset" in err, err
    return err


# (kind, key, value) batches: overwrites, deletions, empty key and value, values over 32 KiB.
BATCHES = [
    [("put", b"apple", b"red")],
    [("put", b"cherry", b"dark red"), ("del", b"apple", b"")],
    [("put", b"", b"")],
    [("put", b"big", bytes(range(256)) * 160)],  # 40 KiB: the record spans blocks
    [("put", b"apple", b"green"), ("put", b"zzz", b"\x00\xff")],
    [("del", b"nothing-here", b"")],
    [("put", b"cherry", b"x" * 70_000)],
]


def leveldb_write(db, batches):
    for ops in batches:
        with db.write_batch() as wb:
            for kind, key, value in ops:
                wb.put(key, value) if kind == "put" else wb.delete(key)


def expected_wal_lines(batches, first_seq=1):
    out, seq = [], first_seq
    for ops in batches:
        out.append({"seq": seq, "ops": [
            {"kind": "put", "key": k.hex(), "value": v.hex()} if kind == "put" else {"kind": "del", "key": k.hex()}
            for kind, k, v in ops]})
        seq += len(ops)
    return out


@pytest.fixture
def leveldb_wal(tmp_path):
    """A copy of the WAL LevelDB wrote for BATCHES (copied while the DB is open)."""
    db = plyvel.DB(str(tmp_path / "db"), create_if_missing=True)
    try:
        leveldb_write(db, BATCHES)
        copy = tmp_path / "000003.log"
        shutil.copyfile(tmp_path / "db" / "000003.log", copy)
    finally:
        db.close()
    assert copy.stat().st_size > 3 * BLOCK_SIZE
    return copy


@pytest.fixture(scope="module")
def leveldb_dir(tmp_path_factory):
    """A closed LevelDB directory whose BATCHES sit in one level-0 table (flushed at reopen),
    plus a copy of the MANIFEST as it was while compactions ran."""
    base = tmp_path_factory.mktemp("dumpdb")
    path = str(base / "db")
    db = plyvel.DB(path, create_if_missing=True, compression=None)
    leveldb_write(db, BATCHES)
    db.close()
    plyvel.DB(path).close()
    busy = str(base / "busy")
    db = plyvel.DB(busy, create_if_missing=True, write_buffer_size=64 << 10)
    for i in range(400):
        db.put(b"k%05d" % (i * 7919 % 1000), os.urandom(4000))
    manifests = [n for n in os.listdir(busy) if n.startswith("MANIFEST-")]
    shutil.copyfile(os.path.join(busy, manifests[0]), base / manifests[0])
    db.close()
    return Path(path), base / manifests[0]


# WAL ------------------------------------------------------------------------------------------

def test_dump_wal_prints_one_line_per_batch(leveldb_wal):
    assert lines(dump(leveldb_wal)) == expected_wal_lines(BATCHES)


def test_dump_wal_with_torn_tail_prints_complete_batches_and_succeeds(leveldb_wal, tmp_path):
    data = leveldb_wal.read_bytes()
    last = [o for o, _ in LogReader(data)][-1]
    torn = tmp_path / "torn" / "000003.log"
    torn.parent.mkdir()
    torn.write_bytes(data[:last + 100])
    assert lines(dump(torn)) == expected_wal_lines(BATCHES)[:-1]


def test_dump_wal_with_bad_checksum_mid_log_exits_1_naming_offset(leveldb_wal):
    data = bytearray(leveldb_wal.read_bytes())
    victim = [o for o, _ in LogReader(bytes(data))][3]  # the 40 KiB record's FIRST fragment
    data[victim + 100] ^= 0x01
    leveldb_wal.write_bytes(bytes(data))
    result = dump(leveldb_wal)
    err = assert_damage_reported(result, leveldb_wal)
    assert f"offset {victim}" in err and "checksum mismatch" in err
    # The batches before the damage were printed first.
    assert [json.loads(x) for x in result.stdout.splitlines()] == expected_wal_lines(BATCHES)[:3]


def test_dump_wal_with_undecodable_batch_exits_1(tmp_path):
    writer = LogWriter()
    good = encode_batch(1, [(1, b"k", b"v")])
    path = tmp_path / "000007.log"
    path.write_bytes(writer.encode(good) + writer.encode(good[:-1]))
    err = assert_damage_reported(dump(path), path)
    assert f"offset {len(good) + 7}" in err and "WriteBatch" in err


# MANIFEST -------------------------------------------------------------------------------------

def test_dump_manifest_prints_each_edit_with_only_its_fields(leveldb_dir):
    path, _ = leveldb_dir
    manifest = path / (path / "CURRENT").read_text().strip()
    edits = lines(dump(manifest))
    # Reopen: a snapshot (no files yet), then the edit that adds the table recovered from the WAL.
    assert edits == [{"comparator": "leveldb.BytewiseComparator"}, edits[1]]
    assert set(edits[1]) == {"log_number", "prev_log_number", "next_file_number", "last_sequence",
                             "new_files"}
    assert edits[1]["last_sequence"] == sum(len(ops) for ops in BATCHES)
    (table,) = edits[1]["new_files"]
    assert set(table) == {"level", "number", "size", "smallest", "largest"}
    assert table["size"] == (path / f"{table['number']:06d}.ldb").stat().st_size
    assert bytes.fromhex(table["smallest"])[:-8] == b""  # the empty key sorts first
    assert bytes.fromhex(table["largest"])[:-8] == b"zzz"


def test_dump_manifest_of_compacting_db_shows_deletions_and_compact_pointers(leveldb_dir):
    _, manifest = leveldb_dir
    edits = lines(dump(manifest))
    assert all(set(e) <= EDIT_FIELDS and e for e in edits)
    assert any("deleted_files" in e for e in edits)
    assert any("compact_pointers" in e for e in edits)
    raw = [VersionEdit.decode(p) for _, p in LogReader(manifest.read_bytes(), strict=True)]
    assert len(raw) == len(edits)
    for edit, obj in zip(raw, edits):
        assert obj.get("deleted_files", []) == [{"level": lv, "number": n} for lv, n in sorted(edit.deleted_files)]
        assert obj.get("compact_pointers", []) == [{"level": lv, "key": k.hex()} for lv, k in edit.compact_pointers]


def test_dump_manifest_with_bad_checksum_exits_1(leveldb_dir, tmp_path):
    _, manifest = leveldb_dir
    data = bytearray(manifest.read_bytes())
    data[20] ^= 0x80
    damaged = tmp_path / manifest.name
    damaged.write_bytes(bytes(data))
    err = assert_damage_reported(dump(damaged), damaged)
    assert "offset 0" in err and "checksum mismatch" in err


def test_dump_manifest_with_retired_tag_8_exits_1(tmp_path):
    writer = LogWriter()
    first = writer.encode(VersionEdit(comparator=b"leveldb.BytewiseComparator").encode())
    path = tmp_path / "MANIFEST-000001"
    path.write_bytes(first + writer.encode(b"\x02\x03\x08\x00"))
    result = dump(path)
    err = assert_damage_reported(result, path)
    assert f"offset {len(first)}" in err and "unknown tag 8" in err
    assert result.stdout.splitlines() == ['{"comparator": "leveldb.BytewiseComparator"}']


# Tables (lsm.table.reader is another module; these run once it exists) ----------------------

def table_entries_expected():
    entries, seq = [], 1
    for ops in BATCHES:
        for kind, key, value in ops:
            entries.append({"key": key.hex(), "seq": seq, "kind": kind, "value": value.hex()})
            seq += 1
    return sorted(entries, key=lambda e: (bytes.fromhex(e["key"]), -e["seq"]))


def the_table(path):
    (name,) = [n for n in os.listdir(path) if n.endswith(".ldb")]
    return path / name


def test_dump_table_prints_every_entry_in_table_order(leveldb_dir, tmp_path):
    pytest.importorskip("lsm.table.reader")
    path, _ = leveldb_dir
    table = the_table(path)
    assert lines(dump(table)) == table_entries_expected()
    legacy = tmp_path / table.name.replace(".ldb", ".sst")
    shutil.copyfile(table, legacy)
    assert lines(dump(legacy)) == table_entries_expected()


@pytest.mark.parametrize("damage", ["flip_data_block", "truncate"])
def test_dump_damaged_table_exits_1(leveldb_dir, tmp_path, damage):
    pytest.importorskip("lsm.table.reader")
    table = the_table(leveldb_dir[0])
    data = bytearray(table.read_bytes())
    if damage == "flip_data_block":
        data[10] ^= 0x04
    else:
        data = data[:40]
    damaged = tmp_path / table.name
    damaged.write_bytes(bytes(data))
    assert_damage_reported(dump(damaged), damaged)


# Usage ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [[], ["CURRENT"], ["notes.txt"], ["a.log", "b.log"]])
def test_usage_errors_exit_2(args):
    result = dump(*args)
    assert result.returncode == 2
    assert "usage" in result.stderr and "Traceback" not in result.stderr


def test_no_command_exits_2():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "lsm"], capture_output=True, text=True, env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_missing_file_exits_1_with_one_line(tmp_path):
    missing = tmp_path / "000009.log"
    result = dump(missing)
    assert result.returncode == 1
    assert result.stderr.strip() == f"{missing}: no such file"
