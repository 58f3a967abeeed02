"""`python -m lsm bench`: every workload on every engine, JSON lines and the summary table."""
import json
import os
import subprocess
import sys
from pathlib import Path

import cramjam
import numpy as np
import pytest

from lsm import bench
from lsm.bench import engines

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
    workloads = list(bench.DEFAULT_WORKLOADS)
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
    assert bench.medians(rows) == {("fillseq", "lsm"): {"ops_per_sec": 2.5, "mb_per_sec": None}}


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


def test_compactor_pids_are_read_from_stats():
    assert engines._pids([{"pid": 11}, 12, {"name": "x"}, True]) == [11, 12]


def test_compactors_list_parsing():
    assert bench.parse_compactors(None) == [None]
    assert bench.parse_compactors("2") == [2]
    assert bench.parse_compactors("inline") == [0]
    assert bench.parse_compactors(" INLINE , 1,2 ") == [0, 1, 2]
    for text, bad in (("inline,1,x", "'x'"), ("1,two", "'two'"), ("1,-1", "'-1'"), ("1,,2", "'1,,2'"),
                      ("inline,0", "'0'"), ("2,2", "'2'"), (",", "empty list")):
        with pytest.raises(bench.UsageError) as info:
            bench.parse_compactors(text)
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


# ------------------------------------------------------------ real data
from lsm.bench import distributions, isolate, options, realistic  # noqa: E402


def resolved(*argv):
    return options.resolve(options.build_parser().parse_args(list(argv)))


def test_presets_fill_only_the_options_not_given():
    args = resolved("--preset", "realistic")
    assert args.num == 300_000 and args.reads == 50_000 and args.no_compact
    assert args.key_distribution.kind == "ycsb"
    values = args.value_distribution
    assert (values.kind, values.median, values.sigma, values.low, values.high) == ("lognormal", 200, 1.0, 10, 4096)
    assert args.workload_list == ["load", "churn", "ycsb-c", "absentget", "scan50", "fullscan", "compact_range",
                                  "ycsb-c", "absentget", "scan50", "fullscan"]
    args = resolved("--preset", "realistic", "--num", "5000", "--reads", "70", "--value-dist", "fixed:33",
                    "--workloads", "load,ycsb-a")
    assert (args.num, args.reads, args.workload_list) == (5000, 70, ["load", "ycsb-a"])
    assert (args.value_distribution.kind, args.value_distribution.size) == ("fixed", 33)
    args = resolved()  # db_bench's shape, as before presets
    assert args.num == 1_000_000 and args.reads is None and not args.no_compact
    assert (args.key_distribution.size, args.value_distribution.size) == (16, 100)
    assert args.workload_list == list(bench.DEFAULT_WORKLOADS)
    args = resolved("--key-size", "20", "--key-dist", "lognormal:30:0.5")
    assert (args.key_distribution.median, args.key_distribution.low, args.key_distribution.high) == (30, 8, 1024)


def test_bad_distributions_name_the_option_and_the_text():
    for argv, bad in ((["--key-dist", "zipf"], "--key-dist: bad 'zipf'"),
                      (["--value-dist", "ycsb"], "--value-dist: bad 'ycsb'"),
                      (["--value-dist", "lognormal:200"], "--value-dist: bad 'lognormal:200'"),
                      (["--value-dist", "lognormal:x:1"], "--value-dist: bad 'lognormal:x:1'"),
                      (["--value-dist", "lognormal:200:1:50:20"], "need 0 <= MIN <= MAX"),
                      (["--value-dist", "lognormal:0:1"], "median must be above 0"),
                      (["--key-dist", "fixed:-1"], "must not be negative"),
                      (["--key-dist", "fixed:3", "--num", "5000"], "--key-size 3 is too small"),
                      (["--key-dist", "lognormal:20:1:4:100"], "MIN 4 is below 8"),
                      (["--plot", "chart.svg"], "must name a .png file")):
        with pytest.raises(bench.UsageError) as info:
            resolved(*argv)
        assert bad in str(info.value), (argv, str(info.value))


def test_bench_main_parses_its_own_arguments_and_exits_2_on_bad_usage(capsys):
    with pytest.raises(SystemExit) as info:
        bench.main(["--num", "10", "--value-dist", "lognormal:1"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m lsm bench") and "--value-dist: bad 'lognormal:1'" in err


def test_bench_does_not_load_the_command_line():
    code = "import sys, lsm.bench; print(sorted(m for m in sys.modules if m.startswith('lsm.cli')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result


def test_ycsb_keys_are_user_plus_fnv_hash_5_to_23_bytes():
    data = bench.Data(3000, key_dist=bench.SizeDist("ycsb"), value_dist=bench.SizeDist("fixed", size=10))
    assert data.keys[0] == b"user6284781860667377211"  # YCSB's first key, record 0
    assert all(k.startswith(b"user") and k[4:].isdigit() and 5 <= len(k) <= 23 for k in data.keys)
    assert len(set(data.keys)) == 3000 and sorted(data.keys) != data.keys  # hashed: not in record order
    absent = data.absent_keys(500)
    assert len(set(absent)) == 500 and not set(absent) & set(data.keys)
    assert data.key_of([7, 2999]) == [data.keys[7], data.keys[2999]]


def test_lognormal_values_have_the_median_and_bounds_and_snappy_halves_them():
    dist = bench.parse_size_dist("lognormal:200:1.0", what="value-dist", fixed_size=0, allow_ycsb=False,
                                 low=10, high=4096)
    data = bench.Data(20000, key_dist=bench.SizeDist("ycsb"), value_dist=dist)
    sizes = sorted(len(v) for v in data.values)
    assert 180 <= sizes[len(sizes) // 2] <= 220
    assert sizes[0] >= 10 and sizes[-1] <= 4096
    assert sizes[0] < 20 and sizes[-1] > 2000  # both tails reach near the bounds
    assert len(set(data.values)) > 10000
    assert all(set(v) <= set(b"abcdefghijklmnopqrstuvwxyz ") for v in data.values[:100])
    # Snappy on 4 KiB of values, as a table block holds them: about half.
    blob = b"".join(data.values[:2000])
    blocks = [blob[i:i + 4096] for i in range(0, len(blob) - 4096, 4096)]
    ratio = sum(len(bytes(cramjam.snappy.compress_raw(b))) for b in blocks) / (4096 * len(blocks))
    assert 0.4 < ratio < 0.65, ratio
    again = bench.Data(20000, key_dist=bench.SizeDist("ycsb"), value_dist=dist)
    assert again.values == data.values


def test_lognormal_keys_are_distinct_with_the_median_and_bounds():
    dist = bench.parse_size_dist("lognormal:40:0.8:12:300", what="key-dist", fixed_size=0, allow_ycsb=True,
                                 low=8, high=1024)
    data = bench.Data(20000, key_dist=dist)
    sizes = sorted(len(k) for k in data.keys)
    assert 36 <= sizes[len(sizes) // 2] <= 44 and sizes[0] >= 12 and sizes[-1] <= 300
    assert len(set(data.keys)) == 20000
    assert data.key_of([5]) == [data.keys[5]]


def test_scrambled_zipfian_has_ycsb_skew_scattered_over_the_records():
    rng = np.random.default_rng(3)
    draws = distributions.scrambled_zipfian(rng, 400_000, 2000)
    assert draws.min() >= 0 and draws.max() < 2000
    counts = np.sort(np.bincount(draws, minlength=2000))[::-1]
    # theta 0.99 over YCSB's 10^10 items: the top rank is 1/zeta(10^10) = 3.8% of requests.
    assert 0.034 < counts[0] / 400_000 < 0.045
    assert 0.13 < counts[:20].sum() / 400_000 < 0.2  # the top 1% of records
    assert (counts > 0).sum() > 1900  # and yet nearly every record is asked for
    hottest = np.argsort(np.bincount(draws, minlength=2000))[::-1][:5]
    assert not np.array_equal(np.sort(hottest), np.arange(5))  # scattered, not records 0..4
    ranks = distributions.zipfian_ranks(rng, 200_000, 1000)
    assert 0.12 < np.mean(ranks == 0) < 0.14  # 1 / zeta(1000, 0.99)
    latest = distributions.skewed_latest(rng, 10_000, np.full(10_000, 999))
    assert latest.max() == 999 and 0.35 < np.mean(latest >= 990) < 0.45  # zeta(10) / zeta(1000)


def test_churn_plan_mixes_overwrites_inserts_and_deletions():
    data = bench.Data(10000)
    plan = realistic.plan_churn(data)
    kinds = np.array(plan.kinds)
    deletes = np.array([v is None for v in plan.values])
    assert len(plan.keys) == 10000 and data.next_id == 10000 + (kinds == realistic.INSERT).sum()
    assert 0.17 < deletes.mean() < 0.23 and 0.08 < (kinds == realistic.INSERT).mean() < 0.12
    assert not deletes[kinds != -1].any()
    inserted = [k for k, kind in zip(plan.keys, plan.kinds) if kind == realistic.INSERT]
    assert not set(inserted) & set(data.keys)


def test_child_process_memory_is_its_own():
    def big():
        blob = b"x" * (96 << 20)
        return len(blob), __import__("resource").getrusage(__import__("resource").RUSAGE_SELF).ru_maxrss

    def small():
        return __import__("resource").getrusage(__import__("resource").RUSAGE_SELF).ru_maxrss

    size, peak_big = isolate.run_in_child("big", big)
    peak_small = isolate.run_in_child("small", small)
    assert size == 96 << 20 and peak_big - peak_small > 80 << 10  # KiB: the big one's peak is not inherited
    with pytest.raises(isolate.ChildFailed) as info:
        isolate.run_in_child("step x", lambda: 1 / 0)
    assert str(info.value) == "step x: ZeroDivisionError: division by zero"
    assert "ZeroDivisionError" in info.value.child_traceback


def test_realistic_preset_rows_plot_and_same_answers_on_every_engine(tmp_path):
    num = 2000
    png = tmp_path / "chart.png"
    result = run_bench("--preset", "realistic", "--num", num, "--reads", 1000, "--compactors", "inline",
                       "--json", "--plot", png, "--dir", tmp_path / "dbs")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    workloads = options.PRESETS["realistic"]["workloads"].split(",")
    assert [(r["workload"], r["engine"]) for r in rows] == [(w, e) for w in workloads for e in bench.ENGINES]
    for r in rows:
        assert FIELDS <= set(r) and r["ops_per_sec"] > 0, r
        assert r["key_dist"] == "ycsb" and r["value_dist"] == "lognormal:200:1:10:4096", r
        assert r["peak_rss_mb"] >= r["baseline_rss_mb"] > 10 and r["engine_rss_mb"] >= 0, r
    by = {}
    for r in rows:
        by.setdefault((r["workload"], r["compacted"] if "compacted" in r else None), {})[r["engine"]] = r
    churn = by[("churn", False)]
    assert {r["ops"] for r in churn.values()} == {num} and len({r["deletes"] for r in churn.values()}) == 1
    assert 0.15 * num < churn["lsm"]["deletes"] < 0.25 * num
    for compacted in (False, True):
        gets = by[("ycsb-c", compacted)]
        found = {r["found"] for r in gets.values()}
        assert len(found) == 1 and 0 < found.pop() < 1000  # the same answers; deleted keys are not found
        assert {r["found"] for r in by[("absentget", compacted)].values()} == {0}
        scans = by[("fullscan", compacted)]
        live = num + churn["lsm"]["inserts"]
        assert len({r["ops"] for r in scans.values()}) == 1 and live - churn["lsm"]["deletes"] <= scans["lsm"]["ops"] < live
        assert len({r["scanned"] for r in by[("scan50", compacted)].values()}) == 1
    for r in by[("compact_range", False)].values():
        assert r["ops"] == 1 and r["db_bytes_before"] > 0
    assert "ycsb-c (compacted)" in result.stderr and "Memory (peak RSS" in result.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20000


def test_ycsb_workloads_give_every_engine_the_same_answers():
    result = run_bench("--num", 1500, "--reads", 600, "--key-dist", "ycsb", "--value-dist", "lognormal:100:0.5",
                       "--workloads", "load,ycsb-a,ycsb-b,ycsb-c,ycsb-d,ycsb-e,ycsb-f,fullscan", "--compactors", "inline",
                       "--json", "--quiet")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    by = {}
    for r in rows:
        by.setdefault(r["workload"], {})[r["engine"]] = r
    for workload, mix in (("ycsb-a", {"reads", "updates"}), ("ycsb-b", {"reads", "updates"}), ("ycsb-c", {"reads"}),
                          ("ycsb-d", {"reads", "inserts"}), ("ycsb-e", {"scans", "inserts"}),
                          ("ycsb-f", {"reads", "read_modify_writes"})):
        engines_rows = by[workload]
        assert set(engines_rows) == set(bench.ENGINES)
        answers = {(r.get("found"), r.get("scanned")) for r in engines_rows.values()}
        assert len(answers) == 1, (workload, answers)
        r = engines_rows["lsm"]
        assert r["ops"] == 600 and mix <= set(r), (workload, r)
        assert sum(r[k] for k in mix) == 600
    assert by["ycsb-a"]["lsm"]["found"] == by["ycsb-a"]["lsm"]["reads"]  # nothing deleted: every read finds
    assert by["ycsb-d"]["lsm"]["found"] == by["ycsb-d"]["lsm"]["reads"]  # reads of the latest, inserts included
    assert by["ycsb-e"]["lsm"]["scanned"] > 40 * by["ycsb-e"]["lsm"]["scans"] and "found" not in by["ycsb-e"]["lsm"]
    inserted = by["ycsb-d"]["lsm"]["inserts"] + by["ycsb-e"]["lsm"]["inserts"]
    assert {r["ops"] for r in by["fullscan"].values()} == {1500 + inserted}
