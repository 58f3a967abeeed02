"""The ``loaders`` workload: loader processes that do real work per record
(build a dict, JSON-encode it) and write batches of LOADER_BATCH, against
one process doing the same work and writing alone.

On lsm the loaders are ``lsm.connect`` clients of the benchmark's open DB,
which serves them (lsm.serve.server) and merges their batches in its group
commit. On the other engines they hand their batches to the writing process
through a ``multiprocessing.Queue`` (pickled), as a loader does today. Each
loader count in ``--loaders`` runs on the same records, in turn, over the
same database (later runs overwrite). Reported per count: ops/s and the
writing process's CPU milliseconds per batch (its threads included), from
which the scaling on more cores can be argued.

Knows the adapters, lsm.serve and multiprocessing; no engine internals.
"""
import json
import multiprocessing
import resource
import time

LOADER_BATCH = 1000
_QUEUE_DEPTH = 16  # batches in flight per queue: the loaders wait when the writer lags


def parse_loader_counts(text):
    counts = [int(item) for item in text.split(",") if item.strip()]
    if not counts or any(n < 1 for n in counts):
        raise ValueError(f"--loaders: {text!r} must list loader counts of 1 or more")
    return counts


def plan_loaders(data):
    """Every engine loads records 0..num-1, once per configuration."""
    data.reset_ids()


def total_operations(data):
    return data.num * (1 + len(data.loader_counts))


def _encode(i, key, value):
    """The per-record work of a loader: a dict made and JSON-encoded."""
    record = {"id": i, "key": key.hex(), "size": len(value), "body": value.decode("latin-1")}
    return json.dumps(record, separators=(",", ":")).encode()


def _my_batches(keys, values, loader, loaders):
    """Loader `loader` of `loaders`: every loaders-th batch, from its own."""
    for start in range(loader * LOADER_BATCH, len(keys), loaders * LOADER_BATCH):
        end = min(start + LOADER_BATCH, len(keys))
        yield keys[start:end], [_encode(i, keys[i], values[i]) for i in range(start, end)]


def _client_loader(path, keys, values, loader, loaders):
    import lsm
    with lsm.connect(path, timeout=600) as client:
        for batch_keys, batch_values in _my_batches(keys, values, loader, loaders):
            with client.write_batch() as wb:
                for k, v in zip(batch_keys, batch_values):
                    wb.put(k, v)


def _queue_loader(queue, keys, values, loader, loaders):
    for batch in _my_batches(keys, values, loader, loaders):
        queue.put(batch)
    queue.put(None)


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(run):
    cpu, began = _cpu_seconds(), time.perf_counter()
    run()
    return time.perf_counter() - began, _cpu_seconds() - cpu


def _alone(adapter, keys, values):
    for batch_keys, batch_values in _my_batches(keys, values, 0, 1):
        adapter.write_batch(batch_keys, batch_values)


def _through_clients(adapter, keys, values, loaders, ctx):
    from ..serve.server import Server
    server = Server(adapter.db).start()
    try:
        procs = [ctx.Process(target=_client_loader, args=(adapter.path, keys, values, j, loaders))
                 for j in range(loaders)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        failed = [p.exitcode for p in procs if p.exitcode != 0]
        if failed:
            raise RuntimeError(f"loader processes failed with exit codes {failed}")
    finally:
        server.close()


def _through_queue(adapter, keys, values, loaders, ctx):
    queue = ctx.Queue(_QUEUE_DEPTH)
    procs = [ctx.Process(target=_queue_loader, args=(queue, keys, values, j, loaders)) for j in range(loaders)]
    for p in procs:
        p.start()
    running = loaders
    while running:
        batch = queue.get()
        if batch is None:
            running -= 1
        else:
            adapter.write_batch(*batch)
    for p in procs:
        p.join()


def w_loaders(adapter, data, plan, progress):
    """(ops, seconds, bytes, extra): ops and seconds of every configuration
    together; extra has each one's ops/s and writer CPU ms per batch."""
    keys, values = data.keys, data.values
    ctx = multiprocessing.get_context("fork")
    batches = -(-len(keys) // LOADER_BATCH)
    remote = _through_clients if adapter.kind == "lsm" else _through_queue
    configurations = [("alone", lambda: _alone(adapter, keys, values))]
    configurations += [(f"loaders_{n}", lambda n=n: remote(adapter, keys, values, n, ctx))
                       for n in data.loader_counts]
    extra, total_seconds, notes = {}, 0.0, []
    for name, run in configurations:
        seconds, cpu = _timed(run)
        progress(len(keys))
        total_seconds += seconds
        extra[f"{name}_ops_per_sec"] = len(keys) / seconds
        extra[f"{name}_writer_cpu_ms_per_batch"] = cpu * 1000 / batches
        notes.append(f"{name.replace('_', ' ')}: {len(keys) / seconds:,.0f}/s, writer {cpu * 1000 / batches:.2f} "
                     "ms CPU/batch")
    extra["notes"] = notes
    ops = len(keys) * len(configurations)
    return ops, total_seconds, ops * data.entry_bytes, extra
