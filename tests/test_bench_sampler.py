"""The bench's Sampler: what it reports of a run's processes, and that it
reports it from outside the process it measures."""
import os
import subprocess
import sys
import threading
import time

import psutil

from lsm.bench.sampler import MB, Sampler

WRITER = (
    "import os, sys, time\n"
    "with open(sys.argv[1], 'wb') as f:\n"
    "    f.write(b'x' * (1 << 20))\n"
    "    f.flush()\n"
    "print('written', flush=True)\n"
    "sys.stdin.read()\n"
)


def test_sampling_takes_no_thread_of_the_measured_process():
    # A sampling thread took the GIL from the workload twenty times a
    # second: lsm, with compactors to read, lost ~8% of its scans to it.
    threads = threading.active_count()
    sampler = Sampler(interval=0.01)
    sampler.start()
    try:
        time.sleep(0.05)
        assert threading.active_count() == threads
    finally:
        sampler.stop()


def test_a_child_started_during_the_run_is_measured_once_and_the_monitor_not_at_all(tmp_path):
    sampler = Sampler(interval=0.01)
    sampler.start()
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "out")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"written\n"
        sampler.sample_now()  # the child is alive: its RSS and counters are read now
    finally:
        child.communicate()
    sampler.stop()
    rows = sampler.child_report()
    assert [row["pid"] for row in rows] == [child.pid]
    assert rows[0]["peak_rss_mb"] > 1
    assert rows[0]["written_mb"] >= 1
    # Reaped: its writes are in this process's counters now, and counted once.
    written = sampler.bytes_written()
    assert 1 << 20 <= written < (1 << 20) + 256 * 1024
    assert sampler.peak_compactor_rss >= rows[0]["peak_rss_mb"] * MB * 0.99


def test_the_monitor_is_gone_once_the_sampler_stops():
    sampler = Sampler(interval=0.01)
    sampler.start()
    sampler.stop()
    assert [p.pid for p in psutil.Process().children()] == []


def test_a_sampler_never_started_samples_when_asked_and_stops_cleanly():
    sampler = Sampler()
    sampler.sample_now()
    sampler.stop()
    assert sampler.process_peak_rss() >= sampler.baseline_rss > 0
    assert sampler.child_report() == []
    assert not [p for p in psutil.Process().children() if p.pid != os.getpid()]


def test_a_monitor_killed_mid_run_makes_stop_say_so_rather_than_fail_to_unpickle():
    import signal

    import pytest

    sampler = Sampler(interval=0.01)
    sampler.start()
    monitor = sampler._monitor.pid
    os.kill(monitor, signal.SIGKILL)
    while psutil.Process(monitor).status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.001)  # dead before stop() writes to it: the write finds no reader
    with pytest.raises(RuntimeError, match=rf"sampling process \(pid {monitor}\) ended without its samples"):
        sampler.stop()
    assert [p.pid for p in psutil.Process().children()] == []
