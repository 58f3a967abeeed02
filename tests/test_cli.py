"""`python -m lsm <command>` run as a subprocess on real databases made with lsm.DB.

The database is always closed before the CLI runs: the CLI opens it itself and
the LOCK keeps a second opener out.
"""
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

import lsm
from engine_helpers import database_owing_compactions

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ["dump", "check", "stats", "compact", "get", "put", "delete", "scan", "load", "repair", "bench"]
N = 3000


def cli(*args, stdin=None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "lsm", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120, input=stdin)


def ok(result):
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def one_line_error(result, code=1):
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    err = result.stderr.strip()
    if code == 1:
        assert err and "\n" not in err, err
    return err


def value_of(i):
    return random.Random(i).randbytes(60).hex().encode()  # 120 bytes, barely compressible


@pytest.fixture
def db_path(tmp_path):
    """A closed database with several tables in more than one level, plus a live WAL."""
    path = tmp_path / "db"
    db = lsm.DB(str(path), create_if_missing=True, compactors=0, write_buffer_size=64 << 10)
    for i in range(N):
        db.put(b"key%05d" % i, value_of(i))
    db.put(b"binary", b"\xff\x00\xfe")
    db.delete(b"key00007")
    db.close()
    return path


def table_files(path):
    return sorted(p for p in path.iterdir() if p.suffix in (".ldb", ".sst"))


# ----------------------------------------------------------------- usage
def test_every_command_has_help():
    for name in COMMANDS:
        result = cli(name, "--help")
        assert result.returncode == 0, (name, result.stderr)
        assert "usage:" in result.stdout and "Exit codes" in result.stdout, name
    top = ok(cli("--help"))
    for name in COMMANDS:
        assert name in top


def imported_modules(*args):
    """Modules `python -m lsm ARGS` imported, from -X importtime (after its exit code 0)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "lsm", *map(str, args)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


def test_commands_other_than_bench_load_no_benchmark_code(db_path):
    table = table_files(db_path)[0]
    for args in (["get", db_path, "key00042"], ["check", db_path], ["dump", table], ["--help"]):
        modules = imported_modules(*args)
        assert "lsm.cli" in modules, args  # the listing is real: the CLI itself shows up
        bench = sorted(m for m in modules if m == "lsm.bench" or m.startswith("lsm.bench."))
        assert bench == [], (args, bench)


def test_bench_help_shows_the_benchmark_options():
    out = ok(cli("bench", "--help"))
    assert out.startswith("usage: python -m lsm bench")
    assert "--workloads" in out and "--engines" in out


def test_usage_errors_exit_2():
    assert cli().returncode == 2
    assert cli("no-such-command").returncode == 2
    assert cli("get").returncode == 2                  # missing arguments
    assert cli("scan", "x", "--limit", "-1").returncode == 2


def test_missing_database_is_one_line_error(tmp_path):
    for args in (["get", tmp_path / "nope", "k"], ["stats", tmp_path / "nope"], ["check", tmp_path / "nope"],
                 ["scan", tmp_path / "nope"], ["put", tmp_path / "nope", "k", "v"]):
        err = one_line_error(cli(*args))
        assert str(tmp_path / "nope") in err
    assert not (tmp_path / "nope").exists()  # never created without --create


def test_directory_without_current_is_not_opened(tmp_path):
    (tmp_path / "empty").mkdir()
    err = one_line_error(cli("get", tmp_path / "empty", "k"))
    assert "CURRENT" in err
    assert os.listdir(tmp_path / "empty") == []


def test_locked_database_is_a_clear_error(db_path):
    db = lsm.DB(str(db_path), compactors=0)
    try:
        for args in (["get", db_path, "key00001"], ["check", db_path]):
            err = one_line_error(cli(*args))
            assert "in use" in err
    finally:
        db.close()


# ------------------------------------------------------------ get/put/...
def test_get_put_delete(db_path):
    assert ok(cli("get", db_path, "key00042")) == value_of(42).decode() + "\n"
    err = one_line_error(cli("get", db_path, "key00007"))  # deleted
    assert "not found" in err
    one_line_error(cli("get", db_path, "absent"))
    ok(cli("put", db_path, "new key", "new value \u00e9"))
    assert ok(cli("get", db_path, "new key")) == "new value \u00e9\n"
    ok(cli("delete", db_path, "new key"))
    one_line_error(cli("get", db_path, "new key"))
    ok(cli("delete", db_path, "never there"))  # deleting an absent key is fine
    with lsm.DB(str(db_path)) as db:
        assert db.get(b"new key") is None
        assert db.get(b"key00042") == value_of(42)


def test_hex_keys_and_values(db_path):
    err = one_line_error(cli("get", db_path, "binary"))
    assert "--hex" in err
    assert ok(cli("get", db_path, "--hex", b"binary".hex())) == "ff00fe\n"
    ok(cli("put", db_path, "--hex", "00ff", "c0ffee"))
    assert ok(cli("get", db_path, "--hex", "00ff")) == "c0ffee\n"
    assert "hexadecimal" in one_line_error(cli("get", db_path, "--hex", "xyz"), code=2)


def test_put_create(tmp_path):
    path = tmp_path / "fresh"
    one_line_error(cli("put", path, "a", "1"))
    ok(cli("put", path, "a", "1", "--create", "--sync"))
    assert ok(cli("get", path, "a")) == "1\n"


def test_scan(db_path):
    out = ok(cli("scan", db_path, "--start", "key00010", "--stop", "key00020"))
    lines = out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["key%05d" % i for i in range(10, 20)]
    assert lines[0] == "key00010\t" + value_of(10).decode()
    out = ok(cli("scan", db_path, "--prefix", "key0299", "--reverse", "--limit", "3", "--keys-only"))
    assert out.splitlines() == ["key02999", "key02998", "key02997"]
    out = ok(cli("scan", db_path, "--start", "key00005", "--limit", "4", "--keys-only"))
    assert out.splitlines() == ["key00005", "key00006", "key00008", "key00009"]  # 7 was deleted
    assert ok(cli("scan", db_path, "--limit", "0")) == ""
    # Text mode refuses bytes that are not UTF-8 and says what to do.
    err = one_line_error(cli("scan", db_path))
    assert "binary" in err and "--hex" in err
    out = ok(cli("scan", db_path, "--hex", "--start", b"binary".hex(), "--limit", "1"))
    assert out == f"{b'binary'.hex()}\tff00fe\n"
    assert "--prefix" in one_line_error(cli("scan", db_path, "--prefix", "a", "--start", "b"), code=2)


def test_scan_output_loads_back(db_path, tmp_path):
    dump = ok(cli("scan", db_path, "--hex"))
    ok(cli("load", tmp_path / "copy", "-", "--format", "tsv", "--hex", "--create", stdin=dump))
    assert ok(cli("scan", tmp_path / "copy", "--hex")) == dump


# ------------------------------------------------------------------ load
def test_load_jsonl_and_tsv(tmp_path):
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("".join(json.dumps({"key": f"j{i:05d}", "value": f"value {i}"}) + "\n"
                             for i in range(2500)))
    tsv = tmp_path / "in.tsv"
    tsv.write_text("".join(f"t{i:03d}\tv\u00e9 {i}\n" for i in range(50)) + "\n")  # a blank line is skipped
    path = tmp_path / "db"
    out = ok(cli("load", path, jsonl, "--create", "--batch", "300"))
    assert re.search(r"loaded 2,500 entries .* entries/s", out), out
    ok(cli("load", path, tsv))
    with lsm.DB(str(path)) as db:
        assert db.get(b"j02499") == b"value 2499"
        assert db.get(b"t049") == "v\u00e9 49".encode()
        assert sum(1 for _ in db.iterator()) == 2550


def test_load_stops_at_the_first_bad_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"key": "a", "value": "1"}\n{"key": "b", "value": "2"}\n{"key": "c"}\n{"key": "d", "value": "4"}\n')
    path = tmp_path / "db"
    err = one_line_error(cli("load", path, bad, "--create"))
    assert f"{bad}:3:" in err
    with lsm.DB(str(path)) as db:
        assert db.get(b"b") == b"2" and db.get(b"d") is None
    tsv = tmp_path / "bad.tsv"
    tsv.write_text("x\t1\nno tab here\n")
    assert f"{tsv}:2:" in one_line_error(cli("load", path, tsv))


def test_load_format_from_name_or_option(tmp_path):
    data = tmp_path / "data.dat"
    data.write_text("k\tv\n")
    assert "--format" in one_line_error(cli("load", tmp_path / "db", data, "--create"), code=2)
    ok(cli("load", tmp_path / "db", data, "--create", "--format", "tsv", "--quiet"))
    assert ok(cli("get", tmp_path / "db", "k")) == "v\n"
    err = one_line_error(cli("load", tmp_path / "db", tmp_path / "missing.tsv"))
    assert "missing.tsv" in err


# ----------------------------------------------------------- stats/compact
def test_stats_text_and_json(db_path):
    out = ok(cli("stats", db_path))
    assert "L0" in out and "L6" in out and "leveldb.stats" in out and "Compactions" in out
    stats = json.loads(ok(cli("stats", db_path, "--json")))
    assert len(stats["levels"]) == 7
    assert {"level", "files", "bytes", "score"} <= set(stats["levels"][0])
    assert sum(lv["files"] for lv in stats["levels"]) >= 2
    assert "compactions" in stats and "flushes" in stats
    assert "Level  Files" in stats["leveldb.stats"]


def test_reading_commands_leave_a_database_owing_compactions_as_it_is(tmp_path):
    # Every command opens the database in-process (compactors=0): a read must
    # not first rewrite the database by running the compactions it owes.
    path = tmp_path / "db"
    expected = database_owing_compactions(str(path))
    tables = sorted(p.name for p in path.glob("*.ldb"))
    stats = json.loads(ok(cli("stats", path, "--json")))
    assert stats["levels"][0]["files"] == len(tables) == 6
    assert stats["compactions"] == 0
    key, value = next(iter(expected.items()))
    assert ok(cli("get", path, key.decode())) == value.decode() + "\n"
    assert len(ok(cli("scan", path)).splitlines()) == len(expected)
    assert sorted(p.name for p in path.glob("*.ldb")) == tables


def _load_session(path, start, count):
    with lsm.DB(str(path), create_if_missing=True, compactors=0, write_buffer_size=32 << 10,
                level_size_base=128 << 10) as db:
        for i in range(start, start + count):
            db.put(b"key%06d" % (i * 7919 % 20000), value_of(i))
        db.put(b"unflushed", b"left in the WAL, flushed by the next open")


def _log_counts(texts):
    """Count what the LOG lines say happened, independently of lsm.history."""
    text = "\n".join(texts)
    recovered = re.findall(r"Recovering log #\d+: max sequence \d+, (\d+) bytes of tables$", text, re.M)
    return {"flush": len(re.findall(r" Flushed table #", text)) + sum(int(b) > 0 for b in recovered),
            "compaction": len(re.findall(r" Compacted \d+@\d+ \+ \d+@\d+ files", text)),
            "move": len(re.findall(r" Moved #\d+", text)),
            "compaction_read": sum(map(int, re.findall(r"files, (\d+) bytes read", text)))}


def test_stats_history_survives_reopen_and_agrees_with_the_log(tmp_path):
    path = tmp_path / "db"
    _load_session(path, 0, 6000)      # becomes LOG.old
    _load_session(path, 6000, 6000)   # LOG
    before = [(path / "LOG.old").read_text(), (path / "LOG").read_text()]
    stats = json.loads(ok(cli("stats", path, "--json", "--history", "4")))
    after = (path / "LOG").read_text()  # the stats run's own session
    assert (path / "LOG.old").read_text() == before[1]

    history = stats["history"]
    assert history["logs"] == ["LOG.old", "LOG", "LOG (this stats run)"]
    assert history["sessions"] == 3 and history["skipped_lines"] == 0
    expected = _log_counts(before + [after])
    assert expected["flush"] >= 4 and expected["compaction"] >= 2, expected
    kinds = history["kinds"]
    for kind in ("flush", "compaction", "move"):
        assert kinds[kind]["count"] == expected[kind], (kind, kinds, expected)
    assert history["event_count"] == expected["flush"] + expected["compaction"] + expected["move"]
    assert kinds["compaction"]["input_bytes"] == expected["compaction_read"] > 0
    assert kinds["flush"]["output_bytes"] > 0 and kinds["compaction"]["output_bytes"] > 0
    assert kinds["compaction"]["seconds"] > 0 and kinds["compaction"]["input_files"] >= 2
    # Both earlier sessions are in the history, not only the last one.
    first_session = _log_counts(before[:1])
    assert first_session["compaction"] >= 1
    assert sum(r["compactions"] for r in history["levels"]) == expected["compaction"]
    assert sum(r["flushes"] for r in history["levels"]) == expected["flush"]
    last = history["last"]
    assert len(last) == 4 and [e["timestamp"] for e in last] == sorted(e["timestamp"] for e in last)
    assert {"time", "kind", "from_level", "to_level", "input_files", "input_bytes", "output_files",
            "output_bytes", "seconds"} <= set(last[0])
    # The stats run's own open flushed the put left in the WAL: its session is in the history too.
    assert any(e["detail"].startswith("recovery of WAL") and e["session"] == 2 for e in last), last
    # The rest of the output is still there.
    assert len(stats["levels"]) == 7 and "Level  Files" in stats["leveldb.stats"]


def test_stats_text_shows_history_and_last_events(tmp_path):
    path = tmp_path / "db"
    _load_session(path, 0, 6000)
    (path / "LOG").write_text((path / "LOG").read_text() + "garbage, not a LOG line\n")
    out = ok(cli("stats", path, "--history", "3"))
    assert "compaction history (LOG + LOG (this stats run): 2 session(s)" in out
    assert "(1 malformed LOG line(s) skipped)" in out
    events = out.split("last 3 of ")[1].split("\n\n")[0].splitlines()[2:]
    assert len(events) == 3, out
    assert re.search(r"^compaction +[1-9]\d* ", out, re.M), out
    assert "leveldb.stats:" in out and "this open only" in out
    out = ok(cli("stats", path, "--history", "0"))
    assert "last events: none shown" in out
    assert cli("stats", path, "--history", "-1").returncode == 2


def test_compact_all_and_range(db_path):
    out = ok(cli("compact", db_path, "--start", "key00100", "--stop", "key00200", "--compactors", "0"))
    assert "compacted" in out
    out = ok(cli("compact", db_path, "--compactors", "0"))
    assert "compacted" in out
    stats = json.loads(ok(cli("stats", db_path, "--json")))
    assert stats["levels"][0]["files"] == 0
    with lsm.DB(str(db_path)) as db:
        assert db.get(b"key02999") == value_of(2999)
        assert db.get(b"key00007") is None
        assert sum(1 for _ in db.iterator()) == N  # N puts - 1 delete + "binary"
    ok(cli("check", db_path))


# ----------------------------------------------------------------- check
def test_check_passes_on_a_clean_database(db_path):
    out = ok(cli("check", db_path))
    assert out.startswith("ok:") and "tables" in out and "WAL" in out
    # Read-only: check changes no file (a CLI open would write a new MANIFEST).
    assert ok(cli("check", db_path)) == out


def test_check_passes_on_a_database_leveldb_wrote(tmp_path):
    plyvel = pytest.importorskip("plyvel")
    path = tmp_path / "leveldb"
    db = plyvel.DB(str(path), create_if_missing=True, write_buffer_size=64 << 10, bloom_filter_bits=10)
    for i in range(N):
        db.put(b"key%05d" % i, value_of(i))
    db.compact_range(start=b"key00000", stop=b"key01000")
    db.put(b"in the wal", b"yes")
    db.close()
    out = ok(cli("check", path))
    assert out.startswith("ok:")


def test_check_catches_a_flipped_byte_in_a_table(db_path):
    table = max(table_files(db_path), key=lambda p: p.stat().st_size)
    data = bytearray(table.read_bytes())
    assert len(data) > 6000
    position = 5000  # inside a data block past the first one (blocks are ~4 KiB)
    data[position] ^= 0x20
    table.write_bytes(bytes(data))
    result = cli("check", db_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert lines, result.stderr
    assert all(line.startswith(str(table) + ": offset ") for line in lines), lines
    offset = int(re.search(r": offset (\d+):", lines[0]).group(1))
    assert 0 < offset <= position
    assert "checksum" in lines[0]
    assert "damaged" in result.stderr and "\n" not in result.stderr.strip()


def test_check_reports_every_damage(db_path):
    tables = table_files(db_path)
    assert len(tables) >= 2
    for table in tables[:2]:
        data = bytearray(table.read_bytes())
        data[10] ^= 0x01  # first data block of each
        table.write_bytes(bytes(data))
    result = cli("check", db_path)
    assert result.returncode == 1
    named = {line.split(": offset")[0] for line in result.stdout.splitlines()}
    assert named == {str(t) for t in tables[:2]}


def test_check_catches_a_missing_or_resized_table(db_path):
    tables = table_files(db_path)
    tables[0].unlink()
    with open(tables[1], "ab") as f:
        f.write(b"\0")
    result = cli("check", db_path)
    assert result.returncode == 1
    out = result.stdout
    assert f"{tables[0]}: offset unknown: missing" in out
    assert f"{tables[1]}: offset unknown: size" in out


def test_check_catches_wal_damage_in_the_middle(db_path):
    wals = sorted(p for p in db_path.iterdir() if p.suffix == ".log")
    assert wals
    wal = wals[-1]
    with lsm.DB(str(db_path), compactors=0) as db:  # reopening starts a new WAL: give it records
        for i in range(200):
            db.put(b"w%04d" % i, b"x" * 100)
    wals = sorted(p for p in db_path.iterdir() if p.suffix == ".log")
    wal = wals[-1]
    data = bytearray(wal.read_bytes())
    assert len(data) > 5000
    data[3000] ^= 0x10
    wal.write_bytes(bytes(data))
    result = cli("check", db_path)
    assert result.returncode == 1
    assert re.search(re.escape(str(wal)) + r": offset \d+: ", result.stdout), result.stdout


def test_check_missing_current(db_path):
    (db_path / "CURRENT").unlink()
    result = cli("check", db_path)
    assert result.returncode == 1
    assert "CURRENT" in result.stdout


def test_check_damaged_manifest(db_path):
    manifest = next(p for p in db_path.iterdir() if p.name.startswith("MANIFEST-"))
    data = bytearray(manifest.read_bytes())
    data[12] ^= 0xFF
    manifest.write_bytes(bytes(data))
    result = cli("check", db_path)
    assert result.returncode == 1
    assert str(manifest) in result.stdout and "offset" in result.stdout


def _manifest_records(path):
    from lsm.record import LogReader
    return [offset for offset, _ in LogReader(path.read_bytes(), strict=True)]


def test_check_catches_a_flipped_length_field_in_the_manifest(db_path):
    """A length field flipped to reach past the end of the MANIFEST looks like
    a torn tail to LevelDB's reader; the open refuses it (only the last record
    can be torn, as every edit is synced), and check must say so too."""
    manifest = next(p for p in db_path.iterdir() if p.name.startswith("MANIFEST-"))
    data = bytearray(manifest.read_bytes())
    records = _manifest_records(manifest)
    assert len(records) >= 3, records
    at = records[len(records) // 2]
    length = int.from_bytes(data[at + 4:at + 6], "little")
    # The lowest bit of the length's high byte that makes the record run past the end.
    mask = next(m for m in (1, 2, 4, 8, 16, 32, 64, 128) if at + 7 + (length ^ (m << 8)) > len(data))
    data[at + 5] ^= mask
    manifest.write_bytes(bytes(data))
    with pytest.raises(lsm.CorruptionError) as info:
        lsm.DB(str(db_path), compactors=0)
    assert (info.value.path, info.value.offset) == (str(manifest), at)
    result = cli("check", db_path)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stdout.startswith(f"{manifest}: offset {at}: "), result.stdout
    assert "damaged" in result.stderr
    # dump reads a MANIFEST the same way.
    err = one_line_error(cli("dump", manifest))
    assert err.startswith(f"{manifest}: offset {at}: "), err


# ---------------------------------------------------------------- repair
def test_repair_prints_report(db_path):
    tables = sorted(table_files(db_path), key=lambda p: p.stat().st_size)
    assert len(tables) >= 2
    table = tables[-1]  # a data block flipped: rebuilt from the rest, the original kept in lost/
    data = bytearray(table.read_bytes())
    data[100] ^= 0x20
    table.write_bytes(bytes(data))
    unreadable = tables[0]  # its footer flipped: dropped whole, moved into lost/
    data = bytearray(unreadable.read_bytes())
    data[-1] ^= 0xFF
    unreadable.write_bytes(bytes(data))
    assert cli("check", db_path).returncode == 1
    out = ok(cli("repair", db_path))
    assert out.startswith("repaired") and "dropped" in out
    lost = db_path / "lost"
    assert f"2 files moved into {lost}" in out.splitlines()[0], out
    assert f"dropped table {unreadable}: " in out and f"(moved to {lost / unreadable.name})" in out, out
    kept = sorted(line for line in out.splitlines() if line.startswith("kept in lost/: "))
    assert kept == sorted(f"kept in lost/: {lost / t.name}" for t in (table, unreadable)), out
    assert sorted(p.name for p in lost.iterdir()) == sorted([table.name, unreadable.name])
    ok(cli("check", db_path))
    report = json.loads(ok(cli("repair", db_path, "--json")))
    assert "tables" in report
    with lsm.DB(str(db_path)) as db:
        assert db.get(b"key02999") is not None or db.get(b"key00000") is not None
