"""Many processes writing one served database: concurrent clients and local
writers end in a state some serial order of their batches explains, a client
killed mid-batch leaves none of that batch, and a killed server loses no
acknowledged write."""
import graphlib
import os
import random
import signal
import threading

import pytest

import lsm
from serve_helpers import finish, read_until, serving_process, spawn, wait_for

KEYS = 40
WRITER = r"""
import random, sys
import lsm
path, name, batches, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
with lsm.connect(path, timeout=30) as client:
    for b in range(batches):
        keys = rng.sample(range(%d), 5)
        with client.write_batch() as wb:
            for k in keys:
                wb.put(b"key%%02d" %% k, f"{name}:{b}".encode())
        print(b, *keys, flush=True)
""" % KEYS


def _batches(name, lines):
    return {(name, int(b)): [int(k) for k in keys] for b, *keys in (line.split() for line in lines)}


def _check_serial_order(written, final):
    """A serial order of every batch exists that keeps each writer's
    acknowledged order and ends in `final`: for every key, the batch whose
    value is final comes after every other batch that wrote the key."""
    order = graphlib.TopologicalSorter()
    for (name, b) in written:
        order.add((name, b))
        if (name, b + 1) in written:
            order.add((name, b + 1), (name, b))
    writers_of = {}
    for batch, keys in written.items():
        for k in keys:
            writers_of.setdefault(k, []).append(batch)
    for k in range(KEYS):
        value = final.get(b"key%02d" % k)
        if k not in writers_of:
            assert value is None, k
            continue
        name, b = value.decode().split(":")
        last = (name, int(b))
        assert last in writers_of[k], (k, last)
        for batch in writers_of[k]:
            if batch != last:
                order.add(last, batch)
    order.prepare()  # graphlib.CycleError: no serial order explains `final`


def test_four_clients_and_local_writers_end_in_a_serial_order(tmp_path):
    path = str(tmp_path / "db")
    written = {}
    with lsm.DB(path, create_if_missing=True, serve=True, compactors=0, write_buffer_size=64 << 10) as db:
        clients = [spawn(WRITER, path, f"c{i}", 150, i) for i in range(4)]

        def local(name, seed):
            rng = random.Random(seed)
            lines = []
            for b in range(150):
                keys = rng.sample(range(KEYS), 5)
                with db.write_batch() as wb:
                    for k in keys:
                        wb.put(b"key%02d" % k, f"{name}:{b}".encode())
                lines.append(" ".join(map(str, [b, *keys])))
            written.update(_batches(name, lines))

        threads = [threading.Thread(target=local, args=(f"L{i}", 100 + i)) for i in range(2)]
        for t in threads:
            t.start()
        for i, proc in enumerate(clients):
            written.update(_batches(f"c{i}", finish(proc)))
        for t in threads:
            t.join()
        assert len(written) == 6 * 150
        final = dict(db.iterator())
        with lsm.connect(path) as client:
            assert dict(client.iterator()) == final
    _check_serial_order(written, final)


def test_serial_order_check_rejects_a_lost_write():
    written = {("a", 0): [1], ("a", 1): [1], ("b", 0): [2]}
    _check_serial_order(written, {b"key01": b"a:1", b"key02": b"b:0"})
    with pytest.raises(graphlib.CycleError):
        _check_serial_order(written, {b"key01": b"a:0", b"key02": b"b:0"})


BIG_BATCHES = r"""
import sys
import lsm
path, name = sys.argv[1], sys.argv[2]
value = b"v" * 20000
with lsm.connect(path, timeout=30) as client:
    b = 0
    while True:
        with client.write_batch() as wb:
            for j in range(100):
                wb.put(b"%s-%06d-%03d" % (name.encode(), b, j), value)
        print(b, flush=True)
        b += 1
"""


def test_client_killed_mid_batch_leaves_no_partial_batch(tmp_path):
    path = str(tmp_path / "db")
    with lsm.DB(path, create_if_missing=True, serve=True, compactors=0) as db:
        server = db._server
        procs = {f"k{i}": spawn(BIG_BATCHES, path, f"k{i}") for i in range(3)}
        acked = {}
        for i, (name, proc) in enumerate(procs.items()):
            acked[name] = len(read_until(proc, lambda line, n=3 + 2 * i: int(line) >= n))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        wait_for(lambda: server.clients == 0, what="the server noticing its clients are gone")
        batches = {}
        for key in db.iterator(include_value=False):
            name, b, _ = key.split(b"-")
            batches.setdefault((name.decode(), int(b)), []).append(key)
        for (name, b), keys in batches.items():
            assert len(keys) == 100, (name, b, len(keys))
        for name, count in acked.items():
            assert all((name, b) in batches for b in range(count)), name
        with lsm.connect(path) as client:  # the server is still serving
            client.put(b"after", b"kills")
        assert db.get(b"after") == b"kills"


ACKED_WRITER = r"""
import sys, time
import lsm
path, name = sys.argv[1], sys.argv[2]
client = lsm.connect(path, timeout=5)
b = 0
try:
    while True:
        with client.write_batch(sync=b % 2 == 0) as wb:
            for j in range(50):
                wb.put(b"%s-%06d-%02d" % (name.encode(), b, j), b"x" * 100)
        print(b, flush=True)
        b += 1
except lsm.IOError as exc:
    print("IOError", exc, flush=True)
"""


def test_server_killed_clients_raise_and_reopen_recovers_every_acknowledged_write(tmp_path):
    path = str(tmp_path / "db")
    with serving_process(path) as server:
        here = lsm.connect(path, timeout=5)
        here.put(b"before", b"kill", sync=True)
        snapshot = here.snapshot()
        writers = {name: spawn(ACKED_WRITER, path, name) for name in ("w0", "w1")}
        for proc in writers.values():
            read_until(proc, lambda line: line.isdigit() and int(line) >= 5)
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        acked = {}
        for name, proc in writers.items():
            lines = finish(proc)
            assert lines[-1].startswith("IOError"), lines[-3:]
            acked[name] = 6 + sum(1 for line in lines if line.isdigit())
        with pytest.raises(lsm.IOError):
            here.put(b"while", b"down")
    with lsm.DB(path, serve=True, compactors=0) as db:
        for name, count in acked.items():
            for b in range(count):
                assert db.get(b"%s-%06d-49" % (name.encode(), b)) == b"x" * 100, (name, b)
        assert db.get(b"before") == b"kill"
        here.put(b"after", b"restart")  # the client reconnects to the new server
        assert db.get(b"after") == b"restart"
        with pytest.raises(lsm.IOError, match="connection to the server was lost"):
            snapshot.get(b"before")
        here.close()
    assert not os.path.exists(os.path.join(path, "SERVER"))
