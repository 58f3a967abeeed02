"""Aggregate write rate of client processes sending ready-made batches to one
serving database: each client builds and sends --batches write batches of
1000 puts (16-byte keys, 100-byte values) through lsm.connect, all clients
starting together; the rate is all their puts over the slowest client's
time. The loaders workload of `python -m lsm bench` adds per-record work in
the loaders; this one measures what the server's group commit takes.

    .venv/bin/python scripts/bench_clients.py --clients 1,2,4
"""
import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import lsm  # noqa: E402

BATCH_OPS = 1000
VALUE = b"x" * 100


def _client(path, client_id, batches, start, seconds):
    client = lsm.connect(path, timeout=60)
    keys = [[b"c%03d-%010d" % (client_id, b * BATCH_OPS + i) for i in range(BATCH_OPS)] for b in range(batches)]
    start.wait()
    began = time.monotonic()
    for batch_keys in keys:
        with client.write_batch() as wb:
            for key in batch_keys:
                wb.put(key, VALUE)
    seconds.put(time.monotonic() - began)
    client.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,2,4", help="client process counts, comma-separated")
    parser.add_argument("--batches", type=int, default=300, help="batches of 1000 puts per client")
    parser.add_argument("--dir", default=None, help="where to make the database (default: a temporary one)")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.clients.split(",")]
    top = tempfile.mkdtemp(prefix="lsm-clients-", dir=args.dir)
    try:
        db = lsm.DB(os.path.join(top, "db"), create_if_missing=True, serve=True)
        try:
            for n, count in enumerate(counts):
                start, seconds = multiprocessing.Event(), multiprocessing.Queue()
                procs = [multiprocessing.Process(target=_client, args=(db.name, n * 100 + i, args.batches, start,
                                                                       seconds)) for i in range(count)]
                for p in procs:
                    p.start()
                time.sleep(2 + count)  # every client builds its keys and connects before the start
                start.set()
                slowest = max(seconds.get() for _ in procs)
                for p in procs:
                    p.join()
                print(f"{count} clients: {count * args.batches * BATCH_OPS / slowest:,.0f} puts/s aggregate "
                      f"({slowest:.2f} s)")
        finally:
            db.close()
    finally:
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
