"""The bench's loaders workload: loader processes as lsm clients, and as
plyvel's feeders through a queue, each configuration reported."""
import json

import pytest

from lsm.bench.loaders import parse_loader_counts
from test_bench import run_bench


def test_loaders_workload_reports_every_configuration(tmp_path):
    result = run_bench("--workloads", "loaders", "--num", 2500, "--loaders", "1,2", "--engines", "lsm,plyvel",
                       "--compactors", 0, "--json", "--quiet", "--dir", tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r["engine"] for r in rows} == {"lsm", "plyvel"}
    for r in rows:
        assert r["ops"] == 3 * 2500
        for name in ("alone", "loaders_1", "loaders_2"):
            assert r[f"{name}_ops_per_sec"] > 0
            assert r[f"{name}_writer_cpu_ms_per_batch"] > 0


def test_loader_counts_must_be_positive():
    assert parse_loader_counts("1,2,4") == [1, 2, 4]
    with pytest.raises(ValueError, match="--loaders"):
        parse_loader_counts("0")
