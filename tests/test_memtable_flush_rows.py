"""A stalled writer flushes its frozen memtable from memory (MemTable.
flush_rows) instead of from the WAL. The rows may hold fewer versions than
the WAL, never fewer visible ones: at every snapshot that was live, and at
the newest sequence, each key reads what the full history says."""
from hypothesis import given, settings
from hypothesis import strategies as st

from lsm.batch import encode_batch
from lsm.keys import TYPE_DELETION, TYPE_VALUE
from lsm.writer.memtable import MemTable

keys = st.sampled_from([b"a", b"b", b"c", b"d"])
op = st.tuples(st.sampled_from([TYPE_VALUE, TYPE_VALUE, TYPE_DELETION]), keys, st.binary(max_size=3))
step = st.one_of(st.tuples(st.just("write"), st.lists(op, min_size=1, max_size=4), st.booleans()),
                 st.tuples(st.just("snapshot")), st.tuples(st.just("release")), st.tuples(st.just("get"), keys))


def visible(rows_or_history, key, sequence):
    """Value of key at sequence from [(key, seq, kind, value)], or None."""
    best = None
    for k, seq, kind, value in rows_or_history:
        if k == key and seq <= sequence and (best is None or seq > best[0]):
            best = (seq, kind, value)
    return None if best is None or best[1] == TYPE_DELETION else best[2]


@settings(max_examples=300, deadline=None)
@given(st.lists(step, max_size=25))
def test_flush_rows_keep_every_version_a_live_snapshot_or_the_newest_read_sees(steps):
    wal = []  # the batches as the WAL holds them; a span is an index here
    mem = MemTable(load=wal.__getitem__)
    history = []
    snapshots = []
    sequence = 0
    for s in steps:
        if s[0] == "write":
            ops = [(kind, key, value if kind == TYPE_VALUE else b"") for kind, key, value in s[1]]
            payload = encode_batch(sequence + 1, ops)
            if snapshots:
                mem.add_payload(payload, sorted(snapshots))
            else:  # as the engine writes with no snapshot live: read back when needed
                wal.append(payload)
                mem.add_logged(len(wal) - 1, len(ops), len(payload))
            if s[2]:
                mem.get(b"a", sequence)  # indexed now, not with the batches after it
            for i, (kind, key, value) in enumerate(ops):
                history.append((key, sequence + 1 + i, kind, value))
            sequence += len(ops)
        elif s[0] == "snapshot":
            snapshots.append(sequence)
        elif s[0] == "release":
            if snapshots:
                snapshots.pop(0)
        else:
            mem.get(s[1], sequence)  # a read indexes pending batches
    rows = mem.flush_rows()
    assert rows == sorted(rows)
    assert len({(k, t) for k, t, _ in rows}) == len(rows)
    flushed = [(k, -t >> 8, -t & 0xFF, v) for k, t, v in rows]
    assert {k for k, _, _ in rows} == {h[0] for h in history}
    for at in set(snapshots) | {sequence}:
        for key in (b"a", b"b", b"c", b"d"):
            assert visible(flushed, key, at) == visible(history, key, at), (key, at)
