"""`python -m lsm bench`: every workload on every engine, JSON lines and the summary table."""
import json
import os
import subprocess
import sys
from pathlib import Path

import cramjam

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


def test_read_workload_without_a_fill_prepares_one():
    result = run_bench("--num", 300, "--reads", 450, "--workloads", "readrandom", "--engines", "lsm",
                       "--json", "--quiet")
    assert result.returncode == 0, result.stderr
    (row,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert row["engine"] == "lsm" and row["ops"] == 450 and row["found"] == 450
    assert result.stderr == ""


def test_usage_errors_exit_2():
    for args in (["--workloads", "fillseq,nosuch"], ["--engines", "lsm,sqlite"], ["--compactors", "many"],
                 ["--num", "0"], ["--num", "1000", "--key-size", "2"], ["--num", "x"], ["--reads", "0"]):
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
