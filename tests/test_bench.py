"""`python -m lsm bench`: every workload on every engine, JSON lines and the summary table."""
import json
import os
import subprocess
import sys
from pathlib import Path

import cramjam
import pytest

from lsm import bench

ROOT = Path(__file__).resolve().parent.parent
FIELDS = {"engine", "workload", "ops", "seconds", "ops_per_sec", "mb_per_sec", "write_amplification",
          "peak_rss_mb"}


def run_bench(*args, timeout=120):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "lsm", "bench", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout)


def test_json_every_engine_every_workload(tmp_path):
    num = 2000
    result = run_bench("--json", "--num", num, "--compactors", "0", "--dir", tmp_path / "dbs")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]  # stdout is JSON lines only
    workloads = list(bench.WORKLOADS)
    # Engines alternate within each workload, workloads in the default order.
    assert [(r["workload"], r["engine"]) for r in rows] == [(w, e) for w in workloads for e in bench.ENGINES]
    for r in rows:
        assert FIELDS <= set(r), r
        assert r["ops"] > 0 and r["seconds"] > 0 and r["ops_per_sec"] > 0 and r["mb_per_sec"] >= 0, r
        assert r["peak_rss_mb"] > 10, r
        expected_ops = bench.fillsync_ops(num) if r["workload"] == "fillsync" else num
        if r["workload"] not in ("readseq", "readreverse"):
            assert r["ops"] == expected_ops, r
    by = {(r["workload"], r["engine"]): r for r in rows}
    for engine in bench.ENGINES:
        # Every engine saw the same data: same answers.
        assert by[("readrandom", engine)]["found"] == num
        assert by[("readmissing", engine)]["found"] == 0
        assert by[("seekrandom", engine)]["found"] == num
        assert by[("readseq", engine)]["ops"] == num == by[("readreverse", engine)]["ops"]
        assert by[("readwhilewriting", engine)]["found"] == num
        assert by[("readwhilewriting", engine)]["writes"] >= 0
    assert by[("fillsync", "lsm")]["ops"] == 100
    # load: lsm measures write amplification itself (WAL + tables >= user bytes).
    lsm_load = by[("load", "lsm")]
    assert lsm_load["write_amplification"] >= 0.9
    assert by[("load", "plyvel")]["write_amplification"] is None
    assert by[("load", "rocksdict")]["write_amplification"] is None
    assert all(by[("load", e)]["peak_rss_mb"] > 10 for e in bench.ENGINES)
    # The summary goes to stderr in --json mode, with both ratio columns.
    assert "lsm/plyvel" in result.stderr and "lsm/rocksdict" in result.stderr
    # Superseded databases are removed; the last fills stay in --dir.
    assert len(os.listdir(tmp_path / "dbs")) <= len(bench.ENGINES)


def test_text_summary_and_quiet(tmp_path):
    result = run_bench("--num", 500, "--workloads", "fillrandom,readrandom", "--quiet", "--compactors", "inline")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Summary" in out and "lsm/plyvel" in out and "lsm/rocksdict" in out
    lines = [line for line in out.splitlines() if line.startswith(("fillrandom", "readrandom"))]
    assert len(lines) == 2 and all(line.rstrip().endswith("x") for line in lines), out
    assert "micros/op" not in out  # --quiet: no per-workload lines
    assert "\r" not in result.stderr  # no progress bars when stdout is not a terminal


def test_repeat_takes_turns_and_summarises_each_engine_by_its_median_run():
    result = run_bench("--num", 300, "--engines", "lsm,plyvel", "--workloads", "fillrandom,readrandom",
                       "--repeat", 3, "--compactors", "inline", "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["workload"], r["run"], r["engine"]) for r in rows] == [
        (w, run, e) for w in ("fillrandom", "readrandom") for run in (1, 2, 3) for e in ("lsm", "plyvel")]
    assert all(r["ops"] == 300 for r in rows)
    medians = {}
    for w in ("fillrandom", "readrandom"):
        for e in ("lsm", "plyvel"):
            medians[w, e] = sorted(r["ops_per_sec"] for r in rows if (r["workload"], r["engine"]) == (w, e))[1]
    summary = result.stderr
    assert "the median of 3 runs" in summary
    for w in ("fillrandom", "readrandom"):
        (line,) = [line for line in summary.splitlines() if line.startswith(w)]
        assert f"{medians[w, 'lsm']:,.0f}" in line and f"{medians[w, 'plyvel']:,.0f}" in line, line
        assert line.endswith(f"{medians[w, 'lsm'] / medians[w, 'plyvel']:.2f}x"), line


def test_median_of_an_even_count_of_runs_is_the_mean_of_the_middle_two():
    rows = [{"workload": "fillseq", "engine": "lsm", "ops_per_sec": x, "mb_per_sec": None} for x in (4, 1, 3, 2)]
    assert bench._medians(rows) == {("fillseq", "lsm"): {"ops_per_sec": 2.5, "mb_per_sec": None}}


def test_read_workload_without_a_fill_prepares_one():
    result = run_bench("--num", 300, "--reads", 450, "--workloads", "readrandom", "--engines", "lsm",
                       "--json", "--quiet")
    assert result.returncode == 0, result.stderr
    (row,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert row["engine"] == "lsm" and row["ops"] == 450 and row["found"] == 450
    assert result.stderr == ""


def test_usage_errors_exit_2():
    for args in (["--workloads", "fillseq,nosuch"], ["--engines", "lsm,sqlite"], ["--compactors", "many"],
                 ["--num", "0"], ["--num", "1000", "--key-size", "2"], ["--num", "x"], ["--reads", "0"], ["--repeat", "0"]):
        result = run_bench(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert "error:" in result.stderr


def test_data_is_deterministic_and_shared():
    a = bench.Data(1000, 16, 100, seed=7)
    b = bench.Data(1000, 16, 100, seed=7)
    assert a.keys == b.keys and a.random_keys == b.random_keys and a.values == b.values
    assert a.keys[0] == b"0000000000000000" and a.keys[999] == b"0000000000000999"
    assert sorted(a.random_keys) == a.keys and a.random_keys != a.keys
    assert sorted(a.read_keys) == a.keys and a.read_keys != a.random_keys
    assert all(len(v) == 100 for v in a.values)
    assert all(m.endswith(b".") and m[:-1] in set(a.keys) for m in a.missing_keys()[:10])
    # db_bench's values: about half compressible.
    sample = b"".join(a.values[:200])
    ratio = len(bytes(cramjam.snappy.compress_raw(sample))) / len(sample)
    assert 0.4 < ratio < 0.7


def test_fillsync_ops():
    assert bench.fillsync_ops(50) == 50
    assert bench.fillsync_ops(2000) == 100
    assert bench.fillsync_ops(1_000_000) == 10_000


def test_quiescence_rules():
    assert bench._lsm_state(None) is None
    assert bench._lsm_state({"levels": [{"score": 0.5}], "compactors": [], "running_jobs": 0}) is None
    assert bench._lsm_state({"levels": [{"score": 1.2}]}) == "due"
    assert bench._lsm_state({"levels": [{"score": 1.2}], "running_jobs": 1}) == "busy"
    assert bench._lsm_state({"levels": [], "pending_jobs": 2}) == "busy"
    assert bench._lsm_state({"levels": [], "running_jobs": [1]}) == "busy"
    assert bench._lsm_state({"levels": [], "compactors": [{"pid": 1, "busy": True}]}) == "busy"
    assert bench._pids([{"pid": 11}, 12, {"name": "x"}, True]) == [11, 12]


def test_compactors_list_parsing():
    assert bench._parse_compactors(None) == [None]
    assert bench._parse_compactors("2") == [2]
    assert bench._parse_compactors("inline") == [0]
    assert bench._parse_compactors(" INLINE , 1,2 ") == [0, 1, 2]
    for text, bad in (("inline,1,x", "'x'"), ("1,two", "'two'"), ("1,-1", "'-1'"), ("1,,2", "'1,,2'"),
                      ("inline,0", "'0'"), ("2,2", "'2'"), (",", "empty list")):
        with pytest.raises(bench.UsageError) as info:
            bench._parse_compactors(text)
        assert bad in str(info.value), (text, str(info.value))
        assert str(info.value).startswith("--compactors: ")
    # One configuration keeps the plain label; several are told apart.
    assert bench.lsm_label(2, several=False) == "lsm"
    assert [bench.lsm_label(c, several=True) for c in (0, 1, 2)] == ["lsm[inline]", "lsm[1]", "lsm[2]"]
    # On the command line: exit 2, naming the bad item.
    result = run_bench("--compactors", "inline,1,lots")
    assert result.returncode == 2 and "'lots'" in result.stderr and "Traceback" not in result.stderr


LOAD_FIELDS = {"write_seconds", "stall_seconds", "write_amplification", "io_write_amplification",
               "io_disk_write_amplification", "peak_rss_mb", "compactor_processes", "compaction_mb_per_sec",
               "compaction_bytes_read", "compaction_seconds", "user_bytes", "io_bytes_written"}


def test_load_with_several_compactor_settings_in_one_run(tmp_path):
    # Enough keys for a flush (17.9 MB > the default 16 MB memtable), so a compactor works.
    num = 150000
    result = run_bench("--num", num, "--workloads", "load", "--engines", "lsm,plyvel", "--compactors", "inline,1",
                       "--json", "--dir", tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["engine"] for r in rows] == ["lsm[inline]", "lsm[1]", "plyvel"]
    by = {r["engine"]: r for r in rows}
    for r in rows:
        assert r["workload"] == "load" and r["ops"] == num, r
        assert LOAD_FIELDS <= set(r), sorted(LOAD_FIELDS - set(r))
        assert r["peak_rss_mb"] > 10 and r["write_seconds"] <= r["seconds"]
        assert r["io_write_amplification"] >= 1.0, r
    assert by["lsm[inline]"]["compactors"] == 0 and by["lsm[1]"]["compactors"] == 1
    assert "compactors" not in by["plyvel"]
    for engine in ("lsm[inline]", "lsm[1]"):
        r = by[engine]
        assert r["stall_seconds"] >= 0 and r["flushes"] >= 1 and r["write_amplification"] > 1
        # /proc and lsm's own count agree once both use the same user bytes: the
        # compactor's tables are counted once, not again when it is reaped.
        from_stats = r["write_amplification"] * r["engine_user_bytes"] / r["user_bytes"]
        assert abs(r["io_write_amplification"] - from_stats) < 0.05, (engine, r)
    assert by["lsm[inline]"]["compactor_processes"] == []
    (proc,) = by["lsm[1]"]["compactor_processes"]
    assert proc["peak_rss_mb"] > 10 and proc["compactor"] and proc["jobs_done"] >= 1
    assert proc["written_mb"] > 0 and proc["read_mb"] > 0
    assert by["plyvel"]["stall_seconds"] is None and by["plyvel"]["write_amplification"] is None
    # The summary (stderr with --json): a ratio column per lsm column, the load table.
    assert "lsm[inline]/plyvel" in result.stderr and "lsm[1]/plyvel" in result.stderr
    assert "compactor processes" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["lsm-1-02-load", "lsm-inline-01-load", "plyvel-03-load"]


def test_stats_failure_is_remembered():
    adapter = bench.LsmAdapter(0)

    class Broken:
        def stats(self):
            raise RuntimeError("no stats")

    adapter.db = Broken()
    assert adapter.stats() is None and adapter.stats() is None
    assert adapter.stats_error == "RuntimeError: no stats"  # the first failure, reported with the result
    adapter.db = None


def test_plyvel_is_timed_until_leveldb_has_no_compaction_due(tmp_path):
    # LevelDB's close() abandons pending compactions, so the load's clock
    # stops only once its levels say no compaction is due.
    sample = (b"--- level 0 ---\n 7:100['a' @ 1 : 1 .. 'b' @ 2 : 1]\n 8:100['a' @ 3 : 1 .. 'b' @ 4 : 1]\n"
              b"--- level 1 ---\n 5:11000000['a' @ 5 : 1 .. 'z' @ 6 : 1]\n--- level 2 ---\n")
    files, sizes = bench.leveldb_levels(sample)
    assert files[:3] == [2, 1, 0] and sizes[:2] == [200, 11000000]
    assert bench.leveldb_compaction_due(sample)  # level 1 holds more than 10 MiB
    assert not bench.leveldb_compaction_due(sample.replace(b"11000000", b"10000000"))
    assert bench.leveldb_compaction_due(sample.replace(b"--- level 1", b" 9:1[]\n 10:1[]\n--- level 1"))

    adapter = bench.PlyvelAdapter()
    adapter.db = None
    import plyvel
    adapter._bind(plyvel.DB(str(tmp_path / "p"), create_if_missing=True, write_buffer_size=64 << 10))
    try:
        value = bytes(range(100))
        for i in range(40000):
            adapter.put(b"%08d" % (i * 7919 % 40000), value)
        adapter.quiesce(timeout=120)
        text = adapter.db.get_property(b"leveldb.sstables")
        files, _ = bench.leveldb_levels(text)
        assert files == [int(adapter.db.get_property(b"leveldb.num-files-at-level%d" % n)) for n in range(7)]
        assert sum(files) > 1 and not bench.leveldb_compaction_due(text)
    finally:
        adapter.db.close()
